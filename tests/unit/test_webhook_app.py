from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.core.settings import WebhookSettings, settings_from
from services.webhook.app import MAX_BODY_BYTES, WebhookDeps, create_app
from services.webhook.zoom_signature import url_validation_token, zoom_signature
from tests.support.fakes import MemoryQueue, MemoryRecordings, StaticSecrets
from tests.support.settings import WEBHOOK_ENV
from tests.support.zoom_events import recording_completed

SECRET = "test-webhook-secret"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:000000000000:secret:zoom"
NOW = 1_800_000_000


class Harness:
    def __init__(self) -> None:
        self.store = MemoryRecordings()
        self.queue = MemoryQueue()
        settings_ = settings_from(
            WebhookSettings, {**WEBHOOK_ENV, "ZOOM_WEBHOOK_SECRET_ARN": SECRET_ARN}
        )
        deps = WebhookDeps(
            settings=settings_,
            store=self.store,
            merge_queue=self.queue,
            secrets=StaticSecrets({SECRET_ARN: SECRET}),
            clock=lambda: NOW,
        )
        self.client: FlaskClient = create_app(deps).test_client()

    def post(
        self,
        body: bytes,
        *,
        ts: int = NOW,
        secret: str = SECRET,
        content_type: str = "application/json; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> Any:
        signed = {
            "x-zm-request-timestamp": str(ts),
            "x-zm-signature": zoom_signature(secret, str(ts), body),
        }
        signed.update(headers or {})
        return self.client.post(
            "/zoom/webhook", data=body, headers=signed, content_type=content_type
        )


def compact(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


@pytest.fixture
def h() -> Harness:
    return Harness()


def test_healthz(h: Harness) -> None:
    response = h.client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_url_validation_answers_the_challenge(h: Harness) -> None:
    body = compact(
        {
            "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"},
            "event_ts": 1,
            "event": "endpoint.url_validation",
        }
    )
    response = h.post(body)
    assert response.status_code == 200
    assert response.get_json() == {
        "plainToken": "qgg8vlvZRS6UYooatFL8Aw",
        "encryptedToken": "0ded0bb0878ac48b6a98f75c065a2bfeea9b3bf7c4d77f3dcb1ba9f41304f9a4",
    }
    assert url_validation_token(SECRET, "x") != url_validation_token("other", "x")


def test_unsigned_url_validation_is_refused(h: Harness) -> None:
    body = compact({"payload": {"plainToken": "abc"}, "event": "endpoint.url_validation"})
    response = h.post(body, secret="wrong")
    assert response.status_code == 401
    assert "encryptedToken" not in response.get_json()


def test_recording_completed_is_recorded_and_queued_once(h: Harness) -> None:
    body = compact(recording_completed("AbC1/dEf+Gh=="))
    first = h.post(body)
    second = h.post(body)
    assert first.status_code == 200 and first.get_json()["status"] == "accepted"
    assert second.status_code == 200 and second.get_json()["status"] == "duplicate"
    assert list(h.store.items) == ["AbC1/dEf+Gh=="]
    assert [m.meeting_uuid for m in h.queue.messages] == ["AbC1/dEf+Gh=="]
    assert h.queue.messages[0].download_token == "header.payload.signature"  # type: ignore[attr-defined]


def test_other_events_are_acknowledged_and_ignored(h: Harness) -> None:
    response = h.post(compact({"event": "meeting.started", "event_ts": 1, "payload": {}}))
    assert response.status_code == 200
    assert response.get_json()["status"] == "ignored"
    assert h.store.writes == 0 and h.queue.messages == []


@pytest.mark.parametrize(
    ("kwargs", "status", "error"),
    [
        ({"secret": "wrong"}, 401, "unauthorized"),
        ({"ts": NOW - 90 * 60 - 1}, 401, "unauthorized"),
        ({"ts": NOW + 301}, 401, "unauthorized"),
        ({"content_type": "text/plain"}, 400, "unsupported_content_type"),
        ({"content_type": "application/x-www-form-urlencoded"}, 400, "unsupported_content_type"),
    ],
)
def test_rejections_write_nothing(
    h: Harness, kwargs: dict[str, Any], status: int, error: str
) -> None:
    response = h.post(compact(recording_completed()), **kwargs)
    assert response.status_code == status
    assert response.get_json()["error"] == error
    assert h.store.writes == 0 and h.queue.messages == []


def test_missing_signature_headers_are_401(h: Harness) -> None:
    response = h.client.post(
        "/zoom/webhook", data=compact(recording_completed()), content_type="application/json"
    )
    assert response.status_code == 401
    assert h.store.writes == 0


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"not json", "invalid_json"),
        (b"[1,2,3]", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b'{"payload":{}}', "invalid_event"),
        (
            b'{"event":"recording.completed","event_ts":1,"payload":{"object":{"id":1}}}',
            "invalid_event",
        ),
        (b'{"event":"endpoint.url_validation","payload":{}}', "invalid_event"),
    ],
)
def test_bad_bodies_are_400(h: Harness, body: bytes, error: str) -> None:
    response = h.post(body)
    assert response.status_code == 400
    payload = response.get_json()
    assert payload["error"] == error and payload["message"]
    assert h.store.writes == 0 and h.queue.messages == []


def test_body_over_one_mebibyte_is_413(h: Harness) -> None:
    event = recording_completed()
    event["padding"] = "x" * MAX_BODY_BYTES
    response = h.post(compact(event))
    assert response.status_code == 413
    assert response.get_json()["error"] == "request_entity_too_large"
    assert h.store.writes == 0


def test_unknown_route_and_method_are_json(h: Harness) -> None:
    assert h.client.get("/nope").status_code == 404
    response = h.client.get("/zoom/webhook")
    assert response.status_code == 405
    assert response.get_json()["error"] == "method_not_allowed"


header_names = st.sampled_from(
    ["x-zm-signature", "x-zm-request-timestamp", "content-type", "content-length", "x-other"]
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
    path=st.sampled_from(["/zoom/webhook", "/healthz", "/", "/zoom/webhook/", "/x%2Fy"]),
    body=st.one_of(
        st.binary(max_size=2048),
        st.builds(
            compact,
            st.dictionaries(st.text(max_size=10), st.integers() | st.text(max_size=20), max_size=5),
        ),
        st.just(compact(recording_completed())),
    ),
    headers=st.dictionaries(
        header_names,
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
        max_size=5,
    ),
    sign=st.booleans(),
)
def test_property_never_5xx_never_write_unsigned(
    method: str, path: str, body: bytes, headers: dict[str, str], sign: bool
) -> None:
    h = Harness()
    headers.pop("content-length", None)
    if sign:
        headers["x-zm-request-timestamp"] = str(NOW)
        headers["x-zm-signature"] = zoom_signature(SECRET, str(NOW), body)
    response = h.client.open(path, method=method, data=body, headers=headers)
    assert response.status_code < 500
    if not sign:
        assert h.store.writes == 0
        assert h.queue.messages == []
    # Whatever was written came with exactly one merge request.
    assert len(h.queue.messages) == len(h.store.items)
