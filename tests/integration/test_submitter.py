"""The pump, the Symbl callback and the reconciler against moto's server and the fake Symbl."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.aws_resources import ProvisionedStack
from sandbox.credentials import SandboxCredentials
from services.core import aws
from services.core.queues import QueueSender, SubmitRequest
from services.core.recordings import State
from services.core.slots import Grant
from services.core.transcription_jobs import (
    callback_meeting,
    new_callback_secret,
    secret_digest,
)
from services.submitter.pump import run_pump
from services.submitter.reconciler import reconcile
from tests.conftest import ROOT
from tests.support.submitter_rig import PumpThreads, SubmitterRig, submitter_rig, two_channel_flac


@pytest.fixture(scope="session")
def flac(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return two_channel_flac(tmp_path_factory.mktemp("submitter") / "two.flac")


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def all_in(rig: SubmitterRig, uuids: list[str], state: State) -> Callable[[], bool]:
    return lambda: all(s == state for s in rig.states(uuids).values())


def notify_messages(stack: ProvisionedStack) -> list[str]:
    sqs = aws.client("sqs")
    seen: dict[str, str] = {}
    while True:
        got = sqs.receive_message(
            QueueUrl=stack.queue_urls["notify"], MaxNumberOfMessages=10, VisibilityTimeout=30
        ).get("Messages", [])
        if not got:
            return list(seen.values())
        for m in got:
            seen[m["MessageId"]] = json.loads(m["Body"])["meeting_uuid"]


def submitted_names(rig: SubmitterRig) -> Counter[str]:
    return Counter(s.name for s in rig.symbl.submissions)


@pytest.mark.parametrize(
    ("limit", "meetings", "threads", "processes", "job_seconds"),
    [(2, 40, 4, 2, 0.05), (50, 150, 3, 3, 1.0)],
)
def test_parallel_pumps_keep_within_the_limit_and_lose_nothing(
    stack: ProvisionedStack,
    credentials: SandboxCredentials,
    flac: Path,
    tmp_path: Path,
    limit: int,
    meetings: int,
    threads: int,
    processes: int,
    job_seconds: float,
) -> None:
    with submitter_rig(stack, credentials, limit=limit, processing_seconds=job_seconds) as rig:
        uuids = rig.add_merged_meetings(meetings, flac)
        stop = tmp_path / "stop"
        env = {
            **os.environ,
            **rig.environment(),
            "PYTHONPATH": str(ROOT),
            "POWERTOOLS_LOG_LEVEL": "ERROR",
        }
        children = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.support.pump_process", str(stop)], env=env, cwd=ROOT
            )
            for _ in range(processes)
        ]
        try:
            with PumpThreads(rig, threads) as running:
                wait_until(all_in(rig, uuids, State.TRANSCRIBED), 240, "every meeting transcribed")
        finally:
            stop.touch()
            for child in children:
                child.wait(timeout=60)
        assert not running.errors
        assert all(child.returncode == 0 for child in children)
        assert rig.symbl.max_in_flight <= limit
        if limit == 2:
            assert rig.symbl.max_in_flight == limit  # the backlog kept every slot busy
        names = submitted_names(rig)
        assert len(names) == meetings and max(names.values()) == 1  # nobody submitted twice
        assert sorted(notify_messages(stack)) == sorted(uuids)
        assert rig.slots.view().in_use == 0
        record = rig.store.require(uuids[0])
        assert record.job_id and record.conversation_id
        submission = next(s for s in rig.symbl.submissions if s.name == record.topic)
        assert [c["speaker"] for c in submission.channel_metadata] == [
            {"name": "Ana Ruiz-Soto", "email": "ana@example.com"},
            {"name": "Bo"},
        ]


def test_a_job_that_fails_twice_ends_failed_with_its_slot_free(
    stack: ProvisionedStack, credentials: SandboxCredentials, flac: Path
) -> None:
    with submitter_rig(stack, credentials, limit=2) as rig:
        rig.symbl.fail_jobs(count=2)
        [uuid] = rig.add_merged_meetings(1, flac)
        with PumpThreads(rig, 1):
            wait_until(all_in(rig, [uuid], State.FAILED), 60, "the meeting failed")
        record = rig.store.require(uuid)
        assert record.failed_stage == "transcribe"
        assert "failed 2 times" in (record.failure_reason or "")
        assert rig.slots.view().in_use == 0
        assert notify_messages(stack) == []


def test_429_storm_from_another_client_backs_off_and_still_delivers(
    stack: ProvisionedStack, credentials: SandboxCredentials, flac: Path
) -> None:
    with submitter_rig(stack, credentials, limit=3) as rig:
        rig.symbl.http_429(count=3)
        rig.symbl.http_5xx(status=503, endpoint="submit", count=2)
        uuids = rig.add_merged_meetings(8, flac)
        slots = rig.slots
        with PumpThreads(rig, 3):
            wait_until(lambda: slots.view().backoff_until > 0, 30, "a back-off after the 429")
            wait_until(all_in(rig, uuids, State.TRANSCRIBED), 180, "every meeting transcribed")
        assert max(submitted_names(rig).values()) == 1
        assert rig.symbl.max_in_flight <= 3
        assert rig.slots.view().in_use == 0


def test_pump_killed_after_claiming_is_repaired_by_the_reconciler(
    stack: ProvisionedStack, credentials: SandboxCredentials, flac: Path
) -> None:
    with submitter_rig(stack, credentials, limit=1) as rig:
        [uuid] = rig.add_merged_meetings(1, flac)
        deps = rig.pump_deps()
        # A pump that dies right after claiming the meeting: its slot and the meeting stay held.
        claim = deps.slots.acquire(lease_seconds=deps.settings.claim_lease_seconds)
        assert claim is not None
        message = aws.client("sqs").receive_message(
            QueueUrl=stack.queue_urls["submit"], VisibilityTimeout=3600
        )["Messages"][0]
        rig.store.transition(uuid, State.MERGED, State.SUBMITTING, updates={"submit_claim": claim})
        assert run_pump(rig.pump_deps()).stopped_because == "no slot"
        reconciler = rig.reconciler_deps()
        reconciler.clock = lambda: time.time() + 3600
        report = reconcile(reconciler)
        assert ("interrupted submission requeued", uuid) in report.repairs
        assert rig.slots.view().in_use == 0
        with PumpThreads(rig, 1):
            wait_until(all_in(rig, [uuid], State.TRANSCRIBED), 60, "the meeting transcribed")
        assert submitted_names(rig)["Meeting m-0"] == 1
        assert message["MessageId"]


def test_callback_rejects_wrong_secret_unknown_job_and_malformed_bodies(
    stack: ProvisionedStack, credentials: SandboxCredentials, flac: Path
) -> None:
    with submitter_rig(stack, credentials, limit=2, processing_seconds=30) as rig:
        [uuid] = rig.add_merged_meetings(1, flac)
        report = run_pump(rig.pump_deps())
        assert report.submitted == [uuid]
        record = rig.store.require(uuid)
        job = record.job_id
        before = record.model_dump()
        url = f"{rig.api_url}/symbl/callback"
        wrong = requests.post(
            f"{url}/not-the-secret", json={"jobId": job, "status": "completed"}, timeout=5
        )
        unknown = requests.post(f"{url}/whatever", json={"jobId": "no-such-job"}, timeout=5)
        malformed = requests.post(f"{url}/whatever", data=b"{nope", timeout=5)
        missing = requests.post(f"{url}/whatever", json={"status": "completed"}, timeout=5)
        assert (wrong.status_code, unknown.status_code) == (404, 404)
        assert wrong.json() == unknown.json()  # nothing tells the two apart
        assert (malformed.status_code, missing.status_code) == (400, 400)
        assert rig.store.require(uuid).model_dump() == before
        assert rig.slots.view().in_use == 1


def test_callback_reads_the_meeting_by_the_key_in_its_secret(
    stack: ProvisionedStack, credentials: SandboxCredentials, flac: Path
) -> None:
    with submitter_rig(stack, credentials, limit=2, processing_seconds=30) as rig:
        first, second = rig.add_merged_meetings(2, flac)
        url = f"{rig.api_url}/symbl/callback"
        # The window between Symbl's 201 and the pump's record of the job: SUBMITTING, with the
        # secret's digest stored but no job id yet.
        secret = new_callback_secret(first)
        rig.store.transition(
            first,
            State.MERGED,
            State.SUBMITTING,
            updates={"callback_secret_digest": secret_digest(secret)},
        )
        before = rig.store.require(first).model_dump()
        running = requests.post(
            f"{url}/{secret}", json={"jobId": "j-1", "status": "in_progress"}, timeout=5
        )
        early = requests.post(
            f"{url}/{secret}", json={"jobId": "j-1", "status": "completed"}, timeout=5
        )
        assert running.json() == {"status": "still running"}
        assert early.json() == {"status": "not recorded yet"}  # the pump asks once recorded
        assert rig.store.require(first).model_dump() == before

        assert run_pump(rig.pump_deps()).submitted == [second]
        [sent] = rig.symbl.submissions
        issued = sent.options["webhookUrl"]
        assert issued.startswith(f"{url}/") and callback_meeting(issued.rsplit("/", 1)[1]) == second
        forged = [
            # second's key with a token it never issued; a meeting that does not exist
            (f"{url}/{new_callback_secret(second)}", sent.job_id),
            (f"{url}/{new_callback_secret('no/such==')}", sent.job_id),
            # second's own secret, but another job than the one recorded for it
            (issued, "another-job"),
        ]
        for address, job in forged:
            answer = requests.post(address, json={"jobId": job, "status": "completed"}, timeout=5)
            assert answer.status_code == 404
        assert rig.store.require(second).state == State.SUBMITTED
        assert rig.slots.view().in_use == 1


def test_one_pump_fills_an_idle_account_in_a_few_batches(
    stack: ProvisionedStack, credentials: SandboxCredentials, flac: Path
) -> None:
    with submitter_rig(stack, credentials, limit=20, processing_seconds=60) as rig:
        uuids = rig.add_merged_meetings(26, flac)
        deps = rig.pump_deps()
        acquisitions: list[int] = []
        acquire_many = deps.slots.acquire_many

        def counted(count: int, **kwargs: Any) -> Grant:
            grant = acquire_many(count, **kwargs)
            acquisitions.append(len(grant.claims))
            return grant

        deps.slots.acquire_many = counted  # type: ignore[method-assign]
        report = run_pump(deps)
        # One slot to learn what is free, then batches of at most 10: 1 + 10 + 9, then stop
        # without asking a full pool again.
        assert acquisitions == [1, 10, 9]
        assert len(report.submitted) == 20 and report.stopped_because == "no slot"
        assert rig.symbl.max_in_flight == 20
        assert rig.slots.view().in_use == 20
        states = Counter(rig.states(uuids).values())
        assert states == {State.SUBMITTED: 20, State.MERGED: 6}
        assert max(submitted_names(rig).values()) == 1


def test_a_request_that_frees_the_last_slot_does_not_end_the_pump(
    stack: ProvisionedStack, credentials: SandboxCredentials, flac: Path
) -> None:
    with submitter_rig(stack, credentials, limit=1, processing_seconds=60) as rig:
        # A request for a meeting that is not (or no longer) ours comes first; it takes the only
        # slot and gives it back, and the pump must go on to the real one behind it.
        QueueSender(stack.queue_urls["submit"]).send(SubmitRequest(meeting_uuid="gone/1=="))
        [uuid] = rig.add_merged_meetings(1, flac)
        report = run_pump(rig.pump_deps())
        assert (report.skipped, report.submitted) == (1, [uuid])
        assert rig.slots.view().in_use == 1


def test_claims_freed_for_want_of_messages_are_taken_again(
    stack: ProvisionedStack, credentials: SandboxCredentials, flac: Path
) -> None:
    with submitter_rig(stack, credentials, limit=5, processing_seconds=60) as rig:
        uuids = rig.add_merged_meetings(8, flac)
        deps = rig.pump_deps()
        sqs = deps.sqs

        class StingySqs:
            """SQS returning fewer messages than asked for although more are queued (as it may)."""

            def __getattr__(self, name: str) -> Any:
                return getattr(sqs, name)

            def receive_message(self, **kwargs: Any) -> Any:
                kwargs["MaxNumberOfMessages"] = min(2, kwargs["MaxNumberOfMessages"])
                return sqs.receive_message(**kwargs)

        deps.sqs = StingySqs()
        report = run_pump(deps)
        # The pool looked full when 4 claims were taken, but 2 of them found no message and were
        # freed: nobody nudges a pump for those, so this pump takes them again.
        assert len(report.submitted) == 5 and report.stopped_because == "no slot"
        assert rig.slots.view().in_use == 5
        assert Counter(rig.states(uuids).values())[State.SUBMITTED] == 5


def test_callback_with_id_instead_of_job_id_settles_the_job(
    stack: ProvisionedStack, credentials: SandboxCredentials, flac: Path
) -> None:
    # Slow enough that the pump's own check after submitting finds the job still running.
    with submitter_rig(stack, credentials, limit=2, processing_seconds=1.0) as rig:
        rig.symbl.webhook_uses_id(count=10)
        [uuid] = rig.add_merged_meetings(1, flac)
        assert run_pump(rig.pump_deps()).submitted == [uuid]
        wait_until(all_in(rig, [uuid], State.TRANSCRIBED), 30, "the callback to settle the job")
        assert any(
            "id" in a.payload and "jobId" not in a.payload for a in rig.symbl.webhook_attempts
        )
        assert rig.slots.view().in_use == 0


def test_meeting_longer_than_four_hours_fails_with_the_reason(
    stack: ProvisionedStack, credentials: SandboxCredentials, flac: Path
) -> None:
    with submitter_rig(stack, credentials, limit=2) as rig:
        [uuid] = rig.add_merged_meetings(1, flac)
        rig.store.update_fields(uuid, State.MERGED, {"merged_seconds": 4 * 3600 + 1.0})
        run_pump(rig.pump_deps())
        record = rig.store.require(uuid)
        assert record.state == State.FAILED
        assert "at most 14400 s" in (record.failure_reason or "")
        assert rig.symbl.submissions == []
