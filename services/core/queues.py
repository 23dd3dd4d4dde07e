"""Messages between stages and the SQS adapter that carries them.

Each stage's message names the meeting and little else: the recording item holds the truth, so a
stale or repeated message is checked against the item's state before anything is done.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from services.core import aws
from services.core.errors import QueueError


class StageMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    meeting_uuid: str = Field(min_length=1)


class MergeRequest(StageMessage):
    """Ask the merger to fetch and merge a meeting's audio.

    `download_token` is the webhook's short-lived Zoom token; it travels only inside the
    encrypted queue, never in the table or the logs. Replays carry none and use OAuth instead.
    `lease_holder` is set only on the merger's own delayed re-check of a meeting it holds while
    Zoom finishes processing a file: it lets that re-check carry on under the same lease.
    """

    download_token: str | None = None
    lease_holder: str | None = None


class SubmitRequest(StageMessage):
    """A merged file is ready to be sent to the speech-analytics provider."""


class NotifyRequest(StageMessage):
    """Insights are ready (or the meeting failed) and the people concerned should hear of it."""


MessageT = TypeVar("MessageT", bound=StageMessage)


def parse_message(model: type[MessageT], body: str) -> MessageT:
    return model.model_validate_json(body)


class QueueSender:
    """Sends stage messages to one queue."""

    def __init__(self, queue_url: str, client: Any | None = None) -> None:
        self.queue_url = queue_url
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.client("sqs")
        return self._client

    def send(self, message: StageMessage, *, delay_seconds: int = 0) -> str:
        return self.send_body(
            json.dumps(message.model_dump(mode="json", exclude_none=True)),
            delay_seconds=delay_seconds,
        )

    def send_body(self, body: str, *, delay_seconds: int = 0) -> str:
        try:
            response = self.client.send_message(
                QueueUrl=self.queue_url, MessageBody=body, DelaySeconds=delay_seconds
            )
        except (ClientError, BotoCoreError) as e:
            raise QueueError(f"could not send to {self.queue_url}: {e}") from e
        return str(response["MessageId"])

    def defer_batch(self, event: dict[str, Any], delay_seconds: int) -> dict[str, Any]:
        """Put every record of an SQS batch back as a delayed copy and acknowledge the originals,
        so waiting (for a secret, say) spends none of a message's receives. A record whose copy
        could not be sent is reported as failed: SQS delivers it again, nothing is lost."""
        failures = []
        for record in event.get("Records", []):
            try:
                self.send_body(record["body"], delay_seconds=delay_seconds)
            except QueueError:
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}
