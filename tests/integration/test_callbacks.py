"""Symbl's job callbacks and the account's concurrency limit, with nothing else to lean on.

The reconciler settles any job it polls, and the fake Symbl refuses any job over the limit, so
either can hide a broken callback route or a broken slot count. Here the reconciler runs only
after the assertions about callbacks, and the limit is judged by what arrived at the fake (its
`over_limit_attempts`), not by what it let run.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from sandbox.aws_resources import ProvisionedStack
from sandbox.credentials import SandboxCredentials
from sandbox.fake_symbl import TERMINAL_STATUSES
from services.core import aws
from services.core.recordings import State
from services.core.slots import JOB_PREFIX
from services.submitter.pump import run_pump
from services.submitter.reconciler import reconcile
from tests.support.submitter_rig import PumpThreads, SubmitterRig, submitter_rig, two_channel_flac

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def flac(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return two_channel_flac(tmp_path_factory.mktemp("callbacks") / "two.flac")


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def notify_messages(stack: ProvisionedStack) -> list[str]:
    """The meeting of every message on the notify queue, taken off it (the next call sees only
    messages sent since)."""
    sqs = aws.client("sqs")
    url = stack.queue_urls["notify"]
    meetings = []
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for m in got:
            meetings.append(json.loads(m["Body"])["meeting_uuid"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return meetings


def terminal_callbacks(rig: SubmitterRig) -> tuple[set[str], set[str]]:
    """(jobs with a terminal callback delivered, jobs whose every terminal callback was dropped)"""
    delivered: set[str] = set()
    dropped: set[str] = set()
    for attempt in rig.symbl.webhook_attempts:
        if attempt.payload["status"] in TERMINAL_STATUSES:
            (dropped if attempt.dropped else delivered).add(attempt.job_id)
    return delivered, dropped - delivered


def test_parallel_pumps_never_send_a_job_the_account_has_no_room_for(
    stack: ProvisionedStack, credentials: SandboxCredentials, flac: Path
) -> None:
    # The fake would refuse a surplus job with a 429 and the pump would just back off, so the
    # pipeline would still deliver: only the arrivals at a full account show the count failing.
    with submitter_rig(stack, credentials, limit=2, processing_seconds=0.3) as rig:
        uuids = rig.add_merged_meetings(20, flac)
        with PumpThreads(rig, 4) as running:
            wait_until(
                lambda: all(s == State.TRANSCRIBED for s in rig.states(uuids).values()),
                120,
                "every meeting transcribed",
            )
        assert not running.errors
        assert rig.symbl.over_limit_attempts == []
        assert rig.symbl.at_limit_attempts == []
        assert rig.symbl.max_in_flight == 2  # the backlog kept both slots busy
        assert len(rig.symbl.submit_attempts) == 20  # no submit was refused or repeated
        assert rig.symbl.duplicate_jobs == []


def test_dropped_duplicated_and_reordered_callbacks_and_failed_jobs(
    stack: ProvisionedStack, credentials: SandboxCredentials, flac: Path
) -> None:
    # Jobs run long enough that the pump's own status check right after submitting finds them
    # running: only a callback can settle them. Fewer callbacks are dropped than there are slots,
    # so the meetings they strand cannot stop the others.
    with submitter_rig(stack, credentials, limit=5, processing_seconds=1.0) as rig:
        rig.symbl.drop_webhooks(count=4)
        rig.symbl.duplicate_webhooks(count=5)
        rig.symbl.reorder_webhooks(count=3)
        rig.symbl.webhook_uses_id(count=4)
        rig.symbl.fail_jobs(count=1, name_pattern=r"-3$")
        uuids = rig.add_merged_meetings(12, flac)
        store = rig.store

        def stranded() -> set[str]:
            """Meetings still SUBMITTED because their job's terminal callback was dropped."""
            _, lost = terminal_callbacks(rig)
            return {
                u
                for u in uuids
                if (r := store.require(u)).state == State.SUBMITTED and r.job_id in lost
            }

        def settled_by_callbacks() -> bool:
            states = rig.states(uuids)
            waiting = stranded()
            return all(s == State.TRANSCRIBED or u in waiting for u, s in states.items())

        with PumpThreads(rig, 2) as running:
            # No reconciler yet: every meeting whose terminal callback arrived is settled by it.
            wait_until(settled_by_callbacks, 90, "the callbacks to settle their meetings")
            lost = stranded()
            delivered, _ = terminal_callbacks(rig)
            for uuid in set(uuids) - lost:
                record = store.require(uuid)
                assert record.state == State.TRANSCRIBED
                assert record.job_id in delivered
            assert sorted(notify_messages(stack)) == sorted(set(uuids) - lost)
            # A stranded job keeps its slot (the idle pumps' passing claims aside).
            jobs_held = {
                lease.meeting_uuid
                for lease in rig.slots.view().leases
                if lease.holder.startswith(JOB_PREFIX)
            }
            assert jobs_held == lost

            # Then the schedule: the reconciler polls Symbl for the jobs whose callback was lost.
            reconciler = rig.reconciler_deps()
            reconciler.clock = lambda: time.time() + 120

            def transcribed() -> bool:
                reconcile(reconciler)
                return all(s == State.TRANSCRIBED for s in rig.states(uuids).values())

            wait_until(transcribed, 60, "the reconciler to settle the stranded meetings")
        assert not running.errors
        names = rig.symbl.jobs_per_name()
        assert names["Meeting m-3"] == 2  # the failed job was resubmitted once
        assert all(n == 1 for name, n in names.items() if name != "Meeting m-3")
        assert sorted(notify_messages(stack)) == sorted(lost)  # the rest were sent before
        assert rig.slots.view().in_use == 0
        assert rig.symbl.over_limit_attempts == []

        # Each fault fired as armed (once every callback has been tried).
        wait_until(
            lambda: len(rig.symbl.webhook_attempts) == 2 * rig.symbl.accepted + 5,
            10,
            "every callback to be tried",
        )
        attempts = rig.symbl.webhook_attempts
        assert sum(a.dropped for a in attempts) == 4
        sent = Counter((a.job_id, a.payload["status"]) for a in attempts if not a.dropped)
        assert sum(n - 1 for n in sent.values()) == 5  # duplicated deliveries
        id_shaped = {(a.job_id, a.payload["status"]) for a in attempts if "id" in a.payload}
        assert len(id_shaped) == 4
        assert len([a for a in attempts if a.payload["status"] == "failed"]) >= 1
        reordered = [
            job
            for job in {a.job_id for a in attempts}
            if [a.payload["status"] for a in attempts if a.job_id == job][-1] == "in_progress"
        ]
        assert len(reordered) >= 1


@pytest.mark.parametrize("claimed", ["completed", "failed"])
@pytest.mark.parametrize("key", ["jobId", "id"])
def test_a_callback_claiming_an_end_for_a_running_job_changes_nothing(
    stack: ProvisionedStack,
    credentials: SandboxCredentials,
    flac: Path,
    claimed: str,
    key: str,
) -> None:
    # Symbl signs nothing: whoever knows the URL can claim anything. Only GET /v1/job counts.
    with submitter_rig(
        stack, credentials, limit=2, queue_seconds=0.5, processing_seconds=2.0
    ) as rig:
        [uuid] = rig.add_merged_meetings(1, flac)
        assert run_pump(rig.pump_deps()).submitted == [uuid]
        record = rig.store.require(uuid)
        job_id = record.job_id
        assert job_id is not None
        [submission] = rig.symbl.submissions
        callback = submission.options["webhookUrl"]  # the meeting's real secret

        before = record.model_dump()
        for _ in range(2):
            answer = requests.post(callback, json={key: job_id, "status": claimed}, timeout=5)
            assert answer.status_code == 200
            assert answer.json() == {"status": "still running"}
        assert rig.symbl.job(job_id).status in ("scheduled", "in_progress")  # type: ignore[union-attr]
        assert rig.store.require(uuid).model_dump() == before
        assert rig.slots.view().in_use == 1
        assert notify_messages(stack) == []

        # The job's own callback, once it has really ended, settles it.
        wait_until(
            lambda: rig.store.require(uuid).state == State.TRANSCRIBED, 30, "the real callback"
        )
        assert rig.slots.view().in_use == 0
        assert notify_messages(stack) == [uuid]
