"""The HTTP entry point: Zoom webhook intake and health.

Everything here answers within milliseconds: verify, validate, record once, enqueue. Anything a
client sent that is wrong gets a 4xx with a JSON error and writes nothing; only our own failures
(AWS unreachable) produce a 5xx, which makes Zoom retry. Every request body is read by one parser,
`parse_json_body`, so no body can reach a route's logic in a shape the parser did not vouch for.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import PathConverter

from services.core import aws
from services.core.errors import (
    ConfigurationError,
    InsightsError,
    PermanentError,
    SecretNotSet,
    TransientError,
)
from services.core.intake import MessageSender, RecordingWriter, accept_recording
from services.core.links import checked_signing_key
from services.core.observability import logger, record_metric
from services.core.pump import LambdaPumpNudger
from services.core.queues import QueueSender
from services.core.recordings import RecordingStore
from services.core.secrets import SecretCache, SecretReader
from services.core.settings import WebhookSettings, cached_settings
from services.core.slots import SlotPool
from services.core.speech.providers import speech_provider
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
# Symbl's job callback is `{"jobId": ..., "status": ...}`, and anyone may post to its route: a small
# cap keeps unauthenticated bodies cheap to read and parse.
MAX_CALLBACK_BODY_BYTES = 64 * 1024
# Zoom's and Symbl's bodies nest 5 or 6 levels; anything much deeper is not theirs.
MAX_JSON_DEPTH = 32
# Longest integer literal accepted (a 64-bit number has 20 digits); Python's own limit is 4300.
MAX_INT_DIGITS = 40
# How long a caller should wait when a secret this deployment needs is not set yet.
SECRET_NOT_SET_RETRY_AFTER_SECONDS = 300


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
    speech = speech_provider(settings, secrets, media_bucket=settings.media_bucket)
    return WebhookDeps(
        settings=settings,
        store=store,
        merge_queue=QueueSender(settings.merge_queue_url),
        secrets=secrets,
        page=InsightsPageDeps(
            store=store,
            s3=aws.client("s3"),
            bucket=settings.media_bucket,
            signing_key=lambda: checked_signing_key(
                secrets.get_string(settings.link_signing_key_secret_arn),
                settings.link_signing_key_secret_arn,
            ),
        ),
        jobs=JobDeps(
            store=store,
            # Releasing needs no limit; acquiring happens only in the pump.
            slots=SlotPool(settings.slots_table, 1, key=speech.provider),
            speech=speech,
            submit_queue=QueueSender(settings.submit_queue_url),
            notify_queue=QueueSender(settings.notify_queue_url),
            pump=LambdaPumpNudger(settings.pump_function_name),
            job_attempts=settings.speech_job_attempts,
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


class _PathRemainder(PathConverter):
    """`<path:...>` as the rest of the path exactly as sent.

    Zoom meeting UUIDs may begin with '/' or hold '//'. Werkzeug's own path converter refuses a
    leading '/' and, with slashes merged, redirects to a path naming another meeting.
    """

    regex = r"[\s\S]+"  # any character, a newline included
    part_isolating = False


def create_app(deps: WebhookDeps | Callable[[], WebhookDeps]) -> Flask:
    """The Flask app. `deps` may be a factory, called once on the first request that needs it."""
    app = Flask(__name__, static_folder=None)  # no files to serve: no /static/<path> route
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    # Before any route exists: rules read both when they are added.
    app.url_map.merge_slashes = False
    app.url_map.converters["path"] = _PathRemainder
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

    @app.errorhandler(SecretNotSet)
    def secret_not_set(exc: SecretNotSet) -> tuple[Response, int]:
        # Expected between `terraform apply` and setting the secret: one line naming the secret
        # (never a value), no traceback, no 5xx on the Zoom webhook.
        logger.warning(
            "secret not set yet; request not processed",
            secret_id=exc.secret_id,
            route=request.endpoint,
        )
        if request.endpoint == "zoom_webhook":
            # Without the secret no signature can be checked, so the request is not provably
            # Zoom's: 401. Zoom retries any answer but 200/204 on its own schedule (5, 20, 60 min)
            # whatever the status, so a 503 would buy nothing but a page to the operators, for
            # every stray request during the deploy window.
            return _error(401, "unauthorized", "request signature cannot be verified")
        # Elsewhere the caller has already proven itself (the callback's secret path): a genuine
        # fault of this deployment, to retry once the secret is set.
        response, status = _error(503, "unavailable", "temporarily unable to process; retry later")
        response.headers["Retry-After"] = str(SECRET_NOT_SET_RETRY_AFTER_SECONDS)
        return response, status

    @app.errorhandler(PermanentError)
    def unprocessable(exc: PermanentError) -> tuple[Response, int]:
        # A signed event this system can never store (over DynamoDB's item size): Zoom's
        # retries cannot change it, so 422, logged as an error an operator must see.
        record_metric("WebhookRejected")
        logger.error("webhook event cannot be processed", error=str(exc)[:300])
        return _error(422, "unprocessable", "the event cannot be processed")

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
                logger.info("zoom event ignored", zoom_event=envelope.event[:100])
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
        if jobs.speech.provider != "symbl":
            # This deployment runs another provider: no Symbl job of ours can exist.
            raise RequestRejected(404, "not_found", "not found")
        request.max_content_length = MAX_CALLBACK_BODY_BYTES
        data = parse_json_body(request.get_data(cache=True) or b"null")
        job_id = data.get("jobId") or data.get("id") if isinstance(data, dict) else None
        if not isinstance(job_id, str) or not job_id or len(job_id) > 200:
            raise RequestRejected(400, "invalid_callback", "body must carry a jobId (or id)")
        meeting_uuid = callback_meeting(secret)
        recording = jobs.store.get(meeting_uuid) if meeting_uuid else None
        if recording is None or not secret_matches(secret, recording.callback_secret_digest):
            raise RequestRejected(404, "not_found", "not found")
        if recording.job_id not in (None, job_id):
            # The secret is this submission's, but the job is not: nothing of ours to settle.
            raise RequestRejected(404, "not_found", "not found")
        if data.get("status") in ("scheduled", "in_progress"):
            # Nothing moves for a running job, so Symbl is not asked. (A reordered delivery whose
            # job has in fact ended is settled by its terminal callback or the reconciler.)
            return jsonify(status="still running")
        if recording.job_id is None:
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
    data = parse_json_body(body)
    if not isinstance(data, dict):
        raise RequestRejected(400, "invalid_json", "body must be a JSON object")
    return data


class _NotStrictJson(ValueError):
    """Input json.loads would take but RFC 8259 interoperable JSON rules out."""


def _refuse_constant(name: str) -> Any:
    raise _NotStrictJson(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf
        raise _NotStrictJson("number out of range")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _NotStrictJson("integer too long")
    return int(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # The signature covers the bytes; with a repeated key what we read and what another parser
    # reads could differ.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _NotStrictJson("duplicate key")
    return obj


def _check_strings_and_depth(document: Any) -> None:
    """Walk the parsed document without recursion: bound its depth, and refuse strings that hold
    U+0000 or cannot be encoded again (a lone surrogate, from an escape such as `\\ud800`)."""
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            if "\x00" in value:
                raise _NotStrictJson("string holds U+0000")
            if not value.isascii():
                value.encode("utf-8")  # UnicodeEncodeError, a ValueError, for a lone surrogate
        elif isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise _NotStrictJson("nested too deeply")
            if isinstance(value, dict):
                pending.extend((key, depth) for key in value)
                value = list(value.values())
            pending.extend((item, depth + 1) for item in value)


def parse_json_body(body: bytes) -> Any:
    """The JSON document in a request body; RequestRejected(400) for anything else.

    Stricter than json.loads: UTF-8 only (json.loads would guess UTF-16 or UTF-32, BOM or not),
    no NaN or Infinity, no number beyond a float's range or past MAX_INT_DIGITS digits, no
    duplicate keys, no lone surrogates or U+0000 in strings, at most MAX_JSON_DEPTH levels.
    Whatever malformed input makes the parser itself raise (RecursionError for deep nesting,
    ValueError in its many forms) is the client's error too, answered 400 and logged without a
    traceback.
    """
    try:
        text = body.decode("utf-8")
        document = json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
            object_pairs_hook=_unique_keys,
        )
        _check_strings_and_depth(document)
    except (RecursionError, ValueError) as e:  # JSONDecodeError and UnicodeError are ValueErrors
        raise RequestRejected(400, "invalid_json", "body is not valid JSON") from e
    return document
