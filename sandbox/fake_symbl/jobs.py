"""Jobs: submissions and their validation, the concurrency limit and its 429, the job life
cycle's timers, the webhook (callback) sender, and the records tests inspect.

Decisions where the reference is silent:
- Concurrency slot: checked before the download (quick 429 without fetching anything) and checked
  again atomically with acceptance. A submission holds a slot only from its accepting (201 or a
  lost answer) until its job is `completed` or `failed`, so concurrent submits can never exceed
  the limit. Because the fake itself refuses the surplus, every submit is also recorded as it
  arrives (`submit_attempts`): one that arrives while the account already runs `limit` jobs whose
  201 the client received is in `over_limit_attempts`, the client's own count having failed.
- Only body fields are validated synchronously (400, §2.1, §5), plus the §6 limits that need the
  file (duration, channel count, `channelMetadata` beyond the file's channels). Media that cannot
  be fetched (a redirect, an error status, nothing listening) or decoded (not audio, empty, an
  HTML page) is accepted with 201, as the async API does, and its job goes `failed` after
  `in_progress`, with the callbacks; `job(...).error` says why.
- Optional body fields must have their documented type when present: JSON null is refused with
  400 (omit the field instead).
- Webhooks go out on every status change after acceptance (`in_progress`, then `completed` or
  `failed`); acceptance itself is not a change. One POST per change, never retried; each attempt
  is recorded.
- Jobs appended to a conversation (PUT) run one at a time in order (§2.3); the appended file's
  timeline continues after the previous files.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import queue
import random
import socket
import subprocess
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import requests
from flask import Flask, Response, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.http import HTTP_STATUS_CODES

from sandbox.fake_symbl.faults import _Fault
from sandbox.fake_symbl.measure import HeardLine
from sandbox.fake_symbl.model import _error, _Message, _Rejected
from sandbox.fake_symbl.recogniser import AudioInfo, _download, _Plan, probe_audio

if TYPE_CHECKING:
    from sandbox.fake_symbl.state import FakeSymblState

logger = logging.getLogger(__name__)

JobStatus = Literal["scheduled", "in_progress", "completed", "failed"]
Duration = float | Callable[[], float]
"""Seconds a job spends in a state: a constant, or a callable drawn once per job."""

ACTIVE_STATUSES: frozenset[str] = frozenset({"scheduled", "in_progress"})
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed"})
_CONCURRENCY_MESSAGE = (
    "This API has a limit of maximum of `{limit}` number of concurrent jobs per account. If you are"
    " looking to scale, and need more concurrent jobs than this limit, please contact us at"
    " support@symbl.ai"
)


# ---------------------------------------------------------------------------------------------
# Records a test can inspect
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    """An accepted POST/PUT of audio, as received: lets tests assert what the pipeline sent."""

    job_id: str
    conversation_id: str
    url: str
    name: str
    channel_metadata: list[dict[str, Any]]
    options: dict[str, Any]  # every other body field, as sent (flags, webhookUrl, ...)
    appended: bool
    answer_lost: bool = False  # accepted, but `lose_submit_answers` kept the 201 from the client


@dataclass(frozen=True)
class SubmitAttempt:
    """A POST/PUT of audio as it arrived, whatever came of it: lets tests prove that the client's
    own count, not the fake's 429, kept the account within its concurrency limit."""

    at: float  # time.monotonic() on arrival
    running: int  # jobs `scheduled`/`in_progress` on arrival
    running_answered: int  # of those, the jobs whose 201 reached the client
    limit: int
    forced_429: bool  # refused by the `http_429` knob (another client holding the slots)
    status: int | None  # the answer; None when the connection was closed without one
    job_id: str | None  # the job it created, if any

    @property
    def at_limit(self) -> bool:
        """Arrived while the account ran `limit` jobs (whatever their answers)."""
        return not self.forced_429 and self.running >= self.limit

    @property
    def over_limit(self) -> bool:
        """Arrived while the account ran `limit` jobs the client knew of: its count was wrong."""
        return not self.forced_429 and self.running_answered >= self.limit


@dataclass(frozen=True)
class DuplicateJob:
    """A job for a conversation name that already had one (a meeting submitted again)."""

    submission: Submission
    after_lost_answer: bool  # the name's previous job was accepted but its answer lost


@dataclass(frozen=True)
class Rejection:
    """A refused submit (400/404/429): lets tests see the pipeline's retries and mistakes."""

    status: int
    message: str
    url: str | None
    conversation_id: str | None


@dataclass(frozen=True)
class WebhookAttempt:
    """One job-status callback the fake tried (or, under `drop_webhooks`, chose not) to send."""

    job_id: str
    url: str
    payload: dict[str, str]
    status_changed_at: float  # time.monotonic() of the status change
    attempted_at: float  # time.monotonic() when the POST finished (or was dropped)
    status_code: int | None  # None when dropped or when the POST failed
    error: str | None
    dropped: bool


@dataclass(frozen=True)
class JobRecord:
    """A job's current status and every status it had, with time.monotonic() timestamps."""

    id: str
    conversation_id: str
    status: JobStatus
    history: tuple[tuple[JobStatus, float], ...]
    error: str | None = None  # why a `failed` job failed (the fake's own diagnosis)


# ---------------------------------------------------------------------------------------------
# Internal model
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Delivery:
    job_id: str
    url: str
    payload: dict[str, str]
    status_changed_at: float
    timeout: float


@dataclass
class _Arrival:
    """The account as a submit arrived; completed into a `SubmitAttempt` once answered."""

    at: float
    running: int
    running_answered: int
    limit: int
    forced_429: bool = False
    job_id: str | None = None


@dataclass(frozen=True)
class _Accepted:
    conversation_id: str
    job_id: str
    lost_answer: _Fault | None  # the `lose_submit_answers` knob fired for this job


@dataclass
class _Job:
    id: str
    conversation_id: str
    submission: Submission
    plan: _Plan
    audio: Path | None  # the downloaded file, deleted as soon as it is analysed
    info: AudioInfo
    time_offset: float  # where this file starts on the conversation's timeline
    fail: bool
    reorder_webhooks: bool
    answer_lost: bool = False
    status: JobStatus = "scheduled"
    history: list[tuple[JobStatus, float]] = field(default_factory=list)
    queued: bool = False  # the scheduled -> in_progress delay has elapsed
    processing_due: bool = False  # the in_progress -> terminal delay has elapsed
    messages: list[_Message] | None = None
    heard: list[HeardLine] = field(default_factory=list)  # lines recognised by content
    analysis_error: str | None = None
    held_delivery: _Delivery | None = None

    @property
    def billed_seconds(self) -> float:
        """Duration x channels once completed (§6); a job that did not complete bills nothing."""
        if self.status != "completed":
            return 0.0
        return self.info.duration * self.info.channels


# ---------------------------------------------------------------------------------------------
# Background machinery
# ---------------------------------------------------------------------------------------------


class _Scheduler:
    """One thread that runs callbacks at monotonic deadlines (job timers, delayed webhooks)."""

    def __init__(self, name: str) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._sequence = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        with self._cond:
            if self._stopped:
                return
            due = time.monotonic() + max(0.0, delay)
            heapq.heappush(self._heap, (due, next(self._sequence), callback))
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                _, _, callback = heapq.heappop(self._heap)
            try:
                callback()
            except Exception:
                logger.exception("fake Symbl timer callback failed")


class _WebhookSender:
    """Worker threads that POST job callbacks; a job always uses the same worker, so its
    callbacks leave in the order they were queued."""

    def __init__(
        self,
        workers: int,
        on_attempt: Callable[[_Delivery, int | None, str | None], None],
    ) -> None:
        self._on_attempt = on_attempt
        self._closing = threading.Event()
        self._inboxes: list[queue.SimpleQueue[_Delivery | None]] = [
            queue.SimpleQueue() for _ in range(max(1, workers))
        ]
        self._threads = [
            threading.Thread(
                target=self._run, args=(inbox,), name=f"fake-symbl-webhook-{i}", daemon=True
            )
            for i, inbox in enumerate(self._inboxes)
        ]
        for thread in self._threads:
            thread.start()

    def send(self, delivery: _Delivery) -> None:
        index = zlib.crc32(delivery.job_id.encode()) % len(self._inboxes)
        self._inboxes[index].put(delivery)

    def stop(self) -> None:
        self._closing.set()
        for inbox in self._inboxes:
            inbox.put(None)
        for thread in self._threads:
            thread.join(timeout=10)

    def _run(self, inbox: queue.SimpleQueue[_Delivery | None]) -> None:
        while (delivery := inbox.get()) is not None:
            if self._closing.is_set():
                continue
            try:
                response = requests.post(
                    delivery.url, json=delivery.payload, timeout=delivery.timeout
                )
            except requests.RequestException as exc:
                self._on_attempt(delivery, None, f"{type(exc).__name__}: {exc}")
            else:
                response.close()
                self._on_attempt(delivery, response.status_code, None)


def seeded_uniform(low: float, high: float, seed: int) -> Callable[[], float]:
    """Job durations drawn uniformly from [low, high], the same sequence on every run."""
    rng = random.Random(seed)
    lock = threading.Lock()

    def draw() -> float:
        with lock:
            return rng.uniform(low, high)

    return draw


def _draw(duration: Duration) -> float:
    return max(0.0, duration() if callable(duration) else float(duration))


# ---------------------------------------------------------------------------------------------
# Submission: validation
# ---------------------------------------------------------------------------------------------


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_threshold(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return 0.5 <= value <= 1.0


def _is_speaker_count(value: object) -> bool:
    # One doc version types diarizationSpeakerCount as a string (§2.1).
    if isinstance(value, str):
        return value.isdigit() and int(value) >= 1
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_entity_list(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(e, dict)
        and all(isinstance(e.get(k), str) for k in ("customType", "value", "text"))
        for e in value
    )


def _is_tracker_list(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(t, dict) and isinstance(t.get("name"), str) and _is_str_list(t.get("vocabulary"))
        for t in value
    )


_OPTIONAL_FIELDS: dict[str, tuple[Callable[[object], bool], str]] = {
    "name": (_is_str, "a string"),
    "webhookUrl": (_is_str, "a string"),
    "customVocabulary": (_is_str_list, "an array of strings"),
    "confidenceThreshold": (_is_threshold, "a number between 0.5 and 1.0"),
    "detectPhrases": (_is_bool, "a boolean"),
    "entities": (_is_entity_list, "an array of {customType, value, text} strings"),
    "detectEntities": (_is_bool, "a boolean"),
    "languageCode": (_is_str, "a string"),
    "mode": (lambda v: v in ("phone", "default"), 'either "phone" or "default"'),
    "enableSeparateRecognitionPerChannel": (_is_bool, "a boolean"),
    "enableSpeakerDiarization": (_is_bool, "a boolean"),
    "diarizationSpeakerCount": (_is_speaker_count, "a positive integer"),
    "trackers": (_is_tracker_list, "an array of {name, vocabulary[]}"),
    "enableAllTrackers": (_is_bool, "a boolean"),
    "enableSummary": (_is_bool, "a boolean"),
}


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _validate_submission(body: dict[str, Any]) -> str | None:
    """The 400 message for an invalid §2.1 body, or None when it is valid."""
    url = body.get("url")
    if not isinstance(url, str) or not url:
        return "url is required and must be a string."
    if not _is_http_url(url):
        return "url must be a publicly accessible http(s) URL."
    for name, (valid, expected) in _OPTIONAL_FIELDS.items():
        if name in body and not valid(body[name]):
            return f"{name} must be {expected}."
    webhook = body.get("webhookUrl")
    if webhook and not _is_http_url(webhook):
        return "webhookUrl must be an http(s) URL."
    return _validate_channel_metadata(body.get("channelMetadata", []))


def _validate_channel_metadata(entries: object) -> str | None:
    if not isinstance(entries, list):
        return "channelMetadata must be an array."
    seen: set[int] = set()
    for index, entry in enumerate(entries):
        where = f"channelMetadata[{index}]"
        if not isinstance(entry, dict):
            return f"{where} must be an object."
        channel = entry.get("channel")
        if not isinstance(channel, int) or isinstance(channel, bool) or channel < 1:
            return f"{where}.channel must be an integer starting at 1."
        if channel in seen:
            return f"{where}.channel {channel} is listed twice."
        seen.add(channel)
        speaker = entry.get("speaker")
        if not isinstance(speaker, dict):
            return f"{where}.speaker must be an object."
        for key in ("name", "email"):
            if key in speaker and not isinstance(speaker[key], str):
                return f"{where}.speaker.{key} must be a string."
    return None


def _check_audio(
    body: dict[str, Any], info: AudioInfo, max_channels: int, max_duration: float
) -> None:
    """Raise _Rejected when the file breaks the §6 limits or the channel metadata (§2.1)."""
    if info.duration > max_duration:
        raise _Rejected(
            f"Media is {info.duration:.0f} s long; the maximum is {max_duration:.0f} s."
        )
    per_channel = body.get("enableSeparateRecognitionPerChannel") is True
    if not per_channel or body.get("enableSpeakerDiarization") is True:
        return
    if info.channels > max_channels:
        raise _Rejected(
            f"Audio has {info.channels} channels; at most {max_channels} are supported with"
            " enableSeparateRecognitionPerChannel."
        )
    highest = max((entry["channel"] for entry in body.get("channelMetadata", [])), default=0)
    if highest > info.channels:
        raise _Rejected(
            f"channelMetadata refers to channel {highest} but the audio has {info.channels}"
            " channel(s)."
        )


# ---------------------------------------------------------------------------------------------
# HTTP: submit, append, job status
# ---------------------------------------------------------------------------------------------


def _too_many(limit: int) -> tuple[Response, int]:
    return jsonify(statusCode=429, message=_CONCURRENCY_MESSAGE.format(limit=limit)), 429


def add_routes(app: Flask, state: FakeSymblState) -> None:
    """Submitting audio (§2.1), appending to a conversation (§2.3), and job status (§3)."""

    def lose_answer(fault: _Fault) -> ResponseReturnValue:
        """The job exists; the client is not told (`lose_submit_answers`)."""
        if fault.mode == "close":
            g.answer_closed = True
            connection = request.environ.get("werkzeug.socket")
            if connection is not None:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)  # writing the answer now fails
        elif fault.mode == "hang":
            with state._cond:
                state._cond.wait_for(lambda: state._closed, fault.seconds)
        return _error(fault.status, HTTP_STATUS_CODES[fault.status])

    def process_audio_url(conversation_id: str | None) -> ResponseReturnValue:
        body = request.get_json(silent=True)
        url = body.get("url") if isinstance(body, dict) else None

        def reject(status: int, message: str) -> ResponseReturnValue:
            state._record_rejection(
                Rejection(status, message, url if isinstance(url, str) else None, conversation_id)
            )
            return _too_many(state.concurrency_limit) if status == 429 else _error(status, message)

        arrival: _Arrival | None = g.get("arrival")
        if state._take_forced_429():
            if arrival is not None:
                arrival.forced_429 = True
            return reject(429, "concurrency limit (forced)")
        if conversation_id is not None and not state._has_conversation(conversation_id):
            return reject(404, f"Conversation {conversation_id} not found.")
        if not isinstance(body, dict):
            return reject(400, "Request body must be a JSON object.")
        invalid = _validate_submission(body)
        if invalid is not None:
            return reject(400, invalid)
        if state.in_flight >= state.concurrency_limit:
            return reject(429, "concurrency limit")
        # The async API fetches and decodes the media in the job: media that cannot be had is a
        # job that fails, not a 400. Only the §6 limits that need the file are refused here.
        audio: Path | None = None
        info: AudioInfo | None = None
        media_error: str | None = None
        try:
            audio = _download(body["url"], state.download_dir, state.download_timeout)
            info = probe_audio(audio)
        except _Rejected as exc:
            media_error = str(exc)
        except (ValueError, subprocess.TimeoutExpired):
            media_error = "url does not point to a supported audio file."
        if media_error is None and info is not None and audio is not None:
            try:
                _check_audio(body, info, state.max_channels, state.max_duration)
            except _Rejected as exc:
                audio.unlink(missing_ok=True)
                return reject(400, str(exc))
        accepted = state._accept(body, audio, info, conversation_id, media_error)
        if accepted is None:
            if audio is not None:
                audio.unlink(missing_ok=True)
            return reject(429, "concurrency limit")
        if arrival is not None:
            arrival.job_id = accepted.job_id
        if accepted.lost_answer is not None:
            return lose_answer(accepted.lost_answer)
        return jsonify(conversationId=accepted.conversation_id, jobId=accepted.job_id), 201

    @app.post("/v1/process/audio/url", endpoint="submit")
    def submit() -> ResponseReturnValue:
        return process_audio_url(None)

    @app.put("/v1/process/audio/url/<conversation_id>", endpoint="append")
    def append(conversation_id: str) -> ResponseReturnValue:
        return process_audio_url(conversation_id)

    @app.get("/v1/job/<job_id>", endpoint="job")
    def job(job_id: str) -> ResponseReturnValue:
        status = state._status(job_id)
        if status is None:
            return _error(404, f"Job {job_id} not found.")
        return jsonify(id=job_id, status=status)
