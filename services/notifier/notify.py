"""The notify stage: a TRANSCRIBED meeting's insights go to S3 and its host gets one email.

Flow: skip rules (topic marker, opted-out host) → TRANSCRIBED → SKIPPED; otherwise fetch the
insights (a summary that is not ready yet is looked at again later), store them, render the
email, then claim the send with the conditional TRANSCRIBED → NOTIFYING, send through SES, and
record NOTIFYING → NOTIFIED with SES's message id.

Exactly one email, or at most one when a crash leaves doubt:
- Everything before the claim is repeatable (same S3 key, an equivalent email), so duplicate
  deliveries race only for the claim, and the conditional write lets one of them through.
- NOTIFYING means "an email may be on its way". It is entered immediately before the SES call,
  so it doubles as the send marker. If SES definitely refused the email (an error response, or no
  connection at all), the claim is released (NOTIFYING → TRANSCRIBED) and the message retried.
- If the process dies after the claim (a crash, a timeout, a read timeout after SES may have
  accepted), nobody can know whether the email went out. A later delivery that finds NOTIFYING
  older than SEND_SETTLE_SECONDS (a live sender finishes well within it: one SES call without
  retries, then one table write) settles the meeting NOTIFIED with `email_message_id` set to
  EMAIL_IN_DOUBT and counts `EmailsInDoubt`; a younger NOTIFYING is retried later, since its
  sender may still be at work.
- Trade-off: the host can miss an email in that rare window, but never gets two. Repeating a
  summary to a whole meeting's host and copied recipients is the worse failure, and an operator
  can see the in-doubt meetings (metric, log, item) and resend by hand. For the same reason a
  meeting in NOTIFYING is never marked FAILED: an operator retry would send a second email.
- The SES client makes exactly one attempt (botocore would otherwise retry a read timeout and
  could send twice).

Failures: a meeting that ends FAILED, here or in any stage, is announced to the operators on the
SNS topic (`announce_failure`, at least once per failure; the host is never emailed about it).
Other stages either call `announce_failure` after `RecordingStore.fail`, or send a NotifyRequest
for the FAILED meeting and let the notifier announce it. This module imports no template engine
(rendering is injected), so those stages can import it without the notifier's dependencies.
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
from services.core.intake import MessageSender
from services.core.links import make_page_token
from services.core.observability import MetricUnit, logger, mask_email, record_metric
from services.core.queues import NotifyRequest
from services.core.recordings import Recording, RecordingStore, State, utcnow
from services.core.settings import NotifierSettings
from services.core.symbl import NotReady, SpeechAnalytics
from services.notifier.insights import InsightsDocument, gather_insights, store_insights

STAGE = "notify"
EMAIL_IN_DOUBT = "unknown (sent before a crash)"
SEND_SETTLE_SECONDS = 120
# With the default 60-s retry, the summary may take half an hour to appear before we give up.
MAX_SUMMARY_CHECKS = 30
SUMMARY_WAIT = "summary_wait"  # attempts counter: summary checks that found it not ready
FAILURE_NOTICES = "failure_notices"  # attempts counter: operator notices published
SNS_SUBJECT_CHARS = 99

# SES answers these when retrying cannot help until an operator changes something.
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
    """SES definitely did not send the email (it answered with an error, or was unreachable)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


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
            code = aws.error_code(e)
            raise EmailNotSent(
                f"SES refused the email: {code}", permanent=code in PERMANENT_SES_CODES
            ) from e
        except (EndpointConnectionError, ConnectTimeoutError) as e:
            raise EmailNotSent(f"SES unreachable: {type(e).__name__}", permanent=False) from e
        return str(response["MessageId"])


def notify_failure(recording: Recording, sns: Any, topic_arn: str) -> str:
    """Publish the operator notice of a FAILED meeting (stage and reason); returns its id."""
    stage = recording.failed_stage or "unknown stage"
    lines = [
        "A meeting could not be processed and needs an operator.",
        "",
        f"Meeting UUID: {recording.meeting_uuid}",
        f"Meeting ID:   {recording.meeting_id}",
        f"Topic:        {recording.topic}",
        f"Host:         {mask_email(recording.host_email) or 'unknown'}",
        f"Stage:        {stage}",
        f"Reason:       {recording.failure_reason or 'not recorded'}",
        f"Failed at:    {recording.state_since}",
        f"Attempts:     {', '.join(f'{k}={v}' for k, v in sorted(recording.attempts.items()))}",
    ]
    try:
        response = sns.publish(
            TopicArn=topic_arn,
            Subject=f"Meeting processing failed at {stage}"[:SNS_SUBJECT_CHARS],
            Message="\n".join(lines),
            MessageAttributes={
                "stage": {"DataType": "String", "StringValue": stage},
                "meeting_uuid": {"DataType": "String", "StringValue": recording.meeting_uuid},
            },
        )
    except (ClientError, BotoCoreError) as e:
        raise TransientError(f"could not publish the failure notice: {e}") from e
    return str(response["MessageId"])


def announce_failure(store: RecordingStore, sns: Any, topic_arn: str, recording: Recording) -> bool:
    """Tell the operators about a FAILED meeting, once per failure (at least once).

    Any stage may call this after `RecordingStore.fail`. The count of notices on the item is
    compared with the count of FAILED entries in its history, so a repeated message publishes
    nothing while a meeting that fails again after an operator retry is announced again.
    Returns whether a notice was published.
    """
    if recording.state != State.FAILED:
        return False
    failures = sum(1 for t in recording.history if t.state == State.FAILED)
    if recording.attempts.get(FAILURE_NOTICES, 0) >= max(failures, 1):
        return False
    notify_failure(recording, sns, topic_arn)
    record_metric("FailureNotices")
    try:
        store.update_fields(recording.meeting_uuid, State.FAILED, {}, count_attempt=FAILURE_NOTICES)
    except StateConflict:
        logger.info("failure notice sent; the meeting was retried meanwhile")
    return True


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


def page_url(settings: NotifierSettings, meeting_uuid: str, key: str, now: datetime) -> str:
    """The signed link to the insights page; the UUID is one path segment however it is spelled."""
    lifetime = settings.insights_link_lifetime_days * 24 * 3600
    token = make_page_token(meeting_uuid, key, lifetime, now.timestamp())
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
        announced = announce_failure(
            deps.store, deps.sns, deps.settings.operator_topic_arn, recording
        )
        return "failure announced" if announced else "failure already announced"
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
    try:
        document = gather_insights(recording, deps.speech, now=deps.clock())
    except NotReady:
        return _wait_for_summary(recording, deps)
    key = store_insights(deps.s3, settings.media_bucket, document)
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
    return _settle_in_doubt(recording.meeting_uuid, deps)


def _settle_in_doubt(meeting_uuid: str, deps: NotifierDeps) -> str:
    try:
        deps.store.transition(
            meeting_uuid,
            State.NOTIFYING,
            State.NOTIFIED,
            updates={
                "email_message_id": EMAIL_IN_DOUBT,
                "last_error": "the sender stopped after claiming the email; not sent again",
            },
        )
    except StateConflict:
        return "already settled"
    record_metric("EmailsInDoubt")
    logger.warning("email may or may not have been sent; not sending again")
    return "settled in doubt"


def _wait_for_summary(recording: Recording, deps: NotifierDeps) -> str:
    """The provider is still finishing: ask again later with a fresh, delayed request.

    A delayed message instead of a failed one, so that waiting does not use up the message's
    receive count (which would end the meeting FAILED); the item counts the checks instead.
    """
    try:
        updated = deps.store.update_fields(
            recording.meeting_uuid,
            State.TRANSCRIBED,
            {"last_error": "summary not ready yet"},
            count_attempt=SUMMARY_WAIT,
        )
    except StateConflict:
        return "already handled"
    checks = updated.attempts.get(SUMMARY_WAIT, 0)
    if checks > MAX_SUMMARY_CHECKS:
        raise PermanentError(f"the summary was still not ready after {checks} checks")
    delay = deps.settings.summary_retry_seconds
    deps.notify_queue.send(NotifyRequest(meeting_uuid=recording.meeting_uuid), delay_seconds=delay)
    logger.info("summary not ready; looking again later", delay_seconds=delay, checks=checks)
    return "waiting for summary"


def give_up(meeting_uuid: str, reason: str, deps: NotifierDeps) -> None:
    """The request cannot succeed: end the meeting FAILED and tell the operators.

    A meeting already in NOTIFYING is settled in doubt instead: its email may have gone out.
    """
    try:
        failed: Recording | None = deps.store.fail(
            meeting_uuid, State.TRANSCRIBED, stage=STAGE, reason=reason
        )
    except StateConflict as e:
        if e.actual == State.NOTIFYING:
            _settle_in_doubt(meeting_uuid, deps)
            return
        if e.actual != State.FAILED:
            return
        failed = deps.store.get(meeting_uuid)
    if failed is None:
        return
    try:
        announce_failure(deps.store, deps.sns, deps.settings.operator_topic_arn, failed)
    except TransientError as e:
        # The meeting is FAILED either way; a fresh request announces it once SNS answers.
        logger.error("failure notice not sent; will try again", error=str(e))
        deps.notify_queue.send(NotifyRequest(meeting_uuid=meeting_uuid))
