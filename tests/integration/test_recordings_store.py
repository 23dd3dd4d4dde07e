from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sandbox.aws_resources import ProvisionedStack
from services.core.errors import StateConflict
from services.core.recordings import Recording, RecordingStore, State


def make(uuid: str) -> Recording:
    return Recording(
        meeting_uuid=uuid,
        meeting_id="81234567890",
        start_time="2023-11-14T22:10:00.000Z",
        topic="t",
        host_email="host@example.com",
    )


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(stack: ProvisionedStack, clock: Clock) -> RecordingStore:
    return RecordingStore(stack.names.recordings_table, retention_days=30, clock=clock)


@pytest.mark.parametrize("uuid", ["AbC1/dEf+Gh==", "/leading==", "dou//ble+=", "AbC1_dEf-Gh=="])
def test_uuids_round_trip_unchanged_and_never_collide(store: RecordingStore, uuid: str) -> None:
    assert store.create_if_absent(make(uuid))
    got = store.require(uuid)
    assert got.meeting_uuid == uuid
    assert got.state == State.RECEIVED


def test_sanitised_lookalikes_are_distinct(store: RecordingStore) -> None:
    assert store.create_if_absent(make("a/b+c=="))
    assert store.create_if_absent(make("a_b-c=="))
    assert store.require("a/b+c==").meeting_uuid == "a/b+c=="
    assert store.require("a_b-c==").meeting_uuid == "a_b-c=="


def test_create_if_absent_writes_once(store: RecordingStore, clock: Clock) -> None:
    assert store.create_if_absent(make("m1"))
    clock.advance(5)
    changed = make("m1").model_copy(update={"topic": "other"})
    assert not store.create_if_absent(changed)
    got = store.require("m1")
    assert got.topic == "t"
    assert got.created_at == "2026-01-01T00:00:00.000Z"
    assert got.expires_at == int(
        (clock.now - timedelta(seconds=5) + timedelta(days=30)).timestamp()
    )


def test_transitions_are_conditional_and_recorded(store: RecordingStore, clock: Clock) -> None:
    store.create_if_absent(make("m2"))
    clock.advance(10)
    moved = store.transition("m2", State.RECEIVED, State.MERGING, count_attempt="merge")
    assert moved.state == State.MERGING
    assert moved.attempts == {"merge": 1}
    assert [h.state for h in moved.history] == [State.RECEIVED, State.MERGING]
    assert moved.state_since == "2026-01-01T00:00:10.000Z"
    with pytest.raises(StateConflict) as caught:
        store.transition("m2", State.RECEIVED, State.MERGING)
    assert caught.value.actual == "MERGING"
    assert store.require("m2").attempts == {"merge": 1}


def test_transition_of_unknown_item_conflicts(store: RecordingStore) -> None:
    with pytest.raises(StateConflict) as caught:
        store.transition("missing", State.RECEIVED, State.MERGING)
    assert caught.value.actual is None
    assert store.get("missing") is None


def test_updates_and_removals(store: RecordingStore) -> None:
    store.create_if_absent(make("m3"))
    store.transition("m3", State.RECEIVED, State.MERGING)
    merged = store.transition(
        "m3",
        State.MERGING,
        State.MERGED,
        updates={
            "merged_key": "merged/m3.flac",
            "channel_map": [{"channel": 1, "name": "Ana", "seconds": 1.5}],
        },
    )
    assert merged.merged_key == "merged/m3.flac"
    assert merged.channel_map == [{"channel": 1, "name": "Ana", "seconds": 1.5}]
    cleared = store.update_fields("m3", State.MERGED, {"merged_key": None})
    assert cleared.merged_key is None


def test_fail_records_stage_and_reason(store: RecordingStore) -> None:
    store.create_if_absent(make("m4"))
    failed = store.fail("m4", [State.RECEIVED, State.MERGING], stage="merge", reason="no audio")
    assert (failed.state, failed.failed_stage, failed.failure_reason) == (
        State.FAILED,
        "merge",
        "no audio",
    )


def test_list_by_state_oldest_first_with_cutoff(store: RecordingStore, clock: Clock) -> None:
    for name in ("old", "mid", "new"):
        store.create_if_absent(make(name))
        clock.advance(60)
    store.transition("mid", State.RECEIVED, State.MERGING)
    assert [r.meeting_uuid for r in store.list_by_state(State.RECEIVED)] == ["old", "new"]
    cutoff = datetime(2026, 1, 1, 0, 1, 30, tzinfo=UTC)
    assert [r.meeting_uuid for r in store.list_by_state(State.RECEIVED, older_than=cutoff)] == [
        "old"
    ]
    assert [r.meeting_uuid for r in store.list_by_state(State.MERGING)] == ["mid"]


def test_find_by_job(store: RecordingStore) -> None:
    store.create_if_absent(make("m5"))
    store.update_fields("m5", State.RECEIVED, {"job_id": "job-123"})
    found = store.find_by_job("job-123")
    assert found is not None and found.meeting_uuid == "m5"
    assert store.find_by_job("job-none") is None


def test_ttl_is_enabled_on_the_table(stack: ProvisionedStack, store: RecordingStore) -> None:
    ttl = store.client.describe_time_to_live(TableName=stack.names.recordings_table)
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"
    assert ttl["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED"


def test_a_transition_can_also_require_a_field_and_a_refusal_names_the_state(
    store: RecordingStore,
) -> None:
    store.create_if_absent(make("m6"))
    store.update_fields("m6", State.RECEIVED, {"job_id": "job-new"})
    # A settlement about an older job of the same meeting must not move it.
    with pytest.raises(StateConflict) as refused:
        store.transition("m6", State.RECEIVED, State.MERGING, only_if={"job_id": "job-old"})
    assert refused.value.actual == "RECEIVED"
    with pytest.raises(StateConflict) as wrong_state:
        store.transition("m6", State.MERGED, State.SUBMITTING)
    assert wrong_state.value.actual == "RECEIVED"
    with pytest.raises(StateConflict) as absent:
        store.transition("nobody", State.MERGED, State.SUBMITTING)
    assert absent.value.actual is None
    moved = store.transition("m6", State.RECEIVED, State.MERGING, only_if={"job_id": "job-new"})
    assert moved.state == State.MERGING
