"""Zoom's tokens go only to Zoom's hosts: a signed event naming another host (or plain http)
gets no token sent there, and the refusal shows on the meeting, in a metric and in the log; the
token never follows a redirect to another host.

The "attacker" and the redirecting host are small loopback servers that record every request's
headers; the fake Zoom, moto's server and real ffmpeg play the rest.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from flask import Flask, Response, request, send_file

from sandbox.aws_resources import ProvisionedStack
from sandbox.credentials import SandboxCredentials
from sandbox.fake_zoom import loopback_origin
from sandbox.http_server import LoopbackServer
from sandbox.synth import SyntheticMeeting
from sandbox.zoom_webhook_sender import compact_json
from services.core import aws, zoom
from services.core.recordings import State
from services.core.settings import WebhookSettings, settings_from
from services.core.zoom import DownloadSpec, DownloadUrlPolicy, ZoomDownloader
from services.webhook.app import build_deps, create_app
from services.webhook.zoom_signature import zoom_signature
from tests.integration.conftest import WEBHOOK_SECRET
from tests.support.merger_rig import MergerRig, merger_rig

pytestmark = pytest.mark.integration

LEAK = "sig=signed-query-string"


@dataclass
class Seen:
    path: str
    authorization: str | None


@dataclass
class RecordingHost:
    """A loopback host that records every request (path, Authorization) and answers 401
    (`answer="401"`), a 302 to `location` ("redirect"), or `file` ("file")."""

    answer: str = "401"
    location: str = ""
    file: Path | None = None
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Flask:
        app = Flask("recording-host")

        @app.route("/<path:path>", methods=["GET", "HEAD", "POST"])
        def anything(path: str) -> Response:
            with self.lock:
                self.seen.append(Seen(path, request.headers.get("Authorization")))
            if self.answer == "redirect":
                return Response(status=302, headers={"Location": self.location})
            if self.answer == "file" and self.file is not None:
                return send_file(self.file, mimetype="audio/mp4")
            body = json.dumps({"code": 124, "message": "Invalid access token."})
            return Response(body, status=401, mimetype="application/json")

        return app

    def requests(self) -> list[Seen]:
        with self.lock:
            return list(self.seen)


@pytest.fixture
def attacker() -> Iterator[tuple[RecordingHost, LoopbackServer]]:
    host = RecordingHost()
    with LoopbackServer(host.app()) as server:
        yield host, server


@pytest.fixture
def rig(stack: ProvisionedStack, credentials: SandboxCredentials) -> Iterator[MergerRig]:
    with merger_rig(stack, credentials) as r:
        yield r


def signed_headers(body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    return {
        "content-type": "application/json",
        "x-zm-request-timestamp": stamp,
        "x-zm-signature": zoom_signature(WEBHOOK_SECRET, stamp, body),
    }


def test_a_signed_event_naming_another_host_sends_it_no_token_and_says_why(
    rig: MergerRig,
    meeting3: SyntheticMeeting,
    attacker: tuple[RecordingHost, LoopbackServer],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    host, server = attacker
    meeting = replace(meeting3, uuid="forged/hosts==", account_id=rig.zoom.account_id)
    rig.zoom.add_meeting(meeting)
    token = rig.zoom.make_download_token(meeting)
    event = rig.zoom.recording_completed(meeting, base_url=rig.zoom_url, download_token=token)
    files = event["payload"]["object"]["participant_audio_files"]
    # Whoever holds the webhook secret can sign any URL: plain http to an unlisted port of the
    # loopback, and a host the allow-list does not name (answering 401 to harvest each token).
    files[1]["download_url"] = f"{server.url}/rec/webhook_download/bo?{LEAK}"
    files[2]["download_url"] = f"http://localhost:{server.port}/rec/webhook_download/zoe?{LEAK}"
    body = compact_json(event)
    webhook = create_app(build_deps(settings_from(WebhookSettings, rig.environment())))
    answer = webhook.test_client().post("/zoom/webhook", data=body, headers=signed_headers(body))
    assert answer.status_code == 200, answer.get_data(as_text=True)

    metrics: list[str] = []
    monkeypatch.setattr(zoom, "record_metric", lambda name, *_a, **_k: metrics.append(name))
    caplog.set_level(logging.INFO)
    deps = rig.deps(AUDIO_LAYOUT="multichannel")
    rig.deliver_merge_requests(deps, lambda: rig.store.require(meeting.uuid).state == State.MERGED)

    # Not one request reached the attacker, so no token did.
    assert host.requests() == []
    merged = rig.store.require(meeting.uuid)
    assert [entry["speakers"][0]["name"] for entry in merged.channel_map] == ["Ana Ruiz-Soto"]
    reasons = {t.name: t.excluded_reason for t in merged.tracks}
    assert reasons["Ana Ruiz-Soto"] is None
    assert "download URL refused" in (reasons["Bo Chen"] or "")
    assert f"127.0.0.1:{server.port}" not in (reasons["Bo Chen"] or "")  # the host, no more
    assert "host localhost" in (reasons["Zoë Ødegård"] or "")
    assert all(LEAK not in (reason or "") for reason in reasons.values())
    assert metrics == ["DownloadUrlsRefused", "DownloadUrlsRefused"]
    refused = [r for r in caplog.records if r.getMessage() == "download URL refused"]
    assert len(refused) == 2
    assert "127.0.0.1" in str(refused[0].__dict__) and "localhost" in str(refused[1].__dict__)
    assert all(LEAK not in str(record.__dict__) for record in caplog.records)
    assert rig.zoom.count("download", file_id=meeting.participants[0].audio.file_id) >= 1


def m4a(path: Path) -> Path:
    subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-loglevel", "error", "-y"),
            *("-f", "lavfi", "-i", "sine=frequency=440:duration=1"),
            *("-c:a", "aac", str(path)),
        ],
        check=True,
    )
    return path


class Unused:
    """A dependency the download must not need (its first credential is accepted)."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"{name} was used")


@pytest.mark.parametrize("other", ["host", "port"])
def test_the_token_does_not_follow_a_redirect_to_another_origin(
    stack: ProvisionedStack, tmp_path: Path, other: str
) -> None:
    audio = m4a(tmp_path / "a.m4a")
    cdn = RecordingHost(answer="file", file=audio)
    zoom_host = RecordingHost(answer="redirect")
    with LoopbackServer(cdn.app()) as cdn_server, LoopbackServer(zoom_host.app()) as zoom_server:
        # Another host name for the same machine, or another port of the same host.
        cdn_host = "localhost" if other == "host" else "127.0.0.1"
        zoom_host.location = f"http://{cdn_host}:{cdn_server.port}/cdn/a.m4a?{LEAK}"
        policy = DownloadUrlPolicy(loopback_origins=(loopback_origin(zoom_server.url),))
        downloader = ZoomDownloader(Unused(), Unused(), aws.client("s3"), url_policy=policy)  # type: ignore[arg-type]
        result = downloader.download_to_s3(
            DownloadSpec("f-1", f"{zoom_server.url}/rec/download/f-1", audio.stat().st_size, "M4A"),
            bucket=stack.names.media_bucket,
            key="raw/redirected.m4a",
            download_token="webhook-download-token",
            meeting_uuid="redirect==",
        )
    assert result.credential == "download_token"
    assert [s.authorization for s in zoom_host.requests()] == ["Bearer webhook-download-token"]
    assert [(s.path, s.authorization) for s in cdn.requests()] == [("cdn/a.m4a", None)]
    stored = aws.client("s3").head_object(Bucket=stack.names.media_bucket, Key="raw/redirected.m4a")
    assert stored["ContentLength"] == audio.stat().st_size
