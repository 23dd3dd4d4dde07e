"""The operator CLI against moto's server (and the fake Zoom for backfill)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sandbox.aws_resources import ProvisionedStack
from sandbox.credentials import SandboxCredentials
from sandbox.fake_zoom import FakeZoomState, serve
from sandbox.synth import synthesize_meeting
from services.core import aws
from services.core.failures import announce_failures, notice_client
from services.core.queues import MergeRequest, QueueSender
from services.core.recordings import Recording, RecordingStore, SpeakerTrack, State
from services.core.slots import SlotPool
from services.core.zoom import ZoomApi, ZoomCredentials, ZoomOAuth
from services.ops.cli import backfill, main
from tests.conftest import ROOT


@pytest.fixture
def env(stack: ProvisionedStack, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    environment = stack.service_environment()
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    return environment


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(args), out=out)
    return code, out.getvalue()


def seed(store: RecordingStore, uuid: str, topic: str) -> None:
    store.create_if_absent(
        Recording(
            meeting_uuid=uuid, meeting_id="1", topic=topic, start_time="2026-11-02T09:00:00.000Z"
        )
    )


def messages(url: str) -> list[dict[str, str]]:
    got = (
        aws.client("sqs")
        .receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        .get("Messages", [])
    )
    return [json.loads(m["Body"]) for m in got]


def test_status_lists_meetings_and_shows_one_in_detail(
    stack: ProvisionedStack, env: dict[str, str]
) -> None:
    store = RecordingStore(stack.names.recordings_table)
    seed(store, "a/b+c==", "Weekly sync")
    seed(store, "d==", "Planning")
    store.fail("d==", State.RECEIVED, stage="merge", reason="no usable audio")
    code, table = run("status")
    assert code == 0
    assert "a/b+c==" in table and "RECEIVED" in table and "Weekly sync" in table
    assert "merge: no usable audio" in table
    code, failed = run("status", "--state", "FAILED")
    assert "d==" in failed and "a/b+c==" not in failed
    code, detail = run("status", "a/b+c==")
    assert "history" in detail and "RECEIVED" in detail
    assert run("status", "missing==")[0] == 1


def test_status_of_one_meeting_says_why_a_speaker_s_file_was_left_out(
    stack: ProvisionedStack, env: dict[str, str]
) -> None:
    store = RecordingStore(stack.names.recordings_table)
    store.create_if_absent(
        Recording(
            meeting_uuid="left/out==",
            meeting_id="1",
            start_time="2026-11-02T09:00:00.000Z",
            tracks=[
                SpeakerTrack(
                    file_id="p-1",
                    name="Bo Chen",
                    recording_start="2026-11-02T09:00:00.000Z",
                    recording_end="2026-11-02T09:30:00.000Z",
                    excluded_reason="file p-1: download URL refused: host evil.example is not a"
                    " Zoom download host",
                )
            ],
        )
    )
    code, detail = run("status", "left/out==")
    assert code == 0
    assert "left out Bo Chen: file p-1: download URL refused: host evil.example" in detail


def test_replay_sends_a_failed_meeting_back_to_its_stage(
    stack: ProvisionedStack, env: dict[str, str]
) -> None:
    store = RecordingStore(stack.names.recordings_table)
    seed(store, "r==", "Retry me")
    store.transition("r==", State.RECEIVED, State.MERGING, count_attempt="merge")
    store.fail("r==", State.MERGING, stage="merge", reason="ffmpeg crashed")
    code, out = run("replay", "r==")
    assert code == 0 and "merge request queued" in out
    record = store.require("r==")
    assert record.state == State.RECEIVED and record.failure_reason is None
    assert "merge" not in record.attempts
    assert messages(stack.queue_urls["merge"]) == [{"meeting_uuid": "r=="}]
    assert run("replay", "r==")[0] == 1  # only FAILED meetings replay


def test_redrive_moves_the_dlq_back(stack: ProvisionedStack, env: dict[str, str]) -> None:
    dlq = QueueSender(stack.dlq_urls["merge"])
    for i in range(3):
        dlq.send(MergeRequest(meeting_uuid=f"m{i}"))
    code, out = run("redrive", "merge")
    assert code == 0 and "3 message(s) moved" in out
    assert sorted(m["meeting_uuid"] for m in messages(stack.queue_urls["merge"])) == [
        "m0",
        "m1",
        "m2",
    ]
    assert messages(stack.dlq_urls["merge"]) == []


@pytest.fixture
def zoom(credentials: SandboxCredentials) -> Iterator[tuple[FakeZoomState, str]]:
    state = FakeZoomState(
        account_id=credentials.zoom_account_id,
        client_id=credentials.zoom_client_id,
        client_secret=credentials.zoom_client_secret,
    )
    with serve(state) as server:
        yield state, server.url


def test_backfill_feeds_in_recordings_and_skips_known_ones(
    stack: ProvisionedStack,
    env: dict[str, str],
    zoom: tuple[FakeZoomState, str],
    credentials: SandboxCredentials,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state, url = zoom
    monkeypatch.setenv("ZOOM_API_BASE_URL", f"{url}/v2")
    monkeypatch.setenv("ZOOM_OAUTH_URL", f"{url}/oauth/token")
    start = datetime(2026, 11, 2, 9, tzinfo=UTC)
    cache: Path = ROOT / ".cache" / "synth"
    for i in range(3):
        meeting = synthesize_meeting(
            speakers=2,
            duration_s=20,
            seed=700 + i,
            workdir=cache,
            topic=f"Backfill {i}",
            start_time=start + timedelta(days=i),
        )
        state.add_meeting(replace(meeting, account_id=state.account_id))
    store = RecordingStore(stack.names.recordings_table)
    code, out = run("backfill", "--from", "2026-11-02", "--to", "2026-11-03")
    assert code == 0 and "2 meeting(s) fed in, 0 already known" in out
    code, out = run("backfill", "--from", "2026-11-01", "--to", "2026-11-30")
    assert "1 meeting(s) fed in, 2 already known" in out
    assert len(list(store.scan())) == 3
    assert len(messages(stack.queue_urls["merge"])) == 3


def months_meetings(state: FakeZoomState) -> dict[str, str]:
    """Meetings on the days around month boundaries (uuid by day), two of another host."""
    meeting = synthesize_meeting(
        speakers=2,
        duration_s=20,
        seed=700,
        workdir=ROOT / ".cache" / "synth",
        topic="Backfill 0",
        start_time=datetime(2026, 11, 2, 9, tzinfo=UTC),
    )
    days = {
        "2026-08-31": "host@example.com",
        "2026-09-01": "host@example.com",
        "2026-09-30": "host@example.com",
        "2026-10-01": "other@example.com",
        "2026-10-31": "host@example.com",
        "2026-11-01": "host@example.com",
        "2026-12-20": "other@example.com",
    }
    uuids = {}
    for day, host in days.items():
        start = datetime.fromisoformat(f"{day}T23:30:00+00:00")
        uuid = f"month/{day}=="
        state.add_meeting(
            replace(
                meeting,
                uuid=uuid,
                start_time=start,
                host_email=host,
                account_id=state.account_id,
            )
        )
        uuids[day] = uuid
    return uuids


def test_backfill_walks_month_by_month_without_gap_or_overlap(
    stack: ProvisionedStack,
    env: dict[str, str],
    zoom: tuple[FakeZoomState, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Zoom answers one month per request; one span over four months would miss all but the
    last month's meetings."""
    state, url = zoom
    monkeypatch.setenv("ZOOM_API_BASE_URL", f"{url}/v2")
    monkeypatch.setenv("ZOOM_OAUTH_URL", f"{url}/oauth/token")
    uuids = months_meetings(state)
    code, out = run("backfill", "--from", "2026-09-01", "--to", "2026-12-20")
    assert code == 0, out
    assert state.listed_ranges() == [
        ("me", "2026-09-01", "2026-09-30"),
        ("me", "2026-10-01", "2026-10-31"),
        ("me", "2026-11-01", "2026-11-30"),
        ("me", "2026-12-01", "2026-12-20"),
    ]
    assert out.splitlines() == [
        "2026-09-01..2026-09-30: 2 meeting(s), 2 fed in, 0 already known",
        "2026-10-01..2026-10-31: 2 meeting(s), 2 fed in, 0 already known",
        "2026-11-01..2026-11-30: 1 meeting(s), 1 fed in, 0 already known",
        "2026-12-01..2026-12-20: 1 meeting(s), 1 fed in, 0 already known",
        "6 meeting(s) fed in, 0 already known",
    ]
    store = RecordingStore(stack.names.recordings_table)
    fed = {r.meeting_uuid for r in store.scan()}
    assert fed == {uuid for day, uuid in uuids.items() if day != "2026-08-31"}
    assert len(messages(stack.queue_urls["merge"])) == 6


def test_backfill_pages_within_each_month(
    stack: ProvisionedStack,
    env: dict[str, str],
    zoom: tuple[FakeZoomState, str],
    credentials: SandboxCredentials,
) -> None:
    state, url = zoom
    uuids = months_meetings(state)
    oauth = ZoomOAuth(
        f"{url}/oauth/token",
        lambda: ZoomCredentials(
            credentials.zoom_account_id, credentials.zoom_client_id, credentials.zoom_client_secret
        ),
    )
    store = RecordingStore(stack.names.recordings_table)
    out = io.StringIO()
    accepted, known = backfill(
        ZoomApi(f"{url}/v2", oauth),
        store,
        QueueSender(stack.queue_urls["merge"]),
        date(2026, 8, 31),
        date(2026, 10, 31),
        page_size=1,
        out=out,
    )
    assert (accepted, known) == (5, 0)
    asked = state.listed_ranges()
    # One request per meeting (a page each), none of them outside its month.
    assert asked == [
        ("me", "2026-08-31", "2026-08-31"),
        ("me", "2026-09-01", "2026-09-30"),
        ("me", "2026-09-01", "2026-09-30"),
        ("me", "2026-10-01", "2026-10-31"),
        ("me", "2026-10-01", "2026-10-31"),
    ]
    pages = [r.path for r in state.requests("user_recordings")]
    assert ["next_page_token=" in path for path in pages] == [False, False, True, False, True]
    assert {r.meeting_uuid for r in store.scan()} == {
        uuids[day] for day in ("2026-08-31", "2026-09-01", "2026-09-30", "2026-10-01", "2026-10-31")
    }


def test_backfill_lists_the_user_asked_for(
    stack: ProvisionedStack,
    env: dict[str, str],
    zoom: tuple[FakeZoomState, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state, url = zoom
    monkeypatch.setenv("ZOOM_API_BASE_URL", f"{url}/v2")
    monkeypatch.setenv("ZOOM_OAUTH_URL", f"{url}/oauth/token")
    uuids = months_meetings(state)
    code, out = run(
        "backfill", "--from", "2026-10-01", "--to", "2026-12-31", "--user", "other@example.com"
    )
    assert code == 0 and "2 meeting(s) fed in, 0 already known" in out
    assert {user for user, _, _ in state.listed_ranges()} == {"other@example.com"}
    store = RecordingStore(stack.names.recordings_table)
    assert {r.meeting_uuid for r in store.scan()} == {uuids["2026-10-01"], uuids["2026-12-20"]}
    assert run("backfill", "--from", "2026-12-31", "--to", "2026-12-01")[0] == 1


def test_slots_lists_holders_limit_in_use_and_back_off(
    stack: ProvisionedStack, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYMBL_CONCURRENCY_LIMIT", "3")
    pool = SlotPool(stack.names.slots_table, 3)
    code, out = run("slots")
    assert code == 0 and "(no holders)" in out and "limit 3, in use 0" in out
    assert "not backing off" in out

    claim = pool.acquire(lease_seconds=120, meeting_uuid="claimed/a==")
    job_claim = pool.acquire(lease_seconds=60, meeting_uuid="job/b==")
    assert claim and job_claim
    pool.convert_to_job(job_claim, "job-7", lease_seconds=3600, meeting_uuid="job/b==")
    pool.back_off()
    code, out = run("slots")
    assert code == 0
    rows = {
        line.split()[0]: line for line in out.splitlines() if line.startswith(("claim:", "job:"))
    }
    assert set(rows) == {claim, "job:job-7"}
    assert "claimed/a==" in rows[claim] and " claim " in rows[claim]
    assert "job/b==" in rows["job:job-7"] and re.search(r"\b(359\d|3600)s$", rows["job:job-7"])
    assert "limit 3, in use 2, free 1" in out
    assert re.search(r"backing off until \S+ \([1-5]s left, episode of 5s\)", out)


def failed_meeting_env(store: RecordingStore, uuid: str, *path: State, **fields: Any) -> None:
    seed(store, uuid, "Stuck")
    previous = State.RECEIVED
    for state in path:
        store.transition(uuid, previous, state)
        previous = state
    if fields:
        store.update_fields(uuid, previous, fields)


ALONG = (State.MERGING, State.MERGED, State.SUBMITTING)


def test_fail_ends_a_meeting_frees_its_slot_and_leaves_the_notice_to_the_sweep(
    stack: ProvisionedStack, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    store = RecordingStore(stack.names.recordings_table)
    pool = SlotPool(stack.names.slots_table, 50)
    # SUBMITTED with its job's lease; SUBMITTING with its claim; RECEIVED with nothing held.
    other = pool.acquire(lease_seconds=600, meeting_uuid="other==")
    held = pool.acquire(lease_seconds=600, meeting_uuid="sub/job==")
    claim = pool.acquire(lease_seconds=600, meeting_uuid="sub/claim==")
    assert other and held and claim
    pool.convert_to_job(held, "job-9", lease_seconds=600, meeting_uuid="sub/job==")
    failed_meeting_env(store, "sub/job==", *ALONG, State.SUBMITTED, job_id="job-9")
    failed_meeting_env(store, "sub/claim==", *ALONG, submit_claim=claim)
    failed_meeting_env(store, "fresh==")

    for uuid in ("sub/job==", "sub/claim==", "fresh=="):
        code, out = run("fail", uuid, "--reason", "host asked us to drop it")
        assert code == 0 and "-> FAILED (stage operator)" in out, capsys.readouterr().err
        item = store.require(uuid)
        assert (item.state, item.failed_stage) == (State.FAILED, "operator")
        assert item.failure_reason == "host asked us to drop it"
    assert [lease.holder for lease in pool.view().leases] == [other]

    # Announced by the sweep, once each, with the operator's reason.
    topic = stack.operator_topic_arn
    report = announce_failures(store, notice_client(), topic)
    assert sorted(report.announced) == ["fresh==", "sub/claim==", "sub/job=="]
    assert announce_failures(store, notice_client(), topic).announced == []


@pytest.mark.parametrize(
    ("path", "said"),
    [
        ((*ALONG, State.SUBMITTED, State.TRANSCRIBED, State.NOTIFYING), "email may be on its way"),
        ((*ALONG, State.SUBMITTED, State.TRANSCRIBED, State.NOTIFYING, State.NOTIFIED), "final"),
        ((State.SKIPPED,), "final"),
    ],
    ids=["notifying", "notified", "skipped"],
)
def test_fail_refuses_notifying_and_final_meetings(
    stack: ProvisionedStack,
    env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    path: tuple[State, ...],
    said: str,
) -> None:
    store = RecordingStore(stack.names.recordings_table)
    failed_meeting_env(store, "late==", *path)
    before = store.require("late==")
    code, _ = run("fail", "late==", "--reason", "too late")
    assert code == 1
    assert said in capsys.readouterr().err
    after = store.require("late==")
    assert (after.state, after.updated_at) == (before.state, before.updated_at)


def test_fail_refuses_a_failed_meeting_and_an_unknown_one(
    stack: ProvisionedStack, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    store = RecordingStore(stack.names.recordings_table)
    failed_meeting_env(store, "done==")
    store.fail("done==", State.RECEIVED, stage="merge", reason="no audio")
    assert run("fail", "done==", "--reason", "again")[0] == 1
    assert "FAILED, a final state" in capsys.readouterr().err
    assert store.require("done==").failed_stage == "merge"
    assert run("fail", "nobody==", "--reason", "x")[0] == 1


def test_redrive_of_the_job_events_queue_needs_its_url(
    stack: ProvisionedStack, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Transcribe's events land in the job-events DLQ after their retries (or when EventBridge
    could not deliver them); redriving them is harmless, since settling is idempotent."""
    dlq = QueueSender(stack.dlq_urls["job-events"])
    dlq.send(MergeRequest(meeting_uuid="e0"))  # any body: redrive moves messages as they are
    code, out = run("redrive", "job-events")
    assert code == 0 and "1 message(s) moved from job-events-dlq" in out
    assert messages(stack.queue_urls["job-events"]) == [{"meeting_uuid": "e0"}]
    monkeypatch.delenv("JOB_EVENTS_QUEUE_URL")
    assert run("redrive", "job-events")[0] != 0
