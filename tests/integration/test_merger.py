"""The merger with real ffmpeg, the fake Zoom on loopback and moto's server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.aws_resources import ProvisionedStack
from sandbox.credentials import SandboxCredentials
from sandbox.synth import SyntheticMeeting, synthesize_meeting
from services.core import aws
from services.core.errors import PermanentError
from services.core.recordings import State
from services.merger.dispatch import Dispatch, dispatch_merge
from services.merger.handler import handle_batch
from services.merger.merge import merge_meeting
from tests.conftest import ROOT
from tests.support.merger_rig import MergerRig, merger_rig, probe, speech_spans

CACHE = ROOT / ".cache" / "synth"
TOLERANCE_S = 0.05


@pytest.fixture(scope="session")
def meeting12() -> SyntheticMeeting:
    return synthesize_meeting(
        speakers=12, duration_s=30, seed=12, workdir=CACHE, topic="Merger test: twelve speakers"
    )


@pytest.fixture
def rig(stack: ProvisionedStack, credentials: SandboxCredentials) -> Iterator[MergerRig]:
    with merger_rig(stack, credentials) as r:
        yield r


def fresh(meeting: SyntheticMeeting, uuid: str) -> SyntheticMeeting:
    """The same audio under another meeting UUID, so tests do not share items."""
    from dataclasses import replace

    return replace(meeting, uuid=uuid)


def assert_channel_carries(
    merged: Path, channel: int, meeting: SyntheticMeeting, name: str
) -> None:
    """Channel `channel` (0-based) holds exactly `name`'s scripted lines at their meeting times."""
    expected = [(line.start, line.end) for line in meeting.lines_of(name)]
    found = speech_spans(merged, channel)
    assert len(found) == len(expected), (name, found, expected)
    for (start, end), (want_start, want_end) in zip(found, expected, strict=True):
        assert abs(start - want_start) <= TOLERANCE_S, (name, start, want_start)
        assert abs(end - want_end) <= TOLERANCE_S, (name, end, want_end)


def test_three_speakers_one_channel_each_at_their_true_offsets(
    rig: MergerRig, meeting3: SyntheticMeeting, tmp_path: Path
) -> None:
    uuid, token = rig.receive(fresh(meeting3, "/merge//three+=="))
    merged = merge_meeting(uuid, rig.deps(AUDIO_LAYOUT="multichannel"), download_token=token)
    assert merged.state == State.MERGED
    names = [entry["speakers"][0]["name"] for entry in merged.channel_map]
    assert names == ["Ana Ruiz-Soto", "Bo Chen", "Zoë Ødegård"]
    emails = {p.name: p.email for p in meeting3.participants}
    assert [e["speakers"][0].get("email") for e in merged.channel_map] == [emails[n] for n in names]
    path = rig.merged_file(merged, tmp_path)
    info = probe(path)
    stream = info["streams"][0]
    assert (stream["codec_name"], stream["channels"], stream["sample_rate"]) == ("flac", 3, "16000")
    latest_end = max(p.leave_offset_s for p in meeting3.participants)
    assert abs(float(info["format"]["duration"]) - latest_end) <= TOLERANCE_S
    for channel, name in enumerate(names):
        assert_channel_carries(path, channel, meeting3, name)
    # A speaker who left early did not cut the meeting short (the naive amerge regression).
    early = min(meeting3.participants, key=lambda p: p.leave_offset_s)
    assert early.leave_offset_s < latest_end - 5
    # The submitter was told.
    assert rig.nudger.reasons == ["merged"]
    messages = aws.client("sqs").receive_message(QueueUrl=rig.stack.queue_urls["submit"])
    assert json.loads(messages["Messages"][0]["Body"]) == {"meeting_uuid": uuid}
    assert all(t.s3_key for t in merged.tracks)


def test_merge_again_is_a_no_op(rig: MergerRig, meeting3: SyntheticMeeting) -> None:
    uuid, token = rig.receive(fresh(meeting3, "again=="))
    deps = rig.deps()
    merge_meeting(uuid, deps, download_token=token)
    downloads = rig.zoom.count("download")
    again = merge_meeting(uuid, deps, download_token=token)
    assert again.state == State.MERGED
    assert rig.zoom.count("download") == downloads
    assert rig.nudger.reasons == ["merged"]


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("http_500", {"times": 2}),
        ("http_503", {"times": 1}),
        ("http_429", {"times": 2, "retry_after": 1}),
        ("slow_body", {"times": 1}),
        ("cut_body", {"times": 2, "cut_after": 40_000}),
        ("html_200", {"times": 1}),
        ("json_124", {"times": 1}),
        ("expired_token", {"times": 1}),
    ],
)
def test_recoverable_download_faults(
    rig: MergerRig, meeting3: SyntheticMeeting, kind: str, options: dict[str, Any]
) -> None:
    meeting = fresh(meeting3, f"fault-{kind}==")
    uuid, token = rig.receive(meeting)
    target = meeting.participants[1].audio.file_id
    rig.zoom.inject(kind, file_id=target, **options)  # type: ignore[arg-type]
    merged = merge_meeting(uuid, rig.deps(AUDIO_LAYOUT="multichannel"), download_token=token)
    assert merged.state == State.MERGED
    assert len(merged.channel_map) == 3, f"{kind}: a speaker was lost"
    track = next(t for t in merged.tracks if t.file_id == target)
    head = (
        aws.client("s3")
        .get_object(Bucket=rig.stack.names.media_bucket, Key=track.s3_key, Range="bytes=0-11")[
            "Body"
        ]
        .read()
    )
    assert b"ftyp" in head, f"{kind}: something other than audio was stored"
    size = aws.client("s3").head_object(Bucket=rig.stack.names.media_bucket, Key=track.s3_key)
    assert size["ContentLength"] == meeting.participants[1].audio.file_size
    if kind == "cut_body":
        ranges = [
            r.range_header for r in rig.zoom.requests("cdn", file_id=target) if r.range_header
        ]
        assert ranges and all(r.startswith("bytes=") for r in ranges)


def test_expired_download_token_is_skipped_for_oauth(
    rig: MergerRig, meeting3: SyntheticMeeting
) -> None:
    uuid, token = rig.receive(fresh(meeting3, "expired-token=="), token_ttl_s=-60)
    merged = merge_meeting(uuid, rig.deps(), download_token=token)
    assert merged.state == State.MERGED
    kinds = {r.auth for r in rig.zoom.requests("download")}
    assert kinds == {"s2s"}, "an expired download_token must not even be tried"


@pytest.mark.parametrize("kind", ["wrong_size", "not_found"])
def test_a_file_that_fails_for_good_is_left_out_without_shifting_others(
    rig: MergerRig, meeting3: SyntheticMeeting, kind: str, tmp_path: Path
) -> None:
    meeting = fresh(meeting3, f"lost-{kind}==")
    uuid, token = rig.receive(meeting)
    lost = meeting.participants[1]
    rig.zoom.inject(kind, file_id=lost.audio.file_id, times=None)  # type: ignore[arg-type]
    merged = merge_meeting(uuid, rig.deps(AUDIO_LAYOUT="multichannel"), download_token=token)
    assert merged.state == State.MERGED
    names = [entry["speakers"][0]["name"] for entry in merged.channel_map]
    assert names == [meeting.participants[0].name, meeting.participants[2].name]
    track = next(t for t in merged.tracks if t.file_id == lost.audio.file_id)
    assert track.excluded_reason and track.s3_key is None
    path = rig.merged_file(merged, tmp_path)
    assert_channel_carries(path, 0, meeting, names[0])
    assert_channel_carries(path, 1, meeting, names[1])


def test_twelve_speakers_with_eight_channels_share_the_last(
    rig: MergerRig, meeting12: SyntheticMeeting, tmp_path: Path
) -> None:
    uuid, token = rig.receive(fresh(meeting12, "twelve=="))
    deps = rig.deps(MERGE_MAX_CHANNELS=8, AUDIO_LAYOUT="multichannel")
    merged = merge_meeting(uuid, deps, download_token=token)
    assert [e["channel"] for e in merged.channel_map] == list(range(1, 9))
    shared = merged.channel_map[-1]["speakers"]
    assert len(shared) == 5
    assert sum(len(e["speakers"]) for e in merged.channel_map) == 12
    speech = {
        p.name: sum(line.end - line.start for line in meeting12.lines_of(p.name))
        for p in meeting12.participants
    }
    own = [e["speakers"][0]["name"] for e in merged.channel_map[:-1]]
    assert min(speech[n] for n in own) >= max(speech[s["name"]] for s in shared) - 0.5
    assert probe(rig.merged_file(merged, tmp_path))["streams"][0]["channels"] == 8


def test_no_participant_files_falls_back_to_mono_with_diarization(
    rig: MergerRig, meeting3: SyntheticMeeting, tmp_path: Path
) -> None:
    uuid, token = rig.receive(fresh(meeting3, "mono=="), with_participant_files=False)
    merged = merge_meeting(uuid, rig.deps(), download_token=token)
    assert merged.state == State.MERGED
    assert merged.diarization and merged.channel_map == []
    assert merged.participant_count == 3
    assert merged.speaker_count_source == "participants_api"
    assert probe(rig.merged_file(merged, tmp_path))["streams"][0]["channels"] == 1


def test_no_audio_at_all_fails_with_a_reason(rig: MergerRig, meeting3: SyntheticMeeting) -> None:
    meeting = fresh(meeting3, "silent==")
    uuid, token = rig.receive(meeting)
    for p in meeting.participants:
        rig.zoom.inject("not_found", file_id=p.audio.file_id, times=None)
    rig.zoom.inject("not_found", file_id=meeting.audio_only.file_id, times=None)
    with pytest.raises(PermanentError):
        merge_meeting(uuid, rig.deps(), download_token=token)


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


def test_handler_marks_permanent_failures_and_acknowledges(
    rig: MergerRig, meeting3: SyntheticMeeting
) -> None:
    meeting = fresh(meeting3, "handler-permanent==")
    uuid, token = rig.receive(meeting)
    for p in meeting.participants:
        rig.zoom.inject("not_found", file_id=p.audio.file_id, times=None)
    rig.zoom.inject("not_found", file_id=meeting.audio_only.file_id, times=None)
    result = handle_batch(sqs_event({"meeting_uuid": uuid, "download_token": token}), rig.deps())
    assert result == {"batchItemFailures": []}
    record = rig.store.require(uuid)
    assert (record.state, record.failed_stage) == (State.FAILED, "merge")
    assert "no usable audio" in (record.failure_reason or "")


def test_handler_retries_transient_failures_then_gives_up(
    rig: MergerRig, meeting3: SyntheticMeeting
) -> None:
    meeting = fresh(meeting3, "handler-transient==")
    uuid, token = rig.receive(meeting)
    rig.zoom.inject("http_503", times=None)
    deps = rig.deps(DOWNLOAD_RETRY_BUDGET_SECONDS=0.5)
    body = {"meeting_uuid": uuid, "download_token": token}
    assert handle_batch(sqs_event(body, 1), deps) == {
        "batchItemFailures": [{"itemIdentifier": "m-1"}]
    }
    assert rig.store.require(uuid).state == State.MERGING
    assert handle_batch(sqs_event(body, 5), deps) == {
        "batchItemFailures": [{"itemIdentifier": "m-1"}]
    }
    record = rig.store.require(uuid)
    assert record.state == State.FAILED and "503" in (record.failure_reason or "")


def test_handler_ignores_malformed_and_unknown_messages(rig: MergerRig) -> None:
    deps = rig.deps()
    assert handle_batch(
        {"Records": [{"messageId": "x", "receiptHandle": "r", "body": "{", "attributes": {}}]}, deps
    ) == {"batchItemFailures": []}
    assert handle_batch(sqs_event({"meeting_uuid": "unknown=="}), deps) == {"batchItemFailures": []}


def ecs_setup(prefix: str) -> dict[str, str]:
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(
        GroupName=f"{prefix}-merger", Description="merger", VpcId=vpc
    )["GroupId"]
    ecs = aws.client("ecs")
    ecs.create_cluster(clusterName=f"{prefix}-cluster")
    task = ecs.register_task_definition(
        family=f"{prefix}-merger",
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="2048",
        memory="4096",
        containerDefinitions=[
            {
                "name": "merger",
                "image": "merger:latest",
                "memory": 4096,
                "command": ["python", "-m", "services.merger.task"],
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    return {
        "ECS_CLUSTER": f"{prefix}-cluster",
        "ECS_TASK_DEFINITION": task,
        "ECS_SUBNETS": subnet,
        "ECS_SECURITY_GROUPS": group,
    }


def test_long_meetings_go_to_a_fargate_task_with_the_meeting_as_override(
    rig: MergerRig, meeting3: SyntheticMeeting
) -> None:
    uuid, token = rig.receive(fresh(meeting3, "/long//meeting=="))
    ecs_env = ecs_setup(rig.stack.names.prefix)
    deps = rig.deps(INLINE_MERGE_MAX_SECONDS=10, **ecs_env)
    assert dispatch_merge(uuid, deps, download_token=token) == Dispatch.TASK
    record = rig.store.require(uuid)
    assert (record.state, record.merge_mode) == (State.MERGING, "task")
    assert record.merge_task_arn
    described = aws.client("ecs").describe_tasks(
        cluster=ecs_env["ECS_CLUSTER"], tasks=[record.merge_task_arn]
    )["tasks"][0]
    override = described["overrides"]["containerOverrides"][0]
    assert override["name"] == "merger"
    # The task runs under the lease the dispatcher took, which outlasts an inline one.
    assert record.merge_lease_holder and record.merge_lease_deadline
    assert override["environment"] == [
        {"name": "MERGE_MEETING_UUID", "value": uuid},
        {"name": "MERGE_LEASE_HOLDER", "value": record.merge_lease_holder},
    ]
    task_lease = deps.settings.merge_lease_seconds(record.duration_minutes * 60, task=True)
    assert record.merge_lease_deadline >= time.time() + task_lease - 60
    # A second delivery of the same request starts no second task.
    assert dispatch_merge(uuid, deps, download_token=token) == Dispatch.NOTHING
    assert len(aws.client("ecs").list_tasks(cluster=ecs_env["ECS_CLUSTER"])["taskArns"]) == 1


def test_short_meetings_merge_inline(rig: MergerRig, meeting3: SyntheticMeeting) -> None:
    uuid, token = rig.receive(fresh(meeting3, "inline=="))
    assert dispatch_merge(uuid, rig.deps(), download_token=token) == Dispatch.INLINE
    assert rig.store.require(uuid).state == State.MERGED
