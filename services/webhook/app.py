"""The HTTP entry point: Zoom webhook intake and health.

Everything here answers within milliseconds: verify, validate, record once, enqueue. Anything a
client sent that is wrong gets a 4xx with a JSON error and writes nothing; only our own failures
(AWS unreachable) produce a 5xx, which makes Zoom retry.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, NotFound

from services.core import aws
from services.core.errors import ConfigurationError, InsightsError, TransientError
from services.core.intake import MessageSender, RecordingWriter, accept_recording
from services.core.observability import logger, record_metric
from services.core.pump import LambdaPumpNudger
from services.core.queues import QueueSender
from services.core.recordings import RecordingStore
from services.core.secrets import SecretCache, SecretReader
from services.core.settings import WebhookSettings, cached_settings
from services.core.slots import SlotPool
from services.core.symbl import symbl_client
from services.core.transcription_jobs import (
    JobDeps,
    callback_meeting,
    secret_matches,
    settle_job,
)
from services.core.zoom_models import RecordingCompletedEvent, UrlValidationEvent, ZoomEnvelope
from services.webhook.insights_page import InsightsPageDeps, insights_blueprint
from services.webhook.zoom_signature import (
    SignatureRejected,
    TimestampWindow,
    url_validation_token,
    verify_zoom_signature,
)

MAX_BODY_BYTES = 1024 * 1024


@dataclass
class WebhookDeps:
    """What the app talks to; tests pass their own."""

    settings: WebhookSettings
    store: RecordingWriter
    merge_queue: MessageSender
    secrets: SecretReader
    jobs: JobDeps | None = None  # the Symbl callback's collaborators
    page: InsightsPageDeps | None = None  # the insights page's collaborators
    clock: Callable[[], float] = field(default=time.time)


def build_deps(settings: WebhookSettings | None = None) -> WebhookDeps:
    settings = settings or cached_settings(WebhookSettings)
    store = RecordingStore.from_settings(settings)
    secrets = SecretCache(ttl_seconds=settings.secret_cache_seconds)
    speech = symbl_client(settings, secrets)
    return WebhookDeps(
        settings=settings,
        store=store,
        merge_queue=QueueSender(settings.merge_queue_url),
        secrets=secrets,
        page=InsightsPageDeps(
            store=store,
            s3=aws.client("s3"),
            bucket=settings.media_bucket,
            signing_key=lambda: secrets.get_string(settings.link_signing_key_secret_arn),
        ),
        jobs=JobDeps(
            store=store,
            # Releasing needs no limit; acquiring happens only in the pump.
            slots=SlotPool(settings.slots_table, 1),
            speech=speech,
            submit_queue=QueueSender(settings.submit_queue_url),
            notify_queue=QueueSender(settings.notify_queue_url),
            pump=LambdaPumpNudger(settings.pump_function_name),
            job_attempts=settings.symbl_job_attempts,
        ),
    )


class RequestRejected(Exception):
    """A request answered with a 4xx (or 503) and a JSON error, having written nothing."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def _error(status: int, error: str, message: str) -> tuple[Response, int]:
    return jsonify(error=error, message=message), status


def _validation_summary(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:10]:
        location = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{location}: {err['msg']}")
    return "; ".join(parts)


def create_app(deps: WebhookDeps | Callable[[], WebhookDeps]) -> Flask:
    """The Flask app. `deps` may be a factory, called once on the first request that needs it."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]
    resolved: list[WebhookDeps] = []

    def get_deps() -> WebhookDeps:
        if not resolved:
            resolved.append(deps if isinstance(deps, WebhookDeps) else deps())
        return resolved[0]

    @app.errorhandler(RequestRejected)
    def client_error(exc: RequestRejected) -> tuple[Response, int]:
        record_metric("WebhookRejected")
        logger.info("webhook rejected", status=exc.status, reason=exc.error)
        return _error(exc.status, exc.error, exc.message)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        name = (exc.name or "error").lower().replace(" ", "_")
        return _error(status, name, exc.description or name)

    @app.errorhandler(TransientError)
    def transient(exc: TransientError) -> tuple[Response, int]:
        logger.warning("webhook could not be processed now", error=type(exc).__name__)
        return _error(503, "unavailable", "temporarily unable to process; retry later")

    @app.errorhandler(ConfigurationError)
    def misconfigured(exc: ConfigurationError) -> tuple[Response, int]:
        logger.error("webhook misconfigured", error=str(exc))
        return _error(500, "misconfigured", "the service is misconfigured")

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        if isinstance(exc, InsightsError):
            logger.error("webhook failed", error=type(exc).__name__)
        else:
            logger.exception("webhook failed unexpectedly")
        return _error(500, "internal_error", "internal error")

    def page_deps() -> InsightsPageDeps:
        page = get_deps().page
        if page is None:
            raise NotFound()
        return page

    app.register_blueprint(insights_blueprint(page_deps))

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @app.post("/zoom/webhook")
    def zoom_webhook() -> Any:
        d = get_deps()
        body = request.get_data(cache=True)
        secret = d.secrets.get_string(d.settings.zoom_webhook_secret_arn)
        try:
            verify_zoom_signature(
                secret_token=secret,
                timestamp_header=request.headers.get("x-zm-request-timestamp"),
                signature_header=request.headers.get("x-zm-signature"),
                body=body,
                now=d.clock(),
                window=TimestampWindow(
                    d.settings.zoom_webhook_max_age_seconds,
                    d.settings.zoom_webhook_max_future_skew_seconds,
                ),
            )
        except SignatureRejected as e:
            raise RequestRejected(401, "unauthorized", str(e)) from e
        data = _json_object(body)
        try:
            envelope = ZoomEnvelope.model_validate(data)
            if envelope.event == "endpoint.url_validation":
                challenge = UrlValidationEvent.model_validate(data)
                plain = challenge.payload.plainToken
                return jsonify(plainToken=plain, encryptedToken=url_validation_token(secret, plain))
            if envelope.event != "recording.completed":
                logger.info("zoom event ignored", zoom_event=envelope.event)
                record_metric("WebhookIgnored")
                return jsonify(status="ignored", event=envelope.event)
            event = RecordingCompletedEvent.model_validate(data)
        except ValidationError as e:
            raise RequestRejected(400, "invalid_event", _validation_summary(e)) from e
        result = accept_recording(
            event.payload.object,
            download_token=event.download_token,
            store=d.store,
            merge_queue=d.merge_queue,
        )
        record_metric("WebhookAccepted" if result.outcome == "accepted" else "WebhookDuplicate")
        return jsonify(status=result.outcome.value, meeting_uuid=result.meeting_uuid)

    @app.post("/symbl/callback/<secret>")
    def symbl_callback(secret: str) -> Any:
        """Symbl's job-status webhook. Its body is only a hint: the status is confirmed with
        `GET /v1/job/{id}` before anything moves. The secret in the path is per recording; a
        wrong one gets the same 404 as an unknown job, so nothing is revealed."""
        jobs = get_deps().jobs
        if jobs is None:
            raise RequestRejected(503, "unavailable", "callback handling is not configured")
        try:
            data = json.loads(request.get_data(cache=True) or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RequestRejected(400, "invalid_json", "body is not valid JSON") from e
        job_id = data.get("jobId") or data.get("id") if isinstance(data, dict) else None
        if not isinstance(job_id, str) or not job_id or len(job_id) > 200:
            raise RequestRejected(400, "invalid_callback", "body must carry a jobId (or id)")
        meeting_uuid = callback_meeting(secret)
        recording = jobs.store.get(meeting_uuid) if meeting_uuid else None
        if recording is None or not secret_matches(secret, recording.callback_secret_digest):
            raise RequestRejected(404, "not_found", "not found")
        if recording.symbl_job_id not in (None, job_id):
            # The secret is this submission's, but the job is not: nothing of ours to settle.
            raise RequestRejected(404, "not_found", "not found")
        if data.get("status") in ("scheduled", "in_progress"):
            # Nothing moves for a running job, so Symbl is not asked. (A reordered delivery whose
            # job has in fact ended is settled by its terminal callback or the reconciler.)
            return jsonify(status="still running")
        if recording.symbl_job_id is None:
            # Symbl answered the submit but the pump has not recorded the job yet: the pump asks
            # for the job's status once it has, and settles an ended job itself.
            return jsonify(status="not recorded yet")
        status = jobs.speech.job_status(job_id)
        logger.append_keys(meeting_uuid=recording.meeting_uuid)
        outcome = settle_job(recording, status, jobs)
        logger.info("Symbl callback", job_id=job_id, status=status.value, outcome=outcome)
        return jsonify(status=outcome)

    return app


def _json_object(body: bytes) -> dict[str, Any]:
    if request.mimetype != "application/json":
        raise RequestRejected(
            400, "unsupported_content_type", "Content-Type must be application/json"
        )
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RequestRejected(400, "invalid_json", "body is not valid JSON") from e
    if not isinstance(data, dict):
        raise RequestRejected(400, "invalid_json", "body must be a JSON object")
    return data
