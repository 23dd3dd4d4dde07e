"""Driving whole meetings through the local stack (sandbox/runner.py) in the e2e tier."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime

from sandbox.runner import ROOT, LocalStack
from sandbox.synth import SyntheticMeeting, build_recording_completed, synthesize_meeting
from sandbox.zoom_webhook_sender import ZoomWebhookSender
from services.core.recordings import TERMINAL_STATES, RecordingStore, State

CACHE = ROOT / ".cache" / "synth"


def synthetic_meeting(
    stack: LocalStack,
    *,
    speakers: list[str],
    duration_s: int,
    seed: int,
    topic: str,
    start_time: datetime,
) -> SyntheticMeeting:
    """A synthetic meeting scripted in the stack's registry, on the fake Zoom's account."""
    meeting = synthesize_meeting(
        speakers=speakers,
        duration_s=duration_s,
        seed=seed,
        workdir=CACHE,
        topic=topic,
        start_time=start_time,
        registry=stack.registry,
        cache_dir=CACHE / ".renders",
    )
    return replace(meeting, account_id=stack.zoom.account_id)


def deliver(stack: LocalStack, meeting: SyntheticMeeting, *, times: int = 1) -> None:
    """Serve the meeting from the fake Zoom and have Zoom deliver its signed webhook."""
    stack.zoom.add_meeting(meeting)
    sender = ZoomWebhookSender(
        f"{stack.api.url}/zoom/webhook", stack.credentials.zoom_webhook_secret, time_scale=0.0001
    )
    event = build_recording_completed(
        meeting,
        base_url=stack.zoom_server.url,
        download_token=stack.zoom.make_download_token(meeting),
    )
    for _ in range(times):
        assert sender.deliver(event).delivered


def wait_terminal(stack: LocalStack, uuids: list[str], timeout: float) -> dict[str, State]:
    """Each meeting's state once all are terminal (or when `timeout` runs out)."""
    store = RecordingStore(stack.stack.names.recordings_table)
    deadline = time.monotonic() + timeout
    while True:
        states = {u: store.require(u).state for u in uuids}
        if all(s in TERMINAL_STATES for s in states.values()) or time.monotonic() > deadline:
            return states
        time.sleep(0.5)
