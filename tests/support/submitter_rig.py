"""A submitter under test: moto's server, the fake Symbl, the webhook app (for callbacks) and
meetings placed directly in MERGED with a small real multichannel file behind each."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.aws_resources import ProvisionedStack
from sandbox.credentials import SandboxCredentials
from sandbox.fake_symbl import FakeSymblState, serve
from sandbox.http_server import LoopbackServer
from services.core import aws
from services.core.queues import QueueSender, SubmitRequest
from services.core.recordings import Recording, RecordingStore, State
from services.core.settings import ReconcilerSettings, SubmitterSettings, settings_from
from services.core.slots import SlotPool
from services.submitter.handler import build_pump_deps, build_reconciler_deps
from services.submitter.pump import PumpDeps, run_pump
from services.submitter.reconciler import ReconcilerDeps
from services.webhook.app import build_deps, create_app
from services.webhook.handler import build_handler  # noqa: F401 - the handler must import

TWO_SPEAKERS_FLAC = (
    "aevalsrc='if(between(t,0.5,1.5),sin(2*PI*440*t),0)|if(between(t,2,3),sin(2*PI*660*t),0)'"
    ":s=16000:d=4"
)


def two_channel_flac(path: Path) -> Path:
    if not path.exists():
        subprocess.run(
            [
                "ffmpeg",
                "-nostdin",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                TWO_SPEAKERS_FLAC,
                "-c:a",
                "flac",
                "-sample_fmt",
                "s16",
                str(path),
            ],
            check=True,
        )
    return path


class WakeNudger:
    """Plays the asynchronous pump invoke: wakes the test's pumps."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.count = 0

    def nudge(self, reason: str) -> None:
        self.count += 1
        self.event.set()


@dataclass
class SubmitterRig:
    stack: ProvisionedStack
    credentials: SandboxCredentials
    symbl: FakeSymblState
    symbl_url: str
    api_url: str
    limit: int
    nudger: WakeNudger = field(default_factory=WakeNudger)

    def environment(self, **extra: Any) -> dict[str, str]:
        env = {
            **self.stack.service_environment(),
            "SYMBL_API_BASE_URL": self.symbl_url,
            "CALLBACK_BASE_URL": self.api_url,
            "SYMBL_CONCURRENCY_LIMIT": str(self.limit),
            "PUMP_MAX_SECONDS": "5",
        }
        env.update({k.upper(): str(v) for k, v in extra.items()})
        return env

    def pump_deps(self, **extra: Any) -> PumpDeps:
        deps = build_pump_deps(settings_from(SubmitterSettings, self.environment(**extra)))
        deps.jobs.pump = self.nudger
        return deps

    def reconciler_deps(self, **extra: Any) -> ReconcilerDeps:
        deps = build_reconciler_deps(settings_from(ReconcilerSettings, self.environment(**extra)))
        deps.jobs.pump = self.nudger
        return deps

    @property
    def store(self) -> RecordingStore:
        return RecordingStore(self.stack.names.recordings_table)

    @property
    def slots(self) -> SlotPool:
        return SlotPool(self.stack.names.slots_table, self.limit)

    def add_merged_meetings(self, count: int, flac: Path, prefix: str = "m") -> list[str]:
        """`count` meetings in MERGED with the file in S3 and a submit request queued each."""
        s3 = aws.client("s3")
        bucket = self.stack.names.media_bucket
        s3.upload_file(str(flac), bucket, "merged/source.flac")
        store = self.store
        queue = QueueSender(self.stack.queue_urls["submit"])
        uuids = []
        for i in range(count):
            uuid = f"{prefix}/{i}+=="
            key = f"merged/{prefix}-{i}.flac"
            s3.copy_object(
                Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": "merged/source.flac"}
            )
            store.create_if_absent(
                Recording(
                    meeting_uuid=uuid,
                    meeting_id=str(i),
                    topic=f"Meeting {prefix}-{i}",
                    start_time="2026-01-01T00:00:00.000Z",
                    host_email="host@example.com",
                )
            )
            store.transition(uuid, State.RECEIVED, State.MERGING)
            store.transition(
                uuid,
                State.MERGING,
                State.MERGED,
                updates={
                    "merged_key": key,
                    "merged_seconds": 4.0,
                    "channel_map": [
                        {
                            "channel": 1,
                            "speakers": [
                                {
                                    "file_id": "a",
                                    "name": "Ana Ruiz-Soto",
                                    "email": "ana@example.com",
                                }
                            ],
                        },
                        {"channel": 2, "speakers": [{"file_id": "b", "name": "Bo", "email": None}]},
                    ],
                },
            )
            queue.send(SubmitRequest(meeting_uuid=uuid))
            uuids.append(uuid)
        return uuids

    def states(self, uuids: list[str]) -> dict[str, State]:
        store = self.store
        return {u: store.require(u).state for u in uuids}


@contextmanager
def submitter_rig(
    stack: ProvisionedStack, credentials: SandboxCredentials, *, limit: int, **symbl: Any
) -> Iterator[SubmitterRig]:
    state = FakeSymblState(
        app_id=credentials.symbl_app_id,
        app_secret=credentials.symbl_app_secret,
        concurrency_limit=limit,
        queue_seconds=symbl.pop("queue_seconds", 0.02),
        processing_seconds=symbl.pop("processing_seconds", 0.05),
        **symbl,
    )
    symbl_server = serve(state)
    rig_env = {**stack.service_environment(), "SYMBL_API_BASE_URL": symbl_server.url}
    from services.core.settings import WebhookSettings

    deps = build_deps(settings_from(WebhookSettings, rig_env))
    nudger = WakeNudger()
    assert deps.jobs is not None
    deps.jobs.pump = nudger
    api = LoopbackServer(create_app(deps)).start()
    try:
        yield SubmitterRig(stack, credentials, state, symbl_server.url, api.url, limit, nudger)
    finally:
        api.stop()
        symbl_server.stop()
        state.close()


class PumpThreads:
    """Pumps on threads, each running again whenever nudged (as Lambda would be invoked)."""

    def __init__(self, rig: SubmitterRig, count: int, **settings: Any) -> None:
        self.rig = rig
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.submitted: list[str] = []
        self._lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._run, args=(rig.pump_deps(**settings),), daemon=True)
            for _ in range(count)
        ]

    def _run(self, deps: PumpDeps) -> None:
        while not self.stop.is_set():
            try:
                report = run_pump(deps)
            except BaseException as e:  # noqa: BLE001 - surfaced by the test
                self.errors.append(e)
                return
            with self._lock:
                self.submitted.extend(report.submitted)
            if not report.submitted:
                # Idle until a callback frees a slot (the nudge) or briefly, as the schedule would.
                self.rig.nudger.event.wait(0.2)
                self.rig.nudger.event.clear()

    def __enter__(self) -> PumpThreads:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.rig.nudger.event.set()
        for thread in self.threads:
            thread.join(timeout=30)
