"""Operator commands, for the local stack and real AWS alike (`insights-ops --help`).

  status [UUID]             meetings, their states and timings (one meeting: its history)
  replay UUID               send a FAILED meeting back to the stage it failed in
  redrive QUEUE             move a dead-letter queue's messages back (merge, submit, notify,
                            job-events)
  backfill --from --to      feed in a user's recordings between two dates (--user, default
                            "me"), as if their webhooks had come, a month at a time (Zoom
                            lists one month per request); meetings already known are skipped
  slots                     the speech provider's slot pool: holders (claim or job, meeting,
                            time left), limit, in use, and the back-off after a surprise 429
  fail UUID --reason TEXT   end a meeting that is stuck or unwanted: any state before
                            NOTIFYING goes to FAILED (stage "operator"), its slot is freed;
                            the reconciler announces it to the operators like any failure

Configuration comes from the same environment variables as the services (RECORDINGS_TABLE,
MERGE_QUEUE_URL, SUBMIT_QUEUE_URL, NOTIFY_QUEUE_URL; for backfill ZOOM_S2S_SECRET_ARN; for slots
and fail SLOTS_TABLE and SYMBL_CONCURRENCY_LIMIT), plus the usual AWS variables (AWS_PROFILE,
AWS_REGION, AWS_ENDPOINT_URL for a local stack).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Literal, TextIO, TypeVar

from pydantic import Field

from services.core import aws
from services.core.errors import ConfigurationError, InsightsError, StateConflict
from services.core.intake import IntakeOutcome, accept_recording
from services.core.queues import (
    MergeRequest,
    NotifyRequest,
    QueueSender,
    StageMessage,
    SubmitRequest,
)
from services.core.recordings import TRANSCRIBE_STAGE, Recording, RecordingStore, State
from services.core.secrets import SecretCache
from services.core.settings import CoreSettings, ZoomApiSettings, load_settings
from services.core.slots import JOB_PREFIX, SlotPool, SlotsView
from services.core.zoom import MAX_PAGE_SIZE, ZoomApi, month_spans, zoom_oauth

T = TypeVar("T")

# Where a FAILED meeting resumes, by the stage it failed in, and what wakes that stage.
REPLAY: dict[str, tuple[State, type[StageMessage]]] = {
    "merge": (State.RECEIVED, MergeRequest),
    "submit": (State.MERGED, SubmitRequest),
    TRANSCRIBE_STAGE: (State.MERGED, SubmitRequest),
    "notify": (State.TRANSCRIBED, NotifyRequest),
}


class OpsSettings(CoreSettings):
    merge_queue_url: str = Field(min_length=1)
    submit_queue_url: str = Field(min_length=1)
    notify_queue_url: str = Field(min_length=1)
    # The AWS provider's Transcribe events; needed only to redrive its DLQ.
    job_events_queue_url: str = ""


class BackfillSettings(OpsSettings, ZoomApiSettings):
    pass


class SlotOpsSettings(OpsSettings):
    slots_table: str = Field(min_length=3)
    speech_provider: Literal["symbl", "aws"] = "symbl"
    symbl_concurrency_limit: int = Field(default=50, ge=1)
    transcribe_concurrency_limit: int = Field(default=100, ge=1)

    def pool(self) -> SlotPool:
        """The running provider's pool (each provider has its own, with its own limit)."""
        limit = (
            self.transcribe_concurrency_limit
            if self.speech_provider == "aws"
            else self.symbl_concurrency_limit
        )
        return SlotPool(self.slots_table, limit, key=self.speech_provider)


OPERATOR_STAGE = "operator"
# States `fail` may end: everything before the email. NOTIFYING means an email may be on its
# way; failing it would let a replay send a second one.
FAILABLE = (
    State.RECEIVED,
    State.MERGING,
    State.MERGED,
    State.SUBMITTING,
    State.SUBMITTED,
    State.TRANSCRIBED,
)


class Refused(InsightsError):
    """The command was refused; nothing was changed."""


def progress(items: Sequence[T], label: str, out: TextIO = sys.stderr) -> Iterator[T]:
    """Yield `items`, drawing a progress bar on `out` (only when it is a terminal)."""
    total = len(items)
    draw = out.isatty()
    for index, item in enumerate(items, start=1):
        yield item
        if draw:
            filled = int(30 * index / max(total, 1))
            out.write(f"\r{label} [{'#' * filled}{'.' * (30 - filled)}] {index}/{total}")
            out.flush()
    if draw:
        out.write("\n")


def _age(stamp: str, now: datetime) -> str:
    if not stamp:
        return "-"
    seconds = (now - datetime.fromisoformat(stamp.replace("Z", "+00:00"))).total_seconds()
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def status_table(recordings: Iterable[Recording], now: datetime) -> list[str]:
    rows = sorted(recordings, key=lambda r: r.created_at, reverse=True)
    lines = [f"{'MEETING UUID':<26} {'STATE':<12} {'IN STATE':>8} {'AGE':>6}  TOPIC / NOTE"]
    for r in rows:
        note = r.topic
        if r.state == State.FAILED:
            note = f"{r.failed_stage}: {r.failure_reason}"
        elif r.state == State.SKIPPED:
            note = f"skipped: {r.skip_reason}"
        lines.append(
            f"{r.meeting_uuid:<26} {r.state.value:<12} {_age(r.state_since, now):>8} "
            f"{_age(r.created_at, now):>6}  {note[:80]}"
        )
    return lines


def status_detail(recording: Recording, now: datetime) -> list[str]:
    lines = [
        f"meeting  {recording.meeting_uuid}  ({recording.topic})",
        f"state    {recording.state.value} for {_age(recording.state_since, now)}",
        f"host     {recording.host_email or '-'}; started {recording.start_time}",
        f"speakers {', '.join(t.name for t in recording.tracks) or '(mixed audio only)'}",
    ]
    for track in recording.tracks:
        if track.excluded_reason:
            lines.append(f"left out {track.name}: {track.excluded_reason}")
    if recording.audio_layout:
        audio = f"audio    {recording.audio_layout}"
        if recording.merged_seconds is not None:
            audio += f", {recording.merged_seconds:.1f} s"
        if recording.segment_map_key:
            audio += f"; map {recording.segment_map_key}"
        lines.append(audio)
    if recording.job_id:
        lines.append(f"job      {recording.speech_provider or 'symbl'} {recording.job_id}")
    if recording.speakers_sent_at:
        confirmed = recording.speakers_confirmed_at or "not confirmed yet"
        lines.append(f"speaker events sent {recording.speakers_sent_at}; seen {confirmed}")
    if recording.failure_reason:
        lines.append(f"failed   in {recording.failed_stage}: {recording.failure_reason}")
    if recording.last_error:
        lines.append(f"note     {recording.last_error}")
    if recording.attempts:
        lines.append("attempts " + ", ".join(f"{k}={v}" for k, v in recording.attempts.items()))
    lines.append("history")
    previous: datetime | None = None
    for step in recording.history:
        at = datetime.fromisoformat(step.at.replace("Z", "+00:00"))
        took = f"+{(at - previous).total_seconds():.1f}s" if previous else ""
        lines.append(f"  {step.at}  {step.state.value:<12} {took}")
        previous = at
    return lines


def replay(store: RecordingStore, queues: dict[str, QueueSender], uuid: str) -> str:
    recording = store.require(uuid)
    if recording.state != State.FAILED:
        raise ConfigurationError(f"{uuid} is {recording.state.value}; only FAILED meetings replay")
    stage = recording.failed_stage or "merge"
    target, message = REPLAY.get(stage, REPLAY["merge"])
    attempts = {k: v for k, v in recording.attempts.items() if k != stage}
    updates: dict[str, object] = {
        "attempts": attempts,
        "failed_stage": None,
        "failure_reason": None,
        "last_error": f"replayed by an operator after failing in {stage}",
    }
    if target != State.TRANSCRIBED:
        # It will be submitted again: an old job must not be taken for the new one's (a
        # SUBMITTING repair adopts the job on the item).
        updates.update({"job_id": None, "conversation_id": None})
    store.transition(uuid, State.FAILED, target, updates=updates)
    queue = {MergeRequest: "merge", SubmitRequest: "submit", NotifyRequest: "notify"}[message]
    queues[queue].send(message(meeting_uuid=uuid))
    return f"{uuid}: {target.value}, {queue} request queued"


def _time_left(deadline: float, now: float) -> str:
    seconds = deadline - now
    if seconds <= 0:
        return f"expired {-seconds:.0f}s ago"
    return f"{seconds:.0f}s"


def slots_report(view: SlotsView, now: float) -> list[str]:
    """The slot pool as an operator reads it: holders first, then the totals and the back-off."""
    lines = [f"{'HOLDER':<40} {'KIND':<5} {'MEETING UUID':<26} LEASE LEFT"]
    for lease in view.leases:
        kind = "claim" if lease.is_claim else "job" if lease.job_id else "?"
        lines.append(
            f"{lease.holder:<40} {kind:<5} {lease.meeting_uuid or '-':<26} "
            f"{_time_left(lease.deadline, now)}"
        )
    if not view.leases:
        lines.append("(no holders)")
    lines.append(
        f"limit {view.limit}, in use {view.in_use}, free {max(0, view.limit - view.in_use)}"
    )
    if view.backoff_until > now:
        until = datetime.fromtimestamp(view.backoff_until, UTC).isoformat(timespec="seconds")
        lines.append(
            f"backing off until {until} ({view.backoff_until - now:.0f}s left, "
            f"episode of {view.backoff_seconds:.0f}s)"
        )
    else:
        lines.append(f"not backing off (last episode {view.backoff_seconds:.0f}s)")
    return lines


def fail_meeting(store: RecordingStore, slots: SlotPool, uuid: str, reason: str) -> str:
    """End a meeting FAILED by hand (stage "operator") and free the slot it holds, if any.

    Conditional on the state (and the stay in it) read first, so a stage that moves the meeting
    on meanwhile wins and nothing is changed. The freed slot may still have a job running at
    the provider until it ends; should the provider refuse a submission for it, the pool backs
    off.
    The reconciler's sweep announces the failure; `replay` starts the meeting over from the
    merge.
    """
    if not reason.strip():
        raise Refused("give a --reason an operator reading the notice will understand")
    recording = store.require(uuid)
    state = recording.state
    if state == State.NOTIFYING:
        raise Refused(
            f"{uuid} is NOTIFYING: its email may be on its way, and a FAILED meeting can be "
            "replayed into a second email; the notifier settles it shortly (NOTIFIED, or "
            "in doubt)"
        )
    if state not in FAILABLE:
        raise Refused(f"{uuid} is {state.value}, a final state; nothing to fail")
    try:
        store.fail(
            uuid,
            state,
            stage=OPERATOR_STAGE,
            reason=reason,
            only_if={"state_since": recording.state_since},
        )
    except StateConflict as e:
        raise Refused(f"{uuid} moved on to {e.actual} meanwhile; look again") from e
    holders = {lease.holder for lease in slots.view().leases if lease.meeting_uuid == uuid}
    if recording.submit_claim:
        holders.add(recording.submit_claim)
    if recording.job_id:
        holders.add(JOB_PREFIX + recording.job_id)
    slots.release_many(sorted(holders))
    freed = f"; slot freed ({', '.join(sorted(holders))})" if holders else ""
    return f"{uuid}: {state.value} -> FAILED (stage {OPERATOR_STAGE}){freed}"


def redrive(queue_url: str, dlq_url: str, out: TextIO = sys.stderr) -> int:
    """Move every message from `dlq_url` back to `queue_url`; returns how many moved."""
    sqs = aws.client("sqs")
    total = int(
        sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"
        ]["ApproximateNumberOfMessages"]
    )
    moved = 0
    while True:
        messages = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=60
        ).get("Messages", [])
        if not messages:
            break
        for message in messages:
            sqs.send_message(QueueUrl=queue_url, MessageBody=message["Body"])
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
        if out.isatty():
            out.write(f"\rmoved {moved}/{max(total, moved)}")
            out.flush()
    if out.isatty():
        out.write("\n")
    return moved


def backfill(
    api: ZoomApi,
    store: RecordingStore,
    merge_queue: QueueSender,
    start: date,
    end: date,
    *,
    user_id: str = "me",
    page_size: int = MAX_PAGE_SIZE,
    out: TextIO = sys.stdout,
) -> tuple[int, int]:
    """(accepted, already known) for a Zoom user's recordings between two dates (inclusive).

    Zoom lists at most one month per request, so the range is walked a calendar month at a
    time (every page of each), with a line per month on `out`.
    """
    if start > end:
        raise Refused(f"--from {start} is after --to {end}")
    accepted = known = 0
    for first, last in month_spans(start, end):
        meetings = list(api.list_user_recordings(first, last, user_id=user_id, page_size=page_size))
        fed = seen = 0
        for meeting in progress(meetings, f"backfill {first:%Y-%m}"):
            result = accept_recording(
                meeting, download_token=None, store=store, merge_queue=merge_queue
            )
            if result.outcome == IntakeOutcome.ACCEPTED:
                fed += 1
            else:
                seen += 1
        out.write(
            f"{first}..{last}: {len(meetings)} meeting(s), {fed} fed in, {seen} already known\n"
        )
        out.flush()
        accepted += fed
        known += seen
    return accepted, known


def _queues(settings: OpsSettings) -> dict[str, QueueSender]:
    return {
        "merge": QueueSender(settings.merge_queue_url),
        "submit": QueueSender(settings.submit_queue_url),
        "notify": QueueSender(settings.notify_queue_url),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="insights-ops",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", help="meetings and their states")
    status.add_argument("uuid", nargs="?")
    status.add_argument("--state", choices=[s.value for s in State], help="only this state")
    commands.add_parser("replay", help="retry a FAILED meeting").add_argument("uuid")
    commands.add_parser("redrive", help="move a DLQ back").add_argument(
        "queue", choices=["merge", "submit", "notify", "job-events"]
    )
    fill = commands.add_parser("backfill", help="feed in past recordings")
    fill.add_argument("--from", dest="start", type=date.fromisoformat, required=True)
    fill.add_argument("--to", dest="end", type=date.fromisoformat, required=True)
    fill.add_argument(
        "--user",
        default="me",
        help="Zoom user (id or email) whose recordings to list; default: the app's own user",
    )
    commands.add_parser("slots", help="the provider's slot pool: holders, limit, back-off")
    fail = commands.add_parser("fail", help="end a meeting FAILED by hand (before NOTIFYING)")
    fail.add_argument("uuid")
    fail.add_argument("--reason", required=True, help="why, for the operators' notice")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = parse_args(argv)
    try:
        settings_classes: dict[str, type[OpsSettings]] = {
            "backfill": BackfillSettings,
            "slots": SlotOpsSettings,
            "fail": SlotOpsSettings,
        }
        settings_class = settings_classes.get(args.command, OpsSettings)
        settings = load_settings(settings_class)
        store = RecordingStore.from_settings(settings)
        now = datetime.now(UTC)
        if args.command == "status":
            if args.uuid:
                lines = status_detail(store.require(args.uuid), now)
            else:
                found = store.list_by_state(State(args.state)) if args.state else store.scan()
                lines = status_table(found, now)
            out.write("\n".join(lines) + "\n")
        elif args.command == "replay":
            out.write(replay(store, _queues(settings), args.uuid) + "\n")
        elif args.command == "redrive":
            url = getattr(settings, f"{args.queue.replace('-', '_')}_queue_url")
            if not url:
                raise ConfigurationError(
                    f"{args.queue.upper().replace('-', '_')}_QUEUE_URL is not set"
                )
            moved = redrive(url, url + "-dlq")
            out.write(f"{moved} message(s) moved from {args.queue}-dlq back to {args.queue}\n")
        elif args.command in ("slots", "fail"):
            assert isinstance(settings, SlotOpsSettings)
            pool = settings.pool()
            if args.command == "slots":
                lines = slots_report(pool.view(), now.timestamp())
                out.write("\n".join(lines) + "\n")
            else:
                out.write(fail_meeting(store, pool, args.uuid, args.reason) + "\n")
        else:
            assert isinstance(settings, BackfillSettings)
            oauth = zoom_oauth(settings, SecretCache())
            accepted, known = backfill(
                ZoomApi(settings.zoom_api_base_url, oauth),
                store,
                QueueSender(settings.merge_queue_url),
                args.start,
                args.end,
                user_id=args.user,
                out=out,
            )
            out.write(f"{accepted} meeting(s) fed in, {known} already known\n")
    except (InsightsError, StateConflict) as e:
        sys.stderr.write(f"insights-ops: {e}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
