"""The reconciler: runs every minute and repairs what a lost message or a dead worker stranded.

- slot leases: a pump's claim past its deadline is freed; a job lease past its deadline makes us
  ask Symbl, then settle the job as its callback would have (or extend a job still running);
- SUBMITTED meetings: their job is asked about, in case its callback was lost;
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

from services.core.errors import InsightsError, StateConflict
from services.core.intake import MessageSender
from services.core.observability import logger, record_metric
from services.core.pump import PumpNudger
from services.core.queues import MergeRequest, NotifyRequest, StageMessage, SubmitRequest
from services.core.recordings import Recording, RecordingStore, State
from services.core.settings import ReconcilerSettings
from services.core.slots import SlotPool
from services.core.symbl import SpeechAnalytics
from services.core.transcription_jobs import JobDeps, settle_job


@dataclass
class ReconcilerDeps:
    settings: ReconcilerSettings
    jobs: JobDeps  # store, slots, speech analytics, submit/notify queues, pump
    merge_queue: MessageSender
    ecs_client: Callable[[], Any]
    clock: Callable[[], float] = field(default=time.time)

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


def reconcile_slots(deps: ReconcilerDeps, report: ReconcileReport) -> None:
    now = deps.clock()
    view = deps.slots.view()
    # Sampled once a minute here rather than on every pump run (a read per job saved).
    record_metric("SlotsInUse", view.in_use)
    for lease in view.leases:
        if lease.deadline > now:
            continue
        if lease.is_claim:
            deps.slots.release(lease.holder)
            report.add("stale claim released", lease.holder)
            continue
        job_id = lease.job_id
        if job_id is None:
            deps.slots.release(lease.holder)
            report.add("unknown lease released", lease.holder)
            continue
        # The lease names its meeting: read that by key (strongly consistent), not the index.
        recording = (
            deps.store.get(lease.meeting_uuid)
            if lease.meeting_uuid
            else deps.store.find_by_symbl_job(job_id)
        )
        if recording is None or recording.symbl_job_id != job_id:
            deps.slots.release(lease.holder)
            report.add("orphan job lease released", job_id)
            continue
        status = deps.speech.job_status(job_id)
        if status.terminal:
            outcome = settle_job(recording, status, deps.jobs)
            report.add(f"lost callback: {outcome}", recording.meeting_uuid)
        else:
            deps.slots.extend(lease, lease_seconds=deps.settings.job_lease_seconds)


def reconcile_submitted(deps: ReconcilerDeps, report: ReconcileReport) -> None:
    """Ask about every job submitted a while ago (callbacks can be lost)."""
    cutoff = datetime.fromtimestamp(deps.clock(), UTC) - timedelta(
        seconds=deps.settings.submitted_check_seconds
    )
    for recording in deps.store.list_by_state(State.SUBMITTED, older_than=cutoff):
        if not recording.symbl_job_id:
            continue
        status = deps.speech.job_status(recording.symbl_job_id)
        if status.terminal:
            outcome = settle_job(recording, status, deps.jobs)
            report.add(f"job settled by polling: {outcome}", recording.meeting_uuid)


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


def _resend(
    deps: ReconcilerDeps,
    recording: Recording,
    what: str,
    queue: MessageSender,
    message: StageMessage,
    report: ReconcileReport,
) -> None:
    """Send a stage's request again and note it on the item (if it is still where it was)."""
    queue.send(message)
    try:
        deps.store.update_fields(recording.meeting_uuid, recording.state, {"last_error": what})
    except StateConflict:
        return  # it moved on meanwhile: the duplicate request will be ignored
    report.add(what, recording.meeting_uuid)


def _claim_alive(deps: ReconcilerDeps, claim: str | None) -> bool:
    if not claim:
        return False
    now = deps.clock()
    return any(lease.holder == claim and lease.deadline > now for lease in deps.slots.view().leases)


def reconcile_stuck(deps: ReconcilerDeps, report: ReconcileReport) -> None:
    s = deps.settings
    for recording in _stuck(deps, State.RECEIVED, s.received_stuck_seconds):
        uuid = recording.meeting_uuid
        _resend(
            deps,
            recording,
            "merge request re-sent",
            deps.merge_queue,
            MergeRequest(meeting_uuid=uuid),
            report,
        )

    for recording in _stuck(deps, State.MERGING, s.merge_stuck_seconds):
        uuid = recording.meeting_uuid
        if recording.merge_task_arn and _task_running(deps, recording.merge_task_arn):
            continue
        attempts = recording.attempts.get("merge", 0)
        try:
            if attempts >= s.stage_attempts:
                deps.store.fail(
                    uuid,
                    State.MERGING,
                    stage="merge",
                    reason=f"merge did not finish after {attempts} attempts",
                )
                report.add("merge given up", uuid)
                continue
            deps.store.transition(
                uuid,
                State.MERGING,
                State.RECEIVED,
                updates={"merge_task_arn": None, "last_error": "merge stalled; restarted"},
            )
        except StateConflict:
            continue
        deps.merge_queue.send(MergeRequest(meeting_uuid=uuid))
        report.add("stalled merge restarted", uuid)

    for recording in _stuck(deps, State.SUBMITTING, s.submitting_stuck_seconds):
        uuid = recording.meeting_uuid
        if _claim_alive(deps, recording.submit_claim):
            continue  # a pump is still on it
        try:
            deps.store.transition(
                uuid,
                State.SUBMITTING,
                State.MERGED,
                updates={
                    "submit_claim": None,
                    "callback_secret_digest": None,
                    "last_error": "submission interrupted; requeued",
                },
            )
        except StateConflict:
            continue
        if recording.submit_claim:
            deps.slots.release(recording.submit_claim)
        deps.submit_queue.send(SubmitRequest(meeting_uuid=uuid))
        report.add("interrupted submission requeued", uuid)

    for recording in _stuck(deps, State.MERGED, s.merged_stuck_seconds):
        uuid = recording.meeting_uuid
        _resend(
            deps,
            recording,
            "submit request re-sent",
            deps.submit_queue,
            SubmitRequest(meeting_uuid=uuid),
            report,
        )

    for state in (State.TRANSCRIBED, State.NOTIFYING):
        for recording in _stuck(deps, state, s.transcribed_stuck_seconds):
            uuid = recording.meeting_uuid
            _resend(
                deps,
                recording,
                "notify request re-sent",
                deps.notify_queue,
                NotifyRequest(meeting_uuid=uuid),
                report,
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
    if report.repairs:
        record_metric("ReconcilerRepairs", len(report.repairs))
    deps.pump.nudge("schedule")
    return report
