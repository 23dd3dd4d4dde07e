"""Transcribe's "Transcribe Job State Change" events: EventBridge rule → SQS → this consumer.

An event is only a hint, as a Symbl callback is: the job's status is confirmed with
`GetTranscriptionJob` before anything moves, then `settle_job` does what the callback path does
(free the slot, nudge the pump, queue the notification or the resubmission). Events are
best-effort and may come twice or never: settling is idempotent, and the reconciler asks about
jobs whose event never came.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.core.errors import NotFound, PermanentError
from services.core.observability import logger, record_metric
from services.core.recordings import State
from services.core.speech.aws import job_meeting
from services.core.transcription_jobs import JobDeps, settle_job

SOURCE = "aws.transcribe"
DETAIL_TYPE = "Transcribe Job State Change"


class _Detail(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    job_name: str = Field(alias="TranscriptionJobName", min_length=1, max_length=200)
    status: str = Field(alias="TranscriptionJobStatus")
    failure_reason: str | None = Field(default=None, alias="FailureReason")


class JobEvent(BaseModel):
    """The EventBridge envelope, as the rule delivers it to the queue."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    source: str
    detail_type: str = Field(alias="detail-type")
    detail: _Detail


def parse_event(body: str) -> JobEvent:
    try:
        event = JobEvent.model_validate_json(body)
    except ValidationError as e:
        raise PermanentError(f"not a Transcribe job event ({e.error_count()} problems)") from None
    if event.source != SOURCE or event.detail_type != DETAIL_TYPE:
        raise PermanentError(f"not a Transcribe job event: {event.source} / {event.detail_type}")
    return event


def handle_job_event(body: str, deps: JobDeps, stack_name: str) -> str:
    """Settle the job an event is about; returns what was done (for logs and tests)."""
    event = parse_event(body)
    name = event.detail.job_name
    record_metric("JobEventsReceived")
    meeting_uuid = job_meeting(stack_name, name)
    recording = deps.store.get(meeting_uuid) if meeting_uuid else None
    if recording is None:
        record_metric("JobEventsIgnored")
        logger.info("job event for no meeting of ours", job_id=name)
        return "not ours"
    logger.append_keys(meeting_uuid=recording.meeting_uuid)
    if recording.job_id != name:
        if recording.state == State.SUBMITTING and recording.job_id is None:
            # Transcribe answered the start but the pump has not recorded the job yet: the pump
            # asks for the job's status once it has, and settles an ended job itself.
            return "not recorded yet"
        record_metric("JobEventsIgnored")
        logger.info("job event for an earlier job of the meeting", job_id=name)
        return "stale job"
    try:
        status = deps.speech.job_status(name)
    except NotFound:
        # Gone already (deleted after its notes, or never ours): nothing to settle now; a
        # meeting still waiting on it is asked about by the reconciler, which spends the attempt.
        record_metric("JobEventsIgnored")
        logger.info("job event for a job Transcribe no longer knows", job_id=name)
        return "unknown job"
    outcome = settle_job(recording, status, deps, failure_reason=event.detail.failure_reason)
    logger.info(
        "job event", job_id=name, event_status=event.detail.status, status=status, outcome=outcome
    )
    return outcome
