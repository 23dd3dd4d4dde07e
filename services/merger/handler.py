"""Lambda entry point of the merger: the merge queue's event source."""

from __future__ import annotations

from typing import Any

from services.core import aws
from services.core.errors import PermanentError
from services.core.observability import logger, metrics
from services.core.queues import MergeRequest, parse_message
from services.core.settings import MergerSettings, cached_settings
from services.core.sqs_consumer import SqsRecord, consume_batch
from services.merger.dispatch import dispatch_merge
from services.merger.merge import MergerDeps, build_deps, fail_merge

_deps: MergerDeps | None = None


def _meeting(record: SqsRecord) -> str:
    try:
        return parse_message(MergeRequest, record.body).meeting_uuid
    except ValueError:
        return ""


def handle_batch(event: dict[str, Any], deps: MergerDeps) -> dict[str, Any]:
    def handle(record: SqsRecord) -> None:
        try:
            request = parse_message(MergeRequest, record.body)
        except ValueError as e:
            raise PermanentError(f"malformed merge request: {e}") from e
        logger.append_keys(meeting_uuid=request.meeting_uuid)
        try:
            dispatch_merge(request.meeting_uuid, deps, download_token=request.download_token)
        finally:
            logger.remove_keys(["meeting_uuid"])

    def on_failure(record: SqsRecord, error: Exception) -> None:
        uuid = _meeting(record)
        if uuid:
            fail_merge(deps.store, uuid, f"{type(error).__name__}: {error}")

    return consume_batch(
        event,
        handle,
        queue_url=deps.settings.merge_queue_url,
        max_receive_count=deps.settings.max_receive_count,
        on_permanent=on_failure,
        on_give_up=on_failure,
        sqs=aws.client("sqs"),
    )


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _deps
    if _deps is None:
        _deps = build_deps(cached_settings(MergerSettings))
    return handle_batch(event, _deps)
