"""Symbl job slots: never more jobs in flight than the account allows, shared by every pump.

One DynamoDB item holds a map of holders, each with a lease deadline. Acquiring is one
conditional update ("fewer than LIMIT holders, I am not one, and we are not backing off"), so
concurrent pumps can never overshoot. A pump first holds a short *claim* while it submits; on
success the claim becomes the job's lease in the same write; the callback (or the reconciler,
when the callback is lost) releases it.

A 429 that our count did not predict means another client shares the account: the item's
`backoff_until` keeps every pump from acquiring for a while, doubling on each such surprise.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from services.core import aws

SLOTS_KEY = "symbl"
CLAIM_PREFIX = "claim:"
JOB_PREFIX = "job:"
BACKOFF_MIN_SECONDS = 5.0
BACKOFF_MAX_SECONDS = 300.0


@dataclass(frozen=True)
class Lease:
    holder: str
    deadline: float
    meeting_uuid: str | None

    @property
    def is_claim(self) -> bool:
        return self.holder.startswith(CLAIM_PREFIX)

    @property
    def job_id(self) -> str | None:
        return self.holder[len(JOB_PREFIX) :] if self.holder.startswith(JOB_PREFIX) else None


@dataclass(frozen=True)
class SlotsView:
    limit: int
    leases: tuple[Lease, ...]
    backoff_until: float

    @property
    def in_use(self) -> int:
        return len(self.leases)


class SlotPool:
    def __init__(
        self,
        table_name: str,
        limit: int,
        *,
        client: Any | None = None,
        clock: Callable[[], float] = time.time,
        key: str = SLOTS_KEY,
    ) -> None:
        if limit < 1:
            raise ValueError("the slot limit must be at least 1")
        self.table_name = table_name
        self.limit = limit
        self.key = key
        self._client = client
        self._clock = clock
        self._ensured = False

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.client("dynamodb")
        return self._client

    def _ensure_item(self) -> None:
        if self._ensured:
            return
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item={
                    "pk": {"S": self.key},
                    "holders": {"M": {}},
                    "backoff_until": {"N": "0"},
                    "backoff_seconds": {"N": "0"},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as e:
            if aws.error_code(e) != "ConditionalCheckFailedException":
                raise
        self._ensured = True

    def acquire(self, *, lease_seconds: float, meeting_uuid: str | None = None) -> str | None:
        """A claim token, or None when all slots are taken or we are backing off."""
        self._ensure_item()
        now = self._clock()
        holder = CLAIM_PREFIX + uuid.uuid4().hex
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": self.key}},
                UpdateExpression="SET holders.#h = :lease",
                ConditionExpression=(
                    "size(holders) < :limit AND attribute_not_exists(holders.#h)"
                    " AND backoff_until <= :now"
                ),
                ExpressionAttributeNames={"#h": holder},
                ExpressionAttributeValues={
                    ":lease": _lease_value(now + lease_seconds, meeting_uuid),
                    ":limit": {"N": str(self.limit)},
                    ":now": {"N": repr(now)},
                },
            )
        except ClientError as e:
            if aws.error_code(e) == "ConditionalCheckFailedException":
                return None
            raise
        return holder

    def convert_to_job(
        self, claim: str, job_id: str, *, lease_seconds: float, meeting_uuid: str
    ) -> None:
        """Turn a claim into the job's lease in one write (the slot count does not change)."""
        now = self._clock()
        self.client.update_item(
            TableName=self.table_name,
            Key={"pk": {"S": self.key}},
            UpdateExpression="REMOVE holders.#c SET holders.#j = :lease, backoff_seconds = :zero",
            ExpressionAttributeNames={"#c": claim, "#j": JOB_PREFIX + job_id},
            ExpressionAttributeValues={
                ":lease": _lease_value(now + lease_seconds, meeting_uuid),
                ":zero": {"N": "0"},
            },
        )

    def release(self, holder: str) -> None:
        """Free a claim or job lease; releasing one that is gone is a no-op."""
        self._ensure_item()
        self.client.update_item(
            TableName=self.table_name,
            Key={"pk": {"S": self.key}},
            UpdateExpression="REMOVE holders.#h",
            ExpressionAttributeNames={"#h": holder},
        )

    def release_job(self, job_id: str) -> None:
        self.release(JOB_PREFIX + job_id)

    def extend(self, holder: str, *, lease_seconds: float) -> bool:
        """Push a lease's deadline out; False when the holder no longer holds a slot."""
        now = self._clock()
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": self.key}},
                UpdateExpression="SET holders.#h.deadline = :d",
                ConditionExpression="attribute_exists(holders.#h)",
                ExpressionAttributeNames={"#h": holder},
                ExpressionAttributeValues={":d": {"N": repr(now + lease_seconds)}},
            )
        except ClientError as e:
            if aws.error_code(e) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def back_off(self) -> float:
        """After an unpredicted 429: nobody acquires for a while (doubling, capped)."""
        current = max(BACKOFF_MIN_SECONDS, min(BACKOFF_MAX_SECONDS, self._backoff_seconds * 2))
        until = self._clock() + current
        self.client.update_item(
            TableName=self.table_name,
            Key={"pk": {"S": self.key}},
            UpdateExpression="SET backoff_until = :u, backoff_seconds = :s",
            ExpressionAttributeValues={":u": {"N": repr(until)}, ":s": {"N": repr(current)}},
        )
        return current

    @property
    def _backoff_seconds(self) -> float:
        item = self._item()
        return float(item.get("backoff_seconds", {}).get("N", "0"))

    def _item(self) -> dict[str, Any]:
        self._ensure_item()
        response = self.client.get_item(
            TableName=self.table_name, Key={"pk": {"S": self.key}}, ConsistentRead=True
        )
        return dict(response.get("Item", {}))

    def view(self) -> SlotsView:
        item = self._item()
        leases = []
        for holder, value in item.get("holders", {}).get("M", {}).items():
            fields = value.get("M", {})
            meeting = fields.get("meeting", {}).get("S")
            leases.append(Lease(holder, float(fields["deadline"]["N"]), meeting))
        return SlotsView(
            limit=self.limit,
            leases=tuple(sorted(leases, key=lambda lease: lease.deadline)),
            backoff_until=float(item.get("backoff_until", {}).get("N", "0")),
        )


def _lease_value(deadline: float, meeting_uuid: str | None) -> dict[str, Any]:
    fields: dict[str, Any] = {"deadline": {"N": repr(deadline)}}
    if meeting_uuid:
        fields["meeting"] = {"S": meeting_uuid}
    return {"M": fields}
