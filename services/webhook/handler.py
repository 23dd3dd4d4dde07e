"""Lambda entry point: API Gateway HTTP API (payload v2) → Mangum → Flask.

The app and its dependencies are built on the first invocation, not at import, so importing this
module never reads settings or creates AWS clients.
"""

from __future__ import annotations

from typing import Any

from asgiref.wsgi import WsgiToAsgi
from mangum import Mangum

from services.core.observability import logger, metrics
from services.webhook.app import MAX_BODY_BYTES, WebhookDeps, build_deps, create_app
from services.webhook.asgi import BufferedBody

_handler: Mangum | None = None


def build_handler(deps: WebhookDeps | None = None) -> Mangum:
    app = create_app(deps if deps is not None else build_deps)
    asgi = BufferedBody(WsgiToAsgi(app), max_body_bytes=MAX_BODY_BYTES)  # type: ignore[no-untyped-call]
    # The path Flask routes on is Mangum's unquote() of requestContext.http.path, which an HTTP API
    # hands over already percent-decoded (a link's %2F arrives as '/'). The second decoding
    # changes nothing in a Zoom UUID (A-Z a-z 0-9 + / =), so the page reads the UUID that API
    # Gateway matched as the greedy {uuid+}.
    return Mangum(asgi, lifespan="off", api_gateway_base_path="/")


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _handler
    if _handler is None:
        _handler = build_handler()
    response: dict[str, Any] = _handler(event, context)
    return response
