"""Lambda entry point of the merger: the merge queue's event source."""

from __future__ import annotations

from typing import Any

from services.core import aws
from services.core.observability import logger, metrics
from services.core.queues import MergeRequest, QueueSender
from services.core.secrets import SECRET_WAIT_SECONDS, SecretCache, waiting_for_secrets
from services.core.settings import MergerSettings, cached_settings
from services.core.sqs_consumer import consume_stage_batch
from services.merger.dispatch import dispatch_merge
from services.merger.merge import MergerDeps, build_deps, fail_merge

_deps: MergerDeps | None = None
_secrets = SecretCache()


def handle_batch(event: dict[str, Any], deps: MergerDeps) -> dict[str, Any]:
    return consume_stage_batch(
        event,
        MergeRequest,
        lambda request: dispatch_merge(
            request.meeting_uuid,
            deps,
            download_token=request.download_token,
            lease_holder=request.lease_holder,
        ),
        lambda uuid, reason: fail_merge(deps.store, uuid, reason),
        queue_url=deps.settings.merge_queue_url,
        max_receive_count=deps.settings.max_receive_count,
        sqs=aws.client("sqs"),
    )


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _deps
    settings = cached_settings(MergerSettings)
    if waiting_for_secrets(_secrets, (settings.zoom_s2s_secret_arn,)):
        return QueueSender(settings.merge_queue_url).defer_batch(event, SECRET_WAIT_SECONDS)
    if _deps is None:
        _deps = build_deps(settings)
    return handle_batch(event, _deps)
