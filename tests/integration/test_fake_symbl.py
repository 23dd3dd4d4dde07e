"""The fake Symbl must be faithful to the reference and sensitive enough to catch pipeline bugs.

Real audio (espeak-ng speech placed at known times in a 2-channel file) goes through the fake
over loopback HTTP, exactly as the pipeline will send it. Every fault knob is exercised, because
the pipeline's resilience tests rely on each of them doing what it says.
"""

from __future__ import annotations

import array
import base64
import json
import socket
import subprocess
import sys
import threading
import time
import uuid
import wave
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask, redirect, request, send_from_directory
from flask.typing import ResponseReturnValue

from sandbox.fake_symbl import (
    ENDPOINTS,
    TOKEN_INVALID_MESSAGE,
    UNINTELLIGIBLE,
    FakeSymblState,
    create_app,
    seeded_uniform,
    serve,
)
from sandbox.http_server import LoopbackServer
from sandbox.registry import MeetingRegistry, ScriptedMeeting, ScriptLine

pytestmark = pytest.mark.integration

TOPIC = "Quarterly release planning"
EPOCH = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)  # a Monday: "by Friday" is 2024-05-10
RATE = 16_000
TOLERANCE_S = 0.1
SPEAKERS = {1: ("Alice", "alice@example.com"), 2: ("Bob", "bob@example.com")}
SCRIPT = (  # (channel, text), spoken in this order with pauses in between
    (1, "Can we ship the release next week?"),
    (2, "I will update the budget by Friday."),
    (1, "I will send the meeting notes tomorrow."),
)
CONCURRENCY_429 = {
    "statusCode": 429,
    "message": "This API has a limit of maximum of `2` number of concurrent jobs per account. If"
    " you are looking to scale, and need more concurrent jobs than this limit, please contact us"
    " at support@symbl.ai",
}


@dataclass(frozen=True)
class Spoken:
    """A scripted line as placed in the test audio: the ground truth for the recogniser."""

    channel: int
    speaker: str
    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Media:
    directory: Path
    lines: tuple[Spoken, ...]
    duration: float


def eventually(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


# ---------------------------------------------------------------------------------------------
# Audio, registry and the servers around the fake
# ---------------------------------------------------------------------------------------------


def _speech_clip(text: str, directory: Path, index: int) -> array.array[int]:
    """espeak-ng speech, trimmed to its audible extent, as 16 kHz mono samples."""
    raw, trimmed = directory / f"raw{index}.wav", directory / f"clip{index}.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), text], check=True, capture_output=True)
    trim = "silenceremove=start_periods=1:start_threshold=-50dB"
    both_ends = f"{trim},areverse,{trim},areverse"
    encode = ["-ar", str(RATE), "-ac", "1", "-c:a", "pcm_s16le", str(trimmed)]
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(raw), "-af", both_ends, *encode],
        check=True,
    )
    with wave.open(str(trimmed), "rb") as wav:
        samples = array.array("h", wav.readframes(wav.getnframes()))
    if sys.byteorder != "little":
        samples.byteswap()
    return samples


def _write_wav(path: Path, channels: list[array.array[int]]) -> None:
    interleaved = array.array("h", bytes(2 * len(channels) * len(channels[0])))
    for index, samples in enumerate(channels):
        interleaved[index :: len(channels)] = samples
    if sys.byteorder != "little":
        interleaved.byteswap()
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(len(channels))
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(interleaved.tobytes())


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    """meeting.wav (Alice on channel 1, Bob on 2), mixed.wav (mono), shifted.wav (+3 s), and
    notes.txt, empty.wav and login.html (not audio)."""
    directory = tmp_path_factory.mktemp("fake_symbl_media")
    clips = [_speech_clip(text, directory, i) for i, (_, text) in enumerate(SCRIPT)]
    lines: list[Spoken] = []
    cursor = 1.0
    for (channel, text), clip in zip(SCRIPT, clips, strict=True):
        start = round(cursor * RATE) / RATE
        end = start + len(clip) / RATE
        lines.append(Spoken(channel, SPEAKERS[channel][0], text, start, end))
        cursor = end + 1.0
    total = round(cursor * RATE)
    tracks = [array.array("h", bytes(2 * total)) for _ in SPEAKERS]
    for line, clip in zip(lines, clips, strict=True):
        first = round(line.start * RATE)
        tracks[line.channel - 1][first : first + len(clip)] = clip
    shift = array.array("h", bytes(2 * 3 * RATE))
    _write_wav(directory / "meeting.wav", tracks)
    _write_wav(directory / "shifted.wav", [shift + track for track in tracks])
    _write_wav(directory / "mixed.wav", [array.array("h", map(sum, zip(*tracks, strict=True)))])
    (directory / "notes.txt").write_text("Minutes: nothing was decided.\n" * 200)
    (directory / "empty.wav").write_bytes(b"")
    (directory / "login.html").write_text("<html><body>Sign in to continue</body></html>\n" * 50)
    return Media(directory, tuple(lines), total / RATE)


@pytest.fixture(scope="session")
def scripted_registry(tmp_path_factory: pytest.TempPathFactory, media: Media) -> MeetingRegistry:
    registry = MeetingRegistry(tmp_path_factory.mktemp("fake_symbl_registry"))
    registry.register(
        ScriptedMeeting(
            uuid="test-meeting-uuid",
            topic=TOPIC,
            speakers=[name for name, _ in SPEAKERS.values()],
            lines=[ScriptLine(s.speaker, s.text, s.start, s.end) for s in media.lines],
        )
    )
    return registry


@pytest.fixture(scope="session")
def media_server(media: Media) -> Iterator[str]:
    """Serves /files/<name> directly and /redirect/<name> via a 302, like a URL shortener."""
    app = Flask("fake_symbl_test_media")

    @app.get("/files/<name>")
    def files(name: str) -> ResponseReturnValue:
        return send_from_directory(media.directory, name)

    @app.get("/redirect/<name>")
    def redirected(name: str) -> ResponseReturnValue:
        return redirect(f"/files/{name}", code=302)

    with LoopbackServer(app) as server:
        yield server.url


class WebhookReceiver:
    """The pipeline's callback endpoint stand-in: records every POST body in arrival order.

    Each test gets a fresh secret path; posts to any other path are refused with 404.
    """

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.reply_status = 200
        self.secret = uuid.uuid4().hex
        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"{self.server_url}/symbl/{self.secret}"

    def reset(self) -> None:
        with self._lock:
            self.secret = uuid.uuid4().hex
            self.bodies = []
            self.reply_status = 200

    def record(self, secret: str, body: dict[str, Any]) -> int:
        with self._lock:
            if secret != self.secret:
                return 404
            self.bodies.append(body)
            return self.reply_status

    def statuses(self) -> list[str]:
        with self._lock:
            return [body["status"] for body in self.bodies]


class SwitchableApp:
    """A WSGI app that forwards to whichever app the current test installed.

    One loopback server then serves every test's fresh fake (stopping a server costs 0.5 s).
    """

    def __init__(self) -> None:
        self.app: Flask | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        assert self.app is not None, "no fake installed"
        return self.app(environ, start_response)


@pytest.fixture(scope="module")
def receiver_server() -> Iterator[WebhookReceiver]:
    app = Flask("fake_symbl_test_webhooks")
    with LoopbackServer(app) as server:
        hooks = WebhookReceiver(server.url)

        @app.post("/symbl/<secret>")
        def hook(secret: str) -> ResponseReturnValue:
            return "", hooks.record(secret, request.get_json(force=True))

        yield hooks


@pytest.fixture
def receiver(receiver_server: WebhookReceiver) -> WebhookReceiver:
    receiver_server.reset()
    return receiver_server


class SymblClient:
    """A thin client, as the pipeline's own would be: Bearer token, JSON, polling."""

    def __init__(self, state: FakeSymblState, base_url: str, media_url: str) -> None:
        self.state = state
        self.base = base_url
        self.media = media_url
        self.token = self.generate_token().json()["accessToken"]

    def generate_token(self, app_id: str = "", app_secret: str = "") -> requests.Response:
        body = {
            "type": "application",
            "appId": app_id or self.state.app_id,
            "appSecret": app_secret or self.state.app_secret,
        }
        return requests.post(f"{self.base}/oauth2/token:generate", json=body, timeout=5)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, **params: str) -> requests.Response:
        return requests.get(f"{self.base}{path}", headers=self.auth, params=params, timeout=5)

    def post(self, path: str, body: object) -> requests.Response:
        return requests.post(f"{self.base}{path}", headers=self.auth, json=body, timeout=10)

    def body(self, file: str = "meeting.wav", **overrides: Any) -> dict[str, Any]:
        """A per-channel submission of a test file, speakers as scripted unless overridden."""
        return {
            "url": f"{self.media}/files/{file}",
            "name": TOPIC,
            "enableSeparateRecognitionPerChannel": True,
            "channelMetadata": [
                {"channel": channel, "speaker": {"name": name, "email": email}}
                for channel, (name, email) in SPEAKERS.items()
            ],
        } | overrides

    def submit(self, **overrides: Any) -> requests.Response:
        return self.post("/v1/process/audio/url", self.body(**overrides))

    def submit_ok(self, **overrides: Any) -> tuple[str, str]:
        response = self.submit(**overrides)
        assert response.status_code == 201, response.text
        return response.json()["conversationId"], response.json()["jobId"]

    def wait_job(self, job_id: str, timeout: float = 10.0) -> str:
        """Poll GET /v1/job until the status is terminal, as the reconciler does."""
        statuses: list[str] = []

        def terminal() -> bool:
            statuses.append(self.get(f"/v1/job/{job_id}").json()["status"])
            return statuses[-1] in ("completed", "failed")

        eventually(terminal, f"job {job_id} to finish", timeout)
        return statuses[-1]

    def completed_conversation(self, **overrides: Any) -> str:
        conversation_id, job_id = self.submit_ok(**overrides)
        assert self.wait_job(job_id) == "completed"
        return conversation_id


def _fake_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("fake-symbl") and t.is_alive()]


@pytest.fixture(scope="module")
def symbl_server() -> Iterator[tuple[SwitchableApp, str]]:
    switch = SwitchableApp()
    with LoopbackServer(switch) as server:
        yield switch, server.url


@pytest.fixture
def symbl(
    scripted_registry: MeetingRegistry,
    media_server: str,
    symbl_server: tuple[SwitchableApp, str],
) -> Iterator[SymblClient]:
    """A fresh fake per test with quick jobs; proves on teardown that no fake thread survives."""
    switch, url = symbl_server
    state = FakeSymblState(
        queue_seconds=0.05,
        processing_seconds=0.1,
        registry=scripted_registry,
        conversation_epoch=EPOCH,
        seed=7,
    )
    switch.app = create_app(state)
    try:
        yield SymblClient(state, url, media_server)
    finally:
        switch.app = None
        state.close()
    assert _fake_threads() == []


def _history(symbl: SymblClient, job_id: str) -> dict[str, float]:
    record = symbl.state.job(job_id)
    assert record is not None
    return dict(record.history)


def _closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/meeting.wav"


def _decode_experience(url: str, base: str) -> dict[str, str]:
    # An https URL on the fake's own host, whose server speaks plain http.
    prefix = base.replace("http://", "https://", 1) + "/meeting/#/"
    assert url.startswith(prefix), url
    encoded = url.removeprefix(prefix).split("?")[0]
    decoded: dict[str, str] = json.loads(base64.b64decode(encoded))
    return decoded


# ---------------------------------------------------------------------------------------------
# Authentication (§1)
# ---------------------------------------------------------------------------------------------


def test_token_is_reused_with_its_remaining_lifetime_until_near_expiry(symbl: SymblClient) -> None:
    first = symbl.generate_token().json()
    again = symbl.generate_token().json()
    assert again["accessToken"] == first["accessToken"] == symbl.token
    assert 0 < again["expiresIn"] <= first["expiresIn"] <= 86_400

    symbl.state.token_reissue_margin = 10**6  # the current token now counts as near expiry
    renewed = symbl.generate_token().json()
    assert renewed["accessToken"] != first["accessToken"]
    assert renewed["expiresIn"] == 86_400


def test_bad_credentials_are_401_and_malformed_requests_400(symbl: SymblClient) -> None:
    wrong = symbl.generate_token(app_secret="not-the-secret")
    assert wrong.status_code == 401
    assert wrong.json() == {"message": TOKEN_INVALID_MESSAGE}
    url = f"{symbl.base}/oauth2/token:generate"
    assert requests.post(url, json={"appId": "x", "appSecret": "y"}, timeout=5).status_code == 400


@pytest.mark.parametrize("header", ["Authorization", "x-api-key"])
def test_bearer_and_legacy_x_api_key_are_both_accepted(symbl: SymblClient, header: str) -> None:
    value = f"Bearer {symbl.token}" if header == "Authorization" else symbl.token
    response = requests.get(f"{symbl.base}/v1/job/unknown", headers={header: value}, timeout=5)
    assert response.status_code == 404  # past authentication


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-token"},
        {"x-api-key": "not-a-token"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
    ids=["none", "wrong-bearer", "wrong-api-key", "basic"],
)
def test_missing_or_wrong_token_is_401_with_documented_body(
    symbl: SymblClient, headers: dict[str, str]
) -> None:
    response = requests.post(
        f"{symbl.base}/v1/process/audio/url", headers=headers, json=symbl.body(), timeout=5
    )
    assert response.status_code == 401
    assert response.json() == {"message": "Token validation failed for provided token."}
    assert symbl.state.accepted == 0


def test_expire_tokens_invalidates_issued_tokens(symbl: SymblClient) -> None:
    old = symbl.token
    symbl.state.expire_tokens()
    assert symbl.get("/v1/job/unknown").status_code == 401
    symbl.token = symbl.generate_token().json()["accessToken"]
    assert symbl.token != old
    assert symbl.get("/v1/job/unknown").status_code == 404


def test_token_stops_working_when_its_lifetime_ends(symbl: SymblClient) -> None:
    symbl.state.token_lifetime = 0.3
    symbl.state.token_reissue_margin = 0.0
    symbl.state.expire_tokens()
    issued = symbl.generate_token().json()
    assert issued["expiresIn"] == 0  # whole seconds, rounded down
    symbl.token = issued["accessToken"]
    assert symbl.get("/v1/job/unknown").status_code == 404
    eventually(lambda: symbl.get("/v1/job/unknown").status_code == 401, "the token to expire")


# ---------------------------------------------------------------------------------------------
# Submission (§2) and its errors (§5)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"url": 42}, "url"),
        ({"url": "ftp://example.com/a.wav"}, "url"),
        ({"name": 7}, "name"),
        ({"webhookUrl": "not a url"}, "webhookUrl"),
        ({"customVocabulary": "Platform"}, "customVocabulary"),
        ({"confidenceThreshold": 0.2}, "confidenceThreshold"),
        ({"confidenceThreshold": "0.7"}, "confidenceThreshold"),
        ({"detectPhrases": "yes"}, "detectPhrases"),
        ({"entities": [{"customType": "x", "value": "y"}]}, "entities"),
        ({"mode": "stereo"}, "mode"),
        ({"enableSeparateRecognitionPerChannel": 1}, "enableSeparateRecognitionPerChannel"),
        ({"enableSpeakerDiarization": None}, "enableSpeakerDiarization"),
        ({"diarizationSpeakerCount": 0}, "diarizationSpeakerCount"),
        ({"trackers": [{"name": "t"}]}, "trackers"),
        ({"channelMetadata": {"channel": 1}}, "channelMetadata"),
        ({"channelMetadata": [{"channel": 0, "speaker": {}}]}, "channel"),
        ({"channelMetadata": [{"channel": "1", "speaker": {}}]}, "channel"),
        ({"channelMetadata": [{"channel": 1}]}, "speaker"),
        ({"channelMetadata": [{"channel": 1, "speaker": {"name": 5}}]}, "speaker.name"),
        (
            {"channelMetadata": [{"channel": 1, "speaker": {}}, {"channel": 1, "speaker": {}}]},
            "twice",
        ),
    ],
)
def test_invalid_bodies_are_400_with_a_message(
    symbl: SymblClient, overrides: dict[str, Any], field: str
) -> None:
    response = symbl.post("/v1/process/audio/url", symbl.body() | overrides)
    assert response.status_code == 400, response.text
    assert field in response.json()["message"]
    assert symbl.state.accepted == 0


def test_a_missing_url_is_400(symbl: SymblClient) -> None:
    body = symbl.body()
    del body["url"]
    response = symbl.post("/v1/process/audio/url", body)
    assert response.status_code == 400
    assert "url is required" in response.json()["message"]


def test_a_non_object_body_is_400(symbl: SymblClient) -> None:
    response = symbl.post("/v1/process/audio/url", ["not", "an", "object"])
    assert response.status_code == 400
    assert "message" in response.json()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("{media}/redirect/meeting.wav", "directly downloadable"),
        ("{closed}", "could not be downloaded"),
        ("{media}/files/missing.wav", "HTTP 404"),
        ("{media}/files/notes.txt", "audio"),
        ("{media}/files/empty.wav", "audio"),
        ("{media}/files/login.html", "audio"),
    ],
    ids=["redirect", "unreachable", "not-found", "not-audio", "empty", "html"],
)
def test_media_that_cannot_be_fetched_or_decoded_is_a_job_that_fails(
    symbl: SymblClient, receiver: WebhookReceiver, url: str, reason: str
) -> None:
    # The async API takes the job and fails it once running (no synchronous 400 for media).
    symbl.state.processing_seconds = 0.3
    target = url.format(media=symbl.media, closed=_closed_port_url())
    conversation_id, job_id = symbl.submit_ok(url=target, webhookUrl=receiver.url)
    assert symbl.state.rejections == []
    assert symbl.state.in_flight == 1  # it holds a concurrency slot while it runs
    assert symbl.wait_job(job_id) == "failed"
    record = symbl.state.job(job_id)
    assert record is not None
    assert [status for status, _ in record.history] == ["scheduled", "in_progress", "failed"]
    assert record.error is not None and reason in record.error
    eventually(lambda: receiver.statuses() == ["in_progress", "failed"], "the callbacks")
    assert symbl.get(f"/v1/conversations/{conversation_id}/messages").json() == {"messages": []}
    assert list(symbl.state.download_dir.iterdir()) == []  # nothing of it is kept


def test_channel_metadata_beyond_the_files_channels_is_400(symbl: SymblClient) -> None:
    metadata = symbl.body()["channelMetadata"] + [{"channel": 3, "speaker": {"name": "Carol"}}]
    response = symbl.submit(channelMetadata=metadata)
    assert response.status_code == 400
    assert "channel 3" in response.json()["message"]


def test_more_channels_than_the_configured_maximum_is_400(symbl: SymblClient) -> None:
    symbl.state.max_channels = 1
    response = symbl.submit()
    assert response.status_code == 400
    assert "at most 1" in response.json()["message"]
    assert symbl.submit(enableSeparateRecognitionPerChannel=False).status_code == 201


def test_submit_answers_201_with_numeric_conversation_id_and_uuid_job_id(
    symbl: SymblClient,
) -> None:
    response = symbl.submit(webhookUrl="", customVocabulary=["budget"], mode="default")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"conversationId", "jobId"}
    assert body["conversationId"].isdigit()
    assert len(body["jobId"]) == 36 and body["jobId"].count("-") == 4
    [submission] = symbl.state.submissions
    assert submission.url == f"{symbl.media}/files/meeting.wav"
    assert submission.name == TOPIC
    assert submission.channel_metadata == symbl.body()["channelMetadata"]
    assert submission.options["customVocabulary"] == ["budget"]


# ---------------------------------------------------------------------------------------------
# Concurrency (§5 429, §6 limits)
# ---------------------------------------------------------------------------------------------


def test_third_concurrent_job_is_429_with_documented_body_until_a_slot_frees(
    symbl: SymblClient,
) -> None:
    symbl.state.processing_seconds = 1.0
    symbl.submit_ok()
    symbl.submit_ok()
    third = symbl.submit()
    assert third.status_code == 429
    assert third.json() == CONCURRENCY_429
    assert "Retry-After" not in third.headers

    symbl.state.wait_until_idle()
    symbl.state.processing_seconds = 0.1
    assert symbl.submit().status_code == 201
    assert symbl.state.max_in_flight == 2


def test_concurrent_submits_never_exceed_the_limit(symbl: SymblClient) -> None:
    symbl.state.processing_seconds = 1.0
    start = threading.Barrier(10)

    def submit_together(_: int) -> int:
        start.wait()
        return symbl.submit().status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        codes = list(pool.map(submit_together, range(10)))
    assert set(codes) <= {201, 429}
    assert codes.count(201) >= 2
    assert codes.count(429) >= 1
    assert symbl.state.max_in_flight <= 2
    assert symbl.state.accepted == codes.count(201)
    symbl.state.wait_until_idle()


def test_every_submit_is_recorded_and_one_arriving_at_a_full_account_is_over_limit(
    symbl: SymblClient,
) -> None:
    symbl.state.processing_seconds = 5.0
    symbl.state.http_5xx(status=503, endpoint="submit", count=1)
    assert symbl.submit().status_code == 503
    symbl.state.http_429(count=1)
    assert symbl.submit().status_code == 429  # forced: another client holds the slots
    _, first = symbl.submit_ok()
    _, second = symbl.submit_ok()
    assert symbl.state.over_limit_attempts == []
    assert symbl.submit().status_code == 429  # the client's own count should have held it back

    attempts = symbl.state.submit_attempts
    assert [(a.status, a.running, a.forced_429, a.job_id) for a in attempts] == [
        (503, 0, False, None),
        (429, 0, True, None),
        (201, 0, False, first),
        (201, 1, False, second),
        (429, 2, False, None),
    ]
    assert all(a.limit == 2 for a in attempts)
    assert symbl.state.over_limit_attempts == [attempts[-1]]
    assert symbl.state.over_limit_count == 1 == symbl.state.at_limit_count


def test_a_job_whose_answer_was_lost_counts_at_the_limit_but_not_over_it(
    symbl: SymblClient,
) -> None:
    # A client that never heard of a job cannot count it: arriving then is not its count's fault.
    symbl.state.processing_seconds = 5.0
    symbl.state.lose_submit_answers(count=1)
    assert symbl.submit().status_code == 504
    symbl.submit_ok()
    assert symbl.submit().status_code == 429
    last = symbl.state.submit_attempts[-1]
    assert (last.running, last.running_answered) == (2, 1)
    assert (symbl.state.at_limit_count, symbl.state.over_limit_count) == (1, 0)


# ---------------------------------------------------------------------------------------------
# Jobs (§3) and webhooks (§4)
# ---------------------------------------------------------------------------------------------


def test_job_progresses_and_the_webhook_reports_every_change_in_order(
    symbl: SymblClient, receiver: WebhookReceiver
) -> None:
    _, job_id = symbl.submit_ok(webhookUrl=receiver.url)
    # The state right after the 201 depends on scheduling; the history below proves the order.
    assert symbl.get(f"/v1/job/{job_id}").json()["status"] != "failed"
    assert symbl.wait_job(job_id) == "completed"

    eventually(lambda: len(receiver.bodies) == 2, "two callbacks")
    assert receiver.bodies == [
        {"jobId": job_id, "status": "in_progress"},
        {"jobId": job_id, "status": "completed"},
    ]
    record = symbl.state.job(job_id)
    assert record is not None
    assert [status for status, _ in record.history] == ["scheduled", "in_progress", "completed"]
    # The fake records an attempt once the receiver's answer is back, just after the body lands.
    eventually(lambda: len(symbl.state.webhook_attempts) == 2, "two recorded attempts")
    assert [a.status_code for a in symbl.state.webhook_attempts] == [200, 200]


def test_unknown_job_is_404_with_a_message(symbl: SymblClient) -> None:
    response = symbl.get("/v1/job/9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d")
    assert response.status_code == 404
    assert response.json()["message"]


def test_webhook_receiver_errors_are_recorded_and_not_retried(
    symbl: SymblClient, receiver: WebhookReceiver
) -> None:
    receiver.reply_status = 500
    _, job_id = symbl.submit_ok(webhookUrl=receiver.url)
    symbl.state.wait_for_job(job_id)
    symbl.state.wait_for(lambda: len(symbl.state.webhook_attempts) == 2)
    attempts = symbl.state.webhook_attempts
    assert [(a.payload["status"], a.status_code) for a in attempts] == [
        ("in_progress", 500),
        ("completed", 500),
    ]
    assert receiver.statuses() == ["in_progress", "completed"]


def test_an_unreachable_webhook_is_recorded_as_an_error(symbl: SymblClient) -> None:
    _, job_id = symbl.submit_ok(webhookUrl=_closed_port_url())
    assert symbl.wait_job(job_id) == "completed"
    symbl.state.wait_for(lambda: len(symbl.state.webhook_attempts) == 2)
    for attempt in symbl.state.webhook_attempts:
        assert attempt.status_code is None
        assert attempt.error is not None and "ConnectionError" in attempt.error
        assert not attempt.dropped


def test_summary_is_404_until_the_job_completes(symbl: SymblClient) -> None:
    symbl.state.queue_seconds = 0.5
    symbl.state.summary_seconds, symbl.state.summary_min_words = 0, 0  # a short script
    conversation_id, job_id = symbl.submit_ok(enableSummary=True)
    early = symbl.get(f"/v1/conversations/{conversation_id}/summary")
    assert early.status_code == 404
    assert early.json()["message"]
    assert symbl.get(f"/v1/conversations/{conversation_id}/messages").json() == {"messages": []}

    assert symbl.wait_job(job_id) == "completed"
    late = symbl.get(f"/v1/conversations/{conversation_id}/summary")
    assert late.status_code == 200
    assert late.json()["summary"]


# ---------------------------------------------------------------------------------------------
# Recognition: speakers, true timestamps, scripted text
# ---------------------------------------------------------------------------------------------


def test_messages_have_channel_speaker_true_times_and_scripted_text(
    symbl: SymblClient, media: Media
) -> None:
    conversation_id = symbl.completed_conversation()
    messages = symbl.get(f"/v1/conversations/{conversation_id}/messages").json()["messages"]

    assert [m["text"] for m in messages] == [line.text for line in media.lines]
    for message, line in zip(messages, media.lines, strict=True):
        name, email = SPEAKERS[line.channel]
        assert message["from"]["name"] == name
        assert message["from"]["email"] == email
        assert message["from"]["id"]
        assert message["timeOffset"] == pytest.approx(line.start, abs=TOLERANCE_S)
        end = message["timeOffset"] + message["duration"]
        assert end == pytest.approx(line.end, abs=TOLERANCE_S)
        start = EPOCH + timedelta(seconds=message["timeOffset"])
        assert message["startTime"] == start.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        assert message["conversationId"] == conversation_id
        assert message["phrases"] == []
        assert "words" not in message and "sentiment" not in message
    assert len({m["id"] for m in messages}) == len(messages)


def test_verbose_adds_words_and_sentiment_adds_polarity(symbl: SymblClient) -> None:
    conversation_id = symbl.completed_conversation(detectPhrases=True)
    messages = symbl.get(
        f"/v1/conversations/{conversation_id}/messages", verbose="true", sentiment="true"
    ).json()["messages"]
    for message in messages:
        words = message["words"]
        assert [w["word"] for w in words] == message["text"].split()
        assert words[0]["timeOffset"] == pytest.approx(message["timeOffset"], abs=0.001)
        assert set(words[0]) == {"word", "startTime", "endTime", "score", "timeOffset", "duration"}
        assert message["sentiment"]["suggested"] in ("positive", "neutral", "negative")
        assert isinstance(message["sentiment"]["polarity"]["score"], float)
    assert messages[1]["phrases"] == [
        {"type": "action_phrase", "text": "update the budget by Friday"}
    ]


def test_a_channel_mapped_to_the_wrong_speaker_gets_no_scripted_text(symbl: SymblClient) -> None:
    swapped = [
        {"channel": 1, "speaker": {"name": "Bob"}},
        {"channel": 2, "speaker": {"name": "Alice"}},
    ]
    conversation_id = symbl.completed_conversation(channelMetadata=swapped)
    messages = symbl.get(f"/v1/conversations/{conversation_id}/messages").json()["messages"]
    assert len(messages) == len(SCRIPT)
    assert {m["text"] for m in messages} == {UNINTELLIGIBLE}
    assert symbl.get(f"/v1/conversations/{conversation_id}/questions").json()["questions"] == []


def test_audio_shifted_in_time_gets_no_scripted_text(symbl: SymblClient, media: Media) -> None:
    conversation_id = symbl.completed_conversation(file="shifted.wav")
    messages = symbl.get(f"/v1/conversations/{conversation_id}/messages").json()["messages"]
    assert [m["timeOffset"] for m in messages] == pytest.approx(
        [line.start + 3 for line in media.lines], abs=TOLERANCE_S
    )
    assert {m["text"] for m in messages} == {UNINTELLIGIBLE}


def test_an_unknown_meeting_gets_clearly_synthetic_sentences(
    symbl: SymblClient, media: Media
) -> None:
    conversation_id = symbl.completed_conversation(name="Not a scripted meeting")
    messages = symbl.get(f"/v1/conversations/{conversation_id}/messages").json()["messages"]
    assert [m["text"] for m in messages] == [
        "Synthetic sentence 1 from channel 1.",
        "Synthetic sentence 1 from channel 2.",
        "Synthetic sentence 2 from channel 1.",
    ]
    assert [m["timeOffset"] for m in messages] == pytest.approx(
        [line.start for line in media.lines], abs=TOLERANCE_S
    )


def test_diarization_tells_voices_apart_without_naming_them(symbl: SymblClient) -> None:
    conversation_id = symbl.completed_conversation(
        file="mixed.wav",
        enableSeparateRecognitionPerChannel=False,
        enableSpeakerDiarization=True,
        diarizationSpeakerCount=2,
    )
    messages = symbl.get(f"/v1/conversations/{conversation_id}/messages").json()["messages"]
    assert [(m["from"]["name"], m["text"]) for m in messages] == [
        ("Speaker 1", SCRIPT[0][1]),
        ("Speaker 2", SCRIPT[1][1]),
        ("Speaker 1", SCRIPT[2][1]),
    ]


def test_diarization_of_an_unknown_meeting_labels_speakers_round_robin(symbl: SymblClient) -> None:
    # Per-channel recognition and its channelMetadata stay set: diarization takes priority (§2.1).
    conversation_id = symbl.completed_conversation(
        file="mixed.wav",
        name="Unscripted",
        enableSpeakerDiarization=True,
        diarizationSpeakerCount="2",
    )
    messages = symbl.get(f"/v1/conversations/{conversation_id}/messages").json()["messages"]
    assert [m["from"]["name"] for m in messages] == ["Speaker 1", "Speaker 2", "Speaker 1"]


def test_appended_audio_continues_the_conversation_after_the_first_job(
    symbl: SymblClient, media: Media
) -> None:
    conversation_id, first = symbl.submit_ok()
    appended = requests.put(
        f"{symbl.base}/v1/process/audio/url/{conversation_id}",
        headers=symbl.auth,
        json=symbl.body(),
        timeout=10,
    )
    assert appended.status_code == 201, appended.text
    second = appended.json()["jobId"]
    assert appended.json()["conversationId"] == conversation_id and second != first
    assert symbl.wait_job(second) == "completed"

    # Jobs of one conversation run one at a time, in order (§2.3).
    assert _history(symbl, second)["in_progress"] >= _history(symbl, first)["completed"]
    messages = symbl.get(f"/v1/conversations/{conversation_id}/messages").json()["messages"]
    assert [m["text"] for m in messages] == [line.text for line in media.lines] * 2
    expected = [line.start for line in media.lines]
    expected += [media.duration + start for start in expected]
    assert [m["timeOffset"] for m in messages] == pytest.approx(expected, abs=TOLERANCE_S)
    assert [s.appended for s in symbl.state.submissions] == [False, True]


def test_appending_to_an_unknown_conversation_is_404(symbl: SymblClient) -> None:
    response = requests.put(
        f"{symbl.base}/v1/process/audio/url/1234567890123456",
        headers=symbl.auth,
        json=symbl.body(),
        timeout=10,
    )
    assert response.status_code == 404
    assert response.json()["message"]


# ---------------------------------------------------------------------------------------------
# Conversation API (§7)
# ---------------------------------------------------------------------------------------------


def test_questions_action_items_and_follow_ups_follow_the_documented_shapes(
    symbl: SymblClient,
) -> None:
    conversation_id = symbl.completed_conversation()
    base = f"/v1/conversations/{conversation_id}"
    messages = symbl.get(f"{base}/messages").json()["messages"]
    alice = {"id": messages[0]["from"]["id"], "name": "Alice", "userId": "alice@example.com"}
    bob = {"id": messages[1]["from"]["id"], "name": "Bob", "userId": "bob@example.com"}

    [question] = symbl.get(f"{base}/questions").json()["questions"]
    assert question == {
        "id": question["id"],
        "text": "Can we ship the release next week?",
        "type": "question",
        "score": question["score"],
        "messageIds": [messages[0]["id"]],
        "from": alice,
    }

    [action] = symbl.get(f"{base}/action-items").json()["actionItems"]
    assert action == {
        "id": action["id"],
        "text": "I will update the budget by Friday.",
        "type": "action_item",
        "score": action["score"],
        "messageIds": [messages[1]["id"]],
        "entities": [{"type": "date", "text": "Friday", "offset": 28, "value": "2024-05-10"}],
        "phrases": [{"type": "action_phrase", "text": "update the budget by Friday"}],
        "from": bob,
        "definitive": True,
        "assignee": {"name": "Bob", "email": "bob@example.com"},
        "dueBy": "2024-05-10T00:00:00.000Z",
    }

    [follow_up] = symbl.get(f"{base}/follow-ups").json()["followUps"]
    assert follow_up["type"] == "follow_up"
    assert follow_up["text"] == "I will send the meeting notes tomorrow."
    assert follow_up["messageIds"] == [messages[2]["id"]]
    assert follow_up["from"] == alice
    assert follow_up["assignee"] == {"name": "Alice", "email": "alice@example.com"}
    assert follow_up["dueBy"] == "2024-05-07T00:00:00.000Z"
    assert set(follow_up) == {
        "id",
        "text",
        "type",
        "score",
        "messageIds",
        "entities",
        "from",
        "assignee",
        "dueBy",
    }


def test_topics_summary_members_and_conversation(symbl: SymblClient, media: Media) -> None:
    conversation_id = symbl.completed_conversation()
    base = f"/v1/conversations/{conversation_id}"
    message_ids = {m["id"] for m in symbl.get(f"{base}/messages").json()["messages"]}

    topics = symbl.get(f"{base}/topics", sentiment="true").json()["topics"]
    assert 1 <= len(topics) <= 5
    assert "release" in {t["text"] for t in topics}
    for topic in topics:
        assert topic["type"] == "topic"
        assert 0 < topic["score"] <= 1
        assert set(topic["messageIds"]) <= message_ids
        assert topic["parentRefs"] == []
        assert topic["sentiment"]["suggested"] in ("positive", "neutral", "negative")

    symbl.state.summary_seconds, symbl.state.summary_min_words = 0, 0  # a short script
    assert symbl.post(f"{base}/summary?refresh=true", None).status_code == 202
    summary = symbl.get(f"{base}/summary").json()["summary"]
    assert [s["text"] for s in summary] == [
        "Alice: Can we ship the release next week?",
        "Bob: I will update the budget by Friday.",
        "Action item for Bob: I will update the budget by Friday.",
    ]
    assert all({r["id"] for r in s["messageRefs"]} <= message_ids for s in summary)

    members = symbl.get(f"{base}/members").json()["members"]
    assert [(m["name"], m["email"]) for m in members] == list(SPEAKERS.values())

    conversation = symbl.get(base).json()
    assert conversation == {
        "id": conversation_id,
        "type": "meeting",
        "name": TOPIC,
        "startTime": "2024-05-06T09:00:00.000Z",
        "endTime": conversation["endTime"],
        "members": members,
        "metadata": {},
    }
    end = datetime.fromisoformat(conversation["endTime"])
    assert (end - EPOCH).total_seconds() == pytest.approx(media.duration, abs=0.01)


def test_analytics_reports_true_talk_time_per_member(symbl: SymblClient, media: Media) -> None:
    conversation_id = symbl.completed_conversation()
    analytics = symbl.get(f"/v1/conversations/{conversation_id}/analytics").json()
    talk = {
        name: sum(line.end - line.start for line in media.lines if line.speaker == name)
        for name, _ in SPEAKERS.values()
    }
    total_talk = sum(talk.values())
    metrics = {m["type"]: m for m in analytics["metrics"]}
    assert metrics["total_talk_time"]["seconds"] == pytest.approx(total_talk, abs=0.3)
    assert metrics["total_silence"]["seconds"] == pytest.approx(
        media.duration - total_talk, abs=0.3
    )
    assert metrics["total_overlap"]["seconds"] == 0
    percent = sum(m["percent"] for t, m in metrics.items() if t != "total_overlap")
    assert percent == pytest.approx(100, abs=0.01)

    for member in analytics["members"]:
        own = talk[member["name"]]
        assert member["talkTime"]["seconds"] == pytest.approx(own, abs=0.2)
        assert member["talkTime"]["percentage"] == pytest.approx(100 * own / total_talk, abs=3)
        assert member["listenTime"]["seconds"] == pytest.approx(total_talk - own, abs=0.2)
        assert member["pace"]["wpm"] > 0
        assert member["overlap"] == {"overlapDuration": 0, "overlappingMembers": []}
        assert member["userId"].endswith("@example.com")


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/messages",
        "/topics",
        "/questions",
        "/action-items",
        "/follow-ups",
        "/summary",
        "/analytics",
        "/members",
    ],
)
def test_unknown_conversation_is_404_with_a_message(symbl: SymblClient, path: str) -> None:
    response = symbl.get(f"/v1/conversations/1234567890123456{path}")
    assert response.status_code == 404
    assert response.json()["message"]


# ---------------------------------------------------------------------------------------------
# Experience API (§8)
# ---------------------------------------------------------------------------------------------


def test_experiences_link_to_the_fakes_own_summary_page(symbl: SymblClient) -> None:
    conversation_id = symbl.completed_conversation()
    path = f"/v1/conversations/{conversation_id}/experiences"
    audio_url = f"{symbl.media}/files/meeting.wav"

    options = {"summaryURLExpiresIn": 7 * 86400, "readOnly": True}
    text = symbl.post(path, {"name": "verbose-text-summary", **options}).json()
    assert text["name"] == "verbose-text-summary"
    assert _decode_experience(text["url"], symbl.base) == {"sessionId": conversation_id}
    (recorded,) = symbl.state.experience_requests
    assert (recorded.conversation_id, recorded.name) == (conversation_id, "verbose-text-summary")
    assert (recorded.options, recorded.url) == (options, text["url"])

    video = symbl.post(path, {"name": "video-summary", "videoUrl": audio_url}).json()
    assert video["url"].endswith("?showVideoSummary=true")
    assert _decode_experience(video["url"], symbl.base) == {
        "sessionId": conversation_id,
        "videoUrl": audio_url,
    }
    audio = symbl.post(path, {"name": "audio-summary", "audioUrl": audio_url}).json()
    assert _decode_experience(audio["url"], symbl.base) == {
        "conversationId": conversation_id,
        "audioUrl": audio_url,
    }

    # The page, over the fake's plain http; the fragment stays in the browser.
    page = requests.get(text["url"].replace("https://", "http://", 1), timeout=5)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    data = requests.get(f"{symbl.base}/meeting/data/{conversation_id}", timeout=5).json()
    assert data["conversation"]["name"] == TOPIC
    assert [a["text"] for a in data["actionItems"]] == ["I will update the budget by Friday."]
    assert data["summary"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"name": "video-summary"}, "videoUrl"),
        ({"name": "audio-summary"}, "audioUrl"),
        ({"name": "slideshow"}, "name"),
        ({"name": "verbose-text-summary", "summaryURLExpiresIn": -1}, "summaryURLExpiresIn"),
    ],
)
def test_invalid_experience_requests_are_400(
    symbl: SymblClient, body: dict[str, Any], reason: str
) -> None:
    conversation_id, _ = symbl.submit_ok()
    response = symbl.post(f"/v1/conversations/{conversation_id}/experiences", body)
    assert response.status_code == 400
    assert reason in response.json()["message"]
    symbl.state.wait_until_idle()


def test_experience_for_an_unknown_conversation_is_404(symbl: SymblClient) -> None:
    body = {"name": "verbose-text-summary"}
    response = symbl.post("/v1/conversations/1234567890123456/experiences", body)
    assert response.status_code == 404


# ---------------------------------------------------------------------------------------------
# Fault knobs
# ---------------------------------------------------------------------------------------------


def test_http_5xx_on_every_endpoint_for_a_number_of_requests(symbl: SymblClient) -> None:
    symbl.state.http_5xx(count=2)
    codes = [symbl.get("/v1/job/unknown").status_code for _ in range(3)]
    assert codes == [500, 500, 404]


def test_http_5xx_on_one_endpoint_until_cleared(symbl: SymblClient) -> None:
    conversation_id = symbl.completed_conversation()
    base = f"/v1/conversations/{conversation_id}"
    symbl.state.summary_seconds, symbl.state.summary_min_words = 0, 0  # a short script
    assert symbl.post(f"{base}/summary?refresh=true", None).status_code == 202
    symbl.state.http_5xx(status=503, endpoint="summary")
    assert [symbl.get(f"{base}/summary").status_code for _ in range(2)] == [503, 503]
    assert symbl.get(f"{base}/messages").status_code == 200
    symbl.state.clear_faults()
    assert symbl.get(f"{base}/summary").status_code == 200


def test_http_429_refuses_submits_while_the_account_is_idle(symbl: SymblClient) -> None:
    symbl.state.http_429(count=1)
    refused = symbl.submit()
    assert refused.status_code == 429
    assert refused.json() == CONCURRENCY_429
    assert symbl.state.in_flight == 0
    assert symbl.submit().status_code == 201
    assert [r.status for r in symbl.state.rejections] == [429]


def test_drop_webhooks_by_count(symbl: SymblClient, receiver: WebhookReceiver) -> None:
    symbl.state.drop_webhooks(count=1)
    _, job_id = symbl.submit_ok(webhookUrl=receiver.url)
    symbl.state.wait_for_job(job_id)
    eventually(lambda: receiver.statuses() == ["completed"], "the undropped callback")
    attempts = symbl.state.webhook_attempts
    assert [(a.payload["status"], a.dropped) for a in attempts] == [
        ("in_progress", True),
        ("completed", False),
    ]


@pytest.mark.parametrize(("probability", "delivered"), [(1.0, 0), (0.0, 2)])
def test_drop_webhooks_by_probability(
    symbl: SymblClient, receiver: WebhookReceiver, probability: float, delivered: int
) -> None:
    symbl.state.drop_webhooks(probability=probability)
    _, job_id = symbl.submit_ok(webhookUrl=receiver.url)
    symbl.state.wait_for_job(job_id)
    symbl.state.wait_for(lambda: len(symbl.state.webhook_attempts) == 2)
    assert sum(not a.dropped for a in symbl.state.webhook_attempts) == delivered
    eventually(lambda: len(receiver.bodies) == delivered, f"{delivered} callbacks")


def test_duplicate_webhooks(symbl: SymblClient, receiver: WebhookReceiver) -> None:
    symbl.state.duplicate_webhooks()
    _, job_id = symbl.submit_ok(webhookUrl=receiver.url)
    symbl.state.wait_for_job(job_id)
    eventually(lambda: len(receiver.bodies) == 4, "four callbacks")
    assert receiver.statuses() == ["in_progress", "in_progress", "completed", "completed"]


def test_delay_webhooks(symbl: SymblClient, receiver: WebhookReceiver) -> None:
    symbl.state.delay_webhooks(0.4, count=1)
    _, job_id = symbl.submit_ok(webhookUrl=receiver.url)
    symbl.state.wait_for_job(job_id)
    symbl.state.wait_for(lambda: len(symbl.state.webhook_attempts) == 2)
    attempts = {a.payload["status"]: a for a in symbl.state.webhook_attempts}
    held = attempts["in_progress"]
    assert held.attempted_at - held.status_changed_at >= 0.4
    prompt = attempts["completed"]
    assert prompt.attempted_at - prompt.status_changed_at < 0.4
    assert receiver.statuses() == ["completed", "in_progress"]  # overtaken by the prompt one


def test_reorder_webhooks_delivers_in_progress_after_the_terminal_status(
    symbl: SymblClient, receiver: WebhookReceiver
) -> None:
    symbl.state.reorder_webhooks(count=1)
    _, job_id = symbl.submit_ok(webhookUrl=receiver.url)
    symbl.state.wait_for_job(job_id)
    eventually(lambda: len(receiver.bodies) == 2, "two callbacks")
    assert receiver.statuses() == ["completed", "in_progress"]


def test_webhook_uses_id_sends_the_job_status_shape(
    symbl: SymblClient, receiver: WebhookReceiver
) -> None:
    symbl.state.webhook_uses_id()
    _, job_id = symbl.submit_ok(webhookUrl=receiver.url)
    symbl.state.wait_for_job(job_id)
    eventually(lambda: len(receiver.bodies) == 2, "two callbacks")
    assert receiver.bodies == [
        {"id": job_id, "status": "in_progress"},
        {"id": job_id, "status": "completed"},
    ]


def test_fail_jobs_by_count(symbl: SymblClient, receiver: WebhookReceiver) -> None:
    symbl.state.fail_jobs(count=1)
    failed_conversation, failed = symbl.submit_ok(webhookUrl=receiver.url)
    assert symbl.wait_job(failed) == "failed"
    eventually(lambda: receiver.statuses() == ["in_progress", "failed"], "the failure callbacks")
    base = f"/v1/conversations/{failed_conversation}"
    assert symbl.get(f"{base}/summary").status_code == 404
    assert symbl.get(f"{base}/messages").json() == {"messages": []}

    _, succeeded = symbl.submit_ok()
    assert symbl.wait_job(succeeded) == "completed"


def test_fail_jobs_by_conversation_name(symbl: SymblClient) -> None:
    symbl.state.fail_jobs(name_pattern="^Doomed")
    _, doomed = symbl.submit_ok(name="Doomed standup")
    _, fine = symbl.submit_ok()
    assert symbl.wait_job(doomed) == "failed"
    assert symbl.wait_job(fine) == "completed"


def test_lose_submit_answers_runs_the_job_but_answers_504(
    symbl: SymblClient, receiver: WebhookReceiver
) -> None:
    symbl.state.lose_submit_answers(count=1)
    lost = symbl.submit(webhookUrl=receiver.url)
    assert lost.status_code == 504
    assert "jobId" not in lost.json()
    [submission] = symbl.state.submissions
    assert submission.answer_lost
    assert symbl.state.in_flight == 1
    assert symbl.state.wait_for_job(submission.job_id) == "completed"
    eventually(lambda: receiver.statuses() == ["in_progress", "completed"], "its callbacks")
    assert symbl.get(f"/v1/job/{submission.job_id}").json()["status"] == "completed"

    # Not knowing, the client submits the meeting again, and later once more.
    _, again = symbl.submit_ok()
    _, third = symbl.submit_ok()
    assert symbl.state.jobs_per_name() == {TOPIC: 3}
    assert [(d.submission.job_id, d.after_lost_answer) for d in symbl.state.duplicate_jobs] == [
        (again, True),
        (third, False),
    ]
    assert [a.status for a in symbl.state.submit_attempts] == [504, 201, 201]
    assert symbl.state.submit_attempts[0].job_id == submission.job_id


def test_lose_submit_answers_by_closing_the_connection(symbl: SymblClient) -> None:
    symbl.state.lose_submit_answers(count=1, mode="close")
    with pytest.raises(requests.ConnectionError):
        symbl.submit()
    [submission] = symbl.state.submissions
    assert submission.answer_lost
    symbl.state.wait_for(lambda: len(symbl.state.submit_attempts) == 1)
    assert symbl.state.submit_attempts[0].status is None  # no answer at all
    assert symbl.wait_job(submission.job_id) == "completed"
    assert symbl.submit().status_code == 201  # only `count` answers are lost


def test_lose_submit_answers_past_the_clients_timeout(symbl: SymblClient) -> None:
    symbl.state.lose_submit_answers(count=1, mode="hang", seconds=1.0)
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        requests.post(
            f"{symbl.base}/v1/process/audio/url", headers=symbl.auth, json=symbl.body(), timeout=0.3
        )
    assert time.monotonic() - started < 1.0
    [submission] = symbl.state.submissions
    assert submission.answer_lost
    symbl.state.wait_for(lambda: len(symbl.state.submit_attempts) == 1)
    assert symbl.state.submit_attempts[0].status == 504  # answered, by then to nobody
    assert symbl.wait_job(submission.job_id) == "completed"


def test_knobs_reject_meaningless_settings(symbl: SymblClient) -> None:
    with pytest.raises(ValueError, match="5xx"):
        symbl.state.http_5xx(status=404)
    with pytest.raises(ValueError, match="unknown endpoint"):
        symbl.state.http_5xx(endpoint="no_such_endpoint")
    with pytest.raises(ValueError, match="count"):
        symbl.state.duplicate_webhooks(count=0)
    with pytest.raises(ValueError, match="probability"):
        symbl.state.drop_webhooks(probability=1.5)
    with pytest.raises(ValueError, match="5xx"):
        symbl.state.lose_submit_answers(status=400)
    with pytest.raises(ValueError, match="mode"):
        symbl.state.lose_submit_answers(mode="vanish")  # type: ignore[arg-type]
    assert {"submit", "summary", "token"} <= ENDPOINTS


# ---------------------------------------------------------------------------------------------
# Durations and shutdown
# ---------------------------------------------------------------------------------------------


def test_seeded_durations_are_reproducible_and_drive_the_jobs(symbl: SymblClient) -> None:
    draw, again = seeded_uniform(0.05, 0.15, seed=3), seeded_uniform(0.05, 0.15, seed=3)
    samples = [draw() for _ in range(5)]
    assert samples == [again() for _ in range(5)]
    assert all(0.05 <= s <= 0.15 for s in samples)

    symbl.state.queue_seconds = seeded_uniform(0.05, 0.1, seed=1)
    symbl.state.processing_seconds = seeded_uniform(0.05, 0.1, seed=2)
    _, job_id = symbl.submit_ok()
    assert symbl.wait_job(job_id) == "completed"


def test_close_stops_timers_and_threads_mid_job(
    scripted_registry: MeetingRegistry, media_server: str, receiver: WebhookReceiver
) -> None:
    state = FakeSymblState(queue_seconds=30, registry=scripted_registry)
    server = serve(state)
    try:
        client = SymblClient(state, server.url, media_server)
        _, job_id = client.submit_ok(webhookUrl=receiver.url)
    finally:
        server.stop()
        state.close()
    assert _fake_threads() == []
    record = state.job(job_id)
    assert record is not None and record.status == "scheduled"
    assert state.webhook_attempts == []
    assert not state.download_dir.exists()


# ---------------------------------------------------------------------------------------------
# Summaries: only when asked the documented way, none for a short conversation
# ---------------------------------------------------------------------------------------------


def test_summary_only_after_a_refresh_and_its_delay(symbl: SymblClient) -> None:
    symbl.state.summary_min_words = 0  # the test script is short; thresholds are tested below
    symbl.state.summary_seconds = 0.3
    conversation_id = symbl.completed_conversation()
    path = f"/v1/conversations/{conversation_id}/summary"
    assert symbl.get(path).status_code == 404  # complete, but never asked for

    assert symbl.post(path, None).status_code == 400  # only refresh=true is supported
    assert symbl.post(f"{path}?refresh=true", None).status_code == 202
    assert symbl.get(path).status_code == 404  # being written
    eventually(lambda: symbl.get(path).status_code == 200, "the summary to be written")
    assert [s["text"] for s in symbl.get(path).json()["summary"]][:2] == [
        "Alice: Can we ship the release next week?",
        "Bob: I will update the budget by Friday.",
    ]

    # A refresh deletes the summary and writes it again.
    assert symbl.post(f"{path}?refresh=true", None).status_code == 202
    assert symbl.get(path).status_code == 404
    eventually(lambda: symbl.get(path).status_code == 200, "the summary to be rewritten")


def test_summary_refresh_before_completion_or_of_an_unknown_conversation_is_404(
    symbl: SymblClient,
) -> None:
    symbl.state.queue_seconds = 30
    conversation_id, _ = symbl.submit_ok()
    assert (
        symbl.post(f"/v1/conversations/{conversation_id}/summary?refresh=true", None).status_code
        == 404
    )
    unknown = "/v1/conversations/1234567890123456/summary?refresh=true"
    assert symbl.post(unknown, None).status_code == 404


def test_enable_summary_at_submit_writes_it_after_completion(symbl: SymblClient) -> None:
    symbl.state.summary_min_words = 0
    symbl.state.summary_seconds = 0.2
    conversation_id = symbl.completed_conversation(enableSummary=True)
    path = f"/v1/conversations/{conversation_id}/summary"
    eventually(lambda: symbl.get(path).status_code == 200, "the summary to be written")
    assert symbl.get(path).json()["summary"]


def test_a_conversation_too_short_gets_no_summary(symbl: SymblClient) -> None:
    symbl.state.summary_seconds = 0
    conversation_id = symbl.completed_conversation()  # 3 sentences, 21 words
    path = f"/v1/conversations/{conversation_id}/summary"
    assert symbl.post(f"{path}?refresh=true", None).status_code == 202
    empty = symbl.get(path)
    assert (empty.status_code, empty.json()) == (200, {"summary": []})

    symbl.state.unsummarisable_answer = "404"
    assert symbl.get(path).status_code == 404

    # Enough words, too few sentences: still none.
    symbl.state.unsummarisable_answer = "empty"
    symbl.state.summary_min_words, symbl.state.summary_min_sentences = 0, 4
    assert symbl.get(path).json() == {"summary": []}
    symbl.state.summary_min_sentences = 3
    assert symbl.get(path).json()["summary"]
