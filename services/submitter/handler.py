"""Lambda entry points: the pump (invoked asynchronously), the reconciler (every minute) and the
job-events consumer (Transcribe's EventBridge events through their queue)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from services.core import aws
from services.core.errors import PermanentError
from services.core.observability import logger, metrics
from services.core.pump import LambdaPumpNudger
from services.core.queues import QueueSender
from services.core.recordings import RecordingStore
from services.core.secrets import SecretCache, waiting_for_secrets
from services.core.settings import (
    JobEventsSettings,
    ReconcilerSettings,
    SubmitterSettings,
    cached_settings,
)
from services.core.slots import SlotPool
from services.core.speech.provider import SpeechAnalytics
from services.core.speech.providers import speech_provider
from services.core.sqs_consumer import SqsRecord, consume_batch
from services.core.transcription_jobs import JobDeps
from services.submitter.job_events import handle_job_event
from services.submitter.pump import PumpDeps, run_pump
from services.submitter.reconciler import ReconcilerDeps, reconcile

_pump: PumpDeps | None = None
_reconciler: ReconcilerDeps | None = None
_job_events: tuple[JobEventsSettings, JobDeps] | None = None
_secrets = SecretCache()


def job_deps(
    settings: SubmitterSettings | JobEventsSettings, speech: SpeechAnalytics, limit: int = 1
) -> JobDeps:
    """What settling a job needs. The slot pool is the provider's own; only the pump acquires,
    so the others may leave the limit at 1 (releasing needs none)."""
    return JobDeps(
        store=RecordingStore.from_settings(settings),
        slots=SlotPool(settings.slots_table, limit, key=speech.provider),
        speech=speech,
        submit_queue=QueueSender(settings.submit_queue_url),
        notify_queue=QueueSender(settings.notify_queue_url),
        pump=LambdaPumpNudger(settings.pump_function_name),
        job_attempts=settings.speech_job_attempts,
    )


def build_pump_deps(settings: SubmitterSettings, secrets: SecretCache | None = None) -> PumpDeps:
    speech = speech_provider(settings, secrets or SecretCache(), media_bucket=settings.media_bucket)
    jobs = job_deps(settings, speech, settings.concurrency_limit)
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
    speech = speech_provider(settings, secrets or SecretCache(), media_bucket=settings.media_bucket)
    jobs = job_deps(settings, speech, settings.concurrency_limit)
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
    if waiting_for_secrets(_secrets, settings.provider_secret_arns):
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
    if waiting_for_secrets(_secrets, settings.provider_secret_arns):
        return {"skipped": "secret not set"}  # nothing reached the provider: nothing to repair
    if _reconciler is None:
        _reconciler = build_reconciler_deps(settings, _secrets)
    report = reconcile(_reconciler)
    return {"repairs": report.repairs, "errors": report.errors}


def build_job_events_deps(settings: JobEventsSettings) -> JobDeps:
    """Transcribe's events are about Transcribe's jobs whatever SPEECH_PROVIDER says now: a job
    started before a switch is still confirmed, and its slot freed, in the AWS pool."""
    return job_deps(settings, speech_provider(settings, _secrets, provider="aws"))


def handle_job_events(
    event: dict[str, Any], settings: JobEventsSettings, deps: JobDeps
) -> dict[str, Any]:
    """One batch of the job-events queue. An event that is not one of ours, or malformed, is
    acknowledged (logged); a failure to settle is retried, and once its receives are spent the
    event goes to the DLQ: the reconciler still asks about the job, so nothing waits on it."""

    def handle(record: SqsRecord) -> None:
        outcome = handle_job_event(record.body, deps, settings.stack_name)
        logger.info("job event handled", outcome=outcome)

    def dropped(record: SqsRecord, error: PermanentError) -> None:
        logger.warning("job event dropped", message_id=record.message_id, reason=str(error))

    def given_up(record: SqsRecord, error: Exception) -> None:
        logger.error(
            "job event not settled; the reconciler will ask about the job",
            message_id=record.message_id,
        )

    return consume_batch(
        event,
        handle,
        queue_url=settings.job_events_queue_url,
        max_receive_count=settings.max_receive_count,
        on_permanent=dropped,
        on_give_up=given_up,
        sqs=aws.client("sqs"),
    )


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def job_events_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _job_events
    if _job_events is None:
        settings = cached_settings(JobEventsSettings)
        _job_events = (settings, build_job_events_deps(settings))
    settings, deps = _job_events
    return handle_job_events(event, settings, deps)
