"""A merger under test: moto's server, the fake Zoom serving a synthetic meeting, real ffmpeg."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sandbox.aws_resources import ProvisionedStack
from sandbox.credentials import SandboxCredentials
from sandbox.fake_zoom import FakeZoomState, loopback_origin, serve
from sandbox.synth import SyntheticMeeting
from services.core import aws
from services.core.intake import accept_recording
from services.core.queues import QueueSender
from services.core.recordings import Recording, RecordingStore
from services.core.settings import MergerSettings, settings_from
from services.core.zoom_models import RecordingCompletedEvent
from services.merger.handler import handle_batch
from services.merger.merge import MergerDeps, build_deps


class RecordingNudger:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def nudge(self, reason: str) -> None:
        self.reasons.append(reason)


@dataclass
class MergerRig:
    stack: ProvisionedStack
    zoom: FakeZoomState
    zoom_url: str
    nudger: RecordingNudger = field(default_factory=RecordingNudger)

    def environment(self, **extra: Any) -> dict[str, str]:
        env = {
            **self.stack.service_environment(),
            "ZOOM_API_BASE_URL": f"{self.zoom_url}/v2",
            "ZOOM_OAUTH_URL": f"{self.zoom_url}/oauth/token",
            "ZOOM_DOWNLOAD_LOOPBACK_ORIGINS": loopback_origin(self.zoom_url),
            "DOWNLOAD_RETRY_BUDGET_SECONDS": "20",
        }
        env.update({k.upper(): str(v) for k, v in extra.items()})
        return env

    def deps(self, **extra: Any) -> MergerDeps:
        deps = build_deps(settings_from(MergerSettings, self.environment(**extra)))
        deps.pump = self.nudger
        return deps

    @property
    def store(self) -> RecordingStore:
        return RecordingStore(self.stack.names.recordings_table)

    def receive(
        self,
        meeting: SyntheticMeeting,
        *,
        with_participant_files: bool = True,
        token_ttl_s: int = 86400,
    ) -> tuple[str, str]:
        """Serve the meeting and record its webhook as intake would; returns (uuid, token)."""
        meeting = replace(meeting, account_id=self.zoom.account_id)
        self.zoom.add_meeting(meeting, with_participant_files=with_participant_files)
        token = self.zoom.make_download_token(meeting, ttl_s=token_ttl_s)
        event = self.zoom.recording_completed(
            meeting,
            base_url=self.zoom_url,
            download_token=token,
            with_participant_files=with_participant_files,
        )
        parsed = RecordingCompletedEvent.model_validate(event)
        accept_recording(
            parsed.payload.object,
            download_token=token,
            store=self.store,
            merge_queue=QueueSender(self.stack.queue_urls["merge"]),
        )
        return meeting.uuid, token

    def deliver_merge_requests(
        self, deps: MergerDeps, until: Callable[[], bool], *, timeout_s: float = 60.0
    ) -> int:
        """Play the merge queue's event source: hand each message to the handler (deleting it
        unless the handler reports it failed) until `until()` holds; returns how many."""
        sqs = aws.client("sqs")
        queue_url = self.stack.queue_urls["merge"]
        delivered = 0
        deadline = time.monotonic() + timeout_s
        while not until():
            assert time.monotonic() < deadline, f"not done after {delivered} merge requests"
            received = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=1,
                WaitTimeSeconds=1,
                AttributeNames=["ApproximateReceiveCount"],
            )
            for message in received.get("Messages", []):
                delivered += 1
                event = {
                    "Records": [
                        {
                            "messageId": message["MessageId"],
                            "receiptHandle": message["ReceiptHandle"],
                            "body": message["Body"],
                            "attributes": message.get("Attributes", {}),
                            "eventSource": "aws:sqs",
                        }
                    ]
                }
                if not handle_batch(event, deps)["batchItemFailures"]:
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return delivered

    def merged_file(self, recording: Recording, directory: Path) -> Path:
        assert recording.merged_key
        path = directory / "merged.flac"
        aws.client("s3").download_file(
            self.stack.names.media_bucket, recording.merged_key, str(path)
        )
        return path


@contextmanager
def merger_rig(stack: ProvisionedStack, credentials: SandboxCredentials) -> Iterator[MergerRig]:
    state = FakeZoomState(
        account_id=credentials.zoom_account_id,
        client_id=credentials.zoom_client_id,
        client_secret=credentials.zoom_client_secret,
    )
    with serve(state) as server:
        yield MergerRig(stack, state, server.url)


def probe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(out))


def speech_spans(path: Path, channel: int, noise_db: int = -50) -> list[tuple[float, float]]:
    """Speech spans of one channel (0-based) of a file, from ffmpeg's silencedetect."""
    info = probe(path)
    duration = float(info["format"]["duration"])
    result = subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-hide_banner",
            "-i",
            str(path),
            "-af",
            f"pan=mono|c0=c{channel},silencedetect=noise={noise_db}dB:d=0.3",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    silences: list[list[float]] = []
    for line in result.splitlines():
        if "silence_start:" in line:
            silences.append([float(line.split("silence_start:")[1].split()[0]), duration])
        elif "silence_end:" in line and silences:
            silences[-1][1] = float(line.split("silence_end:")[1].split("|")[0])
    spans: list[tuple[float, float]] = []
    cursor = 0.0
    for start, end in silences:
        if start - cursor > 0.05:
            spans.append((cursor, start))
        cursor = end
    if duration - cursor > 0.05:
        spans.append((cursor, duration))
    return spans
