"""The notify stage: a TRANSCRIBED meeting's insights go to S3 and its host gets one email.

Flow: skip rules (topic marker, opted-out host) → TRANSCRIBED → SKIPPED; otherwise the speech
provider (`services.core.speech.provider`) is asked for the meeting's insights, which may take
it several deliveries (it answers `Wait`: the request comes back later, delayed, using no SQS
receive); the document is stored, the email rendered, then the send is claimed with the
conditional TRANSCRIBED → NOTIFYING, sent through SES, and NOTIFYING → NOTIFIED is recorded with
SES's message id.

Exactly one email, or at most one when a crash or an unclear answer leaves doubt:
- Everything before the claim is repeatable (same S3 key, an equivalent email), so duplicate
  deliveries race only for the claim, and the conditional write lets one of them through.
- NOTIFYING means "an email may be on its way". It is entered immediately before the SES call,
  so it doubles as the send marker.
- What SES's answer proves decides what happens to the claim (`SesMailer.send`):
  - Not sent: an error answer with a 4xx HTTP status (SES checks a request before it accepts
    the message, so a 4xx is a refusal), or no connection at all (the endpoint could not be
    reached, the connection could not be opened). The claim is released (NOTIFYING →
    TRANSCRIBED). A refusal that retrying cannot cure until an operator acts (MessageRejected,
    the not-verified / account-suspended / sending-paused family, BadRequest, NotFound) ends
    the meeting FAILED; throttling (Throttling, TooManyRequests, LimitExceeded, HTTP 429) and
    any other 4xx are retried through the queue, whose redrive limit bounds them.
  - In doubt: a 5xx (InternalFailure, ServiceUnavailable, ...), an answer without a status, a
    read timeout or a connection cut after the request was sent, any other error. SES may
    have accepted the message, so it is never sent again: the meeting is settled NOTIFIED at
    once with `email_message_id` = EMAIL_IN_DOUBT and `EmailsInDoubt` is counted.
- If the process dies after the claim (a crash, a timeout), nobody can know whether the email
  went out. A later delivery that finds NOTIFYING older than SEND_SETTLE_SECONDS (a live sender
  finishes well within it: one SES call without retries, then one table write) settles the
  meeting in doubt the same way; a younger NOTIFYING is retried later, since its sender may
  still be at work.
- Trade-off: the host can miss an email in that rare window, but never gets two. Repeating a
  summary to a whole meeting's host and copied recipients is the worse failure, and an operator
  can see the in-doubt meetings (metric, log, item) and resend by hand. For the same reason a
  meeting in NOTIFYING is never marked FAILED: an operator retry would send a second email.
- The SES client makes exactly one attempt (botocore would otherwise retry a 5xx or a read
  timeout and could send twice).

Failures: a meeting that ends FAILED, here (`give_up`) or in any stage, is only recorded FAILED;
the host is never emailed about it. The reconciler's sweep (services/core/failures.py) announces
every failure to the operators on the SNS topic, once. This module imports no template engine
(rendering is injected).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email import policy as email_policy
from email.message import EmailMessage
from typing import Any, Protocol
from urllib.parse import quote

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
)

from services.core import aws
from services.core.errors import InsightsError, PermanentError, StateConflict, TransientError
from services.core.insights.document import InsightsDocument, store_insights
from services.core.intake import MessageSender
from services.core.links import make_page_token
from services.core.observability import MetricUnit, logger, mask_email, record_metric
from services.core.queues import NotifyRequest
from services.core.recordings import TRANSCRIBE_STAGE, Recording, RecordingStore, State, iso, utcnow
from services.core.settings import NotifierSettings
from services.core.speech.provider import Insights, InsightsRequest, SpeechAnalytics, Wait
from services.core.speech.segment_map import SegmentMap, load_segment_map

STAGE = "notify"
EMAIL_IN_DOUBT = "unknown (sent before a crash)"
SEND_SETTLE_SECONDS = 120
FAILURE_NOTICES = "failure_notices"  # attempts counter: operator notices published
SNS_SUBJECT_CHARS = 99

# SES refuses with these (4xx) when retrying cannot help until an operator changes something.
PERMANENT_SES_CODES = frozenset(
    {
        "MessageRejected",
        "MailFromDomainNotVerifiedException",
        "AccountSuspendedException",
        "SendingPausedException",
        "BadRequestException",
        "NotFoundException",
    }
)
# SES refuses with these (4xx) before accepting anything when the account sends too fast or is
# over a quota: the same email may go through later.
THROTTLING_SES_CODES = frozenset(
    {"Throttling", "ThrottlingException", "TooManyRequestsException", "LimitExceededException"}
)
SES_CONFIG = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30)


# ---------------------------------------------------------------------------------------------
# Adapters: SES and SNS
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutgoingEmail:
    sender: str
    recipients: tuple[str, ...]
    subject: str
    html: str
    text: str
    configuration_set: str = ""


class EmailNotSent(InsightsError):
    """SES definitely did not send the email (it refused it with a 4xx, or was unreachable)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class EmailInDoubt(InsightsError):
    """SES may or may not have accepted the email (a 5xx, a read timeout, an unknown error)."""


class Mailer(Protocol):
    def send(self, email: OutgoingEmail) -> str: ...


def mime_message(email: OutgoingEmail) -> bytes:
    """The email as MIME: a multipart/alternative with the text part first, then the HTML.

    Sent as SES "Raw" content, so what SES stores and delivers is exactly these bytes (and a
    local copy, `.eml`, is the very message the host gets)."""
    # SMTP line endings; headers unfolded up to RFC 5322's 998 characters, because folding
    # between encoded words loses the spaces around non-ASCII words in the subject.
    message = EmailMessage(policy=email_policy.SMTP.clone(max_line_length=998))
    message["From"] = email.sender
    message["To"] = ", ".join(email.recipients)
    message["Subject"] = email.subject
    # Quoted-printable keeps the message 7-bit clean through any relay; names stay UTF-8.
    message.set_content(email.text, cte="quoted-printable")
    message.add_alternative(email.html, subtype="html", cte="quoted-printable")
    return message.as_bytes()


class SesMailer:
    """SES v2 `SendEmail` with raw MIME content (HTML + text); one attempt per call."""

    def __init__(self, client: Any | None = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            # Not the shared aws.client(): that one retries, and a retried send can mail twice.
            self._client = boto3.session.Session().client("sesv2", config=SES_CONFIG)
        return self._client

    def send(self, email: OutgoingEmail) -> str:
        request: dict[str, Any] = {
            "FromEmailAddress": email.sender,
            "Destination": {"ToAddresses": list(email.recipients)},
            "Content": {"Raw": {"Data": mime_message(email)}},
        }
        if email.configuration_set:
            request["ConfigurationSetName"] = email.configuration_set
        try:
            response = self.client.send_email(**request)
        except ClientError as e:
            raise ses_outcome(e) from e
        except (EndpointConnectionError, ConnectTimeoutError) as e:
            # The connection was never opened: the request cannot have reached SES.
            raise EmailNotSent(f"SES unreachable: {type(e).__name__}", permanent=False) from e
        except BotoCoreError as e:
            # A read timeout or a connection cut after the request went out, among others.
            raise EmailInDoubt(f"SES gave no answer: {type(e).__name__}") from e
        return str(response["MessageId"])


def ses_outcome(error: ClientError) -> EmailNotSent | EmailInDoubt:
    """What an SES error answer proves about the email (the rule is in the module docstring)."""
    code = aws.error_code(error)
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if not isinstance(status, int) or not 400 <= status < 500:
        return EmailInDoubt(f"SES answered {status or 'without a status'}: {code}")
    if code in PERMANENT_SES_CODES:
        return EmailNotSent(f"SES refused the email: {code}", permanent=True)
    if code in THROTTLING_SES_CODES or status == 429:
        return EmailNotSent(f"SES throttled the email: {code}", permanent=False)
    return EmailNotSent(f"SES refused the email ({status}): {code}", permanent=False)


# ---------------------------------------------------------------------------------------------
# The stage
# ---------------------------------------------------------------------------------------------


class EmailContent(Protocol):
    @property
    def subject(self) -> str: ...
    @property
    def html(self) -> str: ...
    @property
    def text(self) -> str: ...


RenderEmail = Callable[[InsightsDocument, str], EmailContent]


class SendInFlight(TransientError):
    """Another delivery claimed the send moments ago; look again once it must have finished."""


@dataclass
class NotifierDeps:
    settings: NotifierSettings
    store: RecordingStore
    speech: SpeechAnalytics
    s3: Any
    mailer: Mailer
    render: RenderEmail
    sns: Any
    notify_queue: MessageSender
    link_key: Callable[[], str]
    clock: Callable[[], datetime] = field(default=utcnow)


def skip_reason(recording: Recording, settings: NotifierSettings) -> str | None:
    """Why this meeting gets no notes, or None."""
    topic = recording.topic.casefold()
    for marker in settings.skip_topic_marker_list:
        if marker.casefold() in topic:
            return f"topic contains {marker!r}"
    host = (recording.host_email or "").strip().casefold()
    if host and host in {h.casefold() for h in settings.opted_out_host_list}:
        return "host opted out of meeting notes"
    return None


def recipients_for(recording: Recording, settings: NotifierSettings) -> tuple[str, ...]:
    """The host, then the configured extra recipients; each address once (case-insensitively)."""
    unique: dict[str, str] = {}
    for address in (recording.host_email or "", *settings.extra_recipient_list):
        address = address.strip()
        if address:
            unique.setdefault(address.casefold(), address)
    return tuple(unique.values())


def link_lifetime_seconds(settings: NotifierSettings) -> int:
    """How long every link in the email works: the insights page's and the provider's page."""
    return settings.insights_link_lifetime_days * 24 * 3600


def page_url(settings: NotifierSettings, meeting_uuid: str, key: str, now: datetime) -> str:
    """The signed link to the insights page; the UUID is one path segment however it is spelled."""
    token = make_page_token(meeting_uuid, key, link_lifetime_seconds(settings), now.timestamp())
    base = settings.insights_page_base_url.rstrip("/")
    return f"{base}/meetings/{quote(meeting_uuid, safe='')}?token={token}"


def _age_seconds(stamp: str, now: datetime) -> float:
    if not stamp:
        return float("inf")
    return (now - datetime.fromisoformat(stamp.replace("Z", "+00:00"))).total_seconds()


def notify_meeting(meeting_uuid: str, deps: NotifierDeps) -> str:
    """Handle one NotifyRequest; returns what was done (for logs and tests)."""
    recording = deps.store.get(meeting_uuid)
    if recording is None:
        raise PermanentError(f"no recording {meeting_uuid!r}")
    if recording.state == State.TRANSCRIBED:
        return _notify(recording, deps)
    if recording.state == State.NOTIFYING:
        return _settle_interrupted_send(recording, deps)
    if recording.state == State.FAILED:
        # Never an email; the reconciler's sweep (services/core/failures.py) tells the operators.
        return "failed; announced by the failure sweep"
    if recording.state in (State.NOTIFIED, State.SKIPPED):
        return "already done"
    # An early or stale request (the meeting went back for another transcription): the
    # transition to TRANSCRIBED sends a fresh one.
    return "not transcribed yet"


def _notify(recording: Recording, deps: NotifierDeps) -> str:
    settings = deps.settings
    uuid = recording.meeting_uuid
    reason = skip_reason(recording, settings)
    if reason is not None:
        return _skip(uuid, reason, deps)
    recipients = recipients_for(recording, settings)
    if not recipients:
        raise PermanentError("nobody to email: the host has no address and no extra recipients")
    if recording.speech_provider not in (None, deps.speech.provider):
        return _transcribed_elsewhere(recording, deps)
    request = InsightsRequest(
        recording=recording,
        segment_map=_segment_map(recording, deps),
        now=deps.clock(),
        link_lifetime_seconds=link_lifetime_seconds(settings),
        progress=MeetingProgress(deps.store, uuid, recording, deps.clock),
    )
    try:
        outcome = deps.speech.insights(request)
    except StateConflict:
        return "already handled"
    if isinstance(outcome, Wait):
        return _wait(recording, outcome, deps)
    document = outcome.document
    _record_insights_metrics(outcome)
    key = store_insights(deps.s3, settings.media_bucket, document)
    _forget_job(recording, deps)
    content = deps.render(document, page_url(settings, uuid, deps.link_key(), deps.clock()))
    email = OutgoingEmail(
        sender=settings.ses_sender,
        recipients=recipients,
        subject=content.subject,
        html=content.html,
        text=content.text,
        configuration_set=settings.ses_configuration_set,
    )
    try:
        claimed = deps.store.transition(
            uuid,
            State.TRANSCRIBED,
            State.NOTIFYING,
            updates={"insights_key": key},
            count_attempt=STAGE,
        )
    except StateConflict:
        return "claimed by another delivery"
    return _send(claimed, email, deps)


def _transcribed_elsewhere(recording: Recording, deps: NotifierDeps) -> str:
    """Transcribed by the provider this deployment no longer uses (a switch with the meeting in
    flight): its insights cannot be read here. It ends FAILED in the transcribe stage, so the
    failure is announced and `replay` submits it again, to the current provider."""
    reason = (
        f"transcribed by {recording.speech_provider}, but this deployment now uses "
        f"{deps.speech.provider}: replay the meeting to transcribe it again"
    )
    try:
        deps.store.fail(
            recording.meeting_uuid, State.TRANSCRIBED, stage=TRANSCRIBE_STAGE, reason=reason
        )
    except StateConflict:
        return "already handled"
    logger.warning("meeting transcribed by another provider", reason=reason)
    return "failed: transcribed by another provider"


def _skip(meeting_uuid: str, reason: str, deps: NotifierDeps) -> str:
    try:
        deps.store.transition(
            meeting_uuid, State.TRANSCRIBED, State.SKIPPED, updates={"skip_reason": reason}
        )
    except StateConflict:
        return "already handled"
    record_metric("NotesSkipped")
    logger.info("meeting notes skipped", reason=reason)
    return "skipped"


def _send(claimed: Recording, email: OutgoingEmail, deps: NotifierDeps) -> str:
    uuid = claimed.meeting_uuid
    try:
        message_id = deps.mailer.send(email)
    except EmailNotSent as e:
        _release_claim(uuid, str(e), deps)
        if e.permanent:
            raise PermanentError(str(e)) from e
        raise TransientError(str(e)) from e
    except EmailInDoubt as e:
        logger.warning("SES answer leaves the email in doubt", error=str(e))
        return _settle_in_doubt(uuid, deps, f"{e}; may have been sent, not sent again")
    record_metric("EmailsSent")
    logger.info(
        "email sent",
        email_message_id=message_id,
        recipients=[mask_email(r) for r in email.recipients],
    )
    try:
        deps.store.transition(
            uuid, State.NOTIFYING, State.NOTIFIED, updates={"email_message_id": message_id}
        )
    except StateConflict:
        logger.warning(
            "email sent but the meeting was settled meanwhile", email_message_id=message_id
        )
        return "sent"
    except Exception:
        # The retry will settle the meeting as in doubt; this line keeps the real id.
        logger.exception("email sent but not recorded", email_message_id=message_id)
        raise
    if claimed.created_at:
        record_metric(
            "EndToEndSeconds", _age_seconds(claimed.created_at, deps.clock()), MetricUnit.Seconds
        )
    return "sent"


def _release_claim(meeting_uuid: str, reason: str, deps: NotifierDeps) -> None:
    """SES sent nothing: hand the meeting back so that a retry may send."""
    try:
        deps.store.transition(
            meeting_uuid,
            State.NOTIFYING,
            State.TRANSCRIBED,
            updates={"last_error": f"email not sent: {reason}"},
        )
    except StateConflict:
        logger.info("send claim already settled")


def _settle_interrupted_send(recording: Recording, deps: NotifierDeps) -> str:
    """A claimed send that never recorded its outcome: settle it without sending again."""
    age = _age_seconds(recording.state_since, deps.clock())
    if age < SEND_SETTLE_SECONDS:
        raise SendInFlight(f"an email send was claimed {age:.0f} s ago and may still be running")
    return _settle_in_doubt(
        recording.meeting_uuid,
        deps,
        "the sender stopped after claiming the email; not sent again",
    )


def _settle_in_doubt(meeting_uuid: str, deps: NotifierDeps, reason: str) -> str:
    try:
        deps.store.transition(
            meeting_uuid,
            State.NOTIFYING,
            State.NOTIFIED,
            updates={"email_message_id": EMAIL_IN_DOUBT, "last_error": reason},
        )
    except StateConflict:
        return "already settled"
    record_metric("EmailsInDoubt")
    logger.warning("email may or may not have been sent; not sending again")
    return "settled in doubt"


def _segment_map(recording: Recording, deps: NotifierDeps) -> SegmentMap | None:
    """The merged file's segment map; None for a meeting merged without one."""
    if not recording.segment_map_key:
        if recording.audio_layout == "compact":
            raise PermanentError("compact meeting has no segment map")
        return None
    try:
        return load_segment_map(deps.s3, deps.settings.media_bucket, recording.segment_map_key)
    except ClientError as e:
        if aws.error_code(e) in ("NoSuchKey", "404"):
            raise PermanentError(f"segment map {recording.segment_map_key} is gone") from e
        raise TransientError(f"segment map unreadable: {aws.error_code(e)}") from e


@dataclass
class MeetingProgress:
    """The provider's steps for one meeting, kept on its item (`Progress`): each write is
    conditional on the meeting still being TRANSCRIBED."""

    store: RecordingStore
    meeting_uuid: str
    recording: Recording
    clock: Callable[[], datetime]

    def count(self, counter: str) -> int:
        return self.recording.attempts.get(counter, 0)

    def record(self, counter: str) -> None:
        self.recording = self.store.update_fields(
            self.meeting_uuid, State.TRANSCRIBED, {}, count_attempt=counter
        )

    def stamp(self, field: str) -> None:
        self.recording = self.store.update_fields(
            self.meeting_uuid, State.TRANSCRIBED, {field: iso(self.clock())}
        )


def _record_insights_metrics(insights: Insights) -> None:
    """What producing the notes cost and lacked, once per meeting's notes."""
    if insights.model_calls:
        record_metric("ModelCalls", insights.model_calls)
        record_metric("ModelInputTokens", insights.model_input_tokens)
        record_metric("ModelOutputTokens", insights.model_output_tokens)
    document = insights.document
    if document.sections_missing:
        record_metric("InsightsSectionsMissing", len(document.sections_missing))
    if document.summary_missing:
        record_metric("SummariesMissing")
    if insights.speakers_unconfirmed:
        record_metric("SpeakersUnconfirmed")


def _wait(recording: Recording, wait: Wait, deps: NotifierDeps) -> str:
    """The provider is not ready: ask again later with a fresh, delayed request.

    A delayed message instead of a failed one, so that waiting does not use up the message's
    receive count (which would end the meeting FAILED); the item counts the waits instead, and
    the provider stops waiting once it has counted enough.
    """
    try:
        updated = deps.store.update_fields(
            recording.meeting_uuid,
            State.TRANSCRIBED,
            {"last_error": wait.reason},
            count_attempt=wait.counter,
        )
    except StateConflict:
        return "already handled"
    deps.notify_queue.send(
        NotifyRequest(meeting_uuid=recording.meeting_uuid), delay_seconds=wait.delay_seconds
    )
    logger.info(
        "insights not ready; looking again later",
        reason=wait.reason,
        delay_seconds=wait.delay_seconds,
        checks=updated.attempts.get(wait.counter, 0),
    )
    return f"waiting: {wait.reason}"


def _forget_job(recording: Recording, deps: NotifierDeps) -> None:
    """The insights are stored: the provider's record of the job is no longer needed. Best
    effort; the provider expires it on its own (Transcribe after 90 days)."""
    try:
        deps.speech.forget(recording)
    except Exception as e:  # noqa: BLE001 - never worth the email
        record_metric("SpeechJobsNotDeleted")
        logger.warning("provider job not deleted", error=str(e))


def give_up(meeting_uuid: str, reason: str, deps: NotifierDeps) -> None:
    """The request cannot succeed: end the meeting FAILED (the reconciler's failure sweep tells
    the operators).

    A meeting already in NOTIFYING is settled in doubt instead: its email may have gone out.
    """
    try:
        deps.store.fail(meeting_uuid, State.TRANSCRIBED, stage=STAGE, reason=reason)
    except StateConflict as e:
        if e.actual == State.NOTIFYING:
            _settle_in_doubt(
                meeting_uuid, deps, "the sender stopped after claiming the email; not sent again"
            )
