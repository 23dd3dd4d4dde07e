"""What happens when a speech job ends, whoever learns of it first: the provider's callback or
event, the pump, or the reconciler.

`settle_job` is idempotent: the transitions are conditional, releasing a slot twice is harmless,
and a job already settled changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from services.core.errors import StateConflict
from services.core.intake import MessageSender
from services.core.observability import logger, record_metric
from services.core.pump import PumpNudger
from services.core.queues import NotifyRequest, SubmitRequest
from services.core.recordings import TRANSCRIBE_STAGE, Recording, RecordingStore, State
from services.core.s3_stream import meeting_from_key, meeting_key
from services.core.slots import SlotPool
from services.core.speech.provider import PROVIDER_LABELS, JobStatus, SpeechAnalytics


def new_callback_secret(meeting_uuid: str) -> str:
    """A fresh secret for one submission's callback URL: `<meeting key>.<256 random bits>`.

    The key part (the meeting UUID, base64url) lets the callback read the item by its key,
    strongly consistent, rather than search the job index, which lags behind writes and knows
    nothing before the job is recorded. Only the random part makes it unguessable.
    """
    return f"{meeting_key(meeting_uuid)}.{secrets.token_urlsafe(32)}"


def callback_meeting(secret: str) -> str | None:
    """The meeting a callback secret names, or None when it is not one of ours."""
    key, dot, token = secret.partition(".")
    if not dot or not key or not token or len(secret) > 1000:
        return None
    return meeting_from_key(key)


def secret_digest(secret: str) -> str:
    """What the item stores of a callback secret: its SHA-256, never the secret itself."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, digest: str | None) -> bool:
    return bool(digest) and hmac.compare_digest(secret_digest(secret), digest or "")


@dataclass
class JobDeps:
    store: RecordingStore
    slots: SlotPool
    speech: SpeechAnalytics
    submit_queue: MessageSender
    notify_queue: MessageSender
    pump: PumpNudger
    job_attempts: int = 2


def settle_job(
    recording: Recording, status: JobStatus, deps: JobDeps, *, failure_reason: str | None = None
) -> str:
    """Apply a confirmed job status to its meeting. Returns what was done (for logs and tests).
    `failure_reason`, when the provider said why a job failed, goes into the meeting's record."""
    job_id = recording.job_id
    if job_id is None:
        return "no job"
    if not status.terminal:
        return "still running"
    if recording.state != State.SUBMITTED:
        # Settled before (a duplicate or late callback): just make sure the slot is free.
        deps.slots.release_job(job_id)
        return "already settled"
    if status == JobStatus.COMPLETED:
        # The provider no longer counts the job, so its slot goes back first and the pump starts
        # on the next meeting while this one is recorded. Should the write below fail, the
        # meeting stays SUBMITTED and the reconciler settles it; the slot is not held meanwhile.
        deps.slots.release_job(job_id)
        deps.pump.nudge("slot freed")
        try:
            deps.store.transition(
                recording.meeting_uuid,
                State.SUBMITTED,
                State.TRANSCRIBED,
                only_if={"job_id": job_id},
            )
        except StateConflict:
            return "already settled"
        deps.notify_queue.send(NotifyRequest(meeting_uuid=recording.meeting_uuid))
        logger.info("transcribed", job_id=job_id)
        return "transcribed"
    record_metric("SpeechJobsFailed")
    reason = f"{PROVIDER_LABELS[deps.speech.provider]} job {job_id} failed"
    if failure_reason:
        reason += f": {failure_reason[:300]}"
    return fail_attempt(recording, reason, deps)


def fail_attempt(recording: Recording, reason: str, deps: JobDeps) -> str:
    """A job that will not deliver (it failed, ran past its deadline, or the provider no longer
    knows it) spends one attempt: the meeting goes back for another submission while attempts
    remain, else it ends FAILED with the reason. Its slot is freed either way. Conditional on
    the meeting still being SUBMITTED with this job, so a late or repeated verdict is a no-op.
    """
    job_id = recording.job_id
    if job_id is None:
        return "no job"
    attempts = recording.attempts.get(TRANSCRIBE_STAGE, 0)
    try:
        if attempts < deps.job_attempts:
            deps.store.transition(
                recording.meeting_uuid,
                State.SUBMITTED,
                State.MERGED,
                updates={
                    "job_id": None,
                    "conversation_id": None,
                    "callback_secret_digest": None,  # the next submission gets its own
                    "last_error": reason,
                },
                only_if={"job_id": job_id},
            )
            outcome = "resubmitted"
        else:
            deps.store.fail(
                recording.meeting_uuid,
                State.SUBMITTED,
                stage=TRANSCRIBE_STAGE,
                reason=f"transcription failed {attempts} times; last: {reason}",
                only_if={"job_id": job_id},
            )
            outcome = "failed"
    except StateConflict:
        deps.slots.release_job(job_id)
        return "already settled"
    deps.slots.release_job(job_id)
    if outcome == "resubmitted":
        deps.submit_queue.send(SubmitRequest(meeting_uuid=recording.meeting_uuid))
    deps.pump.nudge("slot freed")
    logger.warning(
        "job attempt failed", job_id=job_id, attempts=attempts, outcome=outcome, reason=reason
    )
    return outcome
