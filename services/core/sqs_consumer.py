"""SQS event-source batches with per-message outcomes (`batchItemFailures`).

Policy, the same for every consumer:
- success: the message is deleted by Lambda;
- PermanentError: the meeting is marked FAILED by `on_permanent`, the message acknowledged
  (retrying cannot help; the FAILED item and the operator alert are the record);
- anything else: the message is reported failed and hidden for a backoff that grows with its
  receive count; on its last allowed receive `on_give_up` marks the meeting FAILED and the
  redrive policy moves the message to the DLQ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from services.core.errors import PermanentError
from services.core.observability import logger, redact_text, validation_error_summary
from services.core.queues import MessageT, parse_message

RETRY_VISIBILITY_BASE_SECONDS = 30
RETRY_VISIBILITY_MAX_SECONDS = 900


@dataclass(frozen=True)
class SqsRecord:
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int

    @classmethod
    def from_event(cls, record: dict[str, Any]) -> SqsRecord:
        return cls(
            message_id=record["messageId"],
            receipt_handle=record["receiptHandle"],
            body=record["body"],
            receive_count=int(record.get("attributes", {}).get("ApproximateReceiveCount", "1")),
        )


def retry_visibility_seconds(receive_count: int) -> int:
    return int(
        min(RETRY_VISIBILITY_MAX_SECONDS, RETRY_VISIBILITY_BASE_SECONDS * 2 ** (receive_count - 1))
    )


def consume_batch(
    event: dict[str, Any],
    handle: Callable[[SqsRecord], None],
    *,
    queue_url: str,
    max_receive_count: int,
    on_permanent: Callable[[SqsRecord, PermanentError], None],
    on_give_up: Callable[[SqsRecord, Exception], None],
    sqs: Any,
) -> dict[str, list[dict[str, str]]]:
    failures: list[dict[str, str]] = []
    for raw in event.get("Records", []):
        record = SqsRecord.from_event(raw)
        try:
            handle(record)
        except PermanentError as e:
            logger.warning(
                "message failed permanently", message_id=record.message_id, reason=str(e)
            )
            on_permanent(record, e)
        except Exception as e:  # noqa: BLE001 - every other failure is retried, then dead-lettered
            failures.append({"itemIdentifier": record.message_id})
            if record.receive_count >= max_receive_count:
                logger.error(
                    "message exhausted its retries",
                    message_id=record.message_id,
                    receive_count=record.receive_count,
                    error=f"{type(e).__name__}: {e}",
                )
                on_give_up(record, e)
                continue
            logger.warning(
                "message will be retried",
                message_id=record.message_id,
                receive_count=record.receive_count,
                error=f"{type(e).__name__}: {e}",
            )
            try:
                sqs.change_message_visibility(
                    QueueUrl=queue_url,
                    ReceiptHandle=record.receipt_handle,
                    VisibilityTimeout=retry_visibility_seconds(record.receive_count),
                )
            except (ClientError, BotoCoreError) as visibility_error:
                logger.warning("could not shorten visibility", error=str(visibility_error))
    return {"batchItemFailures": failures}


def consume_stage_batch(
    event: dict[str, Any],
    message_model: type[MessageT],
    handle: Callable[[MessageT], object],
    fail: Callable[[str, str], None],
    *,
    queue_url: str,
    max_receive_count: int,
    sqs: Any,
) -> dict[str, list[dict[str, str]]]:
    """`consume_batch` for a stage queue: parse each body as `message_model`, log under the
    meeting's UUID, and `fail(meeting_uuid, reason)` a meeting whose message cannot succeed.

    A body that does not parse is a PermanentError (acknowledged, logged); there is no meeting
    to mark. Its reason names the refused fields and why, never their values: the body of a
    merge request carries a `download_token`, and pydantic's own text quotes the input.
    """

    def parse(record: SqsRecord) -> MessageT:
        try:
            return parse_message(message_model, record.body)
        # `from None`: the chained error would quote the input in any traceback logged later.
        except ValidationError as e:
            summary = validation_error_summary(e)
            raise PermanentError(f"malformed {message_model.__name__}: {summary}") from None
        except ValueError:
            raise PermanentError(f"malformed {message_model.__name__}") from None

    def run(record: SqsRecord) -> None:
        message = parse(record)
        logger.append_keys(meeting_uuid=message.meeting_uuid)
        try:
            handle(message)
        finally:
            logger.remove_keys(["meeting_uuid"])

    def on_failure(record: SqsRecord, error: Exception) -> None:
        try:
            uuid = parse(record).meeting_uuid
        except PermanentError:
            return
        # The reason is stored on the item and sent to the operators: redacted like a log line.
        fail(uuid, redact_text(f"{type(error).__name__}: {error}"))

    return consume_batch(
        event,
        run,
        queue_url=queue_url,
        max_receive_count=max_receive_count,
        on_permanent=on_failure,
        on_give_up=on_failure,
        sqs=sqs,
    )
