"""`FakeTranscribeState`: the jobs, the job engine (QUEUED -> IN_PROGRESS -> COMPLETED/FAILED),
the transcript output, the completion events, billing, the records tests inspect, and the knobs.

Decisions where the reference is silent:
- A job is QUEUED for `queue_seconds` (0 by default; the `delay` knob), then IN_PROGRESS: its
  media is read from S3, probed and recognised on a worker thread; it ends `processing_seconds`
  after it started, or when recognition is done if that takes longer.
- Recognition uses every template of every meeting in the registry: Transcribe is told nothing
  of the meeting (a job name and a file), so the fake finds which scripted lines the audio holds
  among all it knows. Audio holding none of them gives an empty transcript.
- DeleteTranscriptionJob removes a job in any status; an active one stops (no output, no
  event, no billing) and frees its quota slot. Its name may be used again (reuse after Delete is
  UNCONFIRMED).
- Without OutputBucketName the transcript stays in the service's bucket: the fake keeps it and
  GetTranscriptionJob answers a temporary URL on the fake's own address, valid
  `transcript_url_seconds` (15 min, §1) from that Get. With OutputBucketName the transcript is
  put there (`<OutputKey>` as given; a key ending in "/" is a folder: `<key><JobName>.json`;
  none: `<JobName>.json`); a put that fails ends the job FAILED (`OUTPUT_NOT_WRITABLE`,
  assumed). With OutputEncryptionKMSKeyId it is put with SSE-KMS and that key; if S3 refuses
  that, the refusal is recorded and the default encryption used (moto accepts any key id).
  GetTranscriptionJob does not echo the key: botocore's TranscriptionJob has no such member.
- A missing media object fails the job (`MEDIA_NOT_ACCESSIBLE`, wording assumed); whether real
  Transcribe refuses it at Start instead is UNCONFIRMED: set `missing_media_answer =
  "bad_request"` for that.
- Language identification reports the first of LanguageOptions (else en-US) with a score of 1.0.
- A job that fails bills nothing.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import logging
import secrets
import shutil
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from sandbox.fake_symbl.jobs import Duration, _draw, _Scheduler
from sandbox.fake_symbl.measure import HeardLine
from sandbox.fake_transcribe.media import MediaFailure, MediaInfo, fetch, inspect
from sandbox.fake_transcribe.model import (
    ACTIVE_STATUSES,
    CONFLICT_MESSAGE,
    DEFAULT_FAILURE,
    LIMIT_MESSAGE,
    MEDIA_NOT_ACCESSIBLE,
    NOT_FOUND_MESSAGE,
    OUTPUT_NOT_WRITABLE,
    TERMINAL_STATUSES,
    EventRecord,
    JobBilling,
    JobRecord,
    JobStatus,
    NotFoundCode,
    OutputWrite,
    StartAttempt,
    TranscribeError,
    bad_request,
)
from sandbox.fake_transcribe.transcript import HeardOccurrence, transcript_document
from sandbox.fake_transcribe.validation import StartRequest, parse_start, validate_job_name
from sandbox.fingerprint import Recogniser
from sandbox.registry import MeetingRegistry

logger = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], None]
_S3_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5)
_LIST_DEFAULT, _LIST_MAX = 5, 100


@dataclass(frozen=True)
class _Outcome:
    """What processing found: the transcript, or why the job fails."""

    failure: str | None
    info: MediaInfo | None = None
    document: dict[str, Any] | None = None
    heard: tuple[HeardLine, ...] = ()


@dataclass
class _Job:
    request: StartRequest
    params: dict[str, Any]
    created: datetime
    forced_failure: str | None  # the `fail_next` knob's reason
    status: JobStatus = "QUEUED"
    history: list[tuple[JobStatus, float]] = field(default_factory=list)
    started: datetime | None = None
    completed: datetime | None = None
    due: float | None = None  # time.monotonic() when processing may end
    outcome: _Outcome | None = None
    failure_reason: str | None = None
    output: OutputWrite | None = None
    detected_language: str | None = None

    @property
    def name(self) -> str:
        return self.request.job_name

    @property
    def output_key(self) -> str:
        key = self.request.output_key
        if key is None:
            return f"{self.name}.json"
        return f"{key}{self.name}.json" if key.endswith("/") else key


def _epoch(moment: datetime | None) -> float | None:
    return None if moment is None else round(moment.timestamp(), 3)


class FakeTranscribeState:
    """Everything the fake Transcribe knows, its configuration and its knobs; thread-safe.

    Worker threads start on construction: call `close()`, or use it as a context manager.
    Configuration attributes may be changed at any time and apply to later jobs.
    """

    def __init__(
        self,
        *,
        s3_client_factory: Callable[[], Any] | None = None,
        s3_endpoint_url: str | None = None,
        registry: MeetingRegistry | None = None,
        fingerprint_cache_dir: Path | None = None,
        processing_seconds: Duration = 0.5,
        queue_seconds: Duration = 0.0,
        concurrency_quota: int = 250,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        on_event: EventHandler | None = None,
        analysis_workers: int = 2,
    ) -> None:
        self.registry = registry
        self.processing_seconds = processing_seconds
        """Time from IN_PROGRESS to COMPLETED/FAILED (later if recognition takes longer)."""
        self.queue_seconds = queue_seconds
        """Time from QUEUED to IN_PROGRESS (the `delay` knob)."""
        self.concurrency_quota = concurrency_quota
        """QUEUED + IN_PROGRESS jobs at which Start answers LimitExceededException (§2: 250)."""
        self.region = region
        self.account_id = account_id
        self.on_event = on_event
        """Receives each "Transcribe Job State Change" envelope, as an EventBridge rule would."""
        self.event_delay_seconds = 0.0
        """Time from a job's end to its event (the `delay_events` knob)."""
        self.transcript_url_seconds = 900.0
        """Lifetime of a service-bucket TranscriptFileUri (§1: 15 min)."""
        self.missing_media_answer: Literal["failed", "bad_request"] = "failed"
        """A missing media object: the job FAILs (default) or Start answers BadRequestException."""
        self.not_found: NotFoundCode = "BadRequestException"
        """The error for an unknown job on Get/Delete (the `not_found_code` knob)."""

        self._cond = threading.Condition(threading.RLock())
        self._jobs: dict[str, _Job] = {}
        self._attempts: list[StartAttempt] = []
        self._events: list[EventRecord] = []
        self._billing: list[JobBilling] = []
        self._deleted: list[str] = []
        self._max_active = 0
        self._lose_events = 0
        self._fail_reasons: deque[str] = deque()
        self._closed = False
        self._url_key = secrets.token_bytes(32)
        self._workdir = Path(tempfile.mkdtemp(prefix="fake-transcribe-"))
        self.fingerprint_cache_dir = fingerprint_cache_dir or self._workdir / "fingerprints"
        self._s3_factory = s3_client_factory
        self._s3_endpoint_url = s3_endpoint_url
        self._s3_client: Any = None
        self._s3_lock = threading.Lock()
        self._recogniser: tuple[frozenset[str], Recogniser] | None = None
        self._recogniser_lock = threading.Lock()
        self._scheduler = _Scheduler("fake-transcribe-timers")
        self._analysis = ThreadPoolExecutor(
            max_workers=analysis_workers, thread_name_prefix="fake-transcribe-analysis"
        )
        self._sender = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="fake-transcribe-events"
        )

    # -- knobs -------------------------------------------------------------------------------

    def lose_events(self, n: int) -> None:
        """Send none of the next `n` completion events (recorded with `lost`)."""
        with self._cond:
            self._lose_events += _positive(n)

    def fail_next(self, n: int, reason: str = DEFAULT_FAILURE) -> None:
        """End the next `n` accepted jobs FAILED with `reason` (after IN_PROGRESS, media unread)."""
        with self._cond:
            self._fail_reasons.extend([reason] * _positive(n))

    def set_quota(self, n: int) -> None:
        """Concurrent (QUEUED + IN_PROGRESS) jobs the account may hold."""
        with self._cond:
            self.concurrency_quota = n

    def not_found_code(self, code: NotFoundCode) -> None:
        """Answer an unknown job on Get/Delete with `code`: BadRequestException (moto's, the
        default) or NotFoundException (botocore's model); which one AWS sends is UNCONFIRMED."""
        if code not in ("BadRequestException", "NotFoundException"):
            raise ValueError(f"code must be BadRequestException or NotFoundException, not {code}")
        with self._cond:
            self.not_found = code

    def delay(self, seconds: float) -> None:
        """Jobs started from now on stay QUEUED `seconds` before IN_PROGRESS."""
        with self._cond:
            self.queue_seconds = max(0.0, seconds)

    def delay_events(self, seconds: float) -> None:
        """Completion events go out `seconds` after the job ended (a late EventBridge)."""
        with self._cond:
            self.event_delay_seconds = max(0.0, seconds)

    # -- observation -------------------------------------------------------------------------

    @property
    def start_attempts(self) -> list[StartAttempt]:
        """Every StartTranscriptionJob in arrival order, accepted or refused."""
        with self._cond:
            return list(self._attempts)

    @property
    def events(self) -> list[EventRecord]:
        """Every completion event, sent or lost, in the order the jobs ended."""
        with self._cond:
            return list(self._events)

    @property
    def events_sent(self) -> list[EventRecord]:
        return [e for e in self.events if not e.lost]

    @property
    def events_lost(self) -> list[EventRecord]:
        return [e for e in self.events if e.lost]

    @property
    def deleted(self) -> list[str]:
        """Names of the jobs deleted, in order."""
        with self._cond:
            return list(self._deleted)

    @property
    def active(self) -> int:
        """Jobs QUEUED or IN_PROGRESS now."""
        with self._cond:
            return self._active()

    @property
    def max_active(self) -> int:
        """The most jobs ever QUEUED/IN_PROGRESS at once."""
        with self._cond:
            return self._max_active

    def billing(self) -> list[JobBilling]:
        """What each completed job bills, in completion order (deleted jobs still billed)."""
        with self._cond:
            return list(self._billing)

    def billed_seconds(self, *, with_minimum: bool = False) -> int:
        """The account's billed seconds; `with_minimum` applies the UNCONFIRMED 15 s minimum."""
        return sum(
            b.billed_seconds_with_minimum if with_minimum else b.billed_seconds
            for b in self.billing()
        )

    def job(self, name: str) -> JobRecord | None:
        with self._cond:
            job = self._jobs.get(name)
            if job is None:
                return None
            outcome = job.outcome
            return JobRecord(
                name=job.name,
                status=job.status,
                history=tuple(job.history),
                params=copy.deepcopy(job.params),
                failure_reason=job.failure_reason,
                output=job.output,
                transcript=copy.deepcopy(outcome.document)
                if outcome is not None and job.status == "COMPLETED"
                else None,
                media_seconds=outcome.info.duration if outcome and outcome.info else None,
                channels=outcome.info.channels if outcome and outcome.info else None,
                heard=outcome.heard if outcome is not None else (),
            )

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Block until `predicate()` holds (re-checked on every change; it runs under the lock)."""
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise TimeoutError(f"fake Transcribe: condition not met within {timeout} s")

    def wait_for_job(self, name: str, timeout: float = 10.0) -> JobStatus:
        """Block until the job is COMPLETED or FAILED; return that status."""

        def ended() -> bool:
            job = self._jobs.get(name)
            return job is not None and job.status in TERMINAL_STATUSES

        self.wait_for(ended, timeout)
        with self._cond:
            return self._jobs[name].status

    # -- life cycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the timers, workers and event sender; delete downloaded media."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._scheduler.stop()
        self._analysis.shutdown(wait=True, cancel_futures=True)
        self._sender.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> FakeTranscribeState:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the API (called by the HTTP layer) --------------------------------------------------

    def start(self, body: object) -> dict[str, Any]:
        """StartTranscriptionJob; every call is recorded, refused or not."""
        arrived = time.monotonic()
        params = copy.deepcopy(body) if isinstance(body, dict) else {"<body>": body}
        name = body.get("TranscriptionJobName") if isinstance(body, dict) else None
        try:
            request = parse_start(body)
            if self.missing_media_answer == "bad_request":
                self._require_media(request)
            with self._cond:
                job = self._accept(request, params)
                self._record_attempt(arrived, name, params, None)
                return {"TranscriptionJob": self._job_json(job, None)}
        except TranscribeError as exc:
            self._record_attempt(arrived, name, params, exc)
            raise

    def get(self, body: object, base_url: str) -> dict[str, Any]:
        with self._cond:
            return {"TranscriptionJob": self._job_json(self._known_job(body), base_url)}

    def delete(self, body: object) -> dict[str, Any]:
        with self._cond:
            job = self._known_job(body)
            del self._jobs[job.name]
            self._deleted.append(job.name)
            self._cond.notify_all()
        return {}

    def list_jobs(self, body: object) -> dict[str, Any]:
        if not isinstance(body, dict):
            body = {}
        status = body.get("Status")
        if status is not None and status not in ("QUEUED", "IN_PROGRESS", "FAILED", "COMPLETED"):
            raise bad_request("Status must be QUEUED, IN_PROGRESS, FAILED or COMPLETED.")
        contains = body.get("JobNameContains")
        if contains is not None:
            contains = validate_job_name(contains, "jobNameContains").lower()
        size = body.get("MaxResults", _LIST_DEFAULT)
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= _LIST_MAX:
            raise bad_request(f"MaxResults must be between 1 and {_LIST_MAX}.")
        token = body.get("NextToken")
        offset = 0
        if token is not None:
            if not isinstance(token, str) or not token.startswith("o") or not token[1:].isdigit():
                raise bad_request("The NextToken is not valid.")
            offset = int(token[1:])
        with self._cond:
            matching = [
                job
                for job in reversed(self._jobs.values())  # newest first
                if (status is None or job.status == status)
                and (contains is None or contains in job.name.lower())
            ]
            page = matching[offset : offset + size]
            answer: dict[str, Any] = {
                "TranscriptionJobSummaries": [self._summary_json(job) for job in page]
            }
        if status is not None:
            answer["Status"] = status
        if offset + size < len(matching):
            answer["NextToken"] = f"o{offset + size}"
        return answer

    def service_transcript(self, name: str, issued: str, signature: str) -> dict[str, Any] | None:
        """The transcript behind a service-bucket URL, or None (unknown, expired, forged)."""
        if not issued.isdigit() or not hmac.compare_digest(signature, self._sign(name, issued)):
            return None
        if time.time() > int(issued) + self.transcript_url_seconds:
            return None
        with self._cond:
            job = self._jobs.get(name)
            if job is None or job.status != "COMPLETED" or job.outcome is None:
                return None
            return copy.deepcopy(job.outcome.document)

    # -- Start ---------------------------------------------------------------------------------

    def _accept(self, request: StartRequest, params: dict[str, Any]) -> _Job:
        if self._closed:
            raise TranscribeError("InternalFailureException", "The service is shutting down.", 500)
        if request.job_name in self._jobs:
            raise TranscribeError("ConflictException", CONFLICT_MESSAGE)
        if self._active() >= self.concurrency_quota:
            raise TranscribeError(
                "LimitExceededException", LIMIT_MESSAGE.format(quota=self.concurrency_quota)
            )
        job = _Job(
            request=request,
            params=params,
            created=datetime.now(UTC),
            forced_failure=self._fail_reasons.popleft() if self._fail_reasons else None,
            history=[("QUEUED", time.monotonic())],
        )
        self._jobs[job.name] = job
        self._max_active = max(self._max_active, self._active())
        self._scheduler.call_later(_draw(self.queue_seconds), partial(self._begin, job))
        self._cond.notify_all()
        return job

    def _require_media(self, request: StartRequest) -> None:
        try:
            self._s3().head_object(Bucket=request.media_bucket, Key=request.media_key)
        except (ClientError, BotoCoreError) as exc:
            raise bad_request(MEDIA_NOT_ACCESSIBLE) from exc

    def _record_attempt(
        self, at: float, name: object, params: dict[str, Any], error: TranscribeError | None
    ) -> None:
        with self._cond:
            self._attempts.append(
                StartAttempt(
                    at=at,
                    job_name=name,
                    params=params,
                    active=self._active() - (error is None),
                    quota=self.concurrency_quota,
                    error_code=error.code if error is not None else None,
                    message=error.message if error is not None else None,
                )
            )
            self._cond.notify_all()

    # -- the job engine ----------------------------------------------------------------------

    def _begin(self, job: _Job) -> None:
        with self._cond:
            if self._closed or self._jobs.get(job.name) is not job:
                return
            self._transition(job, "IN_PROGRESS")
            job.started = datetime.now(UTC)
            job.due = time.monotonic() + _draw(self.processing_seconds)
            self._submit(self._analysis, partial(self._process, job))

    def _process(self, job: _Job) -> None:
        outcome = self._outcome(job)
        with self._cond:
            if self._jobs.get(job.name) is not job:
                return
            job.outcome = outcome
            remaining = (job.due or 0.0) - time.monotonic()
        if remaining > 0:
            self._scheduler.call_later(
                remaining, partial(self._submit, self._analysis, partial(self._finish, job))
            )
        else:
            self._finish(job)

    def _outcome(self, job: _Job) -> _Outcome:
        """Read, probe and recognise the media (outside the lock: it takes time)."""
        if job.forced_failure is not None:
            return _Outcome(job.forced_failure)
        request = job.request
        media: Path | None = None
        info: MediaInfo | None = None
        try:
            media = fetch(self._s3(), request.media_bucket, request.media_key, self._workdir)
            info = inspect(media, request.media_format, request.sample_rate)
            heard = self._recognise(media, info, request.channel_identification)
            document = transcript_document(
                job.name,
                self.account_id,
                heard,
                number_of_channels=info.channels if request.channel_identification else None,
            )
            return _Outcome(None, info, document, tuple(_heard_line(h) for h in heard))
        except MediaFailure as exc:
            return _Outcome(exc.reason, info)
        except Exception:
            if not self._closed:
                logger.exception("fake Transcribe could not process job %s", job.name)
            return _Outcome(DEFAULT_FAILURE, info)
        finally:
            if media is not None:
                media.unlink(missing_ok=True)

    def _recognise(self, media: Path, info: MediaInfo, per_channel: bool) -> list[HeardOccurrence]:
        recogniser = self._templates_recogniser()
        if not recogniser.templates:
            return []  # nothing scripted to hear: no need to decode the file
        if per_channel:
            return [
                HeardOccurrence(channel, occurrence)
                for channel in range(info.channels)
                for occurrence in recogniser.recognise(media, channel=channel + 1)
            ]
        return [HeardOccurrence(None, occurrence) for occurrence in recogniser.recognise(media)]

    def _templates_recogniser(self) -> Recogniser:
        """A recogniser of every template in the registry, rebuilt when the registry changes."""
        templates = self.registry.all_templates() if self.registry is not None else []
        keys = frozenset(t.key for t in templates)
        with self._recogniser_lock:
            if self._recogniser is None or self._recogniser[0] != keys:
                self._recogniser = (
                    keys,
                    Recogniser(templates, cache_dir=self.fingerprint_cache_dir),
                )
            return self._recogniser[1]

    def _finish(self, job: _Job) -> None:
        with self._cond:
            if self._closed or self._jobs.get(job.name) is not job or job.outcome is None:
                return
            outcome = job.outcome
        failure = outcome.failure
        output: OutputWrite | None = None
        if failure is None and outcome.document is not None:
            output = self._write_output(job, outcome.document)
            if output is None:
                failure = OUTPUT_NOT_WRITABLE
        with self._cond:
            if self._jobs.get(job.name) is not job:
                return  # deleted meanwhile
            job.completed = datetime.now(UTC)
            job.failure_reason = failure
            job.output = output
            if failure is None:
                request = job.request
                job.detected_language = request.language_code or (
                    request.language_options[0] if request.language_options else "en-US"
                )
                if outcome.info is not None:
                    self._billing.append(
                        JobBilling(job.name, outcome.info.duration, outcome.info.channels)
                    )
            self._transition(job, "COMPLETED" if failure is None else "FAILED")
            envelope = self._envelope(job)
            if self._lose_events > 0:
                self._lose_events -= 1
                self._events.append(EventRecord(envelope, lost=True, delivered=False, error=None))
                self._cond.notify_all()
                return
            delay = self.event_delay_seconds
        if delay > 0:
            self._scheduler.call_later(
                delay, partial(self._submit, self._sender, partial(self._deliver, envelope))
            )
        else:
            self._submit(self._sender, partial(self._deliver, envelope))

    def _write_output(self, job: _Job, document: dict[str, Any]) -> OutputWrite | None:
        """Put the transcript where the job asked; None when it cannot be put."""
        request = job.request
        if request.output_bucket is None:
            return OutputWrite(None, job.output_key, request.kms_key_id, False, None)
        put = partial(
            self._s3().put_object,
            Bucket=request.output_bucket,
            Key=job.output_key,
            Body=json.dumps(document, ensure_ascii=False).encode(),
            ContentType="application/json",
        )
        kms_error: str | None = None
        try:
            if request.kms_key_id is not None:
                try:
                    put(ServerSideEncryption="aws:kms", SSEKMSKeyId=request.kms_key_id)
                    return OutputWrite(
                        request.output_bucket, job.output_key, request.kms_key_id, True, None
                    )
                except ClientError as exc:
                    kms_error = f"{exc.response.get('Error', {}).get('Code', '')}: {exc}"
                    logger.warning("fake Transcribe: SSE-KMS put refused (%s)", kms_error)
            put()
        except (ClientError, BotoCoreError) as exc:
            logger.info("fake Transcribe cannot write the transcript of %s: %s", job.name, exc)
            return None
        return OutputWrite(
            request.output_bucket, job.output_key, request.kms_key_id, False, kms_error
        )

    def _deliver(self, envelope: dict[str, Any]) -> None:
        handler = self.on_event
        error: str | None = None
        if handler is not None:
            try:
                handler(envelope)
            except Exception as exc:
                logger.exception("fake Transcribe: the event receiver failed")
                error = f"{type(exc).__name__}: {exc}"
        with self._cond:
            self._events.append(
                EventRecord(
                    envelope,
                    lost=False,
                    delivered=handler is not None and error is None,
                    error=error,
                )
            )
            self._cond.notify_all()

    def _envelope(self, job: _Job) -> dict[str, Any]:
        """The EventBridge event of a job's end (§5)."""
        detail: dict[str, Any] = {
            "TranscriptionJobName": job.name,
            "TranscriptionJobStatus": job.status,
        }
        if job.failure_reason is not None:
            detail["FailureReason"] = job.failure_reason
        moment = job.completed or datetime.now(UTC)
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Transcribe Job State Change",
            "source": "aws.transcribe",
            "account": self.account_id,
            "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": [],
            "detail": detail,
        }

    def _transition(self, job: _Job, status: JobStatus) -> None:
        job.status = status
        job.history.append((status, time.monotonic()))
        self._cond.notify_all()

    def _submit(self, executor: Executor, task: Callable[[], None]) -> None:
        """Run `task` on `executor` unless the fake is closing."""
        if self._closed:
            return
        try:
            executor.submit(task)
        except RuntimeError:
            if not self._closed:
                raise

    # -- helpers -------------------------------------------------------------------------------

    def _active(self) -> int:
        return sum(job.status in ACTIVE_STATUSES for job in self._jobs.values())

    def _known_job(self, body: object) -> _Job:
        name = body.get("TranscriptionJobName") if isinstance(body, dict) else None
        job = self._jobs.get(validate_job_name(name))
        if job is None:
            raise TranscribeError(self.not_found, NOT_FOUND_MESSAGE)
        return job

    def _s3(self) -> Any:
        with self._s3_lock:
            if self._s3_client is None:
                if self._s3_factory is not None:
                    self._s3_client = self._s3_factory()
                else:
                    self._s3_client = boto3.session.Session().client(
                        "s3",
                        region_name=self.region,
                        endpoint_url=self._s3_endpoint_url,
                        config=_S3_CONFIG,
                    )
            return self._s3_client

    def _sign(self, name: str, issued: str) -> str:
        return hmac.new(self._url_key, f"{name}|{issued}".encode(), hashlib.sha256).hexdigest()

    def _transcript_uri(self, job: _Job, base_url: str | None) -> str | None:
        request = job.request
        if request.output_bucket is not None:
            return (
                f"https://s3.{self.region}.amazonaws.com/{request.output_bucket}/"
                f"{quote(job.output_key, safe='/')}"
            )
        if base_url is None:
            return None
        issued = str(int(time.time()))
        return (
            f"{base_url.rstrip('/')}/_transcripts/{quote(job.name)}.json"
            f"?X-Amz-Date={issued}&X-Amz-Expires={int(self.transcript_url_seconds)}"
            f"&X-Amz-Signature={self._sign(job.name, issued)}"
        )

    def _job_json(self, job: _Job, base_url: str | None) -> dict[str, Any]:
        """The documented TranscriptionJob fields that apply to this job now."""
        request = job.request
        info = job.outcome.info if job.outcome is not None else None
        answer: dict[str, Any] = {
            "TranscriptionJobName": job.name,
            "TranscriptionJobStatus": job.status,
        }
        language = request.language_code or job.detected_language
        if language is not None:
            answer["LanguageCode"] = language
        rate = request.sample_rate
        if rate is None and info is not None:
            rate = info.sample_rate
        if rate is not None:
            answer["MediaSampleRateHertz"] = rate
        media_format = request.media_format or (info.media_format if info is not None else None)
        if media_format is not None:
            answer["MediaFormat"] = media_format
        answer["Media"] = {"MediaFileUri": request.media_uri}
        uri = self._transcript_uri(job, base_url) if job.status == "COMPLETED" else None
        answer["Transcript"] = {"TranscriptFileUri": uri} if uri is not None else {}
        answer["CreationTime"] = _epoch(job.created)
        if job.started is not None:
            answer["StartTime"] = _epoch(job.started)
        if job.completed is not None:
            answer["CompletionTime"] = _epoch(job.completed)
        if job.failure_reason is not None:
            answer["FailureReason"] = job.failure_reason
        answer["Settings"] = {
            "ChannelIdentification": request.channel_identification,
            "ShowAlternatives": False,
        }
        if request.identify_language or request.identify_multiple_languages:
            key = "IdentifyLanguage" if request.identify_language else "IdentifyMultipleLanguages"
            answer[key] = True
            if request.language_options:
                answer["LanguageOptions"] = list(request.language_options)
            if job.status == "COMPLETED":
                answer["IdentifiedLanguageScore"] = 1.0
                if request.identify_multiple_languages and info is not None:
                    answer["LanguageCodes"] = [
                        {"LanguageCode": language, "DurationInSeconds": round(info.duration, 3)}
                    ]
        if request.tags:
            answer["Tags"] = [dict(tag) for tag in request.tags]
        return answer

    def _summary_json(self, job: _Job) -> dict[str, Any]:
        full = self._job_json(job, None)
        summary: dict[str, Any] = {
            key: full[key]
            for key in (
                "TranscriptionJobName",
                "CreationTime",
                "StartTime",
                "CompletionTime",
                "LanguageCode",
                "TranscriptionJobStatus",
                "FailureReason",
                "IdentifyLanguage",
                "IdentifyMultipleLanguages",
                "IdentifiedLanguageScore",
                "LanguageCodes",
            )
            if key in full
        }
        summary["OutputLocationType"] = (
            "CUSTOMER_BUCKET" if job.request.output_bucket is not None else "SERVICE_BUCKET"
        )
        return summary


def _heard_line(heard: HeardOccurrence) -> HeardLine:
    occurrence = heard.occurrence
    return HeardLine(
        template_key=occurrence.template.key,
        true_speaker=occurrence.template.speaker,
        start=round(occurrence.start, 3),
        end=round(occurrence.end, 3),
        words_heard=len(occurrence.words),
    )


def _positive(n: int) -> int:
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return n
