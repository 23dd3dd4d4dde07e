"""Failure notices: every FAILED meeting is announced once to the operators, from here only.

Stages only record a failure (`RecordingStore.fail`, with the stage and a reason); none of them
publishes anything. The reconciler runs `announce_failures` on every pass (once a minute): it
lists the FAILED meetings (the `by-state` index, oldest first) and announces each failure that
has no notice yet on the operators' SNS topic.

Once per failure, counted on the item:
- A meeting's failures are the FAILED entries in its history; its notices are
  `attempts.failure_notices`. A failure is due a notice while notices < failures, so a meeting
  that fails again after an operator retry (FAILED → retry → FAILED) is announced again.
- Claim before publishing: one conditional write raises the notices count from the value read
  to the next, only while the meeting is still in the same stay in FAILED. Two sweeps that read
  the same item race for that write and only one of them publishes.
- SNS definitely took nothing (an error answer, or no connection at all): the claim is given
  back, so the next pass tries again. No answer after the request went out (a read timeout, a
  connection cut): SNS may have published, so the claim is kept and `FailureNoticesInDoubt` is
  counted. The SNS client makes exactly one attempt (botocore would otherwise resend).
- Trade-off: a crash between the claim and the publication loses that one notice (the item
  says it was sent). At most once, never twice: the operators also see every FAILED meeting in
  `insights-ops status --state FAILED`, while a notice repeated every minute would teach them
  to ignore the topic.

One meeting that cannot be announced (its claim write or its publication fails) is counted
(`FailureNoticeErrors`), logged with the meeting, and the sweep goes on with the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
)

from services.core import aws
from services.core.errors import InsightsError, TransientError
from services.core.observability import logger, mask_email, record_metric
from services.core.recordings import Recording, RecordingStore, State, iso, utcnow

FAILURE_NOTICES = "failure_notices"  # attempts counter: notices claimed for this meeting
SNS_SUBJECT_CHARS = 99  # SNS takes subjects under 100 characters
NOTICE_CONFIG = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=10)


class NoticeNotSent(TransientError):
    """SNS definitely did not publish the notice (it refused it, or was unreachable)."""


class NoticeInDoubt(TransientError):
    """SNS may or may not have published the notice (no answer after the request went out)."""


def notice_client() -> Any:
    """An SNS client that makes one attempt per call: a retried publish can announce twice."""
    return boto3.session.Session().client("sns", config=NOTICE_CONFIG)


def notice_text(recording: Recording) -> tuple[str, str]:
    """The subject and body of a FAILED meeting's operator notice (the host's email masked)."""
    stage = recording.failed_stage or "unknown stage"
    attempts = ", ".join(
        f"{k}={v}" for k, v in sorted(recording.attempts.items()) if k != FAILURE_NOTICES
    )
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
        f"Attempts:     {attempts or 'none counted'}",
        "",
        f"Inspect: insights-ops status '{recording.meeting_uuid}'",
        f"Retry:   insights-ops replay '{recording.meeting_uuid}'",
    ]
    subject = f"Meeting processing failed at {stage}"[:SNS_SUBJECT_CHARS]
    return subject, "\n".join(lines)


def notify_failure(recording: Recording, sns: Any, topic_arn: str) -> str:
    """Publish the operator notice of a FAILED meeting (stage and reason); returns its id.

    Raises NoticeNotSent when SNS provably published nothing, NoticeInDoubt when it may have.
    """
    subject, message = notice_text(recording)
    stage = recording.failed_stage or "unknown stage"
    try:
        response = sns.publish(
            TopicArn=topic_arn,
            Subject=subject,
            Message=message,
            MessageAttributes={
                "stage": {"DataType": "String", "StringValue": stage},
                "meeting_uuid": {"DataType": "String", "StringValue": recording.meeting_uuid},
            },
        )
    except ClientError as e:
        raise NoticeNotSent(f"SNS refused the failure notice: {aws.error_code(e)}") from e
    except (EndpointConnectionError, ConnectTimeoutError) as e:
        # The connection was never opened: the request cannot have reached SNS.
        raise NoticeNotSent(f"SNS unreachable: {type(e).__name__}") from e
    except BotoCoreError as e:
        raise NoticeInDoubt(f"SNS gave no answer: {type(e).__name__}") from e
    return str(response["MessageId"])


def failures_of(recording: Recording) -> int:
    """How many times the meeting has ended FAILED (at least one while it is FAILED)."""
    return max(1, sum(1 for step in recording.history if step.state == State.FAILED))


def notice_due(recording: Recording) -> bool:
    """Whether the meeting's latest failure has no notice claimed yet."""
    return recording.state == State.FAILED and recording.attempts.get(
        FAILURE_NOTICES, 0
    ) < failures_of(recording)


def _set_notices(store: RecordingStore, recording: Recording, *, seen: int, new: int) -> bool:
    """Set the notices count from `seen` to `new`, only while the meeting is still in the same
    stay in FAILED and nobody changed the count meanwhile. False when the write was refused."""
    condition = "#state = :failed AND #since = :since AND "
    if seen == 0:
        condition += "(attribute_not_exists(#a.#n) OR #a.#n = :seen)"
    else:
        condition += "#a.#n = :seen"
    try:
        store.client.update_item(
            TableName=store.table_name,
            Key={"meeting_uuid": {"S": recording.meeting_uuid}},
            UpdateExpression="SET #a.#n = :new, #updated = :now",
            ConditionExpression=condition,
            ExpressionAttributeNames={
                "#state": "state",
                "#since": "state_since",
                "#a": "attempts",
                "#n": FAILURE_NOTICES,
                "#updated": "updated_at",
            },
            ExpressionAttributeValues={
                ":failed": {"S": State.FAILED.value},
                ":since": {"S": recording.state_since},
                ":seen": {"N": str(seen)},
                ":new": {"N": str(new)},
                ":now": {"S": iso(utcnow())},
            },
        )
    except ClientError as e:
        if aws.error_code(e) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def claim_notice(store: RecordingStore, recording: Recording) -> bool:
    """Claim the notice of the meeting's latest failure (as read in `recording`); False when it
    is not due or another sweep claimed it first."""
    if not notice_due(recording):
        return False
    seen = recording.attempts.get(FAILURE_NOTICES, 0)
    return _set_notices(store, recording, seen=seen, new=seen + 1)


def release_notice(store: RecordingStore, recording: Recording) -> bool:
    """Give back a claim whose notice SNS did not publish (`recording` as read before the
    claim). Only while the meeting is still in that same failure: once an operator retried it,
    the old failure's notice is moot."""
    seen = recording.attempts.get(FAILURE_NOTICES, 0)
    return _set_notices(store, recording, seen=seen + 1, new=seen)


def announce_failure(store: RecordingStore, sns: Any, topic_arn: str, recording: Recording) -> bool:
    """Announce one FAILED meeting's latest failure unless it has been; returns whether this
    call published the notice. Raises NoticeNotSent (claim given back) or NoticeInDoubt."""
    if not claim_notice(store, recording):
        return False
    try:
        message_id = notify_failure(recording, sns, topic_arn)
    except NoticeNotSent:
        if not release_notice(store, recording):
            logger.warning("failure notice not sent, and the meeting changed meanwhile")
        raise
    except NoticeInDoubt:
        record_metric("FailureNoticesInDoubt")
        logger.warning("failure notice may or may not have been published; not sent again")
        raise
    record_metric("FailureNotices")
    logger.info(
        "failure announced",
        stage=recording.failed_stage,
        sns_message_id=message_id,
    )
    return True


@dataclass
class NoticeReport:
    announced: list[str] = field(default_factory=list)  # meeting UUIDs
    errors: list[str] = field(default_factory=list)


NOTICE_ERRORS = (InsightsError, ClientError, BotoCoreError, ValueError)


def announce_failures(
    store: RecordingStore,
    sns: Any,
    topic_arn: str,
) -> NoticeReport:
    """The sweep: announce every FAILED meeting's unannounced failure, oldest first.

    One meeting that cannot be announced is counted, logged and left for the next pass; the
    sweep goes on with the others. A failing listing (the index query, or the read of an item
    it names) ends the pass early; the next pass starts over.
    """
    report = NoticeReport()
    try:
        for recording in store.list_by_state(State.FAILED):
            _announce_one(store, sns, topic_arn, recording, report)
    except NOTICE_ERRORS as e:
        # The listing itself failed: nothing more to go through on this pass.
        report.errors.append(f"failure notices: {type(e).__name__}: {e}")
        record_metric("FailureNoticeErrors")
        logger.error("failed meetings could not be listed", error=f"{type(e).__name__}: {e}")
    return report


def _announce_one(
    store: RecordingStore, sns: Any, topic_arn: str, recording: Recording, report: NoticeReport
) -> None:
    uuid = recording.meeting_uuid
    try:
        if announce_failure(store, sns, topic_arn, recording):
            report.announced.append(uuid)
    except NOTICE_ERRORS as e:
        report.errors.append(f"failure notice {uuid}: {type(e).__name__}: {e}")
        record_metric("FailureNoticeErrors")
        logger.error(
            "failure notice not sent",
            meeting_uuid=uuid,
            error=f"{type(e).__name__}: {e}",
        )
