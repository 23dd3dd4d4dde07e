"""`GET /meetings/<uuid>?token=...`: a meeting's insights page, opened by a signed, expiring link.

The UUID arrives percent-encoded as one path segment (Zoom UUIDs hold '/', '+' and '='); the
server decodes it before routing, and `<path:...>` keeps any '/' it contains. Answers are plain
HTML that reveal nothing: a wrong, forged or foreign token is the same 404 as an unknown meeting
or one without insights yet; only a genuine token past its expiry gets 410, so its holder knows
to ask for a new link. The token sits in the URL, so the page is neither cached nor referred.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from flask import Blueprint, Response, request
from werkzeug.exceptions import HTTPException

from services.core.errors import SecretNotSet
from services.core.insights.document import load_insights
from services.core.insights.render import render_page
from services.core.links import PageLinkExpired, PageLinkInvalid, read_page_token
from services.core.observability import logger, record_metric
from services.core.recordings import Recording

MAX_TOKEN_CHARS = 2048

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "X-Robots-Tag": "noindex, nofollow",
}

_ERROR_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title></head>
<body style="margin:0;background:#f3f4f6;color:#1f2937;
font-family:-apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,Arial,sans-serif;">
<main style="max-width:520px;margin:15vh auto;padding:24px;background:#fff;border:1px solid #e5e7eb;
border-radius:14px;"><h1 style="font-size:1.4rem;margin:0 0 8px;">{title}</h1>
<p style="margin:0;line-height:1.55;">{message}</p></main></body></html>
"""
NOT_FOUND = (
    404,
    "Page not found",
    "This link does not open any meeting notes. Check that you copied the whole link.",
)
EXPIRED = (
    410,
    "This link has expired",
    "Links to meeting notes work for a limited time. Ask the meeting host for a new one.",
)
UNAVAILABLE = (503, "Try again shortly", "The meeting notes cannot be shown right now.")


class RecordingReader(Protocol):
    def get(self, meeting_uuid: str) -> Recording | None: ...


@dataclass(frozen=True)
class InsightsPageDeps:
    store: RecordingReader
    s3: Any
    bucket: str
    signing_key: Callable[[], str]
    clock: Callable[[], float] = field(default=time.time)


def _html(body: str, status: int) -> Response:
    response = Response(body, status=status, mimetype="text/html")
    response.headers.update(SECURITY_HEADERS)
    return response


def _error(page: tuple[int, str, str]) -> Response:
    status, title, message = page
    return _html(_ERROR_PAGE.format(title=title, message=message), status)


def insights_blueprint(get_page_deps: Callable[[], InsightsPageDeps]) -> Blueprint:
    """The page's routes; `get_page_deps` is called per request (cache inside it if needed)."""
    blueprint = Blueprint("insights_page", __name__)

    @blueprint.get("/meetings/<path:meeting_uuid>")
    def insights_page(meeting_uuid: str) -> Response:
        deps = get_page_deps()
        token = request.args.get("token", "")
        if not token or len(token) > MAX_TOKEN_CHARS:
            return _error(NOT_FOUND)
        try:
            key = deps.signing_key()
        except SecretNotSet as e:
            # A new stack before its key is set: no link can be valid yet. One line, no alarm.
            logger.warning("secret not set yet; page not served", secret_id=e.secret_id)
            return _error(NOT_FOUND)
        try:
            read_page_token(token, meeting_uuid, key, deps.clock())
        except PageLinkExpired:
            record_metric("InsightsPageExpired")
            return _error(EXPIRED)
        except PageLinkInvalid:
            record_metric("InsightsPageRejected")
            return _error(NOT_FOUND)
        recording = deps.store.get(meeting_uuid)
        if recording is None or not recording.insights_key:
            return _error(NOT_FOUND)
        document = load_insights(deps.s3, deps.bucket, recording.insights_key)
        if document is None or document.meeting.uuid != meeting_uuid:
            return _error(NOT_FOUND)
        record_metric("InsightsPageViews")
        return _html(render_page(document), 200)

    @blueprint.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        # E.g. a `get_page_deps` that answers NotFound where the page is not configured.
        if exc.code == 404:
            return _error(NOT_FOUND)
        _, title, message = UNAVAILABLE
        return _error((exc.code or 500, title, message))

    @blueprint.errorhandler(Exception)
    def unavailable(exc: Exception) -> Response:
        # Our own failure (AWS, a secret, a corrupt document): logged, never shown.
        logger.exception("insights page failed", error=type(exc).__name__)
        return _error(UNAVAILABLE)

    return blueprint
