"""Symbl job slots: never more jobs in flight than the account allows, shared by every pump.

One DynamoDB item holds a map of holders, each with a lease deadline. Acquiring n slots is one
conditional update ("at most LIMIT - n holders, none of them mine, and we are not backing off"),
so concurrent pumps can never overshoot. A pump first holds a short *claim* while it submits; on
success the claim becomes the job's lease in the same write; the callback (or the reconciler,
when the callback is lost) releases it.

A 429 that our count did not predict means another client shares the account: the item's
`backoff_until` keeps every pump from acquiring for a while, doubling on each such surprise.

A job's lease value names its meeting and conversation, and is written in the same call that
turns the claim into the job's lease: from then on the job id is durable, so a submission whose
meeting write failed afterwards is adopted (by the reconciler), never submitted again.

An item missing `holders` or `backoff_until` (hand-edited, half-restored from a backup) would
refuse every acquisition for good while reading as "0 in use": every write that finds it so
repairs it first (`if_not_exists`, which never overwrites what is there) and tries again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
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
    conversation_id: str | None = None

    @property
    def is_claim(self) -> bool:
        return self.holder.startswith(CLAIM_PREFIX)

    @property
    def job_id(self) -> str | None:
        return self.holder[len(JOB_PREFIX) :] if self.holder.startswith(JOB_PREFIX) else None


@dataclass(frozen=True)
class Grant:
    """Claims granted by one acquisition, and how many slots were still free after it."""

    claims: tuple[str, ...]
    free_after: int


@dataclass(frozen=True)
class SlotsView:
    limit: int
    leases: tuple[Lease, ...]
    backoff_until: float
    backoff_seconds: float = 0.0  # the current episode's length; the next doubles it

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
        self.repair()
        self._ensured = True

    def repair(self) -> None:
        """Create the pool's item, or give a partial one the attributes it lacks (never
        overwriting one that is there)."""
        self.client.update_item(
            TableName=self.table_name,
            Key={"pk": {"S": self.key}},
            UpdateExpression=(
                "SET holders = if_not_exists(holders, :none), "
                "backoff_until = if_not_exists(backoff_until, :zero), "
                "backoff_seconds = if_not_exists(backoff_seconds, :zero)"
            ),
            ExpressionAttributeValues={":none": {"M": {}}, ":zero": {"N": "0"}},
        )

    def acquire(self, *, lease_seconds: float, meeting_uuid: str | None = None) -> str | None:
        """A claim token, or None when all slots are taken or we are backing off."""
        grant = self.acquire_many(1, lease_seconds=lease_seconds, meeting_uuid=meeting_uuid)
        return grant.claims[0] if grant.claims else None

    def acquire_many(
        self, count: int, *, lease_seconds: float, meeting_uuid: str | None = None
    ) -> Grant:
        """Up to `count` claims in one conditional write ("at most LIMIT - count holders").

        When fewer are free, the refusal carries the item, and the write is tried once more for
        exactly the free number; a pool that is full (or backing off) grants nothing.
        """
        if count < 1:
            raise ValueError("acquire at least one slot")
        self._ensure_item()
        for _ in range(3):  # a second try for what is free; a third if a racer took some
            now = self._clock()
            holders = [CLAIM_PREFIX + uuid.uuid4().hex for _ in range(count)]
            names = {f"#h{i}": holder for i, holder in enumerate(holders)}
            absent = " AND ".join(f"attribute_not_exists(holders.{name})" for name in names)
            try:
                response = self.client.update_item(
                    TableName=self.table_name,
                    Key={"pk": {"S": self.key}},
                    UpdateExpression="SET " + ", ".join(f"holders.{n} = :lease" for n in names),
                    ConditionExpression=(
                        "attribute_exists(holders) AND attribute_exists(backoff_until) AND "
                        f"size(holders) <= :most AND backoff_until <= :now AND {absent}"
                    ),
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues={
                        ":lease": _lease_value(now + lease_seconds, meeting_uuid),
                        ":most": {"N": str(self.limit - count)},
                        ":now": {"N": repr(now)},
                    },
                    ReturnValues="ALL_NEW",
                    # A refusal carries the item: how many are free, or what it lacks.
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as e:
                if aws.error_code(e) != "ConditionalCheckFailedException":
                    raise
                item = aws.refused_item(e) or {}
                if _partial(item):
                    self.repair()
                    continue
                if count == 1:
                    return Grant((), 0)
                if _number(item, "backoff_until") > now:
                    return Grant((), 0)
                free = self.limit - len(_holders(item))
                if free < 1:
                    return Grant((), 0)
                count = min(count, free)
                continue
            in_use = len(_holders(response["Attributes"]))
            return Grant(tuple(holders), max(0, self.limit - in_use))
        return Grant((), 0)

    def convert_to_job(
        self,
        claim: str,
        job_id: str,
        *,
        lease_seconds: float,
        meeting_uuid: str,
        conversation_id: str | None = None,
    ) -> None:
        """Turn a claim into the job's lease in one write (the slot count does not change).

        This is the first write after the provider accepted the job: the lease value names the
        meeting and conversation, so the job is on record even if the meeting's own write
        fails next (`job_of` finds it)."""
        now = self._clock()
        self.client.update_item(
            TableName=self.table_name,
            Key={"pk": {"S": self.key}},
            UpdateExpression="REMOVE holders.#c SET holders.#j = :lease, backoff_seconds = :zero",
            ExpressionAttributeNames={"#c": claim, "#j": JOB_PREFIX + job_id},
            ExpressionAttributeValues={
                ":lease": _lease_value(now + lease_seconds, meeting_uuid, conversation_id),
                ":zero": {"N": "0"},
            },
        )

    def hold(
        self,
        holder: str,
        *,
        lease_seconds: float,
        meeting_uuid: str | None,
        conversation_id: str | None = None,
    ) -> bool:
        """Set a lease's deadline to `lease_seconds` from now (e.g. keep a claim whose
        submission's outcome is unknown); False when the holder no longer holds a slot."""
        now = self._clock()
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": self.key}},
                UpdateExpression="SET holders.#h = :lease",
                ConditionExpression="attribute_exists(holders.#h)",
                ExpressionAttributeNames={"#h": holder},
                ExpressionAttributeValues={
                    ":lease": _lease_value(now + lease_seconds, meeting_uuid, conversation_id)
                },
            )
        except ClientError as e:
            if aws.error_code(e) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def job_of(self, meeting_uuid: str) -> Lease | None:
        """The job lease that names this meeting, if any (a job accepted but not recorded on
        the meeting)."""
        for lease in self.view().leases:
            if lease.job_id and lease.meeting_uuid == meeting_uuid:
                return lease
        return None

    def release(self, holder: str) -> None:
        """Free a claim or job lease; releasing one that is gone is a no-op."""
        self.release_many((holder,))

    def release_many(self, holders: Iterable[str]) -> None:
        """Free several holders in one write (a pump that received fewer messages than slots);
        those already gone are skipped."""
        names = {f"#h{i}": holder for i, holder in enumerate(holders)}
        if not names:
            return
        self._ensure_item()
        request = {
            "TableName": self.table_name,
            "Key": {"pk": {"S": self.key}},
            "UpdateExpression": "REMOVE " + ", ".join(f"holders.{name}" for name in names),
            "ExpressionAttributeNames": names,
        }
        try:
            self.client.update_item(**request)
        except ClientError as e:
            # A path into a missing `holders` map is invalid: repair the item, then it is a no-op.
            if aws.error_code(e) != "ValidationException":
                raise
            self.repair()
            self.client.update_item(**request)

    def release_job(self, job_id: str) -> None:
        self.release(JOB_PREFIX + job_id)

    def extend(self, lease: Lease, *, lease_seconds: float) -> bool:
        """Push a lease's deadline out; False when its holder no longer holds a slot."""
        return self.hold(
            lease.holder,
            lease_seconds=lease_seconds,
            meeting_uuid=lease.meeting_uuid,
            conversation_id=lease.conversation_id,
        )

    def back_off(self) -> float:
        """After an unpredicted 429: nobody acquires for a while (doubling, capped). Seconds
        until acquiring is allowed again.

        Doubles once per episode: while a back-off is running, the 429s of submissions already
        under way (a pump submits several at once, and several pumps run) join it instead of
        doubling it again.
        """
        now = self._clock()
        item = self._item()
        until = _number(item, "backoff_until")
        if until > now:
            return until - now
        previous = _number(item, "backoff_seconds")
        current = max(BACKOFF_MIN_SECONDS, min(BACKOFF_MAX_SECONDS, previous * 2))
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": self.key}},
                UpdateExpression="SET backoff_until = :u, backoff_seconds = :s",
                ConditionExpression="backoff_until <= :now",
                ExpressionAttributeValues={
                    ":u": {"N": repr(now + current)},
                    ":s": {"N": repr(current)},
                    ":now": {"N": repr(now)},
                },
            )
        except ClientError as e:
            if aws.error_code(e) != "ConditionalCheckFailedException":
                raise
            # Another pump started the episode between our read and our write: join it.
            until = _number(self._item(), "backoff_until")
            return max(0.0, until - now)
        return current

    def _item(self) -> dict[str, Any]:
        self._ensure_item()
        response = self.client.get_item(
            TableName=self.table_name, Key={"pk": {"S": self.key}}, ConsistentRead=True
        )
        return dict(response.get("Item", {}))

    def view(self) -> SlotsView:
        item = self._item()
        leases = []
        for holder, value in _holders(item).items():
            deadline, _, rest = value.get("S", "0").partition(" ")
            meeting, _, conversation = rest.partition("\n")
            leases.append(Lease(holder, float(deadline), meeting or None, conversation or None))
        return SlotsView(
            limit=self.limit,
            leases=tuple(sorted(leases, key=lambda lease: lease.deadline)),
            backoff_until=_number(item, "backoff_until"),
            backoff_seconds=_number(item, "backoff_seconds"),
        )


def _lease_value(
    deadline: float, meeting_uuid: str | None, conversation_id: str | None = None
) -> dict[str, Any]:
    """A lease as one string, "<deadline> <meeting>[\n<conversation>]": every write to the
    pool's item carries (and every read returns) all of them, so each is kept to a single small
    value."""
    value = f"{deadline!r} {meeting_uuid or ''}".rstrip()
    return {"S": f"{value}\n{conversation_id}" if conversation_id else value}


def _partial(item: dict[str, Any]) -> bool:
    """A pool item that is gone, or lacks what the acquisition's condition reads."""
    return not ("holders" in item and "backoff_until" in item)


def _holders(item: dict[str, Any]) -> dict[str, Any]:
    """The pool item's holders (DynamoDB JSON), by holder name."""
    return dict(item.get("holders", {}).get("M", {}))


def _number(item: dict[str, Any], name: str) -> float:
    return float(item.get(name, {}).get("N", "0"))
