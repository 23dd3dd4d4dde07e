"""Lambda entry points: the pump (invoked asynchronously) and the reconciler (every minute)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from services.core import aws
from services.core.observability import logger, metrics
from services.core.pump import LambdaPumpNudger
from services.core.queues import QueueSender
from services.core.recordings import RecordingStore
from services.core.secrets import SecretCache, waiting_for_secrets
from services.core.settings import ReconcilerSettings, SubmitterSettings, cached_settings
from services.core.slots import SlotPool
from services.core.symbl import SymblClient, symbl_client
from services.core.transcription_jobs import JobDeps
from services.submitter.pump import PumpDeps, run_pump
from services.submitter.reconciler import ReconcilerDeps, reconcile

_pump: PumpDeps | None = None
_reconciler: ReconcilerDeps | None = None
_secrets = SecretCache()


def job_deps(settings: SubmitterSettings, speech: SymblClient) -> JobDeps:
    return JobDeps(
        store=RecordingStore.from_settings(settings),
        slots=SlotPool(settings.slots_table, settings.symbl_concurrency_limit),
        speech=speech,
        submit_queue=QueueSender(settings.submit_queue_url),
        notify_queue=QueueSender(settings.notify_queue_url),
        pump=LambdaPumpNudger(settings.pump_function_name),
        job_attempts=settings.symbl_job_attempts,
    )


def build_pump_deps(settings: SubmitterSettings, secrets: SecretCache | None = None) -> PumpDeps:
    speech = symbl_client(settings, secrets or SecretCache())
    jobs = job_deps(settings, speech)
    return PumpDeps(
        settings=settings,
        store=jobs.store,
        slots=jobs.slots,
        speech=speech,
        sqs=aws.client("sqs"),
        s3=aws.client("s3"),
        jobs=jobs,
    )


def build_reconciler_deps(
    settings: ReconcilerSettings, secrets: SecretCache | None = None
) -> ReconcilerDeps:
    jobs = job_deps(settings, symbl_client(settings, secrets or SecretCache()))
    return ReconcilerDeps(
        settings=settings,
        jobs=jobs,
        merge_queue=QueueSender(settings.merge_queue_url),
        ecs_client=lambda: aws.client("ecs"),
    )


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def pump_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _pump
    settings = cached_settings(SubmitterSettings)
    if waiting_for_secrets(_secrets, (settings.symbl_credentials_secret_arn,)):
        return {"skipped": "secret not set"}  # nothing can be submitted: the messages wait
    if _pump is None:
        _pump = build_pump_deps(settings, _secrets)
    report = run_pump(_pump)
    logger.info(
        "pump finished",
        reason=event.get("reason"),
        submitted=len(report.submitted),
        stopped_because=report.stopped_because,
    )
    return asdict(report)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def reconciler_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _reconciler
    settings = cached_settings(ReconcilerSettings)
    if waiting_for_secrets(_secrets, (settings.symbl_credentials_secret_arn,)):
        return {"skipped": "secret not set"}  # nothing reached Symbl: nothing to repair yet
    if _reconciler is None:
        _reconciler = build_reconciler_deps(settings, _secrets)
    report = reconcile(_reconciler)
    return {"repairs": report.repairs, "errors": report.errors}
