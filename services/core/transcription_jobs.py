"""What happens when a Symbl job ends, whoever learns of it first: the callback or the reconciler.

`settle_job` is idempotent: the transitions are conditional, releasing a slot twice is harmless,
and a job already settled changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from services.core.errors import StateConflict
from services.core.intake import MessageSender
from services.core.observability import logger, record_metric
from services.core.pump import PumpNudger
from services.core.queues import NotifyRequest, SubmitRequest
from services.core.recordings import Recording, RecordingStore, State
from services.core.slots import SlotPool
from services.core.symbl import JobStatus, SpeechAnalytics

STAGE = "transcribe"


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


def settle_job(recording: Recording, status: JobStatus, deps: JobDeps) -> str:
    """Apply a confirmed job status to its meeting. Returns what was done (for logs and tests)."""
    job_id = recording.symbl_job_id
    if job_id is None:
        return "no job"
    if not status.terminal:
        return "still running"
    if recording.state != State.SUBMITTED:
        # Settled before (a duplicate or late callback): just make sure the slot is free.
        deps.slots.release_job(job_id)
        return "already settled"
    if status == JobStatus.COMPLETED:
        try:
            deps.store.transition(recording.meeting_uuid, State.SUBMITTED, State.TRANSCRIBED)
        except StateConflict:
            deps.slots.release_job(job_id)
            return "already settled"
        deps.slots.release_job(job_id)
        deps.notify_queue.send(NotifyRequest(meeting_uuid=recording.meeting_uuid))
        deps.pump.nudge("slot freed")
        logger.info("transcribed", job_id=job_id)
        return "transcribed"
    record_metric("SymblJobsFailed")
    attempts = recording.attempts.get(STAGE, 0)
    try:
        if attempts < deps.job_attempts:
            deps.store.transition(
                recording.meeting_uuid,
                State.SUBMITTED,
                State.MERGED,
                updates={
                    "symbl_job_id": None,
                    "symbl_conversation_id": None,
                    "last_error": f"Symbl job {job_id} failed",
                },
            )
            outcome = "resubmitted"
        else:
            deps.store.fail(
                recording.meeting_uuid,
                State.SUBMITTED,
                stage=STAGE,
                reason=f"Symbl job failed {attempts} times (last job {job_id})",
            )
            outcome = "failed"
    except StateConflict:
        deps.slots.release_job(job_id)
        return "already settled"
    deps.slots.release_job(job_id)
    if outcome == "resubmitted":
        deps.submit_queue.send(SubmitRequest(meeting_uuid=recording.meeting_uuid))
    deps.pump.nudge("slot freed")
    logger.warning("Symbl job failed", job_id=job_id, attempts=attempts, outcome=outcome)
    return outcome
