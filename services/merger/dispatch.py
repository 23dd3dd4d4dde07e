"""Where and when a merge runs: inside the Lambda when the meeting is small enough for its 15
minutes and 10 GB, otherwise in a Fargate task started with `ecs:RunTask`; later, when Zoom still
processes a participant file.

The dispatcher takes the meeting's merge lease first (`services.merger.lease`), so a duplicate
request finds it held and does nothing. A Fargate task runs under the dispatcher's lease: the
holder id travels in the task's container environment next to the meeting UUID, and the
dispatcher sets the lease's deadline for a task before starting it.

Waiting for a file Zoom still processes spends no SQS receive: the dispatcher refreshes the
files from the recordings API and, while any is still processing and the wait budget lasts,
sends itself a delayed copy of the request carrying its lease holder, keeps the meeting MERGING
under a lease that covers the delay, and acknowledges the original. Polling inside the
invocation would hold a Lambda (or a Fargate task) idle for minutes and could not outlast the
Lambda's 15 minutes; a delayed message costs nothing while it waits.
"""

from __future__ import annotations

import math
from enum import StrEnum

from botocore.exceptions import BotoCoreError, ClientError

from services.core.errors import NotFound, PermanentError, StateConflict, TransientError
from services.core.observability import logger
from services.core.queues import MergeRequest
from services.core.recordings import Recording, SpeakerTrack, State
from services.core.settings import MergerSettings
from services.merger.lease import HOLDER, release_lease, renew_lease, take_lease
from services.merger.merge import MergerDeps, merge_meeting

TASK_UUID_VARIABLE = "MERGE_MEETING_UUID"
TASK_LEASE_VARIABLE = "MERGE_LEASE_HOLDER"
# SQS delays a message by at most 15 minutes.
MAX_DELAY_SECONDS = 900


class Dispatch(StrEnum):
    INLINE = "inline"
    TASK = "task"
    WAITING = "waiting"  # a file is still processing at Zoom; a delayed re-check is queued
    NOTHING = "nothing"


def total_bytes(recording: Recording) -> int:
    sizes = [t.file_size or 0 for t in recording.tracks if t.status == "completed"]
    if not sizes and recording.mixed_audio is not None:
        sizes = [recording.mixed_audio.file_size or 0]
    return sum(sizes)


def needs_task(recording: Recording, settings: MergerSettings) -> bool:
    return (
        recording.duration_minutes * 60 > settings.inline_merge_max_seconds
        or total_bytes(recording) > settings.inline_merge_max_bytes
    )


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def start_task(deps: MergerDeps, meeting_uuid: str, lease_holder: str) -> str:
    """`ecs:RunTask` for one meeting, to run under `lease_holder`'s lease; returns the task ARN."""
    s = deps.settings
    if not (s.ecs_cluster and s.ecs_task_definition and s.ecs_subnets):
        raise PermanentError(
            "meeting too long for an inline merge and no Fargate task is configured "
            "(ECS_CLUSTER, ECS_TASK_DEFINITION, ECS_SUBNETS)"
        )
    try:
        response = deps.ecs_client().run_task(
            cluster=s.ecs_cluster,
            taskDefinition=s.ecs_task_definition,
            launchType="FARGATE",
            count=1,
            startedBy="merger",
            networkConfiguration={
                "awsvpcConfiguration": {
                    "subnets": _split(s.ecs_subnets),
                    "securityGroups": _split(s.ecs_security_groups),
                    "assignPublicIp": "DISABLED",
                }
            },
            overrides={
                "containerOverrides": [
                    {
                        "name": s.ecs_container_name,
                        "environment": [
                            {"name": TASK_UUID_VARIABLE, "value": meeting_uuid},
                            {"name": TASK_LEASE_VARIABLE, "value": lease_holder},
                        ],
                    }
                ]
            },
        )
    except (ClientError, BotoCoreError) as e:
        raise TransientError(f"RunTask failed: {e}") from e
    failures = response.get("failures") or []
    tasks = response.get("tasks") or []
    if failures or not tasks:
        reasons = ", ".join(str(f.get("reason")) for f in failures) or "no task started"
        raise TransientError(f"RunTask started nothing: {reasons}")
    return str(tasks[0]["taskArn"])


def _refreshed_tracks(deps: MergerDeps, recording: Recording) -> list[SpeakerTrack]:
    """The participant files with status, download URL and size as the recordings API lists
    them now; as they were when the API cannot say."""
    try:
        listed, _ = deps.recordings.get_recordings(recording.meeting_uuid)
    except (NotFound, PermanentError, TransientError) as e:
        logger.info("recordings API unavailable; file status not refreshed", reason=str(e))
        return recording.tracks
    current = {f.id: f for f in listed.participant_audio_files}
    tracks = []
    for track in recording.tracks:
        found = current.get(track.file_id)
        if found is None:
            tracks.append(track)
            continue
        tracks.append(
            track.model_copy(
                update={
                    "status": found.status or track.status,
                    "download_url": found.download_url or track.download_url,
                    "file_size": (
                        found.file_size if found.file_size is not None else track.file_size
                    ),
                }
            )
        )
    return tracks


def await_processing_files(
    deps: MergerDeps, recording: Recording, download_token: str | None
) -> Recording | Dispatch:
    """The item ready to merge; Dispatch.WAITING when a delayed re-check was queued because
    Zoom still processes a participant file and the wait budget is not spent; Dispatch.NOTHING
    when this run lost its lease meanwhile."""
    if not any(t.status == "processing" for t in recording.tracks):
        return recording
    s = deps.settings
    holder = recording.merge_lease_holder or ""
    now = deps.clock()
    wait_until = recording.processing_wait_until or int(now + s.processing_wait_seconds)
    tracks = _refreshed_tracks(deps, recording)
    processing = [t.file_id for t in tracks if t.status == "processing"]
    updates = {
        "tracks": [t.model_dump(mode="json") for t in tracks],
        "processing_wait_until": wait_until,
    }
    if not processing or now >= wait_until:
        if processing:
            logger.warning(
                "wait for processing files ran out; merging without them", files=processing
            )
        else:
            logger.info("every participant file is ready now")
        ready = renew_lease(
            deps.store, recording.meeting_uuid, holder, _deadline(deps, recording), updates
        )
        return Dispatch.NOTHING if ready is None else ready
    delay = max(1, min(s.processing_check_seconds, MAX_DELAY_SECONDS, math.ceil(wait_until - now)))
    held = renew_lease(
        deps.store,
        recording.meeting_uuid,
        holder,
        _deadline(deps, recording) + delay,
        updates,
    )
    if held is None:
        return Dispatch.NOTHING
    if deps.merge_queue is None:
        raise PermanentError("a file is still processing and no merge queue is configured to wait")
    deps.merge_queue.send(
        MergeRequest(
            meeting_uuid=recording.meeting_uuid,
            download_token=download_token,
            lease_holder=holder,
        ),
        delay_seconds=delay,
    )
    logger.info(
        "waiting for Zoom to finish processing participant files",
        files=processing,
        next_check_seconds=delay,
        wait_seconds_left=int(wait_until - now),
    )
    return Dispatch.WAITING


def _deadline(deps: MergerDeps, recording: Recording, *, task: bool | None = None) -> int:
    if task is None:
        task = needs_task(recording, deps.settings)
    seconds = deps.settings.merge_lease_seconds(recording.duration_minutes * 60, task=task)
    return int(deps.clock() + seconds)


def dispatch_merge(
    meeting_uuid: str,
    deps: MergerDeps,
    *,
    download_token: str | None = None,
    lease_holder: str | None = None,
) -> Dispatch:
    """Take the meeting's merge lease, wait for files Zoom still processes, then merge inline
    or hand the meeting to a Fargate task (then it is MERGING, mode task, under the lease).

    `lease_holder` comes only on the dispatcher's own delayed re-check: it carries on under
    that lease. A request that finds another live run holding the meeting does nothing.
    """
    recording = deps.store.get(meeting_uuid)
    if recording is None:
        raise PermanentError(f"no recording item for {meeting_uuid!r}")
    if recording.state not in (State.RECEIVED, State.MERGING):
        logger.info(
            "merge request ignored: meeting already past merging", state=recording.state.value
        )
        return Dispatch.NOTHING
    task = needs_task(recording, deps.settings)
    held = take_lease(
        deps.store,
        recording,
        seconds=deps.settings.merge_lease_seconds(recording.duration_minutes * 60, task=task),
        now=deps.clock(),
        mode="task" if task else "inline",
        continuing=lease_holder,
    )
    if held is None:
        return Dispatch.NOTHING
    holder = held.merge_lease_holder or ""
    try:
        return _dispatch_held(deps, held, holder, download_token)
    except BaseException:
        release_lease(deps.store, meeting_uuid, holder)
        raise


def _dispatch_held(
    deps: MergerDeps, recording: Recording, holder: str, download_token: str | None
) -> Dispatch:
    meeting_uuid = recording.meeting_uuid
    ready = await_processing_files(deps, recording, download_token)
    if isinstance(ready, Dispatch):
        return ready
    if not needs_task(ready, deps.settings):
        merge_meeting(meeting_uuid, deps, download_token=download_token, lease=holder)
        return Dispatch.INLINE
    handed = renew_lease(
        deps.store,
        meeting_uuid,
        holder,
        _deadline(deps, ready, task=True),
        {"merge_mode": "task"},
    )
    if handed is None:
        return Dispatch.NOTHING
    task_arn = start_task(deps, meeting_uuid, holder)
    try:
        deps.store.update_fields(
            meeting_uuid, State.MERGING, {"merge_task_arn": task_arn}, only_if={HOLDER: holder}
        )
    except StateConflict as e:
        logger.warning("task started but the lease was lost; the task will stop", state=e.actual)
        return Dispatch.NOTHING
    logger.info(
        "merge handed to a Fargate task", task=task_arn, duration_minutes=ready.duration_minutes
    )
    return Dispatch.TASK
