"""The HTTP API as terraform/api.tf declares it, against the code behind it.

Routes: a link the notifier builds is resolved the way API Gateway resolves it (decode the path,
match it against the route table parsed from api.tf) and served through the Lambda entry point,
for meeting UUIDs holding '/', '//', '+' and '='. Throttling: every route has its own limits, and
none is the Zoom webhook's.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from sandbox.aws_resources import ProvisionedStack
from sandbox.credentials import SandboxCredentials
from services.core import aws
from services.core.insights.document import store_insights
from services.core.recordings import Recording, RecordingStore, State
from services.core.settings import NotifierSettings, WebhookSettings, settings_from
from services.notifier.notify import page_url
from services.webhook.app import build_deps
from services.webhook.handler import build_handler
from services.webhook.zoom_signature import zoom_signature
from tests.integration.conftest import WEBHOOK_SECRET
from tests.integration.test_terraform_contract import (
    ROOT_SCOPE,
    TERRAFORM,
    labelled,
    locals_of,
    resources,
)
from tests.support.apigw import FakeLambdaContext, http_api_event
from tests.support.insights_samples import bare_document, rich_document
from tests.support.zoom_events import recording_completed

WEBHOOK_ROUTE = "POST /zoom/webhook"
PAGE_BASE_URL = "https://abc123.execute-api.eu-west-1.amazonaws.com"

# ---------------------------------------------------------------------------------------------
# The route table of api.tf, and API Gateway's way of matching a request against it
# ---------------------------------------------------------------------------------------------


def declared_routes() -> list[str]:
    """`local.api_routes`: `toset([...])` around a list of route keys."""
    expression = locals_of(TERRAFORM)["api_routes"]
    match = re.fullmatch(r"\$\{toset\((\[.*\])\)\}", expression, re.DOTALL)
    assert match, f"api_routes is not toset([...]): {expression!r}"
    routes = json.loads(match.group(1))
    assert routes and all(isinstance(r, str) for r in routes)
    return list(routes)


@dataclass(frozen=True)
class RouteMatch:
    route_key: str
    path_parameters: dict[str, str]


def _match_template(template: str, path: str) -> dict[str, str] | None:
    """Path parameters when `path` fits `template` (`{x}` one segment, `{x+}` the rest)."""
    wanted = template.strip("/").split("/")
    parts = path[1:].split("/")  # keep empty segments: '//' in a greedy value is data
    values: dict[str, str] = {}
    for index, segment in enumerate(wanted):
        greedy = re.fullmatch(r"\{(\w+)\+\}", segment)
        if greedy:
            rest = "/".join(parts[index:])
            if not rest:
                return None
            values[greedy.group(1)] = rest
            return values
        if index >= len(parts):
            return None
        variable = re.fullmatch(r"\{(\w+)\}", segment)
        if variable:
            if not parts[index]:
                return None
            values[variable.group(1)] = parts[index]
        elif segment != parts[index]:
            return None
    return values if len(parts) == len(wanted) else None


def match_route(routes: list[str], method: str, decoded_path: str) -> RouteMatch | None:
    """The route API Gateway picks: an exact route before one with variables, a greedy one last."""
    candidates = []
    for key in routes:
        route_method, template = key.split(" ", 1)
        if route_method not in (method, "ANY"):
            continue
        values = _match_template(template, decoded_path)
        if values is not None:
            rank = (template.count("+}"), template.count("{"))
            candidates.append((rank, RouteMatch(key, values)))
    return min(candidates, key=lambda c: c[0])[1] if candidates else None


def gateway_event(method: str, url: str) -> dict[str, Any]:
    """The Lambda event an HTTP API builds for `url`: the path decoded once (rawPath and
    requestContext.http.path alike), the query as sent, the matched route's key and parameters.
    A request that matches no route never reaches the function: that is a 404 from API Gateway."""
    parts = urlsplit(url)
    decoded = unquote(parts.path)
    match = match_route(declared_routes(), method, decoded)
    if match is None:
        pytest.fail(f"API Gateway answers 404: no route of api.tf matches {method} {decoded}")
    return http_api_event(
        method,
        decoded,
        query=parts.query,
        route_key=match.route_key,
        path_parameters=match.path_parameters,
    )


def test_route_matcher_follows_api_gateway_s_rules() -> None:
    routes = ["GET /meetings/{uuid}", "GET /meetings/{uuid+}", "GET /meetings/list", "GET /a/{b}"]
    assert match_route(routes, "GET", "/meetings/list") == RouteMatch("GET /meetings/list", {})
    assert match_route(routes, "GET", "/meetings/x") == RouteMatch(
        "GET /meetings/{uuid}", {"uuid": "x"}
    )
    assert match_route(routes, "GET", "/meetings/x//y/") == RouteMatch(
        "GET /meetings/{uuid+}", {"uuid": "x//y/"}
    )
    assert match_route(routes[:1], "GET", "/meetings/x/y") is None
    assert match_route(routes, "POST", "/meetings/x") is None
    assert match_route(routes, "GET", "/a/") is None
    assert match_route(routes, "GET", "/meetings/") is None


# ---------------------------------------------------------------------------------------------
# Insights links for UUIDs with '/', '//', '+' and '=' resolve to the right meeting
# ---------------------------------------------------------------------------------------------

# Zoom's meeting UUIDs are base64: '/' anywhere (first, doubled), '+' and '=' padding.
UUIDS = [
    "4Mp9/Vt2Qm6vS//e+XzM1w==",
    "/K2mQ7WcT0u4b8pZ3xLk1A==",
    "aB3+dE5/fG7hI9jK0lM1n//",
    "q//W+e/r=t==",
]


@pytest.fixture
def meetings(stack: ProvisionedStack) -> RecordingStore:
    """Every UUID with insights of its own; the first gets the rich sample, the rest the bare."""
    s3 = aws.client("s3")
    store = RecordingStore(stack.names.recordings_table)
    for position, uuid in enumerate(UUIDS):
        document = rich_document(uuid) if position == 0 else bare_document(uuid)
        key = store_insights(s3, stack.names.media_bucket, document)
        store.create_if_absent(
            Recording(
                meeting_uuid=uuid,
                meeting_id=str(position),
                topic="t",
                start_time="2026-03-03T13:05:00Z",
            )
        )
        store.transition(uuid, State.RECEIVED, State.NOTIFIED, updates={"insights_key": key})
    return store


def notifier_settings(stack: ProvisionedStack) -> NotifierSettings:
    return settings_from(
        NotifierSettings,
        {
            **stack.service_environment(),
            "SES_SENDER": "notes@example.com",
            "OPERATOR_TOPIC_ARN": stack.operator_topic_arn or "arn:aws:sns:us-east-1:0:x",
            "INSIGHTS_PAGE_BASE_URL": PAGE_BASE_URL,
        },
    )


@pytest.mark.parametrize("uuid", UUIDS)
def test_notifier_link_resolves_through_the_declared_routes_to_its_meeting(
    stack: ProvisionedStack,
    credentials: SandboxCredentials,
    meetings: RecordingStore,
    uuid: str,
) -> None:
    link = page_url(notifier_settings(stack), uuid, credentials.link_signing_key, datetime.now(UTC))
    assert link.startswith(f"{PAGE_BASE_URL}/meetings/")
    event = gateway_event("GET", link)
    assert event["routeKey"] == "GET /meetings/{uuid+}"
    assert event["pathParameters"] == {"uuid": uuid}  # what API Gateway took for the UUID

    handler = build_handler(build_deps(settings_from(WebhookSettings, stack.service_environment())))
    response = handler(event, FakeLambdaContext())
    assert response["statusCode"] == 200, response["body"][:300]
    assert response["headers"]["content-type"].startswith("text/html")
    page = response["body"]
    if uuid == UUIDS[0]:
        assert "Launch review" in page and "No questions were asked." not in page
    else:
        assert "No questions were asked." in page and "Launch review" not in page


def test_a_link_for_another_meeting_s_token_is_not_served(
    stack: ProvisionedStack, credentials: SandboxCredentials, meetings: RecordingStore
) -> None:
    # The same path with the token of a meeting whose UUID differs only after a '/': 404.
    first = page_url(
        notifier_settings(stack), UUIDS[0], credentials.link_signing_key, datetime.now(UTC)
    )
    other = page_url(
        notifier_settings(stack), UUIDS[1], credentials.link_signing_key, datetime.now(UTC)
    )
    mixed = first.split("?", 1)[0] + "?" + other.split("?", 1)[1]
    handler = build_handler(build_deps(settings_from(WebhookSettings, stack.service_environment())))
    response = handler(gateway_event("GET", mixed), FakeLambdaContext())
    assert response["statusCode"] == 404


# ---------------------------------------------------------------------------------------------
# Per-route throttling
# ---------------------------------------------------------------------------------------------

_ROUTE_KEY_REFERENCE = re.compile(r"^\$\{aws_apigatewayv2_route\.webhook\[\"(.+)\"\]\.route_key\}$")
_VARIABLE = re.compile(r"^\$\{var\.([A-Za-z_][\w-]*)\}$")


def stage() -> dict[str, Any]:
    return resources(TERRAFORM)[("aws_apigatewayv2_stage", "default")]


def limit_variable(value: Any) -> str:
    """The variable a limit is set from; a literal would not be tunable per deployment."""
    match = _VARIABLE.match(str(value))
    assert match, f"a throttling limit must be a variable, got {value!r}"
    return match.group(1)


def route_limits() -> dict[str, dict[str, str]]:
    """route key -> {"throttling_rate_limit": variable, "throttling_burst_limit": variable}"""
    found: dict[str, dict[str, str]] = {}
    for block in stage().get("route_settings", []):
        match = _ROUTE_KEY_REFERENCE.match(str(block.get("route_key")))
        assert match, f"route_key must reference a declared route: {block.get('route_key')!r}"
        key = match.group(1)
        assert key not in found, f"two route_settings blocks for {key}"
        found[key] = {
            limit: limit_variable(block.get(limit))
            for limit in ("throttling_rate_limit", "throttling_burst_limit")
        }
    return found


def test_every_declared_route_has_its_own_limits() -> None:
    limits = route_limits()
    assert set(limits) == set(declared_routes())
    variables = labelled(TERRAFORM, "variable")
    for route, named in limits.items():
        for limit, variable in named.items():
            assert variable in variables, f"{route}: var.{variable} is not declared"
            assert variables[variable]["type"] in ("number", "${number}"), variable
            default = ROOT_SCOPE.evaluate(variables[variable].get("default"))
            assert isinstance(default, int | float) and default > 0, (route, limit, default)


def test_the_zoom_webhook_s_limits_are_its_own() -> None:
    limits = route_limits()
    webhook = set(limits[WEBHOOK_ROUTE].values())
    others = {
        v for route, named in limits.items() if route != WEBHOOK_ROUTE for v in named.values()
    }
    (defaults,) = stage()["default_route_settings"]
    stage_wide = {
        limit_variable(defaults[limit])
        for limit in ("throttling_rate_limit", "throttling_burst_limit")
    }
    assert not webhook & others, f"shared with another route: {sorted(webhook & others)}"
    assert not webhook & stage_wide, "the webhook's limits are the stage-wide default"


def test_other_routes_bursts_leave_the_webhook_function_room_for_zoom() -> None:
    """All routes run in the webhook function; the other routes' bursts together stay below its
    reserved concurrency (by default, and by a precondition for any values given)."""
    limits = route_limits()

    def default(variable: str) -> float:
        return float(ROOT_SCOPE.evaluate(labelled(TERRAFORM, "variable")[variable]["default"]))

    others = sum(
        default(named["throttling_burst_limit"])
        for route, named in limits.items()
        if route != WEBHOOK_ROUTE
    )
    assert others < default("webhook_reserved_concurrency")
    (lifecycle,) = stage()["lifecycle"]
    conditions = " ".join(str(p["condition"]) for p in lifecycle["precondition"])
    for route, named in limits.items():
        if route != WEBHOOK_ROUTE:
            assert f"var.{named['throttling_burst_limit']}" in conditions, route
    assert "var.webhook_reserved_concurrency" in conditions


# ---------------------------------------------------------------------------------------------
# Through the Lambda entry point: bodies API Gateway hands over base64 (any bytes) and a secret
# not set yet
# ---------------------------------------------------------------------------------------------

JUNK = {
    "nested 5000 deep": b'{"a":' * 5000 + b"1" + b"}" * 5000,
    "invalid UTF-8": b'{"event":"\xff"}',
    "UTF-16 with BOM": '{"event":"meeting.started","payload":{}}'.encode("utf-16"),
    "NUL": b'{"event":"a\x00b","payload":{}}',
    "lone surrogate": b'{"event":"\\ud800","payload":{}}',
    "1e999": b'{"event":"x","event_ts":1e999,"payload":{}}',
    "integer of 5000 digits": b'{"event_ts":' + b"1" * 5000 + b"}",
    "duplicate keys": b'{"event":"x","event":"recording.completed","payload":{}}',
}


def signed_headers(body: bytes, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    stamp = str(int(time.time()))
    return {
        "content-type": "application/json",
        "x-zm-request-timestamp": stamp,
        "x-zm-signature": zoom_signature(secret, stamp, body),
    }


@pytest.mark.parametrize("body", JUNK.values(), ids=JUNK.keys())
def test_signed_junk_through_the_lambda_entry_point_is_400(
    stack: ProvisionedStack, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    handler = build_handler(build_deps(settings_from(WebhookSettings, stack.service_environment())))
    caplog.clear()
    event = http_api_event(
        "POST",
        "/zoom/webhook",
        body,
        signed_headers(body),
        base64_body=True,
        route_key=WEBHOOK_ROUTE,
    )
    response = handler(event, FakeLambdaContext())
    assert response["statusCode"] == 400, response["body"]
    assert json.loads(response["body"])["error"] == "invalid_json"
    callback = http_api_event(
        "POST",
        "/symbl/callback/x.y",
        body,
        base64_body=True,
        route_key="POST /symbl/callback/{secret}",
        path_parameters={"secret": "x.y"},
    )
    assert handler(callback, FakeLambdaContext())["statusCode"] == 400
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    scan = aws.client("dynamodb").scan(TableName=stack.names.recordings_table, Select="COUNT")
    assert scan["Count"] == 0


def test_webhook_secret_without_a_value_is_401_and_one_line_naming_it(
    stack: ProvisionedStack, caplog: pytest.LogCaptureFixture
) -> None:
    """Between `terraform apply` and `put-secret-value` the secret exists without a value."""
    empty = aws.client("secretsmanager").create_secret(Name=f"{stack.names.prefix}-not-set-yet")
    env = {**stack.service_environment(), "ZOOM_WEBHOOK_SECRET_ARN": empty["ARN"]}
    handler = build_handler(build_deps(settings_from(WebhookSettings, env)))
    body = json.dumps(recording_completed("not/yet=="), separators=(",", ":")).encode()
    caplog.clear()
    event = http_api_event(
        "POST", "/zoom/webhook", body, signed_headers(body), route_key=WEBHOOK_ROUTE
    )
    response = handler(event, FakeLambdaContext())
    assert response["statusCode"] == 401
    [line] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert line.levelname == "WARNING" and not line.exc_info
    assert getattr(line, "secret_id", None) == empty["ARN"]
    assert RecordingStore(stack.names.recordings_table).get("not/yet==") is None
