"""The reconciler: runs every minute and repairs what a lost message or a dead worker stranded.

- slot leases: a pump's claim past its deadline is freed; a job lease past its deadline makes us
  ask the provider, then settle the job as its callback or event would have (or extend a job
  still running);
- SUBMITTED meetings: their job is asked about, in case its callback or event was lost (Symbl's
  callbacks and Transcribe's EventBridge events are both best-effort);
- meetings stuck in RECEIVED, MERGING, MERGED, SUBMITTING or TRANSCRIBED past a deadline get
  their stage's request again (duplicates are harmless: every stage checks the state), or end
  FAILED once they have used up their attempts;
- finally the pump is nudged, so a backlog never waits for a message that was lost.

Every repair is logged with the meeting and counted (`ReconcilerRepairs`, `StuckMeetings`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from services.core.errors import InsightsError, NotFound, StateConflict
from services.core.failures import announce_failures, notice_client
from services.core.intake import MessageSender
from services.core.observability import logger, record_metric
from services.core.pump import PumpNudger
from services.core.queues import MergeRequest, NotifyRequest, StageMessage, SubmitRequest
from services.core.recordings import TRANSCRIBE_STAGE, Recording, RecordingStore, State
from services.core.settings import ReconcilerSettings
from services.core.slots import Lease, SlotPool
from services.core.speech.provider import PROVIDER_LABELS, SpeechAnalytics
from services.core.transcription_jobs import JobDeps, fail_attempt, settle_job

SUBMIT_STAGE = "submit"


@dataclass
class ReconcilerDeps:
    settings: ReconcilerSettings
    jobs: JobDeps  # store, slots, speech analytics, submit/notify queues, pump
    merge_queue: MessageSender
    ecs_client: Callable[[], Any]
    clock: Callable[[], float] = field(default=time.time)
    sns: Any = field(default_factory=notice_client)  # failure notices to the operators

    @property
    def store(self) -> RecordingStore:
        return self.jobs.store

    @property
    def slots(self) -> SlotPool:
        return self.jobs.slots

    @property
    def speech(self) -> SpeechAnalytics:
        return self.jobs.speech

    @property
    def submit_queue(self) -> MessageSender:
        return self.jobs.submit_queue

    @property
    def notify_queue(self) -> MessageSender:
        return self.jobs.notify_queue

    @property
    def pump(self) -> PumpNudger:
        return self.jobs.pump


@dataclass
class ReconcileReport:
    repairs: list[tuple[str, str]] = field(default_factory=list)  # (what, meeting or holder)
    errors: list[str] = field(default_factory=list)

    def add(self, what: str, subject: str) -> None:
        self.repairs.append((what, subject))
        logger.info("reconciler repair", repair=what, subject=subject)


def _item_failed(report: ReconcileReport, what: str, subject: str, error: Exception) -> None:
    """One item's repair failed: count it, say which, and go on with the others."""
    report.errors.append(f"{what} {subject}: {type(error).__name__}: {error}")
    record_metric("ReconcilerItemErrors")
    logger.error(
        "reconciler could not repair an item",
        repair=what,
        subject=subject,
        error=f"{type(error).__name__}: {error}",
    )


ITEM_ERRORS = (InsightsError, ClientError, BotoCoreError, ValueError)


def reconcile_slots(deps: ReconcilerDeps, report: ReconcileReport) -> None:
    now = deps.clock()
    view = deps.slots.view()
    # Sampled once a minute here rather than on every pump run (a read per job saved).
    record_metric("SlotsInUse", view.in_use)
    for lease in view.leases:
        if lease.deadline > now:
            continue
        try:
            _expired_lease(deps, lease, report)
        except ITEM_ERRORS as e:
            _item_failed(report, "expired lease", lease.meeting_uuid or lease.holder, e)


def _expired_lease(deps: ReconcilerDeps, lease: Lease, report: ReconcileReport) -> None:
    """A lease past its deadline: a claim is freed (its meeting, if any, is requeued by the
    SUBMITTING repair); a job is asked about once more, then settled or spends an attempt."""
    if lease.is_claim or lease.job_id is None:
        deps.slots.release(lease.holder)
        report.add(
            "stale claim released" if lease.is_claim else "unknown lease released", lease.holder
        )
        return
    job_id = lease.job_id
    # The lease names its meeting: read that by key (strongly consistent), not the index.
    recording = (
        deps.store.get(lease.meeting_uuid) if lease.meeting_uuid else deps.store.find_by_job(job_id)
    )
    if recording is not None and recording.state == State.SUBMITTING:
        recording = _adopt(deps, recording, job_id, lease.conversation_id, report)
    if recording is None or recording.job_id != job_id:
        deps.slots.release(lease.holder)
        report.add("orphan job lease released", job_id)
        return
    _check_job(deps, recording, report, past_deadline=True)


def _check_job(
    deps: ReconcilerDeps, recording: Recording, report: ReconcileReport, *, past_deadline: bool
) -> None:
    """Ask the provider about a SUBMITTED meeting's job and act on the answer: settle a job that
    ended; a job the provider no longer knows, or one still running past its deadline, spends
    an attempt (resubmitted while attempts remain, else FAILED) and frees its slot."""
    job_id = recording.job_id or ""
    provider = PROVIDER_LABELS[deps.speech.provider]
    if recording.speech_provider not in (None, deps.speech.provider):
        # Submitted before the deployment switched providers: run it again with this one.
        reason = f"job {job_id} ran on {recording.speech_provider}; this deployment uses {provider}"
        outcome = fail_attempt(recording, reason, deps.jobs)
        report.add(f"job of another provider: {outcome}", recording.meeting_uuid)
        return
    try:
        status = deps.speech.job_status(job_id)
    except NotFound:
        outcome = fail_attempt(recording, f"{provider} no longer knows job {job_id}", deps.jobs)
        report.add(f"unknown job: {outcome}", recording.meeting_uuid)
        return
    if status.terminal:
        outcome = settle_job(recording, status, deps.jobs)
        report.add(f"job settled by polling: {outcome}", recording.meeting_uuid)
        return
    if past_deadline:
        limit = deps.settings.job_deadline_seconds(recording.merged_seconds)
        record_metric("SpeechJobsTimedOut")
        outcome = fail_attempt(
            recording,
            f"{provider} job {job_id} still {status.value} past its deadline ({limit:.0f} s)",
            deps.jobs,
        )
        report.add(f"job past its deadline: {outcome}", recording.meeting_uuid)


def _seconds_since(stamp: str | None, now: float) -> float:
    if not stamp:
        return 0.0
    return now - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def reconcile_submitted(deps: ReconcilerDeps, report: ReconcileReport) -> None:
    """Ask about every job submitted a while ago (callbacks can be lost); a job past its
    deadline ends its attempt even when its slot lease is gone."""
    now = deps.clock()
    cutoff = datetime.fromtimestamp(now, UTC) - timedelta(
        seconds=deps.settings.submitted_check_seconds
    )
    for recording in deps.store.list_by_state(State.SUBMITTED, older_than=cutoff):
        if not recording.job_id:
            continue
        age = _seconds_since(recording.submitted_at or recording.state_since, now)
        past = age > deps.settings.job_deadline_seconds(recording.merged_seconds)
        try:
            _check_job(deps, recording, report, past_deadline=past)
        except ITEM_ERRORS as e:
            _item_failed(report, "job check", recording.meeting_uuid, e)


def _stuck(deps: ReconcilerDeps, state: State, seconds: int) -> list[Recording]:
    cutoff = datetime.fromtimestamp(deps.clock(), UTC) - timedelta(seconds=seconds)
    found = list(deps.store.list_by_state(state, older_than=cutoff))
    if found:
        record_metric("StuckMeetings", len(found))
    return found


def _task_running(deps: ReconcilerDeps, task_arn: str) -> bool:
    try:
        response = deps.ecs_client().describe_tasks(
            cluster=deps.settings.ecs_cluster, tasks=[task_arn]
        )
    except (ClientError, BotoCoreError):
        # Unknown: assume it may still run; the next pass asks again.
        return True
    tasks = response.get("tasks") or []
    return bool(tasks) and tasks[0].get("lastStatus") not in ("STOPPED", "DEPROVISIONING")


def resends_this_stay(recording: Recording) -> int:
    """Requests re-sent since the meeting entered its current state (earlier stays' count
    nothing)."""
    return recording.resends if recording.resends_for == recording.state_since else 0


def resend_due(recording: Recording, stuck_seconds: int, now: float) -> bool:
    """Whether the next re-send of a stuck meeting's request is due: the first after
    `stuck_seconds` in the state, each later one after twice the previous wait."""
    sent = resends_this_stay(recording)
    due_after: float = stuck_seconds * (2 ** (sent + 1) - 1)
    return _seconds_since(recording.state_since, now) >= due_after


def _resend(
    deps: ReconcilerDeps,
    recording: Recording,
    what: str,
    queue: MessageSender,
    message: StageMessage,
    report: ReconcileReport,
    stuck_seconds: int,
    *,
    may_fail: bool = True,
) -> None:
    """Send a stuck stage's request again, with back-off, at most `stage_attempts` times; then
    the meeting ends FAILED with the reason (`may_fail=False`: only reported, for a state in
    which failing could cause a second email)."""
    now = deps.clock()
    if not resend_due(recording, stuck_seconds, now):
        return
    uuid = recording.meeting_uuid
    sent = resends_this_stay(recording)
    # Only while the meeting is still in the same stay in that state.
    same_stay = {"state_since": recording.state_since}
    if sent >= deps.settings.stage_attempts:
        if not may_fail:
            record_metric("StuckMeetingsGivenUp")
            logger.error("meeting stuck after every re-send", meeting_uuid=uuid, resends=sent)
            return
        try:
            deps.store.fail(
                uuid,
                recording.state,
                stage=STUCK_STAGES.get(recording.state, recording.state.value.lower()),
                reason=(
                    f"stuck in {recording.state.value} for "
                    f"{_seconds_since(recording.state_since, now):.0f} s; {what} {sent} times "
                    "without effect"
                ),
                only_if=same_stay,
            )
        except StateConflict:
            return
        report.add(f"given up after {sent} re-sends", uuid)
        return
    try:
        deps.store.update_fields(
            uuid,
            recording.state,
            {"last_error": what, "resends": sent + 1, "resends_for": recording.state_since},
            only_if=same_stay,
        )
    except StateConflict:
        return  # it moved on meanwhile
    queue.send(message)
    report.add(what, uuid)


# The stage a meeting stuck in a state is waiting for (the FAILED item's `failed_stage`).
STUCK_STAGES = {
    State.RECEIVED: "merge",
    State.MERGED: "submit",
    State.TRANSCRIBED: "notify",
}


def _claim_alive(deps: ReconcilerDeps, claim: str | None) -> bool:
    if not claim:
        return False
    now = deps.clock()
    return any(lease.holder == claim and lease.deadline > now for lease in deps.slots.view().leases)


def _adopt(
    deps: ReconcilerDeps,
    recording: Recording,
    job_id: str,
    conversation_id: str | None,
    report: ReconcileReport,
) -> Recording | None:
    """A SUBMITTING meeting whose job was accepted (on record in its slot lease or on the item)
    but whose SUBMITTED write never happened: record the job instead of submitting again."""
    try:
        adopted = deps.store.transition(
            recording.meeting_uuid,
            State.SUBMITTING,
            State.SUBMITTED,
            updates={
                "speech_provider": deps.speech.provider,
                # The adopted job's number is used: a resubmission gets the next one.
                "speech_jobs": recording.speech_jobs + 1,
                "job_id": job_id,
                "conversation_id": conversation_id or recording.conversation_id,
                "submit_claim": None,
                "submit_outcome_unknown_at": None,
                "submitted_at": recording.updated_at or recording.state_since,
                "speakers_sent_at": None,
                "speakers_confirmed_at": None,
                "last_error": "accepted job adopted after an interrupted submission",
            },
            count_attempt=TRANSCRIBE_STAGE,
        )
    except StateConflict:
        return deps.store.get(recording.meeting_uuid)
    if recording.submit_claim:
        deps.slots.release(recording.submit_claim)
    report.add("accepted job adopted", recording.meeting_uuid)
    return adopted


def _stuck_submitting(deps: ReconcilerDeps, recording: Recording, report: ReconcileReport) -> None:
    uuid = recording.meeting_uuid
    if _claim_alive(deps, recording.submit_claim):
        return  # a pump is still on it, or a job whose submission's outcome is unknown may run
    lease = deps.slots.job_of(uuid)
    if lease is not None and lease.job_id:
        _adopt(deps, recording, lease.job_id, lease.conversation_id, report)
        return
    if recording.job_id:
        _adopt(deps, recording, recording.job_id, recording.conversation_id, report)
        return
    attempts = recording.attempts.get(SUBMIT_STAGE, 0)
    if attempts >= deps.settings.submit_attempts:
        deps.store.fail(
            uuid,
            State.SUBMITTING,
            stage=SUBMIT_STAGE,
            reason=(
                f"submission did not succeed in {attempts} attempts; last: {recording.last_error}"
            ),
        )
        if recording.submit_claim:
            deps.slots.release(recording.submit_claim)
        report.add("submission given up", uuid)
        return
    try:
        deps.store.transition(
            uuid,
            State.SUBMITTING,
            State.MERGED,
            updates={
                "submit_claim": None,
                "callback_secret_digest": None,
                "submit_outcome_unknown_at": None,
                "last_error": (
                    "submission outcome unknown; submitted again"
                    if recording.submit_outcome_unknown_at
                    else "submission interrupted; requeued"
                ),
            },
        )
    except StateConflict:
        return
    if recording.submit_claim:
        deps.slots.release(recording.submit_claim)
    deps.submit_queue.send(SubmitRequest(meeting_uuid=uuid))
    report.add("interrupted submission requeued", uuid)


def _stuck_merging(deps: ReconcilerDeps, recording: Recording, report: ReconcileReport) -> None:
    uuid = recording.meeting_uuid
    now = deps.clock()
    if (recording.merge_lease_deadline or 0) > now or (recording.processing_wait_until or 0) > now:
        return  # a merge holds a live lease, or waits on purpose for a file Zoom is processing
    if recording.merge_task_arn and _task_running(deps, recording.merge_task_arn):
        return
    attempts = recording.attempts.get("merge", 0)
    if attempts >= deps.settings.stage_attempts:
        deps.store.fail(
            uuid,
            State.MERGING,
            stage="merge",
            reason=f"merge did not finish after {attempts} attempts",
        )
        report.add("merge given up", uuid)
        return
    deps.store.transition(
        uuid,
        State.MERGING,
        State.RECEIVED,
        updates={"merge_task_arn": None, "last_error": "merge stalled; restarted"},
    )
    deps.merge_queue.send(MergeRequest(meeting_uuid=uuid))
    report.add("stalled merge restarted", uuid)


def reconcile_stuck(deps: ReconcilerDeps, report: ReconcileReport) -> None:
    """Meetings past their state's deadline, each on its own: one that cannot be repaired is
    reported and the others still are."""
    s = deps.settings

    def each(state: State, seconds: int, repair: Callable[[Recording], None]) -> None:
        for recording in _stuck(deps, state, seconds):
            try:
                repair(recording)
            except StateConflict:
                continue  # it moved on meanwhile
            except ITEM_ERRORS as e:
                _item_failed(report, f"stuck in {state.value}", recording.meeting_uuid, e)

    each(
        State.RECEIVED,
        s.received_stuck_seconds,
        lambda r: _resend(
            deps,
            r,
            "merge request re-sent",
            deps.merge_queue,
            MergeRequest(meeting_uuid=r.meeting_uuid),
            report,
            s.received_stuck_seconds,
        ),
    )
    each(State.MERGING, s.merge_stuck_seconds, lambda r: _stuck_merging(deps, r, report))
    each(State.SUBMITTING, s.submitting_stuck_seconds, lambda r: _stuck_submitting(deps, r, report))
    view = deps.slots.view()
    # Every slot busy (or Symbl asked us to wait): MERGED meetings are queued, not stuck.
    if view.in_use < view.limit and view.backoff_until <= deps.clock():
        each(
            State.MERGED,
            s.merged_stuck_seconds,
            lambda r: _resend(
                deps,
                r,
                "submit request re-sent",
                deps.submit_queue,
                SubmitRequest(meeting_uuid=r.meeting_uuid),
                report,
                s.merged_stuck_seconds,
            ),
        )
    for state in (State.TRANSCRIBED, State.NOTIFYING):
        each(
            state,
            s.transcribed_stuck_seconds,
            lambda r: _resend(
                deps,
                r,
                "notify request re-sent",
                deps.notify_queue,
                NotifyRequest(meeting_uuid=r.meeting_uuid),
                report,
                s.transcribed_stuck_seconds,
                # NOTIFYING may have sent the email: never FAILED (an operator retry would send
                # a second); the notifier settles it as sent-in-doubt on the next request.
                may_fail=r.state != State.NOTIFYING,
            ),
        )


def reconcile(deps: ReconcilerDeps) -> ReconcileReport:
    """One pass over every repair; a failing repair is reported and the others still run."""
    report = ReconcileReport()
    for step in (reconcile_slots, reconcile_submitted, reconcile_stuck):
        try:
            step(deps, report)
        except (InsightsError, ClientError, BotoCoreError) as e:
            report.errors.append(f"{step.__name__}: {type(e).__name__}: {e}")
            logger.error("reconciler step failed", step=step.__name__, error=str(e))
    # Every FAILED meeting, whichever stage failed it, announced once to the operators.
    notices = announce_failures(deps.store, deps.sns, deps.settings.operator_topic_arn)
    report.errors.extend(notices.errors)
    if report.repairs:
        record_metric("ReconcilerRepairs", len(report.repairs))
    deps.pump.nudge("schedule")
    return report
