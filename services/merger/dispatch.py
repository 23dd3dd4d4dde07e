"""Where a merge runs: inside the Lambda when the meeting is small enough for its 15 minutes and
10 GB, otherwise in a Fargate task started with `ecs:RunTask`."""

from __future__ import annotations

from enum import StrEnum

from botocore.exceptions import BotoCoreError, ClientError

from services.core.errors import PermanentError, StateConflict, TransientError
from services.core.observability import logger
from services.core.recordings import Recording, State
from services.core.settings import MergerSettings
from services.merger.merge import STAGE, MergerDeps, merge_meeting

TASK_UUID_VARIABLE = "MERGE_MEETING_UUID"


class Dispatch(StrEnum):
    INLINE = "inline"
    TASK = "task"
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


def start_task(deps: MergerDeps, meeting_uuid: str) -> str:
    """`ecs:RunTask` for one meeting; returns the task ARN."""
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
                        "environment": [{"name": TASK_UUID_VARIABLE, "value": meeting_uuid}],
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


def dispatch_merge(
    meeting_uuid: str, deps: MergerDeps, *, download_token: str | None = None
) -> Dispatch:
    """Merge inline, or hand the meeting to a Fargate task (then it is MERGING, mode task)."""
    recording = deps.store.get(meeting_uuid)
    if recording is None:
        raise PermanentError(f"no recording item for {meeting_uuid!r}")
    if recording.state not in (State.RECEIVED, State.MERGING):
        logger.info(
            "merge request ignored: meeting already past merging", state=recording.state.value
        )
        return Dispatch.NOTHING
    if not needs_task(recording, deps.settings):
        merge_meeting(meeting_uuid, deps, download_token=download_token)
        return Dispatch.INLINE
    if recording.state == State.MERGING and recording.merge_task_arn:
        logger.info("merge already running in a task", task=recording.merge_task_arn)
        return Dispatch.NOTHING
    if recording.state == State.RECEIVED:
        try:
            deps.store.transition(
                meeting_uuid,
                State.RECEIVED,
                State.MERGING,
                updates={"merge_mode": "task"},
                count_attempt=STAGE,
            )
        except StateConflict:
            return Dispatch.NOTHING
    task_arn = start_task(deps, meeting_uuid)
    deps.store.update_fields(meeting_uuid, State.MERGING, {"merge_task_arn": task_arn})
    logger.info(
        "merge handed to a Fargate task", task=task_arn, duration_minutes=recording.duration_minutes
    )
    return Dispatch.TASK
