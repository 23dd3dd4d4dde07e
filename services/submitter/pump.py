"""The pump: keeps the speech provider exactly as busy as the account allows, never busier.

Loop: acquire a slot, then receive one submit request, submit it, record the job, delete the
message (while many slots are free, a batch of them at a time, submitted concurrently). Without a
slot it receives nothing, so waiting never counts against a message's deliveries; without a
message it gives the slot back and stops. Any number of pumps may run at once: the slot pool
keeps them honest, and the MERGED → SUBMITTING transition keeps two pumps from submitting the
same meeting.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from services.core.errors import InsightsError, PermanentError, StateConflict, TransientError
from services.core.observability import MetricUnit, logger, record_metric
from services.core.queues import SubmitRequest, parse_message
from services.core.recordings import TRANSCRIBE_STAGE, Recording, RecordingStore, State, iso, utcnow
from services.core.settings import SubmitterSettings
from services.core.slots import SlotPool
from services.core.speech.provider import (
    PROVIDER_LABELS,
    ConcurrencyLimitReached,
    OutcomeUnknown,
    Speaker,
    SpeechAnalytics,
    SpeechJob,
    SubmittedJob,
)
from services.core.transcription_jobs import (
    JobDeps,
    new_callback_secret,
    secret_digest,
    settle_job,
)

STAGE = "submit"
# A request we cannot act on yet (its meeting still merging) comes back after this; a failed
# submission after this, doubling with each attempt.
RETRY_VISIBILITY_SECONDS = 30
MAX_DELAY_SECONDS = 900  # SQS's longest message delay


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

    def add(self, result: Result) -> None:
        if result.outcome == Outcome.SUBMITTED and result.meeting_uuid:
            self.submitted.append(result.meeting_uuid)
        elif result.outcome == Outcome.SKIPPED:
            self.skipped += 1
        elif result.outcome == Outcome.DEFERRED:
            self.deferred += 1
        elif result.outcome == Outcome.FAILED:
            self.failed += 1


def callback_url(settings: SubmitterSettings, secret: str) -> str:
    return f"{settings.callback_base_url.rstrip('/')}/symbl/callback/{secret}"


def build_submission(recording: Recording, url: str, callback: str, bucket: str) -> SpeechJob:
    """A compact file as plain mono (its speakers come from its segment map), per-channel
    recognition with one speaker per channel, or diarization of the mixed recording."""
    base = SpeechJob(
        meeting_uuid=recording.meeting_uuid,
        # The job about to be made: its number is never reused (a replay resets the attempts,
        # but the provider may keep an old job's name), and a retried submission of the same
        # job, never recorded, gets the same number again.
        attempt=recording.speech_jobs + 1,
        name=recording.topic or recording.meeting_uuid,
        media_bucket=bucket,
        media_key=recording.merged_key or "",
        media_url=url,
        callback_url=callback,
    )
    if recording.audio_layout == "compact":
        return replace(base, diarize=False)
    if recording.diarization or not recording.channel_map:
        return replace(base, diarization_speakers=recording.participant_count)
    speakers = []
    for entry in sorted(recording.channel_map, key=lambda e: int(e["channel"])):
        people = entry.get("speakers", [])
        if len(people) == 1:
            speakers.append(Speaker(name=people[0]["name"], email=people[0].get("email")))
        else:
            speakers.append(Speaker(name=", ".join(p["name"] for p in people)))
    return replace(base, channels=tuple(speakers))


def billed_audio_seconds(job: SpeechJob, media_seconds: float, provider: str) -> float:
    """What the job bills: Symbl counts every channel of a multichannel file; a mono file (and
    Transcribe's two channels) bill the file's length once."""
    channels = len(job.channels) if job.channels and provider == "symbl" else 1
    return media_seconds * channels


def _receive(deps: PumpDeps, count: int) -> list[dict[str, Any]]:
    try:
        response = deps.sqs.receive_message(
            QueueUrl=deps.settings.submit_queue_url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=1,
            AttributeNames=["ApproximateReceiveCount"],
        )
    except (ClientError, BotoCoreError) as e:
        raise TransientError(f"cannot receive from the submit queue: {e}") from e
    return [dict(m) for m in response.get("Messages") or []]


def _delete(deps: PumpDeps, message: dict[str, Any]) -> None:
    deps.sqs.delete_message(
        QueueUrl=deps.settings.submit_queue_url, ReceiptHandle=message["ReceiptHandle"]
    )


def _requeue(deps: PumpDeps, message: dict[str, Any], uuid: str, seconds: int) -> None:
    """Ask again in `seconds` without spending a delivery: a delayed copy goes in, then the
    received message is deleted (a crash between the two leaves a harmless duplicate)."""
    deps.sqs.send_message(
        QueueUrl=deps.settings.submit_queue_url,
        MessageBody=SubmitRequest(meeting_uuid=uuid).model_dump_json(),
        DelaySeconds=max(0, min(MAX_DELAY_SECONDS, seconds)),
    )
    _delete(deps, message)


def _presign(deps: PumpDeps, key: str) -> str:
    return str(
        deps.s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": deps.settings.media_bucket, "Key": key},
            ExpiresIn=deps.settings.presigned_url_seconds,
        )
    )


class Outcome(enum.Enum):
    SUBMITTED = "submitted"
    SKIPPED = "skipped"  # a duplicate, unknown or malformed request: its message is deleted
    DEFERRED = "deferred"  # not possible yet: the message comes back later
    FAILED = "failed"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    meeting_uuid: str | None = None
    # Set when the pump should stop taking slots (Symbl refused or is failing).
    stop: str | None = None


def submit_one(deps: PumpDeps, claim: str, message: dict[str, Any]) -> Result:
    """Act on one message while holding `claim`; the claim ends as the job's lease, is held for
    a job whose submission's outcome is unknown, or is freed.

    Waiting (the meeting still merging, Symbl's 429) spends nothing: the request goes back as a
    delayed copy and the received message is deleted, so its receive count never grows while it
    only waits. Genuine failures (a transient error, an unknown outcome) count `attempts.submit`
    on the item, and the meeting ends FAILED once `submit_attempts` are spent.
    """
    try:
        request = parse_message(SubmitRequest, message["Body"])
    except ValueError:
        logger.error("malformed submit request dropped", message_id=message.get("MessageId"))
        return _drop(deps, claim, message)
    uuid = request.meeting_uuid
    secret = new_callback_secret(uuid)
    try:
        # No read first: the conditional write is the check, and a refusal says what it found.
        recording = deps.store.transition(
            uuid,
            State.MERGED,
            State.SUBMITTING,
            updates={"callback_secret_digest": secret_digest(secret), "submit_claim": claim},
        )
    except StateConflict as e:
        if e.actual == State.MERGING.value:
            # A re-dispatched merge is running again: try this request once it is done.
            deps.slots.release(claim)
            _requeue(deps, message, uuid, RETRY_VISIBILITY_SECONDS)
            return Result(Outcome.DEFERRED, uuid)
        # Unknown, already submitted, or finished: a duplicate request.
        return _drop(deps, claim, message, uuid)
    if (recording.merged_seconds or 0) > deps.settings.max_media_seconds:
        deps.store.fail(
            uuid,
            State.SUBMITTING,
            stage=STAGE,
            reason=(
                f"meeting audio is {recording.merged_seconds:.0f} s; "
                f"{PROVIDER_LABELS[deps.speech.provider]} "
                "takes at most "
                f"{deps.settings.max_media_seconds} s per file and split submission is not built"
            ),
        )
        _delete(deps, message)
        deps.slots.release(claim)
        return Result(Outcome.FAILED, uuid)
    submission = build_submission(
        recording,
        _presign(deps, recording.merged_key or ""),
        callback_url(deps.settings, secret),
        deps.settings.media_bucket,
    )
    try:
        job = deps.speech.submit(submission)
    except ConcurrencyLimitReached:
        # Our count said a slot was free, so someone else is using the account. Waiting, not
        # failing: no attempt is counted.
        record_metric("SpeechLimitRefusals")
        backoff = deps.slots.back_off()
        _revert(deps, uuid, f"{PROVIDER_LABELS[deps.speech.provider]} concurrency limit reached")
        deps.slots.release(claim)
        _requeue(deps, message, uuid, int(backoff) + 1)
        logger.warning(
            "the provider refused a job our count allowed; backing off",
            provider=deps.speech.provider,
            seconds=backoff,
        )
        return Result(Outcome.DEFERRED, uuid, stop="429")
    except OutcomeUnknown as e:
        return _outcome_unknown(deps, claim, message, recording, str(e))
    except TransientError as e:
        return _transient_failure(deps, claim, message, recording, str(e))
    except PermanentError as e:
        deps.store.fail(uuid, State.SUBMITTING, stage=STAGE, reason=str(e))
        deps.slots.release(claim)
        _delete(deps, message)
        return Result(Outcome.FAILED, uuid)
    recording = _record_job(deps, claim, recording, job)
    _delete(deps, message)
    record_metric("SpeechSubmits")
    record_metric(
        "SpeechAudioSeconds",
        billed_audio_seconds(submission, recording.merged_seconds or 0.0, deps.speech.provider),
        MetricUnit.Seconds,
    )
    logger.info(
        "submitted",
        provider=deps.speech.provider,
        meeting_uuid=uuid,
        job_id=job.job_id,
        channels=len(submission.channels) or 1,
    )
    _settle_if_already_done(deps, recording)
    return Result(Outcome.SUBMITTED, uuid)


def _record_job(deps: PumpDeps, claim: str, recording: Recording, job: SubmittedJob) -> Recording:
    """Make the accepted job durable before anything else can fail: first the claim becomes
    the job's lease (its value names meeting and conversation), then the meeting records it.

    Should the meeting's write fail, the reconciler finds the job by its lease and adopts it;
    should the lease's write fail, the job id goes on the meeting instead. Neither leads to a
    second submission.
    """
    uuid = recording.meeting_uuid
    lease_seconds = deps.settings.job_deadline_seconds(recording.merged_seconds)
    try:
        deps.slots.convert_to_job(
            claim,
            job.job_id,
            lease_seconds=lease_seconds,
            meeting_uuid=uuid,
            conversation_id=job.conversation_id,
        )
    except (ClientError, BotoCoreError):
        logger.error("job accepted but its slot lease not written", job_id=job.job_id)
        deps.store.update_fields(
            uuid,
            State.SUBMITTING,
            {
                "speech_provider": deps.speech.provider,
                "speech_jobs": recording.speech_jobs + 1,
                "job_id": job.job_id,
                "conversation_id": job.conversation_id,
            },
        )
        raise
    return deps.store.transition(
        uuid,
        State.SUBMITTING,
        State.SUBMITTED,
        updates={
            "speech_provider": deps.speech.provider,
            "speech_jobs": recording.speech_jobs + 1,
            "job_id": job.job_id,
            "conversation_id": job.conversation_id,
            "submit_claim": None,
            "submit_outcome_unknown_at": None,
            "submitted_at": iso(utcnow()),
            # A new conversation has no speakers yet, whatever an earlier one had.
            "speakers_sent_at": None,
            "speakers_confirmed_at": None,
        },
        count_attempt=TRANSCRIBE_STAGE,
    )


def _outcome_unknown(
    deps: PumpDeps, claim: str, message: dict[str, Any], recording: Recording, reason: str
) -> Result:
    """The submission was sent and nothing says what came of it: the provider may be running
    the job.

    Never re-sent now. The claim stays as a lease for as long as such a job may run (its
    deadline), so our count still covers it; the meeting stays SUBMITTING with the reason, and
    once the lease ends the reconciler sends it for another submission (an attempt spent).
    This is the one window in which a meeting can cost two provider jobs.
    """
    uuid = recording.meeting_uuid
    record_metric("SpeechSubmitOutcomeUnknown")
    hold = deps.settings.job_deadline_seconds(recording.merged_seconds)
    deps.slots.hold(claim, lease_seconds=hold, meeting_uuid=uuid)
    deps.store.update_fields(
        uuid,
        State.SUBMITTING,
        {
            "last_error": f"submission outcome unknown: {reason}",
            "submit_outcome_unknown_at": iso(utcnow()),
        },
        count_attempt=STAGE,
    )
    _delete(deps, message)
    logger.warning(
        "submission outcome unknown; slot held until the job's deadline",
        error=reason,
        hold_seconds=round(hold),
    )
    return Result(Outcome.DEFERRED, uuid, stop="outcome unknown")


def _transient_failure(
    deps: PumpDeps, claim: str, message: dict[str, Any], recording: Recording, reason: str
) -> Result:
    """A submission that provably created no job failed: count it, retry later, give up at
    `submit_attempts`."""
    uuid = recording.meeting_uuid
    attempts = recording.attempts.get(STAGE, 0) + 1
    deps.slots.release(claim)
    if attempts >= deps.settings.submit_attempts:
        deps.store.fail(
            uuid,
            State.SUBMITTING,
            stage=STAGE,
            reason=f"submission failed {attempts} times; last: {reason}",
        )
        _delete(deps, message)
        return Result(Outcome.FAILED, uuid, stop="transient")
    _revert(deps, uuid, reason, count=True)
    delay = min(MAX_DELAY_SECONDS, RETRY_VISIBILITY_SECONDS * 2 ** (attempts - 1))
    _requeue(deps, message, uuid, delay)
    logger.warning("submit failed; will retry", error=reason, attempts=attempts)
    return Result(Outcome.DEFERRED, uuid, stop="transient")


def _drop(deps: PumpDeps, claim: str, message: dict[str, Any], uuid: str | None = None) -> Result:
    _delete(deps, message)
    deps.slots.release(claim)
    return Result(Outcome.SKIPPED, uuid)


def _settle_if_already_done(deps: PumpDeps, recording: Recording) -> None:
    """Close the window between the provider's answer and our record of the job: a terminal
    callback or event that came in it found no job to settle, so ask once now. A job still
    running is settled later by its callback or event (or by the reconciler); one settled
    meanwhile makes `settle_job` a no-op. Any failure here (a job the provider does not know
    yet, an odd answer, a failed write) is left to the reconciler: the submission is done."""
    if not recording.job_id:
        return
    try:
        status = deps.speech.job_status(recording.job_id)
        if status.terminal:
            settle_job(recording, status, deps.jobs)
    except (InsightsError, ClientError, BotoCoreError) as e:
        logger.info(
            "job status check after submit failed; the reconciler will ask",
            error=f"{type(e).__name__}: {e}",
        )


def _revert(deps: PumpDeps, uuid: str, reason: str, *, count: bool = False) -> None:
    try:
        deps.store.transition(
            uuid,
            State.SUBMITTING,
            State.MERGED,
            updates={"last_error": reason, "submit_claim": None, "callback_secret_digest": None},
            count_attempt=STAGE if count else None,
        )
    except StateConflict:
        logger.info("submit revert skipped: meeting moved on")


def run_pump(deps: PumpDeps) -> PumpReport:
    """Submit while slots and messages remain, for at most `pump_max_seconds`.

    Each acquisition takes as many slots as were free after the previous one (one at first, at
    most `pump_batch`), receives at most that many messages and frees the claims left over. The
    submissions run in threads while the next slots are taken, so a backlog meeting an idle
    account fills it without waiting on the slowest submission of each batch; a pump woken for
    one freed slot makes one acquisition, one submission, and stops.
    """
    report = PumpReport()
    deadline = deps.clock() + deps.settings.pump_max_seconds
    want = 1
    with _Submissions(deps, report) as running:
        while running.stop is None:
            if deps.clock() >= deadline:
                report.stopped_because = "time"
                break
            if want == 0:
                # The pool was full at our last look. Every slot freed elsewhere nudges a pump;
                # only a claim our own submissions gave back (a duplicate, a deferral) does not,
                # so that is the one reason to ask again.
                if running.finish() == 0:
                    report.stopped_because = "no slot"
                    break
                if running.stop is not None:
                    break
                want = 1
            room = running.room()
            running.returned = 0  # the acquisition below sees every claim given back so far
            grant = deps.slots.acquire_many(
                min(want, room), lease_seconds=deps.settings.claim_lease_seconds
            )
            if not grant.claims:
                want = 0
                continue
            try:
                messages = _receive(deps, len(grant.claims))
            except TransientError:
                deps.slots.release_many(grant.claims)
                raise
            deps.slots.release_many(grant.claims[len(messages) :])
            # Claims freed for want of messages (SQS may return fewer than are queued) nudge
            # nobody either.
            running.returned += len(grant.claims) - len(messages)
            if not messages:
                report.stopped_because = "no message"
                break
            for claim, message in zip(grant.claims, messages, strict=False):
                running.start(claim, message)
            want = min(grant.free_after, deps.settings.pump_batch)
    if running.stop is not None:
        report.stopped_because = running.stop
    return report


class _Submissions:
    """The pump's submissions in flight (in threads), and what came of them.

    Leaving the block waits for every one; the first that raised is raised then, after its
    claim was freed (its message comes back by itself).
    """

    def __init__(self, deps: PumpDeps, report: PumpReport) -> None:
        self.deps = deps
        self.report = report
        self.workers = 2 * deps.settings.pump_batch  # one batch submitting while the next is taken
        self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="submit")
        self.pending: set[Future[Result]] = set()
        self.returned = 0  # claims given back without a job since the counter was last reset
        self.stop: str | None = None
        self.error: BaseException | None = None

    def __enter__(self) -> _Submissions:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()
        self.pool.shutdown()
        if self.error is None:
            return
        if exc[0] is None:
            raise self.error
        logger.error("a submission failed while the pump was failing", error=repr(self.error))

    def _failed(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error  # raised when the block ends
        else:
            logger.error("another submission failed in the same run", error=repr(error))
        self.stop = self.stop or "error"

    def start(self, claim: str, message: dict[str, Any]) -> None:
        self.pending.add(self.pool.submit(_submit_or_release, self.deps, claim, message))
        self._collect(timeout=0)

    def room(self) -> int:
        """Threads free for submissions, waiting for one when all are busy."""
        while len(self.pending) >= self.workers:
            self._collect(return_when=FIRST_COMPLETED)
        return self.workers - len(self.pending)

    def finish(self) -> int:
        """Wait for every submission; the number of claims given back without a job."""
        self._collect()
        returned, self.returned = self.returned, 0
        return returned

    def _collect(self, timeout: float | None = None, return_when: str = ALL_COMPLETED) -> None:
        done, self.pending = wait(self.pending, timeout=timeout, return_when=return_when)
        for future in done:
            error = future.exception()
            if error is not None:
                self._failed(error)
                continue
            result = future.result()
            self.report.add(result)
            if result.outcome != Outcome.SUBMITTED:
                self.returned += 1
            if result.stop is not None:
                self.stop = self.stop or result.stop


def _submit_or_release(deps: PumpDeps, claim: str, message: dict[str, Any]) -> Result:
    try:
        return submit_one(deps, claim, message)
    except BaseException:
        deps.slots.release(claim)
        raise
