"""The webhook app: Zoom intake, the Symbl callback, the insights page and health, with
in-memory stand-ins. The property test at the end sends every route any request."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from services.core.errors import SecretNotSet
from services.core.links import make_page_token
from services.core.recordings import Recording, State
from services.core.settings import WebhookSettings, settings_from
from services.core.speech.provider import JobStatus
from services.core.transcription_jobs import JobDeps, secret_digest
from services.webhook.app import (
    MAX_BODY_BYTES,
    MAX_CALLBACK_BODY_BYTES,
    MAX_JSON_DEPTH,
    RequestRejected,
    WebhookDeps,
    create_app,
    parse_json_body,
)
from services.webhook.insights_page import InsightsPageDeps
from services.webhook.zoom_signature import url_validation_token, zoom_signature
from tests.support.fakes import MemoryQueue, MemoryRecordings, MemorySlots, StaticSecrets
from tests.support.insights_samples import rich_document
from tests.support.settings import WEBHOOK_ENV
from tests.support.zoom_events import recording_completed

SECRET = "test-webhook-secret"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:000000000000:secret:zoom"
NOW = 1_800_000_000
CLOCK = NOW + 0.25  # time.time() is a float
MAX_AGE = 90 * 60
MAX_SKEW = 5 * 60

LINK_KEY = "a link-signing key of comfortably more than 32 bytes"
PAGE_UUID = "/Pg4+eXa//mPle=="  # a meeting with insights: its page answers 200
SETTLED_UUID = "Sd7/settled+uuid=="  # a meeting whose Symbl job has ended and been settled
JOB_ID = "job-0001"
CALLBACK_SECRET = (
    base64.urlsafe_b64encode(SETTLED_UUID.encode()).decode().rstrip("=")
    + ".fixed-random-part-for-the-unit-tier"
)
SEEDED = 2  # items the harness starts with


class Speech:
    provider = "symbl"

    def __init__(self) -> None:
        self.error: Exception | None = None

    def job_status(self, job_id: str) -> JobStatus:
        if self.error is not None:
            raise self.error
        return JobStatus.COMPLETED


class Pump:
    def nudge(self) -> None:
        pass


class MediaBucket:
    """S3 for the insights page: `get_object` of the one stored document."""

    def __init__(self) -> None:
        self.body = rich_document(PAGE_UUID).model_dump_json().encode()

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        return {"Body": io.BytesIO(self.body)}


class Secrets(StaticSecrets):
    """StaticSecrets that answers SecretNotSet for the ids in `unset`."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.unset: set[str] = set()

    def get_string(self, secret_id: str) -> str:
        if secret_id in self.unset:
            raise SecretNotSet(secret_id)
        return super().get_string(secret_id)


class Harness:
    def __init__(self) -> None:
        self.store = MemoryRecordings()
        self.store.items[PAGE_UUID] = Recording(
            meeting_uuid=PAGE_UUID,
            meeting_id="1",
            topic="t",
            start_time="2026-03-03T13:05:00Z",
            state=State.NOTIFIED,
            insights_key="insights/page.json",
        )
        self.store.items[SETTLED_UUID] = Recording(
            meeting_uuid=SETTLED_UUID,
            meeting_id="2",
            topic="t",
            start_time="2026-03-03T13:05:00Z",
            state=State.TRANSCRIBED,
            job_id=JOB_ID,
            callback_secret_digest=secret_digest(CALLBACK_SECRET),
        )
        self.queue = MemoryQueue()
        self.notify_queue = MemoryQueue()
        self.slots = MemorySlots()
        self.speech = Speech()
        self.settings = settings_from(
            WebhookSettings, {**WEBHOOK_ENV, "ZOOM_WEBHOOK_SECRET_ARN": SECRET_ARN}
        )
        self.secrets = Secrets({SECRET_ARN: SECRET})
        deps = WebhookDeps(
            settings=self.settings,
            store=self.store,
            merge_queue=self.queue,
            secrets=self.secrets,
            jobs=JobDeps(
                store=self.store,  # type: ignore[arg-type]
                slots=self.slots,  # type: ignore[arg-type]
                speech=self.speech,  # type: ignore[arg-type]
                submit_queue=MemoryQueue(),
                notify_queue=self.notify_queue,
                pump=Pump(),
            ),
            page=InsightsPageDeps(
                store=self.store,
                s3=MediaBucket(),
                bucket="media",
                signing_key=lambda: LINK_KEY,
                clock=lambda: CLOCK,
            ),
            clock=lambda: CLOCK,
        )
        self.app: Flask = create_app(deps)
        self.client: FlaskClient = self.app.test_client()

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

    def accepted(self) -> list[str]:
        """UUIDs the webhook recorded (the seeded items aside)."""
        return [u for u in self.store.items if u not in (PAGE_UUID, SETTLED_UUID)]


def compact(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


@contextmanager
def error_logs(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    """Records at ERROR or above (and any with a traceback) logged inside the block."""
    caplog.clear()
    found: list[logging.LogRecord] = []
    yield found
    found.extend(r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info)


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
    assert h.accepted() == ["AbC1/dEf+Gh=="]
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


# ---------------------------------------------------------------------------------------------
# One parser for every body: anything it does not vouch for is a 400, never a 5xx
# ---------------------------------------------------------------------------------------------


def nested(depth: int, *, kind: str = "object") -> bytes:
    if kind == "object":
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b"[" * depth + b"]" * depth


VALID_OBJECT = b'{"event":"meeting.started","event_ts":1,"payload":{}}'
NOT_JSON: dict[str, bytes] = {
    "deep objects past the recursion limit": nested(5000),
    "deep arrays past the recursion limit": nested(5000, kind="array"),
    "deep objects past the depth limit": nested(MAX_JSON_DEPTH + 1),
    "deep arrays past the depth limit": nested(MAX_JSON_DEPTH + 1, kind="array"),
    "invalid UTF-8": b'{"event":"\xc3\x28","payload":{}}',
    "UTF-16 with BOM": VALID_OBJECT.decode().encode("utf-16"),
    "UTF-16 without BOM": VALID_OBJECT.decode().encode("utf-16-le"),
    "UTF-32": VALID_OBJECT.decode().encode("utf-32"),
    "UTF-8 BOM": b"\xef\xbb\xbf" + VALID_OBJECT,
    "raw NUL": b'{"event":"a\x00b","payload":{}}',
    "escaped NUL": b'{"event":"a\\u0000b","payload":{}}',
    "lone surrogate": b'{"event":"\\ud800","payload":{}}',
    "surrogate bytes": b'{"event":"\xed\xa0\x80","payload":{}}',
    "1e999": b'{"event":"x","event_ts":1e999,"payload":{}}',
    "-1e999": b'{"event":"x","event_ts":-1e999,"payload":{}}',
    "NaN": b'{"event":"x","event_ts":NaN,"payload":{}}',
    "Infinity": b'{"event":"x","event_ts":Infinity,"payload":{}}',
    "integer past Python's digit limit": b'{"event":"x","event_ts":' + b"7" * 5000 + b"}",
    "integer past the digit bound": b'{"event":"x","event_ts":-' + b"7" * 41 + b"}",
    "duplicate key": b'{"event":"x","event":"recording.completed","payload":{}}',
    "truncated": VALID_OBJECT[:-1],
    "empty": b"",
}


@pytest.mark.parametrize("body", NOT_JSON.values(), ids=NOT_JSON.keys())
def test_parser_refuses_what_it_cannot_vouch_for(body: bytes) -> None:
    with pytest.raises(RequestRejected) as rejected:
        parse_json_body(body)
    assert (rejected.value.status, rejected.value.error) == (400, "invalid_json")


def test_parser_reads_json_up_to_its_limits() -> None:
    assert parse_json_body(nested(MAX_JSON_DEPTH)) is not None
    assert parse_json_body(nested(MAX_JSON_DEPTH, kind="array")) is not None
    assert parse_json_body(b'{"n":-' + b"9" * 40 + b',"f":1.5e300,"s":"\\u00e9\xc3\xa9"}') == {
        "n": -int("9" * 40),
        "f": 1.5e300,
        "s": "éé",
    }
    assert parse_json_body(b"[1,2]") == [1, 2]


@pytest.mark.parametrize("body", NOT_JSON.values(), ids=NOT_JSON.keys())
def test_signed_bodies_that_are_not_json_are_400_and_log_no_error(
    h: Harness, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    with error_logs(caplog) as errors:
        response = h.post(body)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_json"
    assert errors == [] and h.store.writes == 0 and h.queue.messages == []


@pytest.mark.parametrize("body", NOT_JSON.values(), ids=NOT_JSON.keys())
def test_callback_bodies_that_are_not_json_are_400_and_log_no_error(
    h: Harness, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    with error_logs(caplog) as errors:
        response = h.client.post(f"/symbl/callback/{CALLBACK_SECRET}", data=body)
    assert response.status_code == 400
    # An empty body reads as null, which carries no jobId.
    assert response.get_json()["error"] == ("invalid_json" if body else "invalid_callback")
    assert errors == [] and h.slots.released == []


def test_callback_with_the_meeting_s_secret_settles_its_job(h: Harness) -> None:
    response = h.client.post(
        f"/symbl/callback/{CALLBACK_SECRET}", json={"jobId": JOB_ID, "status": "completed"}
    )
    assert response.status_code == 200 and response.get_json() == {"status": "already settled"}
    assert h.slots.released == [JOB_ID]
    wrong = h.client.post(f"/symbl/callback/{CALLBACK_SECRET}x", json={"jobId": JOB_ID})
    assert wrong.status_code == 404


def test_callback_bodies_over_its_cap_are_413_unread(h: Harness) -> None:
    body = compact({"jobId": JOB_ID, "status": "completed", "pad": "x" * MAX_CALLBACK_BODY_BYTES})
    response = h.client.post(f"/symbl/callback/{CALLBACK_SECRET}", data=body)
    assert response.status_code == 413
    assert h.slots.released == []


@pytest.mark.parametrize(
    "ts", ["9" * 400, "+1800000000", " 1800000000", "1_800_000_000", "1800000000.0"]
)
def test_signed_but_malformed_timestamps_are_401(h: Harness, ts: str) -> None:
    body = compact(recording_completed())
    headers = {"x-zm-request-timestamp": ts, "x-zm-signature": zoom_signature(SECRET, ts, body)}
    response = h.client.post(
        "/zoom/webhook", data=body, headers=headers, content_type="application/json"
    )
    assert response.status_code == 401
    assert h.store.writes == 0


# ---------------------------------------------------------------------------------------------
# A secret not set yet: one line naming it, no 5xx from the Zoom webhook
# ---------------------------------------------------------------------------------------------


def test_webhook_secret_not_set_is_401_and_one_warning_naming_it(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h.secrets.unset.add(SECRET_ARN)
    caplog.clear()
    for body in (compact(recording_completed()), b"junk"):
        response = h.post(body)
        assert response.status_code == 401
        assert response.get_json()["error"] == "unauthorized"
        assert SECRET not in response.get_data(as_text=True)
    records = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [r.levelname for r in records] == ["WARNING", "WARNING"]
    assert all(getattr(r, "secret_id", None) == SECRET_ARN and not r.exc_info for r in records)
    assert h.store.writes == 0 and h.queue.messages == []


def test_symbl_credentials_not_set_in_a_callback_is_503_to_retry(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    symbl_arn = h.settings.symbl_credentials_secret_arn
    h.speech.error = SecretNotSet(symbl_arn)
    caplog.clear()
    response = h.client.post(
        f"/symbl/callback/{CALLBACK_SECRET}", json={"jobId": JOB_ID, "status": "completed"}
    )
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    [record] = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert record.levelname == "WARNING" and not record.exc_info
    assert getattr(record, "secret_id", None) == symbl_arn
    assert h.slots.released == []


# ---------------------------------------------------------------------------------------------
# The insights page takes the UUID as sent: '/' first, '//', '+', '='
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("uuid", [PAGE_UUID, "/lead/slash==", "dou//ble+==", "trail//"])
def test_page_reads_the_uuid_exactly_as_sent(h: Harness, uuid: str) -> None:
    from urllib.parse import quote

    expired = make_page_token(uuid, LINK_KEY, 60, CLOCK - 120)
    for path in (f"/meetings/{quote(uuid, safe='')}", f"/meetings/{uuid}"):
        # A genuine token for exactly this UUID: only then does the page say "expired".
        response = h.client.get(f"{path}?token={expired}")
        assert response.status_code == 410, path
    fresh = make_page_token(PAGE_UUID, LINK_KEY, 60, CLOCK)
    response = h.client.get(f"/meetings/{quote(PAGE_UUID, safe='')}?token={fresh}")
    assert response.status_code == 200 and "Launch review" in response.get_data(as_text=True)


# ---------------------------------------------------------------------------------------------
# The property: every route the app declares, any request; 401 exactly when not Zoom's
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Body:
    # "json_object", "not_object", "not_json", "arbitrary", "large" (a JSON object over the
    # callback's cap), "too_large" (over every route's cap)
    kind: str
    data: bytes


def _json_objects() -> st.SearchStrategy[Body]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(
            st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
        )
    )
    values = st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=10,
    )
    uuids = st.sampled_from([PAGE_UUID, "AbC1/dEf+Gh==", "n//ew=="]) | st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        min_size=1,
        max_size=30,
    )
    events = st.one_of(
        uuids.map(recording_completed),
        st.one_of(
            st.builds(
                lambda t: {
                    "event": "endpoint.url_validation",
                    "event_ts": 1,
                    "payload": {"plainToken": t},
                },
                st.text(
                    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                    max_size=40,
                ),
            ),
            st.builds(
                lambda j, s: {"jobId": j, "status": s},
                st.sampled_from([JOB_ID, "job-other", ""]),
                st.sampled_from(["completed", "failed", "in_progress", "scheduled", None, 7]),
            ),
            st.dictionaries(st.text(max_size=10), values, max_size=5),
        ),
    )
    return events.map(lambda e: Body("json_object", compact(e)))


def _not_json() -> st.SearchStrategy[Body]:
    depths = st.integers(MAX_JSON_DEPTH + 1, 3000)
    return st.one_of(
        st.sampled_from(sorted(NOT_JSON.values())),
        depths.map(nested),
        depths.map(lambda d: nested(d, kind="array")),
        st.builds(
            lambda d, enc: d.decode().encode(enc),
            _json_objects().map(lambda b: b.data),
            st.sampled_from(["utf-16", "utf-32", "utf-16-be"]),
        ),
    ).map(lambda data: Body("not_json", data))


# Half of the bodies are JSON objects (a quarter Zoom events), half anything else.
BODIES: st.SearchStrategy[Body] = st.one_of(
    _json_objects(),
    st.one_of(
        _not_json(),
        st.sampled_from([b"[1,2,3]", b'"text"', b"42", b"null", b"true"]).map(
            lambda d: Body("not_object", d)
        ),
        st.binary(max_size=2048).map(lambda d: Body("arbitrary", d)),
        st.integers(MAX_BODY_BYTES + 1, MAX_BODY_BYTES + 64).map(
            lambda n: Body("too_large", b'{"pad":"' + b"x" * (n - 10) + b'"}')
        ),
        st.integers(MAX_CALLBACK_BODY_BYTES + 1, MAX_CALLBACK_BODY_BYTES + 64).map(
            lambda n: Body(
                "large",
                compact({**recording_completed("large=="), "pad": "x" * n}),
            )
        ),
    ),
)

JUNK_TIMESTAMPS = ["", "soon", "9" * 400, "+1800000000", " 1800000000", "1.8e9", "-1", "0x6b49d200"]
IN_WINDOW = st.integers(NOW - MAX_AGE, NOW + MAX_SKEW).map(str)
TIMESTAMPS = st.one_of(
    IN_WINDOW,
    st.integers(NOW - 3 * MAX_AGE, NOW - MAX_AGE - 1).map(str),
    st.integers(NOW + MAX_SKEW + 1, NOW + 3 * MAX_SKEW).map(str),
    st.sampled_from(JUNK_TIMESTAMPS),
)
SIGNATURES = st.one_of(
    st.just("valid"),
    st.sampled_from(["wrong secret", "other body", "other timestamp", "garbage", "missing"]),
)
CONTENT_TYPES = st.one_of(
    st.sampled_from(["application/json", "application/json; charset=utf-8"]),
    st.sampled_from(["text/plain", "application/x-www-form-urlencoded", None]),
)


def fresh(ts: str) -> bool:
    """In the window the harness's settings allow (Zoom sends Unix seconds, 10 digits)."""
    return bool(re.fullmatch(r"[0-9]{1,12}", ts)) and -MAX_SKEW <= CLOCK - int(ts) <= MAX_AGE


def signature_for(mode: str, ts: str, body: bytes) -> str | None:
    return {
        "valid": zoom_signature(SECRET, ts, body),
        "wrong secret": zoom_signature("not-the-secret", ts, body),
        "other body": zoom_signature(SECRET, ts, body + b" "),
        "other timestamp": zoom_signature(SECRET, ts + "1", body),
        "garbage": "v0=" + "0" * 64,
        "missing": None,
    }[mode]


def routes(app: Flask) -> list[tuple[str, frozenset[str], tuple[tuple[str, bool], ...]]]:
    """(endpoint, methods, ((argument, takes '/'), ...)) of every rule: new routes come along."""
    found = []
    for rule in app.url_map.iter_rules():
        arguments = tuple(
            (name, not converter.part_isolating) for name, converter in rule._converters.items()
        )
        found.append((rule.endpoint, frozenset(rule.methods or ()), arguments))
    return sorted(found, key=lambda r: r[0])


ROUTES = routes(Harness().app)
BODY_ROUTES = [r for r in ROUTES if r[1] & {"POST", "PUT", "PATCH"}]
PATH_TEXT = st.characters(blacklist_categories=("Cs",))
ARGUMENT_SAMPLES = [CALLBACK_SECRET, PAGE_UUID, SETTLED_UUID, "/lead", "a//b", "x+y==", "%2F", "?#"]


def argument_values(takes_slash: bool) -> st.SearchStrategy[str]:
    samples = [a for a in ARGUMENT_SAMPLES if takes_slash or "/" not in a]
    text = st.text(PATH_TEXT, min_size=1, max_size=30)
    if not takes_slash:
        text = text.filter(lambda s: "/" not in s)
    return st.one_of(st.sampled_from(samples[:3]), st.sampled_from(samples), text)


def page_token(draw: Callable[[st.SearchStrategy[Any]], Any], uuid: str | None) -> tuple[str, str]:
    """(token, what it is) for a page request whose path names `uuid`."""
    kind = draw(
        st.one_of(
            st.sampled_from(["fresh", "expired"]),
            st.sampled_from(["other meeting", "other key", "garbage", "none"]),
        )
    )
    subject = uuid if uuid is not None else PAGE_UUID
    if kind == "fresh":
        return make_page_token(subject, LINK_KEY, 3600, CLOCK), kind
    if kind == "expired":
        return make_page_token(subject, LINK_KEY, 60, CLOCK - 120), kind
    if kind == "other meeting":
        return make_page_token(subject + "x", LINK_KEY, 3600, CLOCK), kind
    if kind == "other key":
        return make_page_token(subject, LINK_KEY + "!", 3600, CLOCK), kind
    if kind == "garbage":
        return draw(st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=50)), kind
    return "", kind


def expected_statuses(
    endpoint: str,
    method: str,
    methods: frozenset[str],
    values: dict[str, str],
    body: Body,
    authentic: bool,
    content_type: str | None,
    token_kind: str,
) -> set[int]:
    """What a correct app answers; a 401 from the Zoom webhook exactly when not authentic."""
    if method not in methods:
        return {405}
    if method == "OPTIONS":
        return {200}
    if endpoint == "healthz":
        return {200}
    if endpoint == "zoom_webhook":
        if body.kind == "too_large":
            return {413}
        if not authentic:
            return {401}
        if not content_type or not content_type.startswith("application/json"):
            return {400}
        if body.kind in ("not_json", "not_object"):
            return {400}
        if body.kind == "large":
            return {200}
        return {200, 400}
    if endpoint == "symbl_callback":
        if body.kind in ("too_large", "large"):
            return {413}
        if body.kind in ("not_json", "not_object"):
            return {400}
        return {200, 400, 404}
    if endpoint == "insights_page.insights_page":
        uuid = values["meeting_uuid"]
        if token_kind == "expired":
            return {410}
        if token_kind == "fresh":
            return {200} if uuid == PAGE_UUID else {404}
        return {404}
    return set(range(100, 500))  # a route this test does not know yet: at least never a 5xx


@settings(
    max_examples=800,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(data=st.data())
def test_property_every_route_any_request(
    data: st.DataObject, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness()
    # Routes that read a body are drawn more often: they are where bodies can do harm.
    endpoint, methods, arguments = data.draw(
        st.one_of(st.sampled_from(BODY_ROUTES), st.sampled_from(ROUTES)), label="route"
    )
    values = {name: data.draw(argument_values(slash), label=name) for name, slash in arguments}
    own = sorted(methods - {"HEAD", "OPTIONS"})
    method = data.draw(
        st.one_of(st.sampled_from(own), st.sampled_from(sorted(methods | {"PUT", "DELETE"})))
    )
    path = h.app.url_map.bind("localhost").build(endpoint, values, method=None)
    body = data.draw(BODIES, label="body")
    # Half the requests are signed as Zoom signs (so the parser and all after it are reached as
    # often as the check), half with any mix of timestamps and signatures.
    if data.draw(st.booleans(), label="signed as Zoom signs"):
        ts, mode = data.draw(IN_WINDOW, label="timestamp"), "valid"
    else:
        ts = data.draw(TIMESTAMPS, label="timestamp")
        mode = data.draw(SIGNATURES, label="signature")
    content_type = data.draw(CONTENT_TYPES, label="content type")
    token, token_kind = ("", "none")
    if "meeting_uuid" in values:
        token, token_kind = page_token(data.draw, values["meeting_uuid"])
    headers = {"x-zm-request-timestamp": ts} if ts else {}
    signature = signature_for(mode, ts, body.data)
    if signature is not None:
        headers["x-zm-signature"] = signature
    authentic = mode == "valid" and fresh(ts)

    with error_logs(caplog) as errors:
        response = h.client.open(
            path,
            method=method,
            data=body.data,
            headers=headers,
            content_type=content_type,
            query_string={"token": token} if token else None,
        )
    status = response.status_code
    event(f"{endpoint} {method} {status}")
    assert status < 500, response.get_data()[:300]
    assert status in expected_statuses(
        endpoint, method, methods, values, body, authentic, content_type, token_kind
    ), (endpoint, method, body.kind, mode, ts, token_kind, response.get_data()[:300])
    assert errors == [], [r.getMessage() for r in errors]
    if not authentic:
        assert h.store.writes == 0 and h.queue.messages == []
    # Whatever was written came with exactly one merge request.
    assert len(h.queue.messages) == len(h.accepted())
