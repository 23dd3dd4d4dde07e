"""A local Symbl.ai (async audio API) for development and tests.

Why: the hosted service may no longer exist (reference §0), and the pipeline has to be proven
against something that behaves like it: same auth, same status codes and bodies, same concurrency
ceiling, same job life cycle and webhook, same Conversation API shapes. Everything here follows
the Symbl API reference (cited as §n).

The fake is also a measuring instrument. It really downloads the submitted URL, probes it with
ffprobe and finds speech per channel with ffmpeg `silencedetect`, so message timestamps are the true
speech times in the submitted file. When the conversation name is a meeting topic known to the
`MeetingRegistry`, the text of each message is what that channel's speaker was scripted to say at
that time: a pipeline that maps a channel to the wrong speaker, or shifts the audio, gets wrong or
"[unintelligible]" text back.

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
- Webhooks go out on every status change after acceptance (`in_progress`, then `completed` or
  `failed`); acceptance itself is not a change. One POST per change, never retried; each attempt
  is recorded.
- Without per-channel recognition or diarization, the file is mixed down and treated as one speaker.
- Jobs appended to a conversation (PUT) run one at a time in order (§2.3); the appended file's
  timeline continues after the previous files, while registry look-ups use the file's own t=0.
- `/summary` answers 404 until the conversation has a completed job and none still running.
  Then a summary exists only when asked for the documented way (§2.1 `enableSummary`, §7): a
  `POST /summary?refresh=true` (a `GET` with `refresh=true` too, as one doc version shows) after
  completion, or a job submitted with `enableSummary: true`. It is written `summary_seconds`
  after the refresh (or the job's completion); until then, 404. A refresh deletes the old one
  and starts again, and answers 202 `{"message": ...}` (the live body is undocumented).
- No summary for a conversation under `summary_min_words` (50) words or `summary_min_sentences`
  (3) sentences (§7). What Symbl answers then is undocumented: by default the fake answers 200
  `{"summary": []}`; `unsummarisable_answer = "404"` makes it answer 404 instead.
- Optional body fields must have their documented type when present: JSON null is refused with
  400 (omit the field instead).
- Optional keys (`email`, `dueBy`) are omitted when unknown; insight `from.userId` is the email,
  or the member id when there is none.
- A hosted summary page (§8) is an https URL on the fake's own host, as Symbl's are https; the
  fake serves the page there in plain http. Every accepted request is recorded with its options
  (`experience_requests`), so tests can check `summaryURLExpiresIn` and `readOnly`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import heapq
import itertools
import json
import logging
import math
import os
import queue
import random
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

import jwt
import requests
from flask import Flask, Response, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from sandbox.http_server import LoopbackServer
from sandbox.registry import MeetingRegistry, ScriptLine

__all__ = [
    "ACTIVE_STATUSES",
    "ENDPOINTS",
    "TERMINAL_STATUSES",
    "TOKEN_INVALID_MESSAGE",
    "UNINTELLIGIBLE",
    "AudioInfo",
    "DuplicateJob",
    "Duration",
    "ExperienceRequest",
    "FakeSymblState",
    "JobRecord",
    "JobStatus",
    "Rejection",
    "Submission",
    "SubmitAttempt",
    "WebhookAttempt",
    "create_app",
    "probe_audio",
    "seeded_uniform",
    "serve",
    "speech_segments",
]

logger = logging.getLogger(__name__)

JobStatus = Literal["scheduled", "in_progress", "completed", "failed"]
Duration = float | Callable[[], float]
"""Seconds a job spends in a state: a constant, or a callable drawn once per job."""

Segment = tuple[float, float]

ACTIVE_STATUSES: frozenset[str] = frozenset({"scheduled", "in_progress"})
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed"})
TOKEN_INVALID_MESSAGE = "Token validation failed for provided token."
UNINTELLIGIBLE = "[unintelligible]"
_CONCURRENCY_MESSAGE = (
    "This API has a limit of maximum of `{limit}` number of concurrent jobs per account. If you are"
    " looking to scale, and need more concurrent jobs than this limit, please contact us at"
    " support@symbl.ai"
)

ENDPOINTS: frozenset[str] = frozenset(
    {
        "token",
        "submit",
        "append",
        "job",
        "conversation",
        "messages",
        "topics",
        "questions",
        "action_items",
        "follow_ups",
        "summary",
        "summary_refresh",
        "analytics",
        "members",
        "experiences",
        "meeting_page",
        "meeting_data",
    }
)
"""Endpoint names accepted by `FakeSymblState.http_5xx(endpoint=...)`."""

_FFMPEG = ("ffmpeg", "-nostdin", "-hide_banner", "-nostats")
_FFPROBE = ("ffprobe", "-v", "error", "-of", "json", "-show_entries")
_PROBED = "stream=codec_type,channels:format=duration"
_PUBLIC_ENDPOINTS = frozenset({"token", "meeting_page", "meeting_data"})
_SUBMIT_ENDPOINTS = frozenset({"submit", "append"})
_MIN_SPEECH_SECONDS = 0.1


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
class ExperienceRequest:
    """An accepted request for a hosted summary page (§8): lets tests see the page's options,
    `summaryURLExpiresIn` and `readOnly` above all, and the URL the fake answered."""

    conversation_id: str
    name: str
    options: dict[str, Any]  # every body field but `name`, as sent
    url: str


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


@dataclass(frozen=True)
class AudioInfo:
    """What ffprobe says about a submitted file."""

    channels: int
    duration: float


# ---------------------------------------------------------------------------------------------
# Internal model
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Speaker:
    name: str
    email: str | None


@dataclass(frozen=True)
class _Member:
    id: str
    name: str
    email: str | None


@dataclass(frozen=True)
class _Utterance:
    """Speech found in one file: who (by channel or diarization), when (file seconds), what."""

    speaker: _Speaker
    channel: int
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class _Message:
    id: str
    text: str
    member: _Member
    time_offset: float  # seconds from the conversation start
    duration: float
    phrases: tuple[str, ...]  # action phrases, reported when detectPhrases was set


@dataclass(frozen=True)
class _Plan:
    """How to recognise a file, fixed at submit time from the request body."""

    topic: str
    per_channel: bool
    speakers: dict[int, _Speaker]  # 1-based channel -> speaker (per-channel recognition)
    speaker_count: int  # diarization labels "Speaker 1..n"
    detect_phrases: bool

    def speaker_for(self, channel: int) -> _Speaker:
        return self.speakers.get(channel, _Speaker(f"Speaker {channel}", None))


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
    analysis_error: str | None = None
    held_delivery: _Delivery | None = None


@dataclass
class _Conversation:
    id: str
    name: str
    start: datetime
    job_ids: list[str] = field(default_factory=list)
    audio_seconds: float = 0.0  # accepted audio, the offset of the next appended file
    published_seconds: float = 0.0  # audio whose job completed
    messages: list[_Message] = field(default_factory=list)
    summary_due: float | None = None  # time.monotonic() when the requested summary is written


@dataclass(frozen=True)
class _Transcript:
    """A consistent read-only copy of a conversation, for rendering outside the lock."""

    id: str
    name: str
    start: datetime
    duration: float
    messages: tuple[_Message, ...]
    complete: bool

    @property
    def members(self) -> list[_Member]:
        return list(dict.fromkeys(m.member for m in self.messages))

    @property
    def spoken(self) -> list[_Message]:
        return [m for m in self.messages if m.text != UNINTELLIGIBLE]


@dataclass
class _Fault:
    """One armed fault knob; `remaining` None means it fires until `clear_faults()`."""

    remaining: int | None
    status: int = 500
    seconds: float = 0.0
    probability: float = 1.0
    pattern: re.Pattern[str] | None = None
    mode: str = "status"

    def fire(self) -> bool:
        if self.remaining is None:
            return True
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True


class _Rejected(Exception):
    """A submission the real service would refuse with 400."""


class _AnalysisError(Exception):
    """ffmpeg could not analyse a file; the job ends `failed`."""


class _NotFound(Exception):
    """An unknown conversation: 404 with a message."""


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


# ---------------------------------------------------------------------------------------------
# The state
# ---------------------------------------------------------------------------------------------


class FakeSymblState:
    """Everything the fake knows, its configuration and its fault knobs; thread-safe.

    Configuration attributes may be changed at any time and apply to later requests and jobs.
    Background threads start on construction: call `close()`, or use it as a context manager.
    """

    def __init__(
        self,
        *,
        app_id: str = "fake-app-id",
        app_secret: str = "fake-app-secret",  # noqa: S107 - a fake's well-known credential
        token_lifetime: float = 86_400.0,
        token_reissue_margin: float = 60.0,
        concurrency_limit: int = 2,
        queue_seconds: Duration = 0.5,
        processing_seconds: Duration = 2.0,
        max_channels: int = 8,
        max_duration: float = 4 * 3600.0,
        registry: MeetingRegistry | None = None,
        conversation_epoch: datetime | None = None,
        silence_threshold_db: float = -35.0,
        min_silence_seconds: float = 0.35,
        download_timeout: float = 30.0,
        webhook_timeout: float = 2.0,
        summary_seconds: Duration = 1.0,
        webhook_workers: int = 4,
        analysis_workers: int = 2,
        seed: int | None = None,
    ) -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        self.token_lifetime = token_lifetime
        """Seconds a new token is valid (§1: 86 400)."""
        self.token_reissue_margin = token_reissue_margin
        """A token:generate when the current token has at most this many seconds left mints a
        new one; earlier calls return the current token with its remaining lifetime."""
        self.concurrency_limit = concurrency_limit
        self.queue_seconds = queue_seconds
        """Time from acceptance (`scheduled`) to `in_progress`."""
        self.processing_seconds = processing_seconds
        """Time from `in_progress` to `completed`/`failed` (later if analysis is still running)."""
        self.max_channels = max_channels
        self.max_duration = max_duration
        self.registry = registry
        self.conversation_epoch = conversation_epoch
        """Fixed start time for every conversation; None uses the first submit's wall time."""
        self.silence_threshold_db = silence_threshold_db
        self.min_silence_seconds = min_silence_seconds
        self.download_timeout = download_timeout
        self.webhook_timeout = webhook_timeout
        self.summary_seconds = summary_seconds
        """Time from a summary request (a refresh, or the completion of a job submitted with
        `enableSummary`) until `/summary` has it."""
        self.summary_min_words = 50
        self.summary_min_sentences = 3
        """Below either, the conversation gets no summary (§7)."""
        self.unsummarisable_answer: Literal["empty", "404"] = "empty"
        """How `/summary` answers for a conversation too short to summarise (undocumented)."""

        self._cond = threading.Condition(threading.RLock())
        self._rng = random.Random(seed)
        self._jwt_secret = secrets.token_hex(32)
        self._tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._current_token: str | None = None
        self._jobs: dict[str, _Job] = {}
        self._conversations: dict[str, _Conversation] = {}
        self._submissions: list[Submission] = []
        self._rejections: list[Rejection] = []
        self._experiences: list[ExperienceRequest] = []
        self._submit_attempts: list[SubmitAttempt] = []
        self._attempts: list[WebhookAttempt] = []
        self._active = 0
        self._max_in_flight = 0
        self._faults: dict[str, _Fault] = {}
        self._http_faults: dict[str | None, _Fault] = {}
        self._procs: set[subprocess.Popen[str]] = set()
        self._closed = False
        self._workdir = Path(tempfile.mkdtemp(prefix="fake-symbl-"))
        self._scheduler = _Scheduler("fake-symbl-timers")
        self._webhooks = _WebhookSender(webhook_workers, self._record_attempt)
        self._analysis = ThreadPoolExecutor(
            max_workers=analysis_workers, thread_name_prefix="fake-symbl-analysis"
        )

    # -- observation -------------------------------------------------------------------------

    @property
    def accepted(self) -> int:
        """Submissions answered 201."""
        with self._cond:
            return len(self._submissions)

    @property
    def in_flight(self) -> int:
        """Jobs now `scheduled` or `in_progress` (the slots the concurrency limit counts)."""
        with self._cond:
            return self._active

    @property
    def max_in_flight(self) -> int:
        """The most jobs ever `scheduled`/`in_progress` at the same time."""
        with self._cond:
            return self._max_in_flight

    @property
    def submissions(self) -> list[Submission]:
        with self._cond:
            return list(self._submissions)

    @property
    def rejections(self) -> list[Rejection]:
        with self._cond:
            return list(self._rejections)

    @property
    def experience_requests(self) -> list[ExperienceRequest]:
        """Every summary-page request the fake answered with a URL, in arrival order."""
        with self._cond:
            return list(self._experiences)

    @property
    def submit_attempts(self) -> list[SubmitAttempt]:
        """Every POST/PUT of audio in arrival order: accepted, refused or failed by a knob."""
        with self._cond:
            return list(self._submit_attempts)

    @property
    def over_limit_attempts(self) -> list[SubmitAttempt]:
        """Submits that arrived while the account already ran `limit` jobs whose 201 the client
        had received (forced 429s excluded): each one means the client's own count let it send
        a job the account had no room for. A correct client keeps this empty."""
        return [a for a in self.submit_attempts if a.over_limit]

    @property
    def over_limit_count(self) -> int:
        return len(self.over_limit_attempts)

    @property
    def at_limit_attempts(self) -> list[SubmitAttempt]:
        """Like `over_limit_attempts`, but counting jobs whose answer was lost too (a client
        that holds a slot for a submission of unknown outcome keeps this empty as well)."""
        return [a for a in self.submit_attempts if a.at_limit]

    @property
    def at_limit_count(self) -> int:
        return len(self.at_limit_attempts)

    def jobs_per_name(self) -> Counter[str]:
        """Accepted jobs per conversation name (appended files count for their conversation)."""
        with self._cond:
            return Counter(s.name for s in self._submissions)

    @property
    def duplicate_jobs(self) -> list[DuplicateJob]:
        """Every job after the first for the same conversation name, in acceptance order."""
        previous: dict[str, Submission] = {}
        duplicates = []
        for submission in self.submissions:
            if submission.appended:
                continue
            before = previous.get(submission.name)
            if before is not None:
                duplicates.append(DuplicateJob(submission, after_lost_answer=before.answer_lost))
            previous[submission.name] = submission
        return duplicates

    @property
    def webhook_attempts(self) -> list[WebhookAttempt]:
        with self._cond:
            return list(self._attempts)

    @property
    def download_dir(self) -> Path:
        """Where submitted files are kept until analysed; removed by `close()`."""
        return self._workdir

    def job(self, job_id: str) -> JobRecord | None:
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            return JobRecord(
                job.id,
                job.conversation_id,
                job.status,
                tuple(job.history),
                error=(job.analysis_error or "failed by the fail_jobs knob")
                if job.status == "failed"
                else None,
            )

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Block until `predicate()` is true, re-checking on every state change.

        Raises TimeoutError. The predicate runs under the state lock and may read the state.
        """
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise TimeoutError(f"fake Symbl: condition not met within {timeout} s")

    def wait_for_job(self, job_id: str, timeout: float = 10.0) -> JobStatus:
        """Block until the job is `completed` or `failed`; return that status."""

        def terminal() -> bool:
            job = self._jobs.get(job_id)
            return job is not None and job.status in TERMINAL_STATUSES

        self.wait_for(terminal, timeout)
        with self._cond:
            return self._jobs[job_id].status

    def wait_until_idle(self, timeout: float = 10.0) -> None:
        """Block until no job is `scheduled` or `in_progress`."""
        self.wait_for(lambda: self._active == 0, timeout)

    # -- fault knobs -------------------------------------------------------------------------

    def http_5xx(
        self, *, status: int = 500, endpoint: str | None = None, count: int | None = None
    ) -> None:
        """Answer `status` on `endpoint` (a name from ENDPOINTS; None: every endpoint) before
        any other processing, for the next `count` requests (None: until cleared)."""
        if not 500 <= status <= 599:
            raise ValueError(f"status must be 5xx, got {status}")
        if endpoint is not None and endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {sorted(ENDPOINTS)}")
        with self._cond:
            self._http_faults[endpoint] = _Fault(_check_count(count), status=status)

    def http_429(self, *, count: int | None = None) -> None:
        """Refuse the next `count` submits with the documented 429 body whatever the load, as
        when another client on the same account holds the slots."""
        self._arm("http_429", _Fault(_check_count(count)))

    def lose_submit_answers(
        self,
        *,
        count: int | None = None,
        status: int = 504,
        mode: Literal["status", "close", "hang"] = "status",
        seconds: float = 0.0,
    ) -> None:
        """Accept each of the next `count` submits (the job runs, is counted, bills and calls
        back) and then lose its answer: answer `status` (mode "status"), close the connection
        without an answer ("close"), or wait `seconds` first, past the client's read timeout,
        then answer `status` ("hang"). The submission is recorded with `answer_lost`."""
        if not 500 <= status <= 599:
            raise ValueError(f"status must be 5xx, got {status}")
        if mode not in ("status", "close", "hang"):
            raise ValueError(f"mode must be status, close or hang, got {mode!r}")
        if seconds < 0:
            raise ValueError(f"seconds must not be negative, got {seconds}")
        self._arm(
            "lose_submit_answers",
            _Fault(_check_count(count), status=status, seconds=seconds, mode=mode),
        )

    def drop_webhooks(self, *, count: int | None = None, probability: float = 1.0) -> None:
        """Silently skip webhook deliveries, each with `probability` (drawn from `seed`), up to
        `count` drops."""
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {probability}")
        self._arm("drop_webhooks", _Fault(_check_count(count), probability=probability))

    def duplicate_webhooks(self, *, count: int | None = None) -> None:
        """Send each of the next `count` webhook deliveries twice."""
        self._arm("duplicate_webhooks", _Fault(_check_count(count)))

    def delay_webhooks(self, seconds: float, *, count: int | None = None) -> None:
        """Hold each of the next `count` webhook deliveries for `seconds` before sending."""
        if seconds < 0:
            raise ValueError(f"seconds must not be negative, got {seconds}")
        self._arm("delay_webhooks", _Fault(_check_count(count), seconds=seconds))

    def reorder_webhooks(self, *, count: int | None = None) -> None:
        """For the next `count` accepted jobs, deliver `in_progress` after the terminal status."""
        self._arm("reorder_webhooks", _Fault(_check_count(count)))

    def webhook_uses_id(self, *, count: int | None = None) -> None:
        """Send `{"id", "status"}` (the GET /v1/job shape, §4 alias) instead of `{"jobId", ...}`
        for the next `count` deliveries."""
        self._arm("webhook_uses_id", _Fault(_check_count(count)))

    def fail_jobs(self, *, count: int | None = None, name_pattern: str | None = None) -> None:
        """End the next `count` accepted jobs (only those whose conversation name matches the
        regular expression `name_pattern`, if given) `failed`, after `in_progress`."""
        pattern = re.compile(name_pattern) if name_pattern is not None else None
        self._arm("fail_jobs", _Fault(_check_count(count), pattern=pattern))

    def expire_tokens(self) -> None:
        """Invalidate every issued token now; the next token:generate mints a new one."""
        with self._cond:
            self._tokens.clear()
            self._current_token = None

    def clear_faults(self) -> None:
        """Disarm every fault knob."""
        with self._cond:
            self._faults.clear()
            self._http_faults.clear()

    # -- life cycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop timers, analysis and webhook threads, kill ffmpeg, delete downloaded files."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            procs = list(self._procs)
        for proc in procs:
            proc.kill()
        self._scheduler.stop()
        self._analysis.shutdown(wait=True, cancel_futures=True)
        self._webhooks.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)
        with self._cond:
            self._cond.notify_all()

    def __enter__(self) -> FakeSymblState:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- used by the HTTP layer --------------------------------------------------------------

    def _arm(self, name: str, fault: _Fault) -> None:
        with self._cond:
            self._faults[name] = fault

    def _fire(self, name: str) -> _Fault | None:
        """The armed fault `name` if it fires now (consuming one use), else None."""
        fault = self._faults.get(name)
        return fault if fault is not None and fault.fire() else None

    def _take_http_fault(self, endpoint: str | None) -> int | None:
        with self._cond:
            for key in (endpoint, None):
                fault = self._http_faults.get(key)
                if fault is not None and fault.fire():
                    return fault.status
            return None

    def _take_forced_429(self) -> bool:
        with self._cond:
            return self._fire("http_429") is not None

    def _issue_token(self, app_id: object, app_secret: object) -> tuple[str, int] | None:
        """(token, expiresIn) for valid credentials, reusing the current token until near expiry."""
        with self._cond:
            if app_id != self.app_id or app_secret != self.app_secret:
                return None
            now = time.monotonic()
            token = self._current_token
            if token is not None and token in self._tokens:
                remaining = self._tokens[token] - now
                if remaining > self.token_reissue_margin:
                    return token, int(remaining)
            issued_at = int(time.time())
            token = jwt.encode(
                {
                    "iss": "fake-symbl",
                    "sub": self.app_id,
                    "iat": issued_at,
                    "exp": issued_at + math.ceil(self.token_lifetime),
                    "jti": uuid.uuid4().hex,
                },
                self._jwt_secret,
                algorithm="HS256",
            )
            self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
            self._tokens[token] = now + self.token_lifetime
            self._current_token = token
            return token, int(self.token_lifetime)

    def _authenticate(self, presented: Iterable[str]) -> bool:
        with self._cond:
            now = time.monotonic()
            return any(self._tokens.get(token, 0.0) > now for token in presented)

    def _has_conversation(self, conversation_id: str) -> bool:
        with self._cond:
            return conversation_id in self._conversations

    def _record_experience(self, experience: ExperienceRequest) -> None:
        with self._cond:
            self._experiences.append(experience)
            self._cond.notify_all()

    def _record_rejection(self, rejection: Rejection) -> None:
        with self._cond:
            self._rejections.append(rejection)
            self._cond.notify_all()

    def _record_submit_attempt(self, arrival: _Arrival, status: int | None) -> None:
        with self._cond:
            self._submit_attempts.append(
                SubmitAttempt(
                    at=arrival.at,
                    running=arrival.running,
                    running_answered=arrival.running_answered,
                    limit=arrival.limit,
                    forced_429=arrival.forced_429,
                    status=status,
                    job_id=arrival.job_id,
                )
            )
            self._cond.notify_all()

    def _arrival(self) -> _Arrival:
        """What the account looked like as a submit arrived."""
        with self._cond:
            running = [j for j in self._jobs.values() if j.status in ACTIVE_STATUSES]
            return _Arrival(
                at=time.monotonic(),
                running=len(running),
                running_answered=sum(not j.answer_lost for j in running),
                limit=self.concurrency_limit,
            )

    def _accept(
        self,
        body: dict[str, Any],
        audio: Path | None,
        info: AudioInfo | None,
        conversation_id: str | None,
        media_error: str | None = None,
    ) -> _Accepted | None:
        """Create the job if a concurrency slot is free (atomically). Media the fake could not
        fetch or decode (`media_error`) makes a job all the same, which fails once running."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the fake Symbl state is closed")
            if self._active >= self.concurrency_limit:
                return None
            conversation = (
                self._conversations[conversation_id]
                if conversation_id is not None
                else self._new_conversation(body.get("name"))
            )
            job_id = str(uuid.uuid4())
            lost = self._fire("lose_submit_answers")
            submission = Submission(
                job_id=job_id,
                conversation_id=conversation.id,
                url=body["url"],
                name=conversation.name,
                channel_metadata=list(body.get("channelMetadata", [])),
                options={k: v for k, v in body.items() if k not in ("url", "channelMetadata")},
                appended=conversation_id is not None,
                answer_lost=lost is not None,
            )
            fail = self._faults.get("fail_jobs")
            fails = fail is not None and (
                fail.pattern is None or fail.pattern.search(conversation.name) is not None
            )
            job = _Job(
                id=job_id,
                conversation_id=conversation.id,
                submission=submission,
                plan=_plan(body, conversation.name),
                audio=audio,
                info=info or AudioInfo(channels=0, duration=0.0),
                time_offset=conversation.audio_seconds,
                fail=fails and self._fire("fail_jobs") is not None,
                reorder_webhooks=self._fire("reorder_webhooks") is not None,
                answer_lost=lost is not None,
                history=[("scheduled", time.monotonic())],
                analysis_error=media_error,
            )
            conversation.job_ids.append(job_id)
            conversation.audio_seconds += job.info.duration
            self._jobs[job_id] = job
            self._submissions.append(submission)
            self._active += 1
            self._max_in_flight = max(self._max_in_flight, self._active)
            self._scheduler.call_later(
                _draw(self.queue_seconds), partial(self._queue_elapsed, job_id)
            )
            if job.fail or media_error is not None:
                if audio is not None:
                    audio.unlink(missing_ok=True)
                job.audio = None
            else:
                self._analysis.submit(self._analyse, job_id)
            self._cond.notify_all()
            return _Accepted(conversation.id, job_id, lost)

    def _new_conversation(self, name: object) -> _Conversation:
        conversation_id = str(self._rng.randrange(10**15, 10**16))
        while conversation_id in self._conversations:
            conversation_id = str(self._rng.randrange(10**15, 10**16))
        start = self.conversation_epoch or datetime.now(UTC)
        conversation = _Conversation(
            id=conversation_id,
            name=name if isinstance(name, str) and name else conversation_id,
            start=start,
        )
        self._conversations[conversation_id] = conversation
        return conversation

    def _status(self, job_id: str) -> JobStatus | None:
        with self._cond:
            job = self._jobs.get(job_id)
            return job.status if job is not None else None

    def _request_summary(self, conversation_id: str) -> None:
        """A refresh: the old summary is deleted and a new one written `summary_seconds` on."""
        with self._cond:
            conversation = self._conversations[conversation_id]
            conversation.summary_due = time.monotonic() + _draw(self.summary_seconds)

    def _summary_written(self, conversation_id: str) -> bool:
        """Whether a requested summary has been written by now (complete conversations only)."""
        with self._cond:
            conversation = self._conversations[conversation_id]
            if conversation.summary_due is None:
                completed = [
                    at
                    for job in (self._jobs[j] for j in conversation.job_ids)
                    if job.submission.options.get("enableSummary") is True
                    for status, at in job.history
                    if status == "completed"
                ]
                if completed:
                    conversation.summary_due = max(completed) + _draw(self.summary_seconds)
            due = conversation.summary_due
            return due is not None and time.monotonic() >= due

    def _summarisable(self, transcript: _Transcript) -> bool:
        texts = [m.text for m in transcript.messages]
        words = sum(len(text.split()) for text in texts)
        sentences = sum(len(_sentences(text)) for text in texts)
        return words >= self.summary_min_words and sentences >= self.summary_min_sentences

    def _transcript(self, conversation_id: str) -> _Transcript | None:
        with self._cond:
            conversation = self._conversations.get(conversation_id)
            if conversation is None:
                return None
            statuses = [self._jobs[j].status for j in conversation.job_ids]
            return _Transcript(
                id=conversation.id,
                name=conversation.name,
                start=conversation.start,
                duration=conversation.published_seconds,
                messages=tuple(conversation.messages),
                complete="completed" in statuses
                and not any(s in ACTIVE_STATUSES for s in statuses),
            )

    # -- the job engine ----------------------------------------------------------------------

    def _queue_elapsed(self, job_id: str) -> None:
        with self._cond:
            job = self._jobs[job_id]
            job.queued = True
            self._advance(job.conversation_id)

    def _advance(self, conversation_id: str) -> None:
        """Start the conversation's oldest unfinished job once it is queued (§2.3: in order)."""
        if self._closed:
            return
        for job_id in self._conversations[conversation_id].job_ids:
            job = self._jobs[job_id]
            if job.status in TERMINAL_STATUSES:
                continue
            if job.status == "scheduled" and job.queued:
                self._transition(job, "in_progress")
                self._scheduler.call_later(
                    _draw(self.processing_seconds), partial(self._processing_elapsed, job_id)
                )
            return

    def _processing_elapsed(self, job_id: str) -> None:
        with self._cond:
            job = self._jobs[job_id]
            job.processing_due = True
            self._finish_if_ready(job)

    def _finish_if_ready(self, job: _Job) -> None:
        if self._closed or job.status != "in_progress" or not job.processing_due:
            return
        if job.fail or job.analysis_error is not None:
            self._transition(job, "failed")
        elif job.messages is not None:
            conversation = self._conversations[job.conversation_id]
            conversation.messages = sorted(
                [*conversation.messages, *job.messages], key=lambda m: m.time_offset
            )
            conversation.published_seconds = max(
                conversation.published_seconds, job.time_offset + job.info.duration
            )
            self._transition(job, "completed")
        else:
            return  # analysis still running; it finishes the job when done
        self._advance(job.conversation_id)

    def _transition(self, job: _Job, status: JobStatus) -> None:
        now = time.monotonic()
        job.status = status
        job.history.append((status, now))
        if status in TERMINAL_STATUSES:
            self._active -= 1
        self._queue_webhook(job, status, now)
        self._cond.notify_all()

    # -- webhooks ----------------------------------------------------------------------------

    def _queue_webhook(self, job: _Job, status: JobStatus, changed_at: float) -> None:
        url = job.submission.options.get("webhookUrl")
        if not url:
            return
        key = "id" if self._fire("webhook_uses_id") is not None else "jobId"
        payload = {key: job.id, "status": status}
        delivery = _Delivery(job.id, url, payload, changed_at, self.webhook_timeout)
        if status == "in_progress" and job.reorder_webhooks:
            job.held_delivery = delivery
            return
        self._dispatch(delivery)
        if status in TERMINAL_STATUSES and job.held_delivery is not None:
            self._dispatch(job.held_delivery)
            job.held_delivery = None

    def _dispatch(self, delivery: _Delivery) -> None:
        drop = self._faults.get("drop_webhooks")
        if drop is not None and self._rng.random() < drop.probability and drop.fire():
            self._record_attempt(delivery, None, None, dropped=True)
            return
        copies = 2 if self._fire("duplicate_webhooks") is not None else 1
        delay = self._fire("delay_webhooks")
        for _ in range(copies):
            if delay is not None:
                self._scheduler.call_later(delay.seconds, partial(self._webhooks.send, delivery))
            else:
                self._webhooks.send(delivery)

    def _record_attempt(
        self,
        delivery: _Delivery,
        status_code: int | None,
        error: str | None,
        *,
        dropped: bool = False,
    ) -> None:
        with self._cond:
            self._attempts.append(
                WebhookAttempt(
                    job_id=delivery.job_id,
                    url=delivery.url,
                    payload=delivery.payload,
                    status_changed_at=delivery.status_changed_at,
                    attempted_at=time.monotonic(),
                    status_code=status_code,
                    error=error,
                    dropped=dropped,
                )
            )
            self._cond.notify_all()

    # -- analysis ----------------------------------------------------------------------------

    def _analyse(self, job_id: str) -> None:
        with self._cond:
            job = self._jobs[job_id]
            audio, info, plan = job.audio, job.info, job.plan
            conversation_id, offset = job.conversation_id, job.time_offset
        messages: list[_Message] | None = None
        error: str | None = None
        try:
            if audio is None:
                raise _AnalysisError("the audio file is gone")
            segments = self._detect_speech(audio, info, plan)
            utterances = _transcribe(plan, segments, self.registry)
            messages = _to_messages(job_id, conversation_id, offset, plan, utterances)
        except Exception as exc:
            if not self._closed:
                logger.exception("fake Symbl could not analyse job %s", job_id)
            error = str(exc)
        finally:
            if audio is not None:
                audio.unlink(missing_ok=True)
        with self._cond:
            job.audio = None
            job.messages = messages
            job.analysis_error = error
            self._finish_if_ready(job)

    def _detect_speech(self, audio: Path, info: AudioInfo, plan: _Plan) -> dict[int, list[Segment]]:
        """Speech segments per 1-based channel (one mixed-down channel unless per-channel)."""
        if plan.per_channel:
            pans = {ch: f"pan=mono|c0=c{ch - 1}" for ch in range(1, info.channels + 1)}
        else:
            pans = {1: "pan=mono|c0=" + "+".join(f"c{i}" for i in range(info.channels))}
        detect = f"silencedetect=noise={self.silence_threshold_db}dB:d={self.min_silence_seconds}"
        procs = {
            channel: self._spawn(
                [*_FFMPEG, "-i", str(audio), "-af", f"{pan},{detect}", "-f", "null", "-"]
            )
            for channel, pan in pans.items()
        }
        return {
            channel: speech_segments(self._reap(proc), info.duration)
            for channel, proc in procs.items()
        }

    def _spawn(self, args: list[str]) -> subprocess.Popen[str]:
        with self._cond:
            if self._closed:
                raise _AnalysisError("the fake Symbl state is closed")
            proc = subprocess.Popen(
                args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            self._procs.add(proc)
            return proc

    def _reap(self, proc: subprocess.Popen[str]) -> str:
        try:
            _, stderr = proc.communicate()
        finally:
            with self._cond:
                self._procs.discard(proc)
        if proc.returncode != 0:
            raise _AnalysisError(f"ffmpeg exited {proc.returncode}: {stderr[-500:]}")
        return stderr


def _check_count(count: int | None) -> int | None:
    if count is not None and count < 1:
        raise ValueError(f"count must be at least 1 (or None for unlimited), got {count}")
    return count


def _draw(duration: Duration) -> float:
    return max(0.0, duration() if callable(duration) else float(duration))


# ---------------------------------------------------------------------------------------------
# Submission: validation, download, probing
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


def _plan(body: dict[str, Any], topic: str) -> _Plan:
    diarization = body.get("enableSpeakerDiarization") is True
    per_channel = body.get("enableSeparateRecognitionPerChannel") is True and not diarization
    speakers = {
        entry["channel"]: _Speaker(
            entry["speaker"].get("name") or f"Speaker {entry['channel']}",
            entry["speaker"].get("email"),
        )
        for entry in body.get("channelMetadata", [])
    }
    return _Plan(
        topic=topic,
        per_channel=per_channel,
        speakers=speakers if per_channel else {},
        speaker_count=int(body.get("diarizationSpeakerCount", 2)) if diarization else 1,
        detect_phrases=body.get("detectPhrases") is True,
    )


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


def _download(url: str, directory: Path, timeout: float) -> Path:
    """Stream `url` to a temporary file; a redirect or any failure raises _Rejected (the job
    made of it fails)."""
    try:
        response = requests.get(url, stream=True, allow_redirects=False, timeout=timeout)
    except requests.RequestException as exc:
        raise _Rejected(f"url could not be downloaded ({type(exc).__name__}).") from exc
    with response:
        if 300 <= response.status_code < 400:
            raise _Rejected("url must be directly downloadable; it answered with a redirect.")
        if response.status_code >= 400:
            raise _Rejected(f"url could not be downloaded (HTTP {response.status_code}).")
        handle, name = tempfile.mkstemp(dir=directory, suffix=".media")
        path = Path(name)
        try:
            with os.fdopen(handle, "wb") as out:
                for chunk in response.iter_content(chunk_size=1 << 16):
                    out.write(chunk)
        except (requests.RequestException, OSError) as exc:
            path.unlink(missing_ok=True)
            raise _Rejected(f"url could not be downloaded ({type(exc).__name__}).") from exc
    return path


def probe_audio(path: Path) -> AudioInfo:
    """Channels and duration of the first audio stream; ValueError when there is none."""
    completed = subprocess.run(
        [*_FFPROBE, _PROBED, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        raise ValueError("ffprobe could not read the file")
    probe = json.loads(completed.stdout or "{}")
    streams = [s for s in probe.get("streams", []) if s.get("codec_type") == "audio"]
    try:
        duration = float(probe.get("format", {}).get("duration", "nan"))
    except ValueError:
        duration = math.nan
    if not streams or not duration > 0:
        raise ValueError("no audio stream with a known duration")
    return AudioInfo(channels=int(streams[0].get("channels", 1)), duration=duration)


# ---------------------------------------------------------------------------------------------
# Recognition: speech segments, speakers, text
# ---------------------------------------------------------------------------------------------

_SILENCE_START = re.compile(r"silence_start: (-?[\d.]+)")
_SILENCE_END = re.compile(r"silence_end: (-?[\d.]+)")


def speech_segments(silencedetect_log: str, duration: float) -> list[Segment]:
    """The complement of the silences ffmpeg's silencedetect logged, within [0, duration]."""
    segments: list[Segment] = []
    speech_from: float | None = 0.0
    for line in silencedetect_log.splitlines():
        if start := _SILENCE_START.search(line):
            silence_start = max(0.0, float(start[1]))
            if speech_from is not None and silence_start - speech_from >= _MIN_SPEECH_SECONDS:
                segments.append((speech_from, silence_start))
            speech_from = None
        elif end := _SILENCE_END.search(line):
            speech_from = float(end[1])
    if speech_from is not None and duration - speech_from >= _MIN_SPEECH_SECONDS:
        segments.append((speech_from, duration))
    return segments


def _overlap(line: ScriptLine, start: float, end: float) -> float:
    return min(end, line.end) - max(start, line.start)


def _transcribe(
    plan: _Plan, segments: dict[int, list[Segment]], registry: MeetingRegistry | None
) -> list[_Utterance]:
    meeting = registry.get(plan.topic) if registry is not None else None
    if registry is None or meeting is None:
        return _synthetic(plan, segments)
    if plan.per_channel:
        return _scripted_by_channel(plan, segments, registry)
    return _scripted_diarized(plan, segments[1], registry, meeting.speakers)


def _synthetic(plan: _Plan, segments: dict[int, list[Segment]]) -> list[_Utterance]:
    """Unknown meeting: obviously invented sentences, still at the true speech times."""
    utterances = []
    for channel, spans in segments.items():
        for index, (start, end) in enumerate(spans):
            speaker = (
                plan.speaker_for(channel)
                if plan.per_channel
                else _Speaker(f"Speaker {index % plan.speaker_count + 1}", None)
            )
            text = f"Synthetic sentence {index + 1} from channel {channel}."
            utterances.append(_Utterance(speaker, channel, start, end, text))
    return utterances


def _scripted_by_channel(
    plan: _Plan, segments: dict[int, list[Segment]], registry: MeetingRegistry
) -> list[_Utterance]:
    """Per-channel recognition: the text is what this channel's speaker said at that time."""
    utterances = []
    for channel, spans in segments.items():
        speaker = plan.speaker_for(channel)
        lines = [(registry.line_at(plan.topic, speaker.name, s, e), s, e) for s, e in spans]
        for line, start, end in _merge_same_line(lines):
            text = line.text if line is not None else UNINTELLIGIBLE
            utterances.append(_Utterance(speaker, channel, start, end, text))
    return utterances


def _scripted_diarized(
    plan: _Plan, spans: list[Segment], registry: MeetingRegistry, speakers: Sequence[str]
) -> list[_Utterance]:
    """Diarization: the best-overlapping line of any speaker; voices are told apart but not
    named, so they are labelled "Speaker k" in order of first appearance."""
    labels: dict[str, _Speaker] = {}
    lines: list[tuple[ScriptLine | None, float, float]] = []
    for start, end in spans:
        candidates = [registry.line_at(plan.topic, name, start, end) for name in speakers]
        found = [line for line in candidates if line is not None]
        best = max(found, key=lambda line: _overlap(line, start, end), default=None)
        lines.append((best, start, end))
    utterances = []
    for line, start, end in _merge_same_line(lines):
        if line is None:
            speaker = _Speaker("Speaker 1", None)
        else:
            if line.speaker not in labels:
                labels[line.speaker] = _Speaker(
                    f"Speaker {len(labels) % plan.speaker_count + 1}", None
                )
            speaker = labels[line.speaker]
        text = line.text if line is not None else UNINTELLIGIBLE
        utterances.append(_Utterance(speaker, 1, start, end, text))
    return utterances


def _merge_same_line(
    lines: list[tuple[ScriptLine | None, float, float]],
) -> list[tuple[ScriptLine | None, float, float]]:
    """Join consecutive segments of one scripted line (a pause inside a sentence)."""
    merged: list[tuple[ScriptLine | None, float, float]] = []
    for line, start, end in lines:
        if merged and line is not None and merged[-1][0] == line:
            merged[-1] = (line, merged[-1][1], end)
        else:
            merged.append((line, start, end))
    return merged


def _to_messages(
    job_id: str,
    conversation_id: str,
    offset: float,
    plan: _Plan,
    utterances: list[_Utterance],
) -> list[_Message]:
    ordered = sorted(utterances, key=lambda u: (u.start, u.channel))
    return [
        _Message(
            id=_numeric_id("message", job_id, str(index)),
            text=u.text,
            member=_member(conversation_id, u.speaker),
            time_offset=round(offset + u.start, 3),
            duration=round(u.end - u.start, 3),
            phrases=_action_phrases(u.text) if plan.detect_phrases else (),
        )
        for index, u in enumerate(ordered)
    ]


def _member(conversation_id: str, speaker: _Speaker) -> _Member:
    key = f"{conversation_id}|{speaker.name}|{speaker.email or ''}"
    return _Member(str(uuid.uuid5(uuid.NAMESPACE_URL, key)), speaker.name, speaker.email)


def _numeric_id(*parts: str) -> str:
    """A stable 16-digit id (Symbl's message and insight ids are numeric strings)."""
    digest = int(hashlib.sha256("|".join(parts).encode()).hexdigest()[:16], 16)
    return str(10**15 + digest % (9 * 10**15))


# ---------------------------------------------------------------------------------------------
# Insights: deterministic rules over the messages (§7 shapes)
# ---------------------------------------------------------------------------------------------

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DATE_WORDS = re.compile(r"\b(today|tomorrow|next week|" + "|".join(_WEEKDAYS) + r")\b", re.I)
_COMMITMENT = re.compile(
    r"\b(i will|i'll|we will|we'll|let's|let us|i am going to|i'm going to|we are going to"
    r"|we're going to|by (?:end of (?:the )?(?:day|week)|today|tomorrow|"
    + "|".join(_WEEKDAYS)
    + r")|next week)\b",
    re.I,
)
_FOLLOW_UP = re.compile(
    r"\b(follow(?:ing)?[- ]up|send|share|get back to|circle back|reach out)\b", re.I
)
_HEDGES = re.compile(r"\b(maybe|might|could|should|probably|perhaps|try to)\b", re.I)


def _words_of(text: str) -> frozenset[str]:
    """A word list written as text (reads better than one quoted word per line)."""
    return frozenset(text.split())


_POSITIVE = _words_of("good great excellent happy thanks thank agree love nice glad perfect")
_NEGATIVE = _words_of("bad problem issue delay delayed risk blocked worried sorry fail")
_STOPWORDS = _words_of(
    """about above after again against also because been before being below between both cannot
    could does doing down during each even every from further have having here hers herself
    himself into itself just last least like more most much must myself next once only other
    ought ours ourselves over same shall should some still such than that their theirs them
    themselves then there these they this those through under until very want well were what
    when where which while whom will with would your yours yourself yourselves okay yeah right
    really think know going make sure thing things week today tomorrow"""
) | frozenset(_WEEKDAYS)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _at(transcript: _Transcript, offset: float) -> str:
    return _iso(transcript.start + timedelta(seconds=offset))


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def _normalise(text: str) -> str:
    return text.replace("\u2019", "'")


def _action_phrases(text: str) -> tuple[str, ...]:
    phrases = []
    for sentence in _sentences(_normalise(text)):
        match = _COMMITMENT.search(sentence)
        if match and not sentence.endswith("?"):
            phrase = sentence[match.end() :].strip(" ,.!")
            phrases.append(phrase or sentence.strip(" .!"))
    return tuple(phrases)


def _sentiment(text: str) -> dict[str, Any]:
    words = re.findall(r"[a-z']+", text.lower())
    positive = sum(w in _POSITIVE for w in words)
    negative = sum(w in _NEGATIVE for w in words)
    score = round((positive - negative) / max(1, positive + negative), 3)
    suggested = "positive" if score > 0.3 else "negative" if score < -0.3 else "neutral"
    return {"polarity": {"score": score}, "suggested": suggested}


def _insight_from(member: _Member) -> dict[str, str]:
    return {"id": member.id, "name": member.name, "userId": member.email or member.id}


def _person(member: _Member) -> dict[str, str]:
    return {"name": member.name} | ({"email": member.email} if member.email else {})


def _message_json(
    message: _Message, transcript: _Transcript, *, verbose: bool, sentiment: bool
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": message.id,
        "text": message.text,
        "from": {"id": message.member.id} | _person(message.member),
        "startTime": _at(transcript, message.time_offset),
        "endTime": _at(transcript, message.time_offset + message.duration),
        "timeOffset": message.time_offset,
        "duration": message.duration,
        "conversationId": transcript.id,
        "phrases": [{"type": "action_phrase", "text": p} for p in message.phrases],
    }
    if sentiment:
        body["sentiment"] = _sentiment(message.text)
    if verbose:
        body["words"] = _words(message, transcript)
    return body


def _words(message: _Message, transcript: _Transcript) -> list[dict[str, Any]]:
    """Words spread over the message's time in proportion to their length."""
    words = message.text.split()
    total = sum(len(w) for w in words) or 1
    cursor = message.time_offset
    result = []
    for word in words:
        length = message.duration * len(word) / total
        result.append(
            {
                "word": word,
                "startTime": _at(transcript, cursor),
                "endTime": _at(transcript, cursor + length),
                "score": 0.9,
                "timeOffset": round(cursor, 3),
                "duration": round(length, 3),
            }
        )
        cursor += length
    return result


def _due_date(sentence: str, start: date) -> tuple[re.Match[str], date] | None:
    match = _DATE_WORDS.search(sentence)
    if match is None:
        return None
    word = match[1].lower()
    if word == "today":
        return match, start
    if word == "tomorrow":
        return match, start + timedelta(days=1)
    if word == "next week":
        return match, start + timedelta(days=7 - start.weekday())
    days_ahead = (_WEEKDAYS.index(word) - start.weekday()) % 7 or 7
    return match, start + timedelta(days=days_ahead)


def _task(
    kind: Literal["action_item", "follow_up"],
    sentence: str,
    message: _Message,
    transcript: _Transcript,
) -> dict[str, Any]:
    entities: list[dict[str, Any]] = [
        {
            "type": "person",
            "text": m.name,
            "offset": sentence.find(m.name),
            "value": {"name": m.name},
        }
        for m in transcript.members
        if m != message.member and m.name in sentence
    ]
    due = _due_date(sentence, transcript.start.date())
    if due is not None:
        match, day = due
        entities.append(
            {"type": "date", "text": match[0], "offset": match.start(), "value": day.isoformat()}
        )
    item: dict[str, Any] = {
        "id": _numeric_id(transcript.id, kind, message.id, sentence),
        "text": sentence,
        "type": kind,
        "score": 0.9 if kind == "action_item" else 0.85,
        "messageIds": [message.id],
        "entities": entities,
    }
    if kind == "action_item":
        item["phrases"] = [{"type": "action_phrase", "text": p} for p in _action_phrases(sentence)]
    item["from"] = _insight_from(message.member)
    if kind == "action_item":
        item["definitive"] = _HEDGES.search(sentence) is None
    item["assignee"] = _person(message.member)
    if due is not None:
        item["dueBy"] = f"{due[1].isoformat()}T00:00:00.000Z"
    return item


def _tasks(transcript: _Transcript) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(action items, follow-ups): statements with a commitment, follow-up wording wins."""
    actions: list[dict[str, Any]] = []
    follow_ups: list[dict[str, Any]] = []
    for message in transcript.spoken:
        for sentence in _sentences(_normalise(message.text)):
            if sentence.endswith("?"):
                continue
            if _FOLLOW_UP.search(sentence):
                follow_ups.append(_task("follow_up", sentence, message, transcript))
            elif _COMMITMENT.search(sentence):
                actions.append(_task("action_item", sentence, message, transcript))
    return actions, follow_ups


def _questions(transcript: _Transcript) -> list[dict[str, Any]]:
    return [
        {
            "id": _numeric_id(transcript.id, "question", message.id, sentence),
            "text": sentence,
            "type": "question",
            "score": 0.95,
            "messageIds": [message.id],
            "from": _insight_from(message.member),
        }
        for message in transcript.spoken
        for sentence in _sentences(message.text)
        if sentence.endswith("?")
    ]


def _topics(transcript: _Transcript, *, sentiment: bool) -> list[dict[str, Any]]:
    """The five most frequent non-stopword terms."""
    counts: Counter[str] = Counter()
    mentions: dict[str, list[_Message]] = {}
    for message in transcript.spoken:
        for term in re.findall(r"[a-z][a-z'-]{3,}", _normalise(message.text).lower()):
            if term in _STOPWORDS or "'" in term:
                continue
            counts[term] += 1
            found = mentions.setdefault(term, [])
            if message not in found:
                found.append(message)
    top = counts.most_common(5)  # ties keep first-appearance order
    topics = []
    for term, count in top:
        topic: dict[str, Any] = {
            "id": _numeric_id(transcript.id, "topic", term),
            "text": term,
            "type": "topic",
            "score": round(count / top[0][1], 3),
            "messageIds": [m.id for m in mentions[term]],
        }
        if sentiment:
            topic["sentiment"] = _sentiment(" ".join(m.text for m in mentions[term]))
        topic["parentRefs"] = []
        topics.append(topic)
    return topics


def _summary(transcript: _Transcript) -> list[dict[str, Any]]:
    """Each speaker's first sentence, then the action items."""
    items = []
    seen: set[_Member] = set()
    for message in transcript.spoken:
        if message.member in seen:
            continue
        seen.add(message.member)
        items.append((f"{message.member.name}: {message.text}", [message.id]))
    actions, _ = _tasks(transcript)
    items.extend(
        (f"Action item for {a['assignee']['name']}: {a['text']}", a["messageIds"]) for a in actions
    )
    return [
        {
            "id": _numeric_id(transcript.id, "summary", text),
            "text": text,
            "messageRefs": [{"id": i} for i in refs],
        }
        for text, refs in items
    ]


def _union(spans: Iterable[Segment]) -> list[Segment]:
    merged: list[Segment] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _intersection(a: list[Segment], b: list[Segment]) -> list[Segment]:
    return [(max(s1, s2), min(e1, e2)) for s1, e1 in a for s2, e2 in b if min(e1, e2) > max(s1, s2)]


def _seconds(spans: Iterable[Segment]) -> float:
    return sum(end - start for start, end in _union(spans))


def _analytics(transcript: _Transcript) -> dict[str, Any]:
    """Talk/silence/overlap from true speech times; talk and listen shares of total talk."""
    members = transcript.members
    talk = {
        m: _union(
            (x.time_offset, x.time_offset + x.duration)
            for x in transcript.messages
            if x.member == m
        )
        for m in members
    }
    words = {
        m: sum(len(x.text.split()) for x in transcript.spoken if x.member == m) for m in members
    }
    total_talk = _seconds(span for spans in talk.values() for span in spans)
    overlap_spans = [
        span
        for a, b in itertools.combinations(members, 2)
        for span in _intersection(talk[a], talk[b])
    ]
    duration = transcript.duration

    def metric(kind: str, seconds: float) -> dict[str, Any]:
        percent = 100 * seconds / duration if duration else 0.0
        return {"type": kind, "percent": round(percent, 3), "seconds": round(seconds, 3)}

    def share(seconds: float) -> dict[str, float]:
        percent = 100 * seconds / total_talk if total_talk else 0.0
        return {"percentage": round(percent, 3), "seconds": round(seconds, 3)}

    def member_json(member: _Member) -> dict[str, Any]:
        own = _seconds(talk[member])
        others = [m for m in members if m != member]
        with_others = _intersection(talk[member], _union(s for m in others for s in talk[m]))
        overlapping = []
        for other in others:
            seconds = _seconds(_intersection(talk[member], talk[other]))
            if seconds > 0:
                overlapping.append(
                    _insight_from(other)
                    | {"percent": round(100 * seconds / own, 3), "seconds": round(seconds, 3)}
                )
        return _insight_from(member) | {
            "pace": {"wpm": round(words[member] * 60 / own) if own else 0},
            "talkTime": share(own),
            "listenTime": share(total_talk - own),
            "overlap": {
                "overlapDuration": round(_seconds(with_others), 3),
                "overlappingMembers": overlapping,
            },
        }

    return {
        "metrics": [
            metric("total_silence", max(0.0, duration - total_talk)),
            metric("total_talk_time", total_talk),
            metric("total_overlap", _seconds(overlap_spans)),
        ],
        "members": [member_json(m) for m in members],
    }


def _conversation_json(transcript: _Transcript) -> dict[str, Any]:
    return {
        "id": transcript.id,
        "type": "meeting",
        "name": transcript.name,
        "startTime": _iso(transcript.start),
        "endTime": _at(transcript, transcript.duration),
        "members": [_members_json(m) for m in transcript.members],
        "metadata": {},
    }


def _members_json(member: _Member) -> dict[str, str]:
    return {"id": member.id} | _person(member)


# ---------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------

_MEETING_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Meeting insights (fake Symbl)</title></head>
<body>
<h1 id="title">Meeting insights</h1>
<main id="insights"><p>Loading&hellip;</p></main>
<script>
"use strict";
const main = document.getElementById("insights");
function section(title, lines) {
  const heading = document.createElement("h2");
  heading.textContent = title;
  const list = document.createElement("ul");
  for (const line of lines) {
    const item = document.createElement("li");
    item.textContent = line;
    list.appendChild(item);
  }
  main.append(heading, list);
}
try {
  const session = JSON.parse(atob(location.hash.replace(/^#\\/?/, "").split("?")[0]));
  const id = session.sessionId || session.conversationId;
  fetch("data/" + encodeURIComponent(id))
    .then((response) => {
      if (!response.ok) throw new Error(response.status);
      return response.json();
    })
    .then((data) => {
      main.textContent = "";
      document.getElementById("title").textContent = data.conversation.name;
      section("Summary", data.summary.map((s) => s.text));
      section("Action items", data.actionItems.map((a) => a.text));
      section("Follow-ups", data.followUps.map((f) => f.text));
      section("Questions", data.questions.map((q) => q.text));
      section("Topics", data.topics.map((t) => t.text));
      section("Transcript", data.messages.map((m) => m.from.name + ": " + m.text));
    })
    .catch(() => { main.textContent = "Conversation not found."; });
} catch (error) {
  main.textContent = "Invalid meeting link.";
}
</script>
</body>
</html>
"""


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify(message=message), status


def _too_many(limit: int) -> tuple[Response, int]:
    return jsonify(statusCode=429, message=_CONCURRENCY_MESSAGE.format(limit=limit)), 429


def _presented_tokens() -> list[str]:
    tokens = []
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        tokens.append(credentials.strip())
    if api_key := request.headers.get("x-api-key", "").strip():
        tokens.append(api_key)
    return tokens


def _flag(name: str) -> bool:
    return request.args.get(name, "").lower() == "true"


def _b64(payload: dict[str, str]) -> str:
    return base64.b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


def create_app(state: FakeSymblState) -> Flask:
    """The Flask app serving `state` with Symbl's routes, status codes and bodies.

    Fault knobs act before anything else (a 5xx from a load balancer knows nothing of tokens).
    Only token:generate and the stand-in summary page (`/meeting/...`, public like the hosted
    page) need no token.
    """
    app = Flask(__name__, static_folder=None)
    app.json.sort_keys = False  # type: ignore[attr-defined]

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        return _error(exc.code or 500, exc.description or exc.name)

    @app.before_request
    def faults_and_auth() -> ResponseReturnValue | None:
        if request.endpoint in _SUBMIT_ENDPOINTS:
            g.arrival = state._arrival()  # before anything, faults included, can answer it
        status = state._take_http_fault(request.endpoint)
        if status is not None:
            return _error(status, HTTP_STATUS_CODES[status])
        if request.endpoint is None or request.endpoint in _PUBLIC_ENDPOINTS:
            return None
        if not state._authenticate(_presented_tokens()):
            return _error(401, TOKEN_INVALID_MESSAGE)
        return None

    @app.after_request
    def record_submit_attempt(response: Response) -> Response:
        arrival: _Arrival | None = g.pop("arrival", None)
        if arrival is not None:
            closed = g.pop("answer_closed", False)
            state._record_submit_attempt(arrival, None if closed else response.status_code)
        return response

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

    @app.post("/oauth2/token:generate", endpoint="token")
    def token() -> ResponseReturnValue:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or body.get("type") != "application":
            return _error(400, 'Body must be {"type":"application","appId":...,"appSecret":...}.')
        issued = state._issue_token(body.get("appId"), body.get("appSecret"))
        if issued is None:
            return _error(401, TOKEN_INVALID_MESSAGE)
        access_token, expires_in = issued
        return jsonify(accessToken=access_token, expiresIn=expires_in)

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

    def transcript_or_404(conversation_id: str) -> _Transcript:
        transcript = state._transcript(conversation_id)
        if transcript is None:
            raise _NotFound(f"Conversation {conversation_id} not found.")
        return transcript

    @app.errorhandler(_NotFound)
    def not_found(exc: _NotFound) -> ResponseReturnValue:
        return _error(404, str(exc))

    @app.get("/v1/conversations/<cid>", endpoint="conversation")
    def conversation(cid: str) -> ResponseReturnValue:
        return jsonify(_conversation_json(transcript_or_404(cid)))

    @app.get("/v1/conversations/<cid>/messages", endpoint="messages")
    def messages(cid: str) -> ResponseReturnValue:
        t = transcript_or_404(cid)
        verbose, sentiment = _flag("verbose"), _flag("sentiment")
        return jsonify(
            messages=[_message_json(m, t, verbose=verbose, sentiment=sentiment) for m in t.messages]
        )

    @app.get("/v1/conversations/<cid>/topics", endpoint="topics")
    def topics(cid: str) -> ResponseReturnValue:
        return jsonify(topics=_topics(transcript_or_404(cid), sentiment=_flag("sentiment")))

    @app.get("/v1/conversations/<cid>/questions", endpoint="questions")
    def questions(cid: str) -> ResponseReturnValue:
        return jsonify(questions=_questions(transcript_or_404(cid)))

    @app.get("/v1/conversations/<cid>/action-items", endpoint="action_items")
    def action_items(cid: str) -> ResponseReturnValue:
        return jsonify(actionItems=_tasks(transcript_or_404(cid))[0])

    @app.get("/v1/conversations/<cid>/follow-ups", endpoint="follow_ups")
    def follow_ups(cid: str) -> ResponseReturnValue:
        return jsonify(followUps=_tasks(transcript_or_404(cid))[1])

    @app.get("/v1/conversations/<cid>/summary", endpoint="summary")
    def summary(cid: str) -> ResponseReturnValue:
        t = transcript_or_404(cid)
        if not t.complete:
            return _error(404, "Summary is not available until the job is complete.")
        if _flag("refresh"):
            state._request_summary(cid)
        if not state._summary_written(cid):
            return _error(404, f"Summary for conversation {cid} not found.")
        if not state._summarisable(t):
            if state.unsummarisable_answer == "404":
                return _error(404, f"Summary for conversation {cid} not found.")
            return jsonify(summary=[])
        return jsonify(summary=_summary(t))

    @app.post("/v1/conversations/<cid>/summary", endpoint="summary_refresh")
    def summary_refresh(cid: str) -> ResponseReturnValue:
        t = transcript_or_404(cid)
        if not _flag("refresh"):
            return _error(400, "Only refresh=true is supported.")
        if not t.complete:
            return _error(404, "Summary is not available until the job is complete.")
        state._request_summary(cid)
        return jsonify(message="Summary generation started."), 202

    @app.get("/v1/conversations/<cid>/analytics", endpoint="analytics")
    def analytics(cid: str) -> ResponseReturnValue:
        return jsonify(_analytics(transcript_or_404(cid)))

    @app.get("/v1/conversations/<cid>/members", endpoint="members")
    def members(cid: str) -> ResponseReturnValue:
        return jsonify(members=[_members_json(m) for m in transcript_or_404(cid).members])

    @app.post("/v1/conversations/<cid>/experiences", endpoint="experiences")
    def experiences(cid: str) -> ResponseReturnValue:
        transcript_or_404(cid)
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _error(400, "Request body must be a JSON object.")
        expires = body.get("summaryURLExpiresIn")
        if expires is not None and not (_is_int(expires) and expires >= 0):
            return _error(400, "summaryURLExpiresIn must be a non-negative integer.")
        for key in ("readOnly", "enableCustomDomain"):
            if key in body and not _is_bool(body[key]):
                return _error(400, f"{key} must be a boolean.")
        # The hosted page is https, like Symbl's; this fake serves it on its own host in plain
        # http (no TLS on loopback), so a local browser opens it with `http://` at the same path.
        page = f"https://{request.host}/meeting/#/"
        name = body.get("name")
        if name == "verbose-text-summary":
            url = page + _b64({"sessionId": cid})
        elif name in ("video-summary", "audio-summary"):
            media_key = "videoUrl" if name == "video-summary" else "audioUrl"
            media = body.get(media_key)
            if not isinstance(media, str) or not media:
                return _error(400, f"{media_key} is required for {name}.")
            if name == "video-summary":
                url = page + _b64({"sessionId": cid, "videoUrl": media}) + "?showVideoSummary=true"
            else:
                url = page + _b64({"conversationId": cid, "audioUrl": media})
        else:
            return _error(400, "name must be verbose-text-summary, video-summary or audio-summary.")
        options = {key: value for key, value in body.items() if key != "name"}
        state._record_experience(ExperienceRequest(cid, name, options, url))
        return jsonify(name=name, url=url)

    @app.get("/meeting/", endpoint="meeting_page")
    def meeting_page() -> ResponseReturnValue:
        return Response(_MEETING_PAGE, mimetype="text/html")

    @app.get("/meeting/data/<cid>", endpoint="meeting_data")
    def meeting_data(cid: str) -> ResponseReturnValue:
        t = transcript_or_404(cid)
        actions, follow = _tasks(t)
        return jsonify(
            conversation=_conversation_json(t),
            summary=_summary(t) if t.complete else [],
            actionItems=actions,
            followUps=follow,
            questions=_questions(t),
            topics=_topics(t, sentiment=False),
            messages=[_message_json(m, t, verbose=False, sentiment=False) for m in t.messages],
        )

    return app


def serve(state: FakeSymblState) -> LoopbackServer:
    """Serve `state` on a free loopback port; the server is already started, call `.stop()`."""
    return LoopbackServer(create_app(state)).start()
