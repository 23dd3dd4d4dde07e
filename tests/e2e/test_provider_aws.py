"""Whole meetings through the local stack on the AWS provider: webhook → merge → Amazon Transcribe
(fake, on loopback) → EventBridge event → Bedrock (fake) → email and page.

The fake Transcribe knows what was said only from the compact file it reads from S3; the fake
Bedrock extracts the sections from the transcript lines in its prompt. So an email that names the
right speaker at the right time for every line proves the segment map attributed Transcribe's
words, and its sections prove the prompt carried the transcript.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from sandbox.fake_transcribe import FakeTranscribeState
from sandbox.runner import LocalStack, StackOptions
from services.core.recordings import RecordingStore, State
from services.core.speech.aws import job_name
from tests.support.pipeline import (
    NAMES,
    assert_notes_follow_the_script,
    deliver,
    dlq_depths,
    email_html,
    meetings,
    stored_json,
    wait_terminal,
)

AWS = StackOptions(speech_provider="aws", transcribe_limit=2, transcribe_quota=2)


@pytest.fixture
def local_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalStack]:
    options: StackOptions = getattr(request, "param", AWS)
    options = replace(
        options, workdir=tmp_path / "work", reconcile_every_seconds=2.0, stuck_seconds=30
    )
    with LocalStack(options) as stack:
        yield stack


def transcribe(stack: LocalStack) -> FakeTranscribeState:
    assert stack.transcribe is not None
    return stack.transcribe


def test_provider_aws_one_meeting_end_to_end(local_stack: LocalStack) -> None:
    stack = local_stack
    [meeting] = meetings(stack, 1, seed=700, label="E2E aws single")
    deliver(stack, meeting)
    states = wait_terminal(stack, [meeting.uuid], 120)
    assert states[meeting.uuid] == State.NOTIFIED
    record = RecordingStore(stack.stack.names.recordings_table).require(meeting.uuid)
    name = job_name(stack.stack.names.prefix, meeting.uuid, 1)
    assert (record.speech_provider, record.job_id) == ("aws", name)
    assert record.audio_layout == "compact"

    # One job, on the compact file by its s3:// URI, no diarization, output to transcripts/.
    fake = transcribe(stack)
    [attempt] = fake.start_attempts
    assert attempt.error_code is None
    params = attempt.params
    media = f"s3://{stack.stack.names.media_bucket}/{record.merged_key}"
    assert params["Media"] == {"MediaFileUri": media}
    assert "Settings" not in params and params["LanguageCode"] == "en-US"
    assert params["OutputBucketName"] == stack.stack.names.media_bucket
    assert record.conversation_id == params["OutputKey"]
    assert params["OutputKey"].startswith("transcripts/")
    # Completion came by the event, and the job was deleted once the insights were stored;
    # the transcript stays in the bucket under its retention rule.
    assert [e.job_name for e in fake.events_sent] == [name]
    assert fake.deleted == [name]
    assert stored_json(stack, record.conversation_id)["results"]["items"]

    insights = stored_json(stack, record.insights_key)
    assert insights["provider"] == "aws" and insights["sections_missing"] == []
    assert_notes_follow_the_script(meeting, insights)
    transcript = insights["transcript"]
    # Bedrock saw the transcript (the fake's sections come from its lines) under a forced tool.
    assert insights["summary"] and insights["action_items"] and insights["questions"]
    assignees = {item["assignee"] for item in insights["action_items"]}
    assert assignees <= set(NAMES)
    assert stack.bedrock is not None
    [call] = stack.bedrock.calls
    assert call.tool_choice == {"tool": {"name": "record_insights"}}
    assert call.transcript_lines == len(transcript)
    billed = fake.billed_seconds()
    print(f"aws compact: billed {billed / meeting.span_seconds:.2f} x the meeting")
    assert billed <= meeting.span_seconds
    [email] = [m for m in stack.sent_emails() if meeting.topic in str(m)]
    content = email_html(email)
    for name_ in NAMES:
        assert name_ in content
    assert insights["action_items"][0]["text"] in html.unescape(content)


@pytest.mark.parametrize("local_stack", [AWS], indirect=True)
def test_provider_aws_meetings_with_faults_on(local_stack: LocalStack) -> None:
    """Lost completion events (the reconciler polls), a failed job (submitted again under the
    next attempt's name), Zoom errors, duplicate webhooks and a malformed model answer (asked
    once more): every meeting NOTIFIED once, the job limit never exceeded."""
    stack = local_stack
    batch = meetings(stack, 6, seed=760, label="E2E aws faults")
    for meeting in batch[:2]:
        stack.zoom.inject("http_500", file_id=meeting.participants[0].audio.file_id, times=2)
    fake = transcribe(stack)
    fake.lose_events(2)
    fake.fail_next(1)
    assert stack.bedrock is not None
    stack.bedrock.malformed_next(1)
    for meeting in batch:
        deliver(stack, meeting, times=2)
    states = wait_terminal(stack, [m.uuid for m in batch])
    assert Counter(states.values()) == {State.NOTIFIED: 6}, states

    # Our count kept within the quota: the fake refused nothing, and ran at most 2 at once.
    assert [a for a in fake.start_attempts if a.error_code] == []
    assert fake.max_active <= 2
    assert len(fake.events_lost) == 2
    # The failed job's meeting ran again as attempt 2; no other meeting has a second job.
    names = [str(a.job_name) for a in fake.start_attempts]
    assert len(names) == len(set(names)) == 7
    assert sum(name.endswith("-2") for name in names) == 1
    # The malformed answer was asked again, and every email is complete.
    outcomes = Counter(call.outcome for call in stack.bedrock.calls)
    assert outcomes["tool_use"] == 7  # six valid answers and the malformed one
    store = RecordingStore(stack.stack.names.recordings_table)
    for meeting in batch:
        insights = stored_json(stack, store.require(meeting.uuid).insights_key)
        assert insights["sections_missing"] == [] and insights["summary"]
    topics = Counter(m.topic for m in batch for e in stack.sent_emails() if m.topic in str(e))
    assert all(topics[m.topic] == 1 for m in batch), topics
    assert dlq_depths(stack) == {"merge": 0, "submit": 0, "notify": 0, "job-events": 0}
