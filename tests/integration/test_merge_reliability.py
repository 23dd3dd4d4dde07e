"""Merger reliability: one live merge per meeting (the lease), a speaker count for every
diarized meeting, and participant files Zoom is still processing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from sandbox.aws_resources import ProvisionedStack
from sandbox.credentials import SandboxCredentials
from sandbox.synth import SyntheticMeeting
from services.core import aws
from services.core.recordings import Recording, RecordingStore, State
from services.core.zoom import Participant
from services.merger.dispatch import Dispatch, dispatch_merge
from services.merger.handler import handle_batch
from services.merger.merge import merge_meeting
from services.merger.task import run_task
from tests.integration.test_merger import ecs_setup
from tests.support.merger_rig import MergerRig, merger_rig


@pytest.fixture
def rig(stack: ProvisionedStack, credentials: SandboxCredentials) -> Iterator[MergerRig]:
    with merger_rig(stack, credentials) as r:
        yield r


def sqs_event(body: dict[str, Any], receive_count: int = 1) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": "m-1",
                "receiptHandle": "r-1",
                "body": json.dumps(body),
                "attributes": {"ApproximateReceiveCount": str(receive_count)},
                "eventSource": "aws:sqs",
            }
        ]
    }


def hold_as_another_run(store: RecordingStore, uuid: str, *, deadline: float) -> Recording:
    """The item as a merge run elsewhere left it: MERGING under its lease."""
    return store.transition(
        uuid,
        State.RECEIVED,
        State.MERGING,
        updates={
            "merge_lease_holder": "another-run",
            "merge_lease_deadline": int(deadline),
            "merge_mode": "inline",
        },
        count_attempt="merge",
    )


def submit_requests(rig: MergerRig) -> list[dict[str, Any]]:
    received = aws.client("sqs").receive_message(
        QueueUrl=rig.stack.queue_urls["submit"], MaxNumberOfMessages=10
    )
    return [json.loads(m["Body"]) for m in received.get("Messages", [])]


# --- 1. one live merge per meeting ----------------------------------------------------------


def test_a_duplicate_request_during_a_live_merge_is_acknowledged_and_merges_nothing(
    rig: MergerRig, meeting3: SyntheticMeeting
) -> None:
    uuid, token = rig.receive(replace(meeting3, uuid="live-lease=="))
    hold_as_another_run(rig.store, uuid, deadline=time.time() + 600)
    rig.zoom.clear_log()
    result = handle_batch(sqs_event({"meeting_uuid": uuid, "download_token": token}), rig.deps())
    assert result == {"batchItemFailures": []}, "the duplicate must be acknowledged"
    record = rig.store.require(uuid)
    assert (record.state, record.merge_lease_holder) == (State.MERGING, "another-run")
    assert record.attempts == {"merge": 1}
    assert rig.zoom.requests() == [], "a dropped duplicate must not touch Zoom"
    assert submit_requests(rig) == [] and rig.nudger.reasons == []


def test_an_expired_lease_is_taken_over_and_merged(
    rig: MergerRig, meeting3: SyntheticMeeting
) -> None:
    uuid, token = rig.receive(replace(meeting3, uuid="dead-lease=="))
    hold_as_another_run(rig.store, uuid, deadline=time.time() - 1)
    result = handle_batch(
        sqs_event({"meeting_uuid": uuid, "download_token": token}),
        rig.deps(AUDIO_LAYOUT="multichannel"),
    )
    assert result == {"batchItemFailures": []}
    record = rig.store.require(uuid)
    assert record.state == State.MERGED and len(record.channel_map) == 3
    assert record.attempts == {"merge": 2}, "a takeover counts an attempt"
    assert record.merge_lease_holder is None and record.merge_lease_deadline is None
    assert record.merged_key and "another-run" not in record.merged_key
    assert submit_requests(rig) == [{"meeting_uuid": uuid}]


class StaleFirstRead(RecordingStore):
    """A store whose first read returns the item as it was before another request moved it."""

    def __init__(self, table: str, stale: Recording) -> None:
        super().__init__(table)
        self.stale: Recording | None = stale

    def get(self, meeting_uuid: str) -> Recording | None:
        if self.stale is not None:
            stale, self.stale = self.stale, None
            return stale
        return super().get(meeting_uuid)


def test_the_loser_of_the_race_to_start_the_merge_drops_its_message(
    rig: MergerRig, meeting3: SyntheticMeeting
) -> None:
    uuid, token = rig.receive(replace(meeting3, uuid="race=="))
    before = rig.store.require(uuid)
    hold_as_another_run(rig.store, uuid, deadline=time.time() + 600)
    deps = rig.deps()
    deps.store = StaleFirstRead(rig.stack.names.recordings_table, before)
    rig.zoom.clear_log()
    result = handle_batch(sqs_event({"meeting_uuid": uuid, "download_token": token}), deps)
    assert result == {"batchItemFailures": []}, "a lost race is no failure to retry"
    assert rig.store.require(uuid).merge_lease_holder == "another-run"
    assert rig.zoom.requests() == []


def test_a_takeover_based_on_a_stale_read_of_an_expired_lease_drops_its_message(
    rig: MergerRig, meeting3: SyntheticMeeting
) -> None:
    uuid, token = rig.receive(replace(meeting3, uuid="renewed-lease=="))
    expired = hold_as_another_run(rig.store, uuid, deadline=time.time() - 1)
    # Meanwhile the holder renewed its lease (as a run waiting for a file does).
    rig.store.update_fields(uuid, State.MERGING, {"merge_lease_deadline": int(time.time()) + 600})
    deps = rig.deps()
    deps.store = StaleFirstRead(rig.stack.names.recordings_table, expired)
    rig.zoom.clear_log()
    result = handle_batch(sqs_event({"meeting_uuid": uuid, "download_token": token}), deps)
    assert result == {"batchItemFailures": []}
    record = rig.store.require(uuid)
    assert (record.state, record.merge_lease_holder) == (State.MERGING, "another-run")
    assert record.attempts == {"merge": 1}
    assert rig.zoom.requests() == []


class TakenOverMidMerge:
    """Participants directory that, when asked (the run holds its lease by then), lets another
    run take the lease over, as if this run had outlived its deadline."""

    def __init__(self, store: RecordingStore, inner: Any) -> None:
        self.store = store
        self.inner = inner

    def list_participants(self, meeting_uuid: str) -> list[Participant]:
        self.store.update_fields(
            meeting_uuid,
            State.MERGING,
            {"merge_lease_holder": "newer-run", "merge_lease_deadline": int(time.time()) + 600},
        )
        result: list[Participant] = self.inner.list_participants(meeting_uuid)
        return result


def test_a_run_that_lost_its_lease_does_not_record_its_result(
    rig: MergerRig, meeting3: SyntheticMeeting
) -> None:
    uuid, token = rig.receive(replace(meeting3, uuid="lost-lease=="))
    deps = rig.deps()
    deps.participants = TakenOverMidMerge(rig.store, deps.participants)
    outcome = merge_meeting(uuid, deps, download_token=token)
    assert (outcome.state, outcome.merge_lease_holder) == (State.MERGING, "newer-run")
    assert outcome.merged_key is None and outcome.channel_map == []
    assert submit_requests(rig) == [] and rig.nudger.reasons == []
    listed = aws.client("s3").list_objects_v2(Bucket=rig.stack.names.media_bucket, Prefix="merged/")
    assert listed.get("KeyCount", 0) == 0, "the superseded run's file must not stay behind"


def test_a_fargate_task_merges_under_the_dispatchers_lease_and_only_then(
    rig: MergerRig, meeting3: SyntheticMeeting
) -> None:
    uuid, token = rig.receive(replace(meeting3, uuid="task-lease=="))
    deps = rig.deps(INLINE_MERGE_MAX_SECONDS=10, **ecs_setup(rig.stack.names.prefix))
    assert dispatch_merge(uuid, deps, download_token=token) == Dispatch.TASK
    holder = rig.store.require(uuid).merge_lease_holder
    assert holder
    # A duplicate request, and a task started by hand without the lease, do nothing.
    assert dispatch_merge(uuid, deps, download_token=token) == Dispatch.NOTHING
    assert run_task(uuid, None, deps) == 0
    assert run_task(uuid, "not-the-holder", deps) == 0
    record = rig.store.require(uuid)
    assert (record.state, record.merge_lease_holder) == (State.MERGING, holder)
    assert rig.zoom.count("download") == 0
    # The task the dispatcher started merges.
    assert run_task(uuid, holder, deps) == 0
    assert rig.store.require(uuid).state == State.MERGED
    assert submit_requests(rig) == [{"meeting_uuid": uuid}]


# --- 2. a speaker count for every diarized meeting ------------------------------------------


def test_diarization_without_participants_or_files_uses_the_default_count(
    rig: MergerRig, meeting3: SyntheticMeeting
) -> None:
    uuid, token = rig.receive(
        replace(meeting3, uuid="count-default=="), with_participant_files=False
    )
    rig.zoom.inject("not_found", endpoint="participants", times=None)
    merged = merge_meeting(uuid, rig.deps(DIARIZATION_DEFAULT_SPEAKERS=4), download_token=token)
    assert merged.state == State.MERGED and merged.diarization
    assert (merged.participant_count, merged.speaker_count_source) == (4, "default")


def test_diarization_counts_the_listed_participant_files_when_none_is_usable(
    rig: MergerRig, meeting3: SyntheticMeeting
) -> None:
    meeting = replace(meeting3, uuid="count-files==")
    uuid, token = rig.receive(meeting)
    for p in meeting.participants:
        rig.zoom.inject("not_found", file_id=p.audio.file_id, times=None)
    rig.zoom.inject("expired_token", endpoint="participants", times=None)
    merged = merge_meeting(uuid, rig.deps(), download_token=token)
    assert merged.state == State.MERGED and merged.diarization
    assert (merged.participant_count, merged.speaker_count_source) == (3, "participant_files")


# --- 3. participant files Zoom is still processing ------------------------------------------


def test_a_processing_file_is_waited_for_and_merged_once_completed(
    rig: MergerRig, meeting3: SyntheticMeeting
) -> None:
    meeting = replace(meeting3, uuid="processing-then-done==")
    late = meeting.participants[1].audio
    rig.zoom.hold_processing(late.file_id, answers=2)
    uuid, _ = rig.receive(meeting)
    assert rig.store.require(uuid).tracks[1].status == "processing"
    deps = rig.deps(
        AUDIO_LAYOUT="multichannel", PROCESSING_CHECK_SECONDS=1, PROCESSING_WAIT_SECONDS=120
    )
    delivered = rig.deliver_merge_requests(
        deps, lambda: rig.store.require(uuid).state not in (State.RECEIVED, State.MERGING)
    )
    merged = rig.store.require(uuid)
    assert merged.state == State.MERGED
    assert delivered == 3, "the request, then one delayed re-check per processing answer"
    assert [e["speakers"][0]["name"] for e in merged.channel_map] == meeting.speakers
    track = merged.tracks[1]
    assert (track.status, track.file_size, track.excluded_reason) == (
        "completed",
        late.file_size,
        None,
    )
    # Nothing of the file was fetched while Zoom still listed it as processing.
    last_processing_answer = rig.zoom.requests("recordings")[1].at
    assert all(
        r.at > last_processing_answer for r in rig.zoom.requests("download", file_id=late.file_id)
    )
    assert merged.attempts == {"merge": 1}, "waiting spends no attempt"


def test_a_file_still_processing_when_the_budget_is_spent_is_left_out_with_that_reason(
    rig: MergerRig, meeting3: SyntheticMeeting
) -> None:
    meeting = replace(meeting3, uuid="processing-for-good==")
    late = meeting.participants[1].audio
    rig.zoom.hold_processing(late.file_id)
    uuid, _ = rig.receive(meeting)
    deps = rig.deps(
        AUDIO_LAYOUT="multichannel", PROCESSING_CHECK_SECONDS=1, PROCESSING_WAIT_SECONDS=2
    )
    rig.deliver_merge_requests(
        deps, lambda: rig.store.require(uuid).state not in (State.RECEIVED, State.MERGING)
    )
    merged = rig.store.require(uuid)
    assert merged.state == State.MERGED
    assert [e["speakers"][0]["name"] for e in merged.channel_map] == [
        meeting.participants[0].name,
        meeting.participants[2].name,
    ]
    track = merged.tracks[1]
    assert track.s3_key is None and "processing" in (track.excluded_reason or "")
    assert "ran out" in (track.excluded_reason or "")
    assert rig.zoom.count("download", file_id=late.file_id) == 0
