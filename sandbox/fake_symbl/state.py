"""`FakeSymblState`: everything the fake knows (tokens, conversations, jobs, records), its
configuration and its fault knobs, the job engine that moves jobs through their statuses, the
speaker events that apply to a conversation after a delay, and the sandbox's readouts (billing,
the truth about who said what)."""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from sandbox.fake_symbl.auth import _Tokens
from sandbox.fake_symbl.conversation_api import ExperienceRequest
from sandbox.fake_symbl.faults import _FaultKnobs
from sandbox.fake_symbl.insights import _sentences
from sandbox.fake_symbl.jobs import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    DuplicateJob,
    Duration,
    JobRecord,
    JobStatus,
    Rejection,
    Submission,
    SubmitAttempt,
    WebhookAttempt,
    _Accepted,
    _Arrival,
    _Delivery,
    _draw,
    _Job,
    _Scheduler,
    _WebhookSender,
)
from sandbox.fake_symbl.measure import Billing, ConversationTruth, HeardLine, truth_words
from sandbox.fake_symbl.model import Segment, _Message, _Transcript
from sandbox.fake_symbl.recogniser import (
    AudioInfo,
    _AnalysisError,
    _Ffmpeg,
    _find_speech,
    _heard_messages,
    _Plan,
    _plan,
    _recognise,
    _templates,
    _to_messages,
    _transcribe,
)
from sandbox.fake_symbl.speakers import SpeakerEventsPut, _Event, _Span, attribute, speaker_spans
from sandbox.registry import MeetingRegistry

logger = logging.getLogger(__name__)


@dataclass
class _Conversation:
    id: str
    name: str
    start: datetime
    job_ids: list[str] = field(default_factory=list)
    audio_seconds: float = 0.0  # accepted audio, the offset of the next appended file
    published_seconds: float = 0.0  # audio whose job completed
    recognised: list[_Message] = field(default_factory=list)  # as the recogniser made them
    messages: list[_Message] = field(default_factory=list)  # `recognised`, speaker events applied
    heard: list[HeardLine] = field(default_factory=list)  # lines recognised by content
    speaker_spans: list[_Span] | None = None  # the speaker events applied, as spans
    speaker_puts: int = 0  # PUTs of speaker events to apply; only the latest one does
    summary_due: float | None = None  # time.monotonic() when the requested summary is written
    summary_messages: tuple[_Message, ...] = ()  # what the requested summary is written from


class FakeSymblState(_FaultKnobs):
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
        speaker_events_seconds: Duration = 0.3,
        fingerprint_cache_dir: Path | None = None,
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
        self.speaker_events_seconds = speaker_events_seconds
        """Time from a `PUT .../speakers` until messages, members and insights show its events."""

        self._cond = threading.Condition(threading.RLock())
        self._rng = random.Random(seed)
        self._tokens = _Tokens()
        self._jobs: dict[str, _Job] = {}
        self._conversations: dict[str, _Conversation] = {}
        self._submissions: list[Submission] = []
        self._rejections: list[Rejection] = []
        self._experiences: list[ExperienceRequest] = []
        self._submit_attempts: list[SubmitAttempt] = []
        self._attempts: list[WebhookAttempt] = []
        self._speaker_puts: list[SpeakerEventsPut] = []
        self._active = 0
        self._max_in_flight = 0
        super().__init__()  # the fault knobs
        self._ffmpeg = _Ffmpeg()
        self._closed = False
        self._workdir = Path(tempfile.mkdtemp(prefix="fake-symbl-"))
        self.fingerprint_cache_dir = fingerprint_cache_dir or self._workdir / "fingerprints"
        """Where the content recogniser keeps its templates' fingerprints (default: deleted with
        the downloads by `close()`; pass a lasting directory to build them once per machine)."""
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
    def speaker_event_puts(self) -> list[SpeakerEventsPut]:
        """Every `PUT .../speakers` in arrival order, with its body and answer."""
        with self._cond:
            return list(self._speaker_puts)

    def billed_seconds(self, conversation_id: str | None = None) -> float:
        """Seconds billed (duration x channels of every completed job) for one conversation, or
        for the account when `conversation_id` is None."""
        with self._cond:
            return sum(
                job.billed_seconds
                for job in self._jobs.values()
                if conversation_id is None or job.conversation_id == conversation_id
            )

    def billing(self) -> list[Billing]:
        """What each conversation was billed, in the order the conversations were created."""
        with self._cond:
            result = []
            for conversation in self._conversations.values():
                completed = [
                    job
                    for job in (self._jobs[j] for j in conversation.job_ids)
                    if job.status == "completed"
                ]
                result.append(
                    Billing(
                        conversation_id=conversation.id,
                        name=conversation.name,
                        jobs=len(completed),
                        audio_seconds=sum(job.info.duration for job in completed),
                        billed_seconds=sum(job.billed_seconds for job in completed),
                    )
                )
            return result

    def truth(self, conversation_id: str) -> ConversationTruth | None:
        """For a conversation recognised by content: each word heard with its true speaker and
        the speaker it is attributed to now, and the lines found. None: unknown conversation."""
        with self._cond:
            conversation = self._conversations.get(conversation_id)
            if conversation is None:
                return None
            return ConversationTruth(
                conversation_id=conversation.id,
                name=conversation.name,
                words=truth_words(conversation.messages),
                heard=tuple(conversation.heard),
            )

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

    # -- fault knobs (the others are in its base class, `_FaultKnobs`) ---------------------

    def expire_tokens(self) -> None:
        """Invalidate every issued token now; the next token:generate mints a new one."""
        with self._cond:
            self._tokens.expire_all()

    # -- life cycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop timers, analysis and webhook threads, kill ffmpeg, delete downloaded files."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
        self._ffmpeg.close()
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

    def _issue_token(self, app_id: object, app_secret: object) -> tuple[str, int] | None:
        """(token, expiresIn) for valid credentials, reusing the current token until near expiry."""
        with self._cond:
            if app_id != self.app_id or app_secret != self.app_secret:
                return None
            return self._tokens.issue(self.app_id, self.token_lifetime, self.token_reissue_margin)

    def _authenticate(self, presented: Iterable[str]) -> bool:
        with self._cond:
            return self._tokens.valid(presented)

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

    def _record_speakers_put(self, put: SpeakerEventsPut) -> None:
        with self._cond:
            self._speaker_puts.append(put)
            self._cond.notify_all()

    def _put_speaker_events(self, conversation_id: str, events: list[_Event]) -> bool:
        """Apply `events` to the conversation after `speaker_events_seconds`, replacing earlier
        ones. Returns True when the `ignore_speaker_events` knob swallowed them."""
        with self._cond:
            conversation = self._conversations[conversation_id]
            if self._fire("ignore_speaker_events") is not None:
                return True
            conversation.speaker_puts += 1
            self._scheduler.call_later(
                _draw(self.speaker_events_seconds),
                partial(
                    self._apply_speakers,
                    conversation_id,
                    conversation.speaker_puts,
                    speaker_spans(events),
                ),
            )
            return False

    def _apply_speakers(self, conversation_id: str, put: int, spans: list[_Span]) -> None:
        with self._cond:
            conversation = self._conversations[conversation_id]
            if put != conversation.speaker_puts:
                return  # a later PUT replaces these events
            conversation.speaker_spans = spans
            conversation.messages = attribute(conversation.id, conversation.recognised, spans)
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
        """A refresh: the old summary is deleted and a new one, of the conversation as it is
        now (speakers included), written `summary_seconds` on."""
        with self._cond:
            self._summary_requested(self._conversations[conversation_id], time.monotonic())

    def _summary_requested(self, conversation: _Conversation, at: float) -> None:
        conversation.summary_due = at + _draw(self.summary_seconds)
        conversation.summary_messages = tuple(conversation.messages)

    def _summary_transcript(self, conversation_id: str) -> _Transcript | None:
        """The conversation as its summary was asked for, once the summary is written; None
        before. The summary is cached: later changes (speaker events) need a refresh."""
        with self._cond:
            conversation = self._conversations[conversation_id]
            due = conversation.summary_due
            if due is None or time.monotonic() < due:
                return None
            transcript = self._transcript(conversation_id)
            assert transcript is not None
            return _Transcript(
                id=transcript.id,
                name=transcript.name,
                start=transcript.start,
                duration=transcript.duration,
                messages=conversation.summary_messages,
                complete=transcript.complete,
            )

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
            conversation.recognised = sorted(
                [*conversation.recognised, *job.messages], key=lambda m: m.time_offset
            )
            spans = conversation.speaker_spans
            conversation.messages = (
                attribute(conversation.id, conversation.recognised, spans)
                if spans is not None
                else list(conversation.recognised)
            )
            conversation.heard.extend(job.heard)
            conversation.published_seconds = max(
                conversation.published_seconds, job.time_offset + job.info.duration
            )
            self._transition(job, "completed")
            if job.submission.options.get("enableSummary") is True:
                self._summary_requested(conversation, job.history[-1][1])
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
        heard: list[HeardLine] = []
        error: str | None = None
        try:
            if audio is None:
                raise _AnalysisError("the audio file is gone")
            templates = _templates(plan, self.registry)
            if templates:
                occurrences = _recognise(audio, templates, self.fingerprint_cache_dir)
                messages = _heard_messages(job_id, offset, plan, occurrences)
                heard = [
                    HeardLine(
                        template_key=o.template.key,
                        true_speaker=o.template.speaker,
                        start=round(offset + o.start, 3),
                        end=round(offset + o.end, 3),
                        words_heard=len(o.words),
                    )
                    for o in occurrences
                ]
            else:
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
            job.heard = heard
            job.analysis_error = error
            self._finish_if_ready(job)

    def _detect_speech(self, audio: Path, info: AudioInfo, plan: _Plan) -> dict[int, list[Segment]]:
        """Speech segments per 1-based channel (one mixed-down channel unless per-channel)."""
        return _find_speech(
            self._ffmpeg, audio, info, plan, self.silence_threshold_db, self.min_silence_seconds
        )
