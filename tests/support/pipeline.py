"""Driving whole meetings through the local stack (sandbox/runner.py) in the e2e tier."""

from __future__ import annotations

import email as email_parser
import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import policy as email_policy
from typing import Any

from sandbox.runner import ROOT, LocalStack
from sandbox.synth import SyntheticMeeting, build_recording_completed, synthesize_meeting
from sandbox.zoom_webhook_sender import ZoomWebhookSender
from services.core import aws
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


def dlq_depths(stack: LocalStack) -> dict[str, int]:
    """Messages waiting in each queue's DLQ."""
    sqs = aws.client("sqs")
    return {
        stage: int(
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
                "Attributes"
            ]["ApproximateNumberOfMessages"]
        )
        for stage, url in stack.stack.dlq_urls.items()
    }


def stored_json(stack: LocalStack, key: str | None) -> dict[str, Any]:
    """A JSON object the stack stored in its media bucket (insights, a transcript)."""
    assert key
    body = aws.client("s3").get_object(Bucket=stack.stack.names.media_bucket, Key=key)["Body"]
    return dict(json.loads(body.read()))


def email_html(email: dict[str, Any]) -> str:
    """The HTML part of an email as moto's SES kept it (raw MIME), decoded."""
    message = email_parser.message_from_bytes(
        email["raw_data"].encode(), policy=email_policy.default
    )
    html_part = message.get_body(preferencelist=("html",))
    assert html_part is not None
    return str(html_part.get_content())


NAMES = ["Ana Ruiz-Soto", "Bo Chen", "Zoë Ødegård"]


def meetings(stack: LocalStack, count: int, seed: int, label: str) -> list[SyntheticMeeting]:
    """`count` 40-second meetings of NAMES, an hour apart, topics `<label> #01`..."""
    start = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    return [
        synthetic_meeting(
            stack,
            speakers=NAMES,
            duration_s=40,
            seed=seed + i,
            topic=f"{label} #{i + 1:02d}",
            start_time=start + timedelta(hours=i),
        )
        for i in range(count)
    ]


def assert_notes_follow_the_script(meeting: SyntheticMeeting, insights: dict[str, Any]) -> None:
    """The provider recognised the words from the compact audio alone; the stored transcript
    gives each line to the speaker who said it, at the time it was said in the meeting, and the
    talk time is each speaker's scripted speech."""
    transcript = insights["transcript"]
    assert len(transcript) >= len(meeting.lines) * 0.9
    for utterance in transcript:
        said = [line for line in meeting.lines if line.text == utterance["text"]]
        line = min(said, key=lambda line: abs(line.start - utterance["start_seconds"]))
        assert utterance["speaker"] == line.speaker, utterance
        assert abs(utterance["start_seconds"] - line.start) < 0.3, (utterance, line)
    talk = {s["name"]: s["talk_seconds"] for s in insights["speakers"]}
    for name in {p.name for p in meeting.participants}:
        scripted = sum(line.end - line.start for line in meeting.lines if line.speaker == name)
        assert abs(talk[name] - scripted) < 0.1 * scripted + 0.5, (name, talk[name], scripted)


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


WAIT_BUDGET_SECONDS = 180.0
"""How long a test waits for its meetings, well under the per-test timeout (pyproject's
`timeout`, 300 s), so that a stuck meeting fails with the table below, not a bare timeout."""


def state_table(stack: LocalStack, uuids: list[str]) -> str:
    """One line per meeting: uuid, topic, state, last error (what an operator would ask)."""
    store = RecordingStore(stack.stack.names.recordings_table)
    rows = [("uuid", "topic", "state", "last_error")]
    for uuid in uuids:
        record = store.get(uuid)
        if record is None:
            rows.append((uuid, "?", "(no record)", ""))
        else:
            error = (record.failure_reason or record.last_error or "").replace("\n", " ")
            rows.append((uuid, record.topic, record.state.value, error[:160]))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        + "  "
        + row[3]
        for row in rows
    )


def wait_terminal(
    stack: LocalStack, uuids: list[str], timeout: float = WAIT_BUDGET_SECONDS
) -> dict[str, State]:
    """Each meeting's state once all are terminal; AssertionError with every meeting's state
    and last error when `timeout` runs out first."""
    store = RecordingStore(stack.stack.names.recordings_table)
    deadline = time.monotonic() + timeout
    while True:
        states = {u: store.require(u).state for u in uuids}
        if all(s in TERMINAL_STATES for s in states.values()):
            return states
        if time.monotonic() > deadline:
            waiting = sum(s not in TERMINAL_STATES for s in states.values())
            raise AssertionError(
                f"{waiting} of {len(uuids)} meetings not terminal after {timeout:.0f} s:\n"
                + state_table(stack, uuids)
            )
        time.sleep(0.5)
