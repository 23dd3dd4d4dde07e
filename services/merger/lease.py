"""The merge lease: at most one live merge run per meeting.

A run holds the meeting item while it merges: `merge_lease_holder` (an id unique to the run) and
`merge_lease_deadline` (epoch seconds), written in the same conditional write that moves
RECEIVED → MERGING. A request that finds MERGING under a live lease does nothing; one that finds
the lease expired (its run died) takes it over with a write conditional on the holder it read
and on the deadline having passed, so of two such requests only one wins. Every later write of
the run (handing it to a Fargate task, MERGING → MERGED) is conditional on still holding it.
"""

from __future__ import annotations

import uuid
from typing import Any

from services.core.errors import StateConflict
from services.core.observability import logger
from services.core.recordings import Recording, RecordingStore, State

STAGE = "merge"
HOLDER = "merge_lease_holder"
DEADLINE = "merge_lease_deadline"


def new_holder() -> str:
    return uuid.uuid4().hex


def lease_is_live(recording: Recording, now: float) -> bool:
    deadline = recording.merge_lease_deadline
    return deadline is not None and deadline >= now


def take_lease(
    store: RecordingStore,
    recording: Recording,
    *,
    seconds: int,
    now: float,
    mode: str,
    continuing: str | None = None,
) -> Recording | None:
    """The item under a lease of this run (RECEIVED → MERGING, a renewal of `continuing`, or
    the takeover of an expired lease); None when another run holds it or won the race."""
    uuid_ = recording.meeting_uuid
    deadline = int(now + seconds)
    # A new lease, whether it starts the merge or takes over an expired one.
    fresh = {HOLDER: new_holder(), DEADLINE: deadline, "merge_mode": mode, "merge_task_arn": None}
    if recording.state == State.RECEIVED:
        try:
            return store.transition(
                uuid_,
                State.RECEIVED,
                State.MERGING,
                updates=fresh,
                count_attempt=STAGE,
            )
        except StateConflict as e:
            logger.info("merge request dropped: another request started the merge", state=e.actual)
            return None
    if recording.state != State.MERGING:
        return None
    held_by = recording.merge_lease_holder
    if continuing is not None and held_by == continuing:
        return renew_lease(store, uuid_, continuing, deadline)
    if lease_is_live(recording, now):
        logger.info(
            "merge request dropped: a live merge holds the meeting",
            lease_seconds_left=int((recording.merge_lease_deadline or 0) - now),
            merge_mode=recording.merge_mode,
        )
        return None
    try:
        taken = store.transition(
            uuid_,
            State.MERGING,
            State.MERGING,
            updates=fresh,
            count_attempt=STAGE,
            only_if={HOLDER: held_by} if held_by else None,
            only_if_below={DEADLINE: now},
        )
    except StateConflict as e:
        logger.info("merge request dropped: another request took the expired lease", state=e.actual)
        return None
    logger.warning("expired merge lease taken over; merging again", merge_mode=mode)
    return taken


def renew_lease(
    store: RecordingStore,
    meeting_uuid: str,
    holder: str,
    deadline: int,
    updates: dict[str, Any] | None = None,
) -> Recording | None:
    """Push the deadline of a lease this run holds (with `updates`); None when it was lost."""
    try:
        return store.update_fields(
            meeting_uuid,
            State.MERGING,
            {**(updates or {}), DEADLINE: deadline},
            only_if={HOLDER: holder},
        )
    except StateConflict as e:
        logger.info("merge lease lost to another run; this run stops", state=e.actual)
        return None


def release_lease(store: RecordingStore, meeting_uuid: str, holder: str) -> None:
    """Let the next request take the meeting over at once (this run failed and will be
    retried); nothing when the lease is no longer this run's."""
    try:
        store.update_fields(meeting_uuid, State.MERGING, {DEADLINE: 0}, only_if={HOLDER: holder})
    except StateConflict:
        return
