"""The pump: keeps Symbl exactly as busy as the account allows, never busier.

Loop: acquire a slot, then receive one submit request, submit it, record the job, delete the
message. Without a slot it receives nothing, so waiting never counts against a message's
deliveries; without a message it gives the slot back and stops. Any number of pumps may run at
once: the slot pool keeps them honest, and the MERGED → SUBMITTING transition keeps two pumps
from submitting the same meeting.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from services.core.errors import PermanentError, StateConflict, TransientError
from services.core.observability import logger, record_metric
from services.core.queues import SubmitRequest, parse_message
from services.core.recordings import Recording, RecordingStore, State
from services.core.settings import SubmitterSettings
from services.core.slots import SlotPool
from services.core.symbl import AudioSubmission, ConcurrencyLimitReached, Speaker, SpeechAnalytics
from services.core.transcription_jobs import JobDeps, secret_digest, settle_job

STAGE = "submit"
TRANSCRIBE_STAGE = "transcribe"
# A message we cannot act on yet (its meeting still merging, or Symbl busy) comes back after this.
RETRY_VISIBILITY_SECONDS = 30


@dataclass
class PumpDeps:
    settings: SubmitterSettings
    store: RecordingStore
    slots: SlotPool
    speech: SpeechAnalytics
    sqs: Any
    s3: Any
    jobs: JobDeps
    clock: Callable[[], float] = field(default=time.monotonic)


@dataclass
class PumpReport:
    submitted: list[str] = field(default_factory=list)
    skipped: int = 0
    deferred: int = 0
    failed: int = 0
    stopped_because: str = ""


def callback_url(settings: SubmitterSettings, secret: str) -> str:
    return f"{settings.callback_base_url.rstrip('/')}/symbl/callback/{secret}"


def build_submission(recording: Recording, url: str, webhook_url: str) -> AudioSubmission:
    """Per-channel recognition with one speaker per channel, or diarization of a mono file."""
    name = recording.topic or recording.meeting_uuid
    if recording.diarization or not recording.channel_map:
        return AudioSubmission(
            url=url,
            name=name,
            webhook_url=webhook_url,
            diarization_speakers=recording.participant_count,
        )
    speakers = []
    for entry in sorted(recording.channel_map, key=lambda e: int(e["channel"])):
        people = entry.get("speakers", [])
        if len(people) == 1:
            speakers.append(Speaker(name=people[0]["name"], email=people[0].get("email")))
        else:
            speakers.append(Speaker(name=", ".join(p["name"] for p in people)))
    return AudioSubmission(url=url, name=name, webhook_url=webhook_url, channels=tuple(speakers))


def _receive_one(deps: PumpDeps) -> dict[str, Any] | None:
    try:
        response = deps.sqs.receive_message(
            QueueUrl=deps.settings.submit_queue_url,
            MaxNumberOfMessages=1,
            WaitTimeSeconds=1,
            AttributeNames=["ApproximateReceiveCount"],
        )
    except (ClientError, BotoCoreError) as e:
        raise TransientError(f"cannot receive from the submit queue: {e}") from e
    messages = response.get("Messages") or []
    return dict(messages[0]) if messages else None


def _delete(deps: PumpDeps, message: dict[str, Any]) -> None:
    deps.sqs.delete_message(
        QueueUrl=deps.settings.submit_queue_url, ReceiptHandle=message["ReceiptHandle"]
    )


def _defer(deps: PumpDeps, message: dict[str, Any], seconds: int) -> None:
    deps.sqs.change_message_visibility(
        QueueUrl=deps.settings.submit_queue_url,
        ReceiptHandle=message["ReceiptHandle"],
        VisibilityTimeout=seconds,
    )


def _presign(deps: PumpDeps, key: str) -> str:
    return str(
        deps.s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": deps.settings.media_bucket, "Key": key},
            ExpiresIn=deps.settings.presigned_url_seconds,
        )
    )


def submit_one(deps: PumpDeps, claim: str, message: dict[str, Any], report: PumpReport) -> bool:
    """Act on one message while holding `claim`. Returns False when the pump should stop."""
    try:
        request = parse_message(SubmitRequest, message["Body"])
    except ValueError:
        logger.error("malformed submit request dropped", message_id=message.get("MessageId"))
        _delete(deps, message)
        deps.slots.release(claim)
        report.skipped += 1
        return True
    uuid = request.meeting_uuid
    recording = deps.store.get(uuid)
    if recording is None or recording.state not in (State.MERGED, State.MERGING):
        # Unknown, already submitted, or finished: a duplicate request.
        _delete(deps, message)
        deps.slots.release(claim)
        report.skipped += 1
        return True
    if recording.state == State.MERGING:
        _defer(deps, message, RETRY_VISIBILITY_SECONDS)
        deps.slots.release(claim)
        report.deferred += 1
        return True
    if (recording.merged_seconds or 0) > deps.settings.max_media_seconds:
        deps.store.fail(
            uuid,
            State.MERGED,
            stage=STAGE,
            reason=(
                f"meeting audio is {recording.merged_seconds:.0f} s; Symbl takes at most "
                f"{deps.settings.max_media_seconds} s per file and split submission is not built"
            ),
        )
        _delete(deps, message)
        deps.slots.release(claim)
        report.failed += 1
        return True
    secret = secrets.token_urlsafe(32)
    try:
        recording = deps.store.transition(
            uuid,
            State.MERGED,
            State.SUBMITTING,
            updates={"callback_secret_digest": secret_digest(secret), "submit_claim": claim},
            count_attempt=STAGE,
        )
    except StateConflict:
        _delete(deps, message)
        deps.slots.release(claim)
        report.skipped += 1
        return True
    submission = build_submission(
        recording, _presign(deps, recording.merged_key or ""), callback_url(deps.settings, secret)
    )
    try:
        job = deps.speech.submit_audio_url(submission)
    except ConcurrencyLimitReached:
        # Our count said a slot was free, so someone else is using the account.
        record_metric("Symbl429s")
        backoff = deps.slots.back_off()
        _revert(deps, uuid, "Symbl concurrency limit reached (429)")
        deps.slots.release(claim)
        _defer(deps, message, int(backoff) + 1)
        report.deferred += 1
        report.stopped_because = "429"
        logger.warning("Symbl refused a job our count allowed; backing off", seconds=backoff)
        return False
    except TransientError as e:
        _revert(deps, uuid, str(e))
        deps.slots.release(claim)
        _defer(deps, message, RETRY_VISIBILITY_SECONDS)
        report.deferred += 1
        report.stopped_because = "transient"
        logger.warning("Symbl submit failed; will retry", error=str(e))
        return False
    except PermanentError as e:
        deps.store.fail(uuid, State.SUBMITTING, stage=STAGE, reason=str(e))
        deps.slots.release(claim)
        _delete(deps, message)
        report.failed += 1
        return True
    deps.slots.convert_to_job(
        claim, job.job_id, lease_seconds=deps.settings.job_lease_seconds, meeting_uuid=uuid
    )
    deps.store.transition(
        uuid,
        State.SUBMITTING,
        State.SUBMITTED,
        updates={
            "symbl_job_id": job.job_id,
            "symbl_conversation_id": job.conversation_id,
            "submit_claim": None,
        },
        count_attempt=TRANSCRIBE_STAGE,
    )
    _delete(deps, message)
    record_metric("SymblSubmits")
    report.submitted.append(uuid)
    logger.info(
        "submitted to Symbl",
        meeting_uuid=uuid,
        job_id=job.job_id,
        channels=len(submission.channels) or 1,
    )
    _settle_if_already_done(deps, uuid)
    return True


def _settle_if_already_done(deps: PumpDeps, uuid: str) -> None:
    """Close the window between Symbl's 201 and our record of the job: a callback that came in
    it found no job to settle, so ask once now. A job still running is settled later by its
    callback (or by the reconciler)."""
    try:
        recording = deps.store.require(uuid)
        if recording.symbl_job_id and recording.state == State.SUBMITTED:
            status = deps.speech.job_status(recording.symbl_job_id)
            if status.terminal:
                settle_job(recording, status, deps.jobs)
    except (TransientError, PermanentError) as e:
        logger.info("job status check after submit failed; the reconciler will ask", error=str(e))


def _revert(deps: PumpDeps, uuid: str, reason: str) -> None:
    try:
        deps.store.transition(
            uuid,
            State.SUBMITTING,
            State.MERGED,
            updates={"last_error": reason, "submit_claim": None, "callback_secret_digest": None},
        )
    except StateConflict:
        logger.info("submit revert skipped: meeting moved on")


def run_pump(deps: PumpDeps) -> PumpReport:
    """Submit while slots and messages remain, for at most `pump_max_seconds`."""
    report = PumpReport()
    deadline = deps.clock() + deps.settings.pump_max_seconds
    while deps.clock() < deadline:
        claim = deps.slots.acquire(lease_seconds=deps.settings.claim_lease_seconds)
        if claim is None:
            report.stopped_because = report.stopped_because or "no slot"
            break
        try:
            message = _receive_one(deps)
        except TransientError:
            deps.slots.release(claim)
            raise
        if message is None:
            deps.slots.release(claim)
            report.stopped_because = "no message"
            break
        try:
            if not submit_one(deps, claim, message, report):
                break
        except BaseException:
            deps.slots.release(claim)
            raise
    else:
        report.stopped_because = "time"
    return report
