"""Lambda entry point of the notifier: the notify queue's event source."""

from __future__ import annotations

from typing import Any

from services.core import aws
from services.core.insights.render import render_email
from services.core.links import checked_signing_key
from services.core.observability import logger, metrics
from services.core.queues import NotifyRequest, QueueSender
from services.core.recordings import RecordingStore
from services.core.secrets import SECRET_WAIT_SECONDS, SecretCache, waiting_for_secrets
from services.core.settings import NotifierSettings, cached_settings
from services.core.speech.providers import speech_provider
from services.core.speech.symbl_provider import SymblWaits
from services.core.sqs_consumer import consume_stage_batch
from services.notifier.notify import NotifierDeps, SesMailer, give_up, notify_meeting

_deps: NotifierDeps | None = None
_secrets = SecretCache()


def build_deps(settings: NotifierSettings, secrets: SecretCache | None = None) -> NotifierDeps:
    """The notifier's dependencies. The link-signing key is read here once, so that a key too
    short to sign with stops the notifier at start (ConfigurationError naming the secret), and
    checked again on every later read (a rotated value included)."""
    secrets = secrets or SecretCache()
    key_arn = settings.link_signing_key_secret_arn

    def link_key() -> str:
        return checked_signing_key(secrets.get_string(key_arn), key_arn)

    link_key()
    return NotifierDeps(
        settings=settings,
        store=RecordingStore.from_settings(settings),
        speech=speech_provider(
            settings,
            secrets,
            media_bucket=settings.media_bucket,
            waits=SymblWaits(
                speaker_retry_seconds=settings.speaker_retry_seconds,
                speaker_max_checks=settings.speaker_max_checks,
                summary_retry_seconds=settings.summary_retry_seconds,
                summary_max_checks=settings.summary_max_checks,
            ),
        ),
        s3=aws.client("s3"),
        mailer=SesMailer(),
        render=render_email,
        sns=aws.client("sns"),
        notify_queue=QueueSender(settings.notify_queue_url),
        link_key=link_key,
    )


def _notify(request: NotifyRequest, deps: NotifierDeps) -> None:
    outcome = notify_meeting(request.meeting_uuid, deps)
    logger.info("notify request handled", outcome=outcome)


def handle_batch(event: dict[str, Any], deps: NotifierDeps) -> dict[str, Any]:
    return consume_stage_batch(
        event,
        NotifyRequest,
        lambda request: _notify(request, deps),
        lambda uuid, reason: give_up(uuid, reason, deps),
        queue_url=deps.settings.notify_queue_url,
        max_receive_count=deps.settings.max_receive_count,
        sqs=aws.client("sqs"),
    )


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _deps
    settings = cached_settings(NotifierSettings)
    needed = (*settings.provider_secret_arns, settings.link_signing_key_secret_arn)
    if waiting_for_secrets(_secrets, needed):
        return QueueSender(settings.notify_queue_url).defer_batch(event, SECRET_WAIT_SECONDS)
    if _deps is None:
        _deps = build_deps(settings, _secrets)
    return handle_batch(event, _deps)
