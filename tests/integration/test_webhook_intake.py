"""The webhook through Mangum (API Gateway v2 events) and over real HTTP, against moto's server."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from sandbox.aws_resources import ProvisionedStack
from sandbox.http_server import LoopbackServer
from sandbox.zoom_webhook_sender import ZoomWebhookSender, compact_json
from services.core import aws
from services.core.recordings import RecordingStore, State
from services.core.settings import WebhookSettings, settings_from
from services.webhook.app import build_deps, create_app
from services.webhook.handler import build_handler
from services.webhook.zoom_signature import zoom_signature
from tests.integration.conftest import WEBHOOK_SECRET
from tests.support.apigw import FakeLambdaContext, http_api_event
from tests.support.zoom_events import recording_completed


def settings_for(stack: ProvisionedStack) -> WebhookSettings:
    return settings_from(WebhookSettings, stack.service_environment())


def signed(body: bytes, ts: int | None = None, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    stamp = str(int(time.time()) if ts is None else ts)
    return {
        "content-type": "application/json",
        "x-zm-request-timestamp": stamp,
        "x-zm-signature": zoom_signature(secret, stamp, body),
    }


def table_items(stack: ProvisionedStack) -> list[dict[str, Any]]:
    return list(aws.client("dynamodb").scan(TableName=stack.names.recordings_table)["Items"])


def merge_messages(stack: ProvisionedStack) -> list[dict[str, Any]]:
    """Every message on the merge queue (received with a short visibility so they come back)."""
    sqs = aws.client("sqs")
    seen: dict[str, dict[str, Any]] = {}
    for _ in range(5):
        got = sqs.receive_message(
            QueueUrl=stack.queue_urls["merge"], MaxNumberOfMessages=10, VisibilityTimeout=0
        ).get("Messages", [])
        for m in got:
            seen[m["MessageId"]] = json.loads(m["Body"])
        if not got:
            break
    return list(seen.values())


@pytest.fixture
def handler(stack: ProvisionedStack) -> Any:
    return build_handler(build_deps(settings_for(stack)))


@pytest.mark.parametrize("include_content_length", [True, False])
@pytest.mark.parametrize("base64_body", [False, True])
def test_mangum_handler_accepts_recording_completed(
    stack: ProvisionedStack, handler: Any, include_content_length: bool, base64_body: bool
) -> None:
    body = compact_json(recording_completed("Ab/C+d=="))
    event = http_api_event(
        "POST",
        "/zoom/webhook",
        body,
        signed(body),
        include_content_length=include_content_length,
        base64_body=base64_body,
    )
    response = handler(event, FakeLambdaContext())
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"])["status"] == "accepted"
    item = RecordingStore(stack.names.recordings_table).require("Ab/C+d==")
    assert item.state == State.RECEIVED
    assert [t.name for t in item.tracks] == ["Ana Ruiz-Soto", "Bo"]
    assert merge_messages(stack) == [
        {"meeting_uuid": "Ab/C+d==", "download_token": "header.payload.signature"}
    ]


def test_mangum_handler_url_validation_and_health(handler: Any) -> None:
    body = compact_json(
        {
            "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"},
            "event_ts": 1,
            "event": "endpoint.url_validation",
        }
    )
    response = handler(
        http_api_event("POST", "/zoom/webhook", body, signed(body), include_content_length=False),
        FakeLambdaContext(),
    )
    assert json.loads(response["body"])["encryptedToken"] == (
        "0ded0bb0878ac48b6a98f75c065a2bfeea9b3bf7c4d77f3dcb1ba9f41304f9a4"
    )
    health = handler(http_api_event("GET", "/healthz"), FakeLambdaContext())
    assert health["statusCode"] == 200


def test_mangum_handler_rejects_oversized_body_without_content_length(
    stack: ProvisionedStack, handler: Any
) -> None:
    body = b'{"pad":"' + b"x" * (1024 * 1024) + b'"}'
    response = handler(
        http_api_event("POST", "/zoom/webhook", body, signed(body), include_content_length=False),
        FakeLambdaContext(),
    )
    assert response["statusCode"] == 413
    assert table_items(stack) == []


def test_lambda_handler_entry_point_reads_settings_from_environment(
    stack: ProvisionedStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.core.settings import cached_settings
    from services.webhook import handler as module

    for key, value in stack.service_environment().items():
        monkeypatch.setenv(key, value)
    cached_settings.cache_clear()
    monkeypatch.setattr(module, "_handler", None)
    body = compact_json(recording_completed("entry-point=="))
    response = module.lambda_handler(
        http_api_event("POST", "/zoom/webhook", body, signed(body)), FakeLambdaContext()
    )
    cached_settings.cache_clear()
    assert response["statusCode"] == 200
    assert RecordingStore(stack.names.recordings_table).get("entry-point==") is not None


def test_duplicates_sequential_and_concurrent_give_one_item_and_one_message(
    stack: ProvisionedStack,
) -> None:
    app = create_app(build_deps(settings_for(stack)))
    with LoopbackServer(app) as server:
        sender = ZoomWebhookSender(f"{server.url}/zoom/webhook", WEBHOOK_SECRET, retry_delays=())
        assert sender.validate_endpoint()
        sequential = recording_completed("seq//uuid==")
        assert sender.deliver(sequential).delivered
        assert sender.deliver(sequential).delivered
        concurrent = recording_completed("/conc+uuid==")
        with ThreadPoolExecutor(max_workers=10) as pool:
            results = list(pool.map(lambda _: sender.deliver(concurrent), range(10)))
    assert all(r.delivered for r in results)
    uuids = sorted(i["meeting_uuid"]["S"] for i in table_items(stack))
    assert uuids == ["/conc+uuid==", "seq//uuid=="]
    messages = merge_messages(stack)
    assert sorted(m["meeting_uuid"] for m in messages) == ["/conc+uuid==", "seq//uuid=="]


REJECTIONS: list[tuple[str, Any, int]] = [
    ("tampered", lambda b: (b.replace(b"Weekly", b"Weakly"), signed(b)), 401),
    ("wrong secret", lambda b: (b, signed(b, secret="nope")), 401),
    ("stale", lambda b: (b, signed(b, ts=int(time.time()) - 91 * 60)), 401),
    ("future", lambda b: (b, signed(b, ts=int(time.time()) + 600)), 401),
    ("no headers", lambda b: (b, {"content-type": "application/json"}), 401),
    ("wrong content type", lambda b: (b, {**signed(b), "content-type": "text/plain"}), 400),
    ("not json", lambda b: (b"{oops", signed(b"{oops")), 400),
    (
        "missing fields",
        lambda b: (b'{"event":"recording.completed"}', signed(b'{"event":"recording.completed"}')),
        400,
    ),
]


@pytest.mark.parametrize(("name", "make", "status"), REJECTIONS, ids=[r[0] for r in REJECTIONS])
def test_each_rejection_writes_nothing_over_http(
    stack: ProvisionedStack, name: str, make: Any, status: int
) -> None:
    import requests

    body, headers = make(compact_json(recording_completed("rejected==")))
    app = create_app(build_deps(settings_for(stack)))
    with LoopbackServer(app) as server:
        response = requests.post(
            f"{server.url}/zoom/webhook", data=body, headers=headers, timeout=5
        )
    assert response.status_code == status, name
    assert response.json()["error"]
    assert table_items(stack) == []
    assert merge_messages(stack) == []


def test_oversized_body_over_http_is_413_and_writes_nothing(stack: ProvisionedStack) -> None:
    import requests

    body = b'{"pad":"' + b"x" * (1024 * 1024) + b'"}'
    app = create_app(build_deps(settings_for(stack)))
    with LoopbackServer(app) as server:
        response = requests.post(
            f"{server.url}/zoom/webhook", data=body, headers=signed(body), timeout=5
        )
    assert response.status_code == 413
    assert table_items(stack) == []


def test_queue_failure_leaves_no_stranded_item_and_asks_zoom_to_retry(
    stack: ProvisionedStack,
) -> None:
    settings = settings_for(stack).model_copy(
        update={"merge_queue_url": stack.queue_urls["merge"] + "-does-not-exist"}
    )
    app = create_app(build_deps(settings))
    body = compact_json(recording_completed("retry-me=="))
    response = app.test_client().post("/zoom/webhook", data=body, headers=signed(body))
    assert response.status_code == 503
    assert table_items(stack) == []


@pytest.mark.parametrize(
    "oversize",
    [
        pytest.param(
            lambda e: e["payload"]["object"].update(uuid="U" * 2100), id="uuid-over-a-key"
        ),
        pytest.param(lambda e: e.update(download_token="t" * 300_000), id="token-over-sqs"),
        pytest.param(
            lambda e: e["payload"]["object"]["participant_audio_files"][0].update(
                download_url="https://zoom.us/" + "x" * 5000
            ),
            id="url",
        ),
    ],
)
def test_a_signed_event_beyond_what_aws_stores_gets_400_and_writes_nothing(
    stack: ProvisionedStack, handler: Any, oversize: Any
) -> None:
    event = recording_completed("oversize==")
    oversize(event)
    body = compact_json(event)
    response = handler(
        http_api_event("POST", "/zoom/webhook", body, signed(body)), FakeLambdaContext()
    )
    assert response["statusCode"] == 400, response["body"]
    assert table_items(stack) == [] and merge_messages(stack) == []


def test_a_signed_event_whose_item_exceeds_dynamodb_s_limit_gets_422_not_a_5xx(
    stack: ProvisionedStack, handler: Any
) -> None:
    event = recording_completed("many-files==", participants=[f"P{i}" for i in range(450)])
    for track in event["payload"]["object"]["participant_audio_files"]:
        track["recording_start"] = "2023-11-14T22:10:05Z"
        track["download_url"] = "https://zoom.us/rec/download/" + "x" * 900
    body = compact_json(event)
    assert len(body) < 1024 * 1024  # under the body cap: the store is what refuses it
    response = handler(
        http_api_event("POST", "/zoom/webhook", body, signed(body)), FakeLambdaContext()
    )
    assert response["statusCode"] == 422, response["body"]
    assert table_items(stack) == [] and merge_messages(stack) == []
