"""The submitter's promises under the faults that used to break them: a job that never ends, a
submission whose answer was lost, an AWS error after Symbl's 201, a partial slot item, waiting
that must not spend deliveries, and one bad item in a reconciler pass."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sandbox.aws_resources import ProvisionedStack
from sandbox.credentials import SandboxCredentials
from services.core import aws
from services.core.recordings import State
from services.submitter.pump import run_pump
from services.submitter.reconciler import reconcile
from tests.support.submitter_rig import submitter_rig, two_channel_flac


@pytest.fixture(scope="session")
def flac(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return two_channel_flac(tmp_path_factory.mktemp("reliability") / "two.flac")


def later(seconds: float) -> Any:
    return lambda: time.time() + seconds


def test_a_job_that_never_finishes_spends_attempts_then_fails_and_frees_its_slot(
    stack: ProvisionedStack, credentials: SandboxCredentials, flac: Path
) -> None:
    with submitter_rig(stack, credentials, limit=2, processing_seconds=3600) as rig:
        [uuid] = rig.add_merged_meetings(1, flac)
        assert run_pump(rig.pump_deps()).submitted == [uuid]
        first = rig.store.require(uuid).job_id
        reconciler = rig.reconciler_deps()
        # Before the deadline the reconciler leaves a running job alone.
        reconcile(reconciler)
        assert rig.store.require(uuid).state == State.SUBMITTED
        assert rig.slots.view().in_use == 1
        # Past it: one attempt spent, the slot freed, the meeting sent for another submission.
        reconciler.clock = later(2 * 3600)
        report = reconcile(reconciler)
        assert ("job past its deadline: resubmitted", uuid) in report.repairs
        assert rig.store.require(uuid).state == State.MERGED
        assert rig.slots.view().in_use == 0
        assert run_pump(rig.pump_deps()).submitted == [uuid]
        second = rig.store.require(uuid).job_id
        assert second not in (None, first)
        reconcile(reconciler)
        failed = rig.store.require(uuid)
        assert failed.state == State.FAILED and failed.failed_stage == "transcribe"
        assert "past its deadline" in (failed.failure_reason or "")
        assert rig.slots.view().in_use == 0


def test_a_lost_submit_answer_is_never_resent_and_keeps_its_slot(
    stack: ProvisionedStack, credentials: SandboxCredentials, flac: Path
) -> None:
    with submitter_rig(stack, credentials, limit=2, processing_seconds=3600) as rig:
        rig.symbl.lose_submit_answers(count=1, status=504)
        [uuid] = rig.add_merged_meetings(1, flac)
        report = run_pump(rig.pump_deps())
        assert report.submitted == [] and report.stopped_because == "outcome unknown"
        record = rig.store.require(uuid)
        assert record.state == State.SUBMITTING and record.submit_outcome_unknown_at
        assert record.attempts.get("submit") == 1
        # Symbl runs the job; our count still covers it, and nothing was sent twice.
        assert len(rig.symbl.submit_attempts) == 1
        [lease] = rig.slots.view().leases
        assert lease.holder == record.submit_claim and lease.deadline > time.time() + 3000
        # While the hold lasts, pumps and the reconciler leave it alone.
        run_pump(rig.pump_deps())
        reconcile(rig.reconciler_deps())
        assert len(rig.symbl.submit_attempts) == 1
        # After it, the meeting is submitted once more (the one documented duplicate).
        reconciler = rig.reconciler_deps()
        reconciler.clock = later(2 * 3600)
        report_after = reconcile(reconciler)
        assert ("interrupted submission requeued", uuid) in report_after.repairs
        assert run_pump(rig.pump_deps()).submitted == [uuid]
        assert len(rig.symbl.submit_attempts) == 2


def test_an_aws_error_after_symbl_accepted_is_adopted_not_resubmitted(
    stack: ProvisionedStack, credentials: SandboxCredentials, flac: Path, monkeypatch: Any
) -> None:
    with submitter_rig(stack, credentials, limit=2, processing_seconds=3600) as rig:
        [uuid] = rig.add_merged_meetings(1, flac)
        deps = rig.pump_deps()
        real = deps.store.transition

        def refuse_submitted(*args: Any, **kwargs: Any) -> Any:
            if len(args) > 2 and args[2] == State.SUBMITTED:
                raise ClientError(
                    {"Error": {"Code": "InternalServerError", "Message": "boom"}}, "UpdateItem"
                )
            return real(*args, **kwargs)

        monkeypatch.setattr(deps.store, "transition", refuse_submitted)
        with pytest.raises(ClientError):
            run_pump(deps)
        assert rig.store.require(uuid).state == State.SUBMITTING
        [lease] = rig.slots.view().leases
        assert lease.job_id and lease.meeting_uuid == uuid
        reconciler = rig.reconciler_deps()
        reconciler.clock = later(3600)
        report = reconcile(reconciler)
        assert ("accepted job adopted", uuid) in report.repairs
        record = rig.store.require(uuid)
        assert record.state == State.SUBMITTED and record.job_id == lease.job_id
        assert len(rig.symbl.submit_attempts) == 1


def test_a_partial_slot_item_is_repaired_not_left_refusing(
    stack: ProvisionedStack, credentials: SandboxCredentials, flac: Path
) -> None:
    with submitter_rig(stack, credentials, limit=2, processing_seconds=3600) as rig:
        deps = rig.pump_deps()
        assert run_pump(deps).submitted == []  # the pool's item exists and this pump knows it
        # Then the item loses its attributes (a hand edit, a partial restore).
        aws.client("dynamodb").put_item(
            TableName=stack.names.slots_table, Item={"pk": {"S": rig.slots.key}}
        )
        [uuid] = rig.add_merged_meetings(1, flac)
        assert run_pump(deps).submitted == [uuid]
        assert rig.slots.view().in_use == 1


def test_a_429_only_waits_it_spends_no_delivery_and_no_attempt(
    stack: ProvisionedStack, credentials: SandboxCredentials, flac: Path
) -> None:
    with submitter_rig(stack, credentials, limit=2) as rig:
        rig.symbl.http_429(count=1)
        [uuid] = rig.add_merged_meetings(1, flac)
        report = run_pump(rig.pump_deps())
        assert report.stopped_because == "429"
        record = rig.store.require(uuid)
        assert record.state == State.MERGED and record.attempts.get("submit", 0) == 0
        # The request came back as a fresh delayed message: its receive count starts again.
        sqs = aws.client("sqs")
        deadline = time.monotonic() + 30
        messages: list[dict[str, Any]] = []
        while not messages and time.monotonic() < deadline:
            messages = sqs.receive_message(
                QueueUrl=stack.queue_urls["submit"],
                WaitTimeSeconds=1,
                AttributeNames=["ApproximateReceiveCount"],
                VisibilityTimeout=0,
            ).get("Messages", [])
        assert messages, "the delayed copy never arrived"
        assert messages[0]["Attributes"]["ApproximateReceiveCount"] == "1"


def test_one_unknown_job_does_not_stop_the_pass_for_the_others(
    stack: ProvisionedStack, credentials: SandboxCredentials, flac: Path
) -> None:
    with submitter_rig(stack, credentials, limit=3, processing_seconds=3600) as rig:
        uuids = rig.add_merged_meetings(2, flac)
        deps = rig.pump_deps()
        while len(run_pump(deps).submitted):
            pass
        assert rig.states(uuids) == dict.fromkeys(uuids, State.SUBMITTED)
        # The first job's id becomes one Symbl does not know.
        first = rig.store.require(uuids[0])
        rig.store.update_fields(uuids[0], State.SUBMITTED, {"job_id": "no-such-job"})
        rig.slots.release_job(first.job_id or "")
        reconciler = rig.reconciler_deps()
        reconciler.clock = later(2 * 3600)
        report = reconcile(reconciler)
        assert ("unknown job: resubmitted", uuids[0]) in report.repairs
        assert ("job past its deadline: resubmitted", uuids[1]) in report.repairs
