"""The recordings table: one item per Zoom meeting instance, moved through states by conditional
updates so that a duplicate or late message is a harmless no-op.

Key: `meeting_uuid`, Zoom's meeting-instance UUID exactly as Zoom sent it (never sanitised, so two
UUIDs can never collide). Indexes: `by-state` (state, state_since) lists a state oldest first;
`by-job` (job_id) finds the meeting a provider's job is about. `expires_at` (epoch
seconds) is the TTL attribute, pushed forward on every transition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from services.core import aws
from services.core.errors import NotFound, PermanentError, StateConflict
from services.core.settings import CoreSettings

STATE_INDEX = "by-state"
JOB_INDEX = "by-job"
# The stage a speech provider's job belongs to: its `attempts` counter (jobs recorded since the
# last replay) and the `failed_stage` that sends a replay back to submission.
TRANSCRIBE_STAGE = "transcribe"
TTL_ATTRIBUTE = "expires_at"


class State(StrEnum):
    RECEIVED = "RECEIVED"
    MERGING = "MERGING"
    MERGED = "MERGED"
    SUBMITTING = "SUBMITTING"
    SUBMITTED = "SUBMITTED"
    TRANSCRIBED = "TRANSCRIBED"
    NOTIFYING = "NOTIFYING"
    NOTIFIED = "NOTIFIED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


TERMINAL_STATES = frozenset({State.NOTIFIED, State.FAILED, State.SKIPPED})


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """Sortable UTC timestamp with milliseconds: `2026-11-27T17:44:22.123Z`."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


class _Item(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SpeakerTrack(_Item):
    """One participant's audio file and what the merge learns about it."""

    file_id: str
    name: str
    email: str | None = None
    recording_start: str
    recording_end: str
    file_size: int | None = None
    download_url: str | None = None
    status: str | None = None
    s3_key: str | None = None
    excluded_reason: str | None = None


class SourceFile(_Item):
    """A meeting-level file (the mixed audio-only M4A, or the MP4 when there is none)."""

    file_id: str
    file_type: str
    recording_start: str | None = None
    recording_end: str | None = None
    file_size: int | None = None
    download_url: str | None = None
    status: str | None = None


class Transition(_Item):
    state: State
    at: str


class Recording(_Item):
    meeting_uuid: str
    meeting_id: str
    account_id: str | None = None
    host_id: str = ""
    host_email: str | None = None
    topic: str = ""
    start_time: str
    timezone: str | None = None
    duration_minutes: int = 0
    state: State = State.RECEIVED
    state_since: str = ""
    created_at: str = ""
    updated_at: str = ""
    expires_at: int = 0
    tracks: list[SpeakerTrack] = Field(default_factory=list)
    mixed_audio: SourceFile | None = None
    participant_count: int | None = None
    history: list[Transition] = Field(default_factory=list)
    attempts: dict[str, int] = Field(default_factory=dict)
    last_error: str | None = None
    failed_stage: str | None = None
    failure_reason: str | None = None
    skip_reason: str | None = None
    # Filled by later stages.
    merge_mode: str | None = None  # "inline" (Lambda) or "task" (Fargate)
    merge_task_arn: str | None = None
    merged_key: str | None = None
    merged_seconds: float | None = None
    merged_bytes: int | None = None
    # Multichannel layout: which speakers each channel carries (the segment map's special
    # case, small enough to keep on the item; the submitter sends it as channelMetadata).
    channel_map: list[dict[str, Any]] = Field(default_factory=list)
    # "compact", "multichannel" or "mixed" (the fallback without participant files).
    audio_layout: str | None = None
    # The segment map (services/core/speech/segment_map.py), stored next to the merged file.
    segment_map_key: str | None = None
    # Compact layout, after the provider finished: speaker events sent / seen in the transcript.
    speakers_sent_at: str | None = None
    speakers_confirmed_at: str | None = None
    diarization: bool = False
    # The speech job: which provider runs it ("symbl", "aws"), its id with that provider, and
    # where its results are read (Symbl's conversation id, the Transcribe transcript's key).
    speech_provider: str | None = None
    # Speech jobs ever recorded for the meeting: a job's number (in a Transcribe job name) is
    # never reused, even after a replay resets the attempts.
    speech_jobs: int = 0
    job_id: str | None = None
    conversation_id: str | None = None
    callback_secret_digest: str | None = None
    submit_claim: str | None = None
    submitted_at: str | None = None
    # Set while a submission's outcome is unknown (sent, never answered): its claim is held.
    submit_outcome_unknown_at: str | None = None
    # Requests the reconciler re-sent for the meeting while stuck in its current state (the
    # state entered at `resends_for`); capped by the reconciler's `stage_attempts`.
    resends: int = 0
    resends_for: str | None = None
    insights_key: str | None = None
    email_message_id: str | None = None
    # Merge lease and speaker count (merger).
    # A live merge run holds the meeting until `merge_lease_deadline` (epoch seconds); a merge
    # request that finds MERGING under a live lease does nothing.
    merge_lease_holder: str | None = None
    merge_lease_deadline: int | None = None
    # Where a diarized meeting's `participant_count` came from: "participants_api",
    # "participant_files" or "default".
    speaker_count_source: str | None = None
    # While Zoom still processes a participant file the merge waits for it until then (epoch s).
    processing_wait_until: int | None = None


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {k: _to_dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    return value


_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _encode(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(_to_dynamo(v)) for k, v in item.items() if v is not None}


def _decode(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _from_dynamo(_deserializer.deserialize(v)) for k, v in item.items()}


class RecordingStore:
    """Conditional reads and writes of recording items."""

    def __init__(
        self,
        table_name: str,
        *,
        retention_days: int = 90,
        client: Any | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.table_name = table_name
        self._retention = timedelta(days=retention_days)
        self._client = client
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: CoreSettings) -> RecordingStore:
        return cls(settings.recordings_table, retention_days=settings.record_retention_days)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.client("dynamodb")
        return self._client

    def _expiry(self, now: datetime) -> int:
        return int((now + self._retention).timestamp())

    def create_if_absent(self, recording: Recording) -> bool:
        """Write a new RECEIVED item; False (and nothing written) when the UUID is known."""
        now = self._clock()
        stamp = iso(now)
        item = recording.model_copy(
            update={
                "state": State.RECEIVED,
                "state_since": stamp,
                "created_at": stamp,
                "updated_at": stamp,
                "expires_at": self._expiry(now),
                "history": [Transition(state=State.RECEIVED, at=stamp)],
            }
        )
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=_encode(item.model_dump(mode="json")),
                ConditionExpression="attribute_not_exists(meeting_uuid)",
            )
        except ClientError as e:
            if aws.error_code(e) == "ConditionalCheckFailedException":
                return False
            if aws.error_code(e) == "ValidationException":
                # The one input-dependent refusal left after the event's own bounds: an item
                # over DynamoDB's 400 KB. Retrying cannot help.
                raise PermanentError(f"recording item refused: {e}") from e
            raise
        return True

    def get(self, meeting_uuid: str) -> Recording | None:
        response = self.client.get_item(
            TableName=self.table_name,
            Key={"meeting_uuid": {"S": meeting_uuid}},
            ConsistentRead=True,
        )
        raw = response.get("Item")
        return Recording.model_validate(_decode(raw)) if raw else None

    def require(self, meeting_uuid: str) -> Recording:
        recording = self.get(meeting_uuid)
        if recording is None:
            raise NotFound(f"no recording {meeting_uuid!r}")
        return recording

    def transition(
        self,
        meeting_uuid: str,
        expected: State | Iterable[State],
        new: State,
        *,
        updates: Mapping[str, Any] | None = None,
        remove: Iterable[str] = (),
        count_attempt: str | None = None,
        only_if: Mapping[str, str] | None = None,
        only_if_below: Mapping[str, int | float] | None = None,
    ) -> Recording:
        """Move the item from one of `expected` to `new`, with `updates`, in one conditional write.

        Raises StateConflict when the item is in any other state (or absent), so a duplicate
        message that lost the race does nothing; also when a field named in `only_if` holds
        another value (e.g. the Symbl job a settlement is about), or when a numeric field named
        in `only_if_below` is present and not below the value given (e.g. a lease deadline that
        has not passed yet; an absent field counts as below).
        """
        expected_states = (expected,) if isinstance(expected, State) else tuple(expected)
        now = self._clock()
        stamp = iso(now)
        fields: dict[str, Any] = dict(updates or {})
        fields.update(state=new.value, state_since=stamp, updated_at=stamp)
        fields[TTL_ATTRIBUTE] = self._expiry(now)
        return self._update(
            meeting_uuid,
            expected_states,
            fields,
            remove=remove,
            history=Transition(state=new, at=stamp),
            count_attempt=count_attempt,
            only_if=only_if,
            only_if_below=only_if_below,
        )

    def update_fields(
        self,
        meeting_uuid: str,
        expected: State | Iterable[State],
        updates: Mapping[str, Any],
        *,
        remove: Iterable[str] = (),
        count_attempt: str | None = None,
        only_if: Mapping[str, str] | None = None,
    ) -> Recording:
        """Change fields without changing state, only while the item is in `expected` (and
        the fields in `only_if` hold those values)."""
        expected_states = (expected,) if isinstance(expected, State) else tuple(expected)
        fields = dict(updates)
        fields["updated_at"] = iso(self._clock())
        return self._update(
            meeting_uuid,
            expected_states,
            fields,
            remove=remove,
            count_attempt=count_attempt,
            only_if=only_if,
        )

    def fail(
        self,
        meeting_uuid: str,
        expected: State | Iterable[State],
        *,
        stage: str,
        reason: str,
        only_if: Mapping[str, str] | None = None,
    ) -> Recording:
        """Move to FAILED with the stage and a reason an operator can read."""
        return self.transition(
            meeting_uuid,
            expected,
            State.FAILED,
            updates={"failed_stage": stage, "failure_reason": reason[:2000]},
            only_if=only_if,
        )

    def delete_if_state(self, meeting_uuid: str, state: State) -> bool:
        """Remove an item still in `state` (compensation for an intake that could not enqueue)."""
        try:
            self.client.delete_item(
                TableName=self.table_name,
                Key={"meeting_uuid": {"S": meeting_uuid}},
                ConditionExpression="#s = :s",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={":s": {"S": state.value}},
            )
        except ClientError as e:
            if aws.error_code(e) == "ConditionalCheckFailedException":
                return False
            if aws.error_code(e) == "ValidationException":
                # The one input-dependent refusal left after the event's own bounds: an item
                # over DynamoDB's 400 KB. Retrying cannot help.
                raise PermanentError(f"recording item refused: {e}") from e
            raise
        return True

    def list_by_state(
        self, state: State, *, older_than: datetime | None = None, limit: int | None = None
    ) -> Iterator[Recording]:
        """Items in `state`, oldest first; only those in it since before `older_than` if given."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": STATE_INDEX,
            "KeyConditionExpression": "#s = :s",
            "ExpressionAttributeNames": {"#s": "state"},
            "ExpressionAttributeValues": {":s": {"S": state.value}},
            "ScanIndexForward": True,
        }
        if older_than is not None:
            kwargs["KeyConditionExpression"] += " AND state_since < :t"
            kwargs["ExpressionAttributeValues"][":t"] = {"S": iso(older_than)}
        seen = 0
        paginator = self.client.get_paginator("query")
        for page in paginator.paginate(**kwargs):
            for raw in page.get("Items", []):
                # The index is eventually consistent; read the item itself for the truth.
                recording = self.get(_decode(raw)["meeting_uuid"])
                if recording is None or recording.state != state:
                    continue
                yield recording
                seen += 1
                if limit is not None and seen >= limit:
                    return

    def find_by_job(self, job_id: str) -> Recording | None:
        response = self.client.query(
            TableName=self.table_name,
            IndexName=JOB_INDEX,
            KeyConditionExpression="job_id = :j",
            ExpressionAttributeValues={":j": {"S": job_id}},
            Limit=2,
        )
        items = response.get("Items", [])
        if not items:
            return None
        return self.get(_decode(items[0])["meeting_uuid"])

    def scan(self) -> Iterator[Recording]:
        """Every item (for operator listings; not for the hot path)."""
        paginator = self.client.get_paginator("scan")
        for page in paginator.paginate(TableName=self.table_name, ConsistentRead=True):
            for raw in page.get("Items", []):
                yield Recording.model_validate(_decode(raw))

    def _update(
        self,
        meeting_uuid: str,
        expected: tuple[State, ...],
        fields: Mapping[str, Any],
        *,
        remove: Iterable[str] = (),
        history: Transition | None = None,
        count_attempt: str | None = None,
        only_if: Mapping[str, str] | None = None,
        only_if_below: Mapping[str, int | float] | None = None,
    ) -> Recording:
        names: dict[str, str] = {"#state": "state"}
        values: dict[str, Any] = {}
        sets: list[str] = []
        for i, (key, value) in enumerate(fields.items()):
            names[f"#f{i}"] = key
            if value is None:
                continue
            values[f":f{i}"] = _serializer.serialize(_to_dynamo(value))
            sets.append(f"#f{i} = :f{i}")
        removes = [f"#r{i}" for i, _ in enumerate(remove)]
        names.update({f"#r{i}": key for i, key in enumerate(remove)})
        removes += [f"#f{i}" for i, v in enumerate(fields.values()) if v is None]
        if history is not None:
            names["#h"] = "history"
            values[":h"] = _serializer.serialize([_to_dynamo(history.model_dump(mode="json"))])
            values[":empty"] = {"L": []}
            sets.append("#h = list_append(if_not_exists(#h, :empty), :h)")
        if count_attempt:
            names["#a"] = "attempts"
            names["#stage"] = count_attempt
            values[":one"] = {"N": "1"}
            values[":zero"] = {"N": "0"}
            sets.append("#a.#stage = if_not_exists(#a.#stage, :zero) + :one")
        placeholders = []
        for i, state in enumerate(expected):
            values[f":e{i}"] = {"S": state.value}
            placeholders.append(f":e{i}")
        condition = f"#state IN ({', '.join(placeholders)})"
        for i, (key, value) in enumerate((only_if or {}).items()):
            names[f"#c{i}"] = key
            values[f":c{i}"] = {"S": value}
            condition += f" AND #c{i} = :c{i}"
        for i, (key, limit) in enumerate((only_if_below or {}).items()):
            names[f"#b{i}"] = key
            values[f":b{i}"] = _serializer.serialize(_to_dynamo(limit))
            condition += f" AND (attribute_not_exists(#b{i}) OR #b{i} < :b{i})"
        expression = "SET " + ", ".join(sets)
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        try:
            response = self.client.update_item(
                TableName=self.table_name,
                Key={"meeting_uuid": {"S": meeting_uuid}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                # A refusal carries the item as it is, so a conflict costs no second read.
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as e:
            if aws.error_code(e) == "ConditionalCheckFailedException":
                found = aws.refused_item(e)
                raise StateConflict(
                    meeting_uuid,
                    tuple(s.value for s in expected),
                    _decode(found).get("state") if found else None,
                ) from e
            raise
        return Recording.model_validate(_decode(response["Attributes"]))
