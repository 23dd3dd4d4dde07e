"""Every FAILED meeting announced exactly once on the operators' topic, whatever stage failed it.

Each stage's own failing code path runs against moto's server; then the failure sweep
(services/core/failures.py) runs, and the notices are read from moto's SNS backend.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from sandbox.aws_resources import ProvisionedStack
from sandbox.credentials import SandboxCredentials
from services.core import aws, failures
from services.core.failures import FAILURE_NOTICES, announce_failures, notice_client
from services.core.recordings import Recording, RecordingStore, State
from services.core.settings import NotifierSettings, settings_from
from services.core.speech.provider import JobStatus
from services.core.transcription_jobs import settle_job
from services.merger.merge import fail_merge
from services.submitter.pump import Outcome, submit_one
from services.submitter.reconciler import ReconcileReport, reconcile, reconcile_stuck
from tests.support.submitter_rig import submitter_rig, two_channel_flac

REGION = "us-east-1"


@pytest.fixture(scope="session")
def flac(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return two_channel_flac(tmp_path_factory.mktemp("failures") / "two.flac")


@pytest.fixture
def store(stack: ProvisionedStack) -> RecordingStore:
    return RecordingStore(stack.names.recordings_table)


def notices(stack: ProvisionedStack) -> list[dict[str, Any]]:
    """What moto's SNS delivered to the operators' topic (the server runs in this process)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns.models import sns_backends

    topic = sns_backends[DEFAULT_ACCOUNT_ID][REGION].topics[stack.operator_topic_arn]
    return [
        {"message": n[1], "subject": n[2], "attributes": n[3]} for n in topic.sent_notifications
    ]


def announced(stack: ProvisionedStack) -> list[tuple[str, str]]:
    """(meeting UUID, stage) of every notice, in order."""
    return [
        (n["attributes"]["meeting_uuid"]["Value"], n["attributes"]["stage"]["Value"])
        for n in notices(stack)
    ]


def sweep(stack: ProvisionedStack, store: RecordingStore, sns: Any = None) -> list[str]:
    report = announce_failures(store, sns or notice_client(), stack.operator_topic_arn)
    return report.announced


def seed(store: RecordingStore, uuid: str, *path: State, **fields: Any) -> None:
    """A meeting created RECEIVED and moved along `path`."""
    store.create_if_absent(
        Recording(
            meeting_uuid=uuid,
            meeting_id="8123",
            topic="Quarterly planning",
            start_time="2026-11-02T09:00:00.000Z",
            host_email="alice.host@example.com",
        )
    )
    previous = State.RECEIVED
    for state in path:
        store.transition(uuid, previous, state)
        previous = state
    if fields:
        store.update_fields(uuid, previous, fields)


def sweep_twice_and_expect_one(
    stack: ProvisionedStack, store: RecordingStore, uuid: str, stage: str
) -> dict[str, Any]:
    assert notices(stack) == []  # the stage itself announced nothing
    assert sweep(stack, store) == [uuid]
    assert sweep(stack, store) == []
    assert announced(stack) == [(uuid, stage)]
    assert store.require(uuid).attempts[FAILURE_NOTICES] == 1
    (notice,) = notices(stack)
    return notice


# ---------------------------------------------------------------------------------------------
# One test per stage, through that stage's own failing code path
# ---------------------------------------------------------------------------------------------


def test_merge_failure_is_announced_once(stack: ProvisionedStack, store: RecordingStore) -> None:
    uuid = "merge/fail+=="
    seed(store, uuid, State.MERGING)
    fail_merge(store, uuid, "ffmpeg exited 1")
    notice = sweep_twice_and_expect_one(stack, store, uuid, "merge")
    assert notice["subject"] == "Meeting processing failed at merge"
    assert "ffmpeg exited 1" in notice["message"] and uuid in notice["message"]
    assert "alice.host@example.com" not in notice["message"]  # masked


def test_submit_failure_of_an_over_long_meeting_is_announced_once(
    stack: ProvisionedStack, credentials: SandboxCredentials, flac: Path, store: RecordingStore
) -> None:
    with submitter_rig(stack, credentials, limit=2) as rig:
        [uuid] = rig.add_merged_meetings(1, flac, prefix="long")
        deps = rig.pump_deps(MAX_MEDIA_SECONDS=2)  # the meeting's audio is 4 s
        claim = deps.slots.acquire(lease_seconds=60)
        assert claim is not None
        (message,) = (
            aws.client("sqs")
            .receive_message(QueueUrl=stack.queue_urls["submit"], MaxNumberOfMessages=1)
            .get("Messages", [])
        )
        assert submit_one(deps, claim, message).outcome == Outcome.FAILED
        assert rig.symbl.submissions == []
    notice = sweep_twice_and_expect_one(stack, store, uuid, "submit")
    assert "Symbl takes at most 2 s" in notice["message"]


def test_transcribe_failure_after_the_last_attempt_is_announced_once(
    stack: ProvisionedStack, credentials: SandboxCredentials, store: RecordingStore
) -> None:
    uuid = "transcribe/fail=="
    seed(
        store,
        uuid,
        State.MERGING,
        State.MERGED,
        State.SUBMITTING,
        State.SUBMITTED,
        job_id="job-1",
        conversation_id="conv-1",
    )
    for _ in range(2):  # both attempts spent
        store.update_fields(uuid, State.SUBMITTED, {}, count_attempt="transcribe")
    with submitter_rig(stack, credentials, limit=2) as rig:
        jobs = rig.pump_deps(SPEECH_JOB_ATTEMPTS=2).jobs
        assert settle_job(store.require(uuid), JobStatus.FAILED, jobs) == "failed"
    notice = sweep_twice_and_expect_one(stack, store, uuid, "transcribe")
    assert "Symbl job job-1 failed" in notice["message"]


def test_notify_give_up_is_announced_once_by_the_sweep_only(
    stack: ProvisionedStack, store: RecordingStore
) -> None:
    from services.notifier.handler import build_deps
    from services.notifier.notify import give_up, notify_meeting

    uuid = "notify/fail=="
    seed(
        store,
        uuid,
        State.MERGING,
        State.MERGED,
        State.SUBMITTING,
        State.SUBMITTED,
        State.TRANSCRIBED,
    )
    env = {
        **stack.service_environment(),
        "SES_SENDER": "notes@example.com",
        "INSIGHTS_PAGE_BASE_URL": "https://insights.example.test",
    }
    deps = build_deps(settings_from(NotifierSettings, env))
    give_up(uuid, "SES refused the email: MessageRejected", deps)
    assert store.require(uuid).failed_stage == "notify"
    # A later notify request for the FAILED meeting announces nothing either.
    notify_meeting(uuid, deps)
    notice = sweep_twice_and_expect_one(stack, store, uuid, "notify")
    assert "MessageRejected" in notice["message"]


def test_stuck_meeting_given_up_is_announced_once(
    stack: ProvisionedStack, credentials: SandboxCredentials, store: RecordingStore
) -> None:
    uuid = "stuck/merging=="
    seed(store, uuid)
    store.transition(uuid, State.RECEIVED, State.MERGING, count_attempt="merge")
    with submitter_rig(stack, credentials, limit=2) as rig:
        deps = rig.reconciler_deps(STAGE_ATTEMPTS=1)
        deps.clock = lambda: time.time() + 4 * 3600  # past the merge deadline
        report = ReconcileReport()
        reconcile_stuck(deps, report)
        assert ("merge given up", uuid) in report.repairs
        assert store.require(uuid).state == State.FAILED
        assert notices(stack) == []
        # The scheduled pass runs the sweep; the next pass announces nothing more.
        first, second = reconcile(deps), reconcile(deps)
        assert first.errors == [] and second.errors == []
    assert announced(stack) == [(uuid, "merge")]
    assert "did not finish after 1 attempts" in notices(stack)[0]["message"]


# ---------------------------------------------------------------------------------------------
# Once per failure, whoever sweeps
# ---------------------------------------------------------------------------------------------


class RacingStore(RecordingStore):
    """A store whose FAILED listing is read completely, then waits for the other sweep to have
    read it too: both sweeps then hold the same stale items and race for every claim."""

    def __init__(self, table_name: str, barrier: threading.Barrier) -> None:
        super().__init__(table_name)
        self.barrier = barrier

    def list_by_state(self, state: State, **kwargs: Any) -> Iterator[Recording]:
        found = list(super().list_by_state(state, **kwargs))
        self.barrier.wait(timeout=30)
        return iter(found)


def test_two_concurrent_sweeps_announce_each_failure_once(
    stack: ProvisionedStack, store: RecordingStore
) -> None:
    uuids = [f"race/{i}==" for i in range(4)]
    for uuid in uuids:
        seed(store, uuid, State.MERGING)
        fail_merge(store, uuid, "no usable audio")
    barrier = threading.Barrier(2)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            racing = RacingStore(stack.names.recordings_table, barrier)
            results.append(sweep(stack, racing))
        except BaseException as e:  # noqa: BLE001 - surfaced below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(u for result in results for u in result) == sorted(uuids)
    assert sorted(announced(stack)) == sorted((u, "merge") for u in uuids)
    assert sweep(stack, store) == []


def test_a_meeting_failing_again_after_a_retry_is_announced_again(
    stack: ProvisionedStack, store: RecordingStore
) -> None:
    uuid = "again=="
    seed(store, uuid, State.MERGING)
    fail_merge(store, uuid, "first")
    assert sweep(stack, store) == [uuid]
    # An operator retry (as `insights-ops replay` does), then the merge fails again.
    store.transition(uuid, State.FAILED, State.RECEIVED, updates={"failure_reason": None})
    assert sweep(stack, store) == []  # not FAILED now: nothing to announce
    fail_merge(store, uuid, "second")
    assert sweep(stack, store) == [uuid]
    assert sweep(stack, store) == []
    assert [n["message"].count("second") for n in notices(stack)] == [0, 1]
    assert store.require(uuid).attempts[FAILURE_NOTICES] == 2


# ---------------------------------------------------------------------------------------------
# What SNS's answer proves decides what happens to the claim
# ---------------------------------------------------------------------------------------------


class FlakySns:
    """SNS that answers `error` for the meetings named, and publishes the others for real."""

    def __init__(self, error: Exception, failing: set[str]) -> None:
        self.error = error
        self.failing = failing
        self.real = notice_client()
        self.attempts: list[str] = []

    def publish(self, **request: Any) -> dict[str, Any]:
        uuid = request["MessageAttributes"]["meeting_uuid"]["StringValue"]
        self.attempts.append(uuid)
        if uuid in self.failing:
            raise self.error
        return dict(self.real.publish(**request))


REFUSED = ClientError(
    {"Error": {"Code": "Throttling", "Message": "slow down"}, "ResponseMetadata": {}}, "Publish"
)


@pytest.mark.parametrize(
    "error",
    [REFUSED, EndpointConnectionError(endpoint_url="https://sns.us-east-1.amazonaws.com")],
    ids=["refused", "unreachable"],
)
def test_a_notice_sns_did_not_take_is_retried_on_the_next_pass_and_others_go_on(
    stack: ProvisionedStack,
    store: RecordingStore,
    error: Exception,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    metrics: list[str] = []
    monkeypatch.setattr(failures, "record_metric", lambda name, *_a, **_k: metrics.append(name))
    for uuid in ("a==", "b==", "c=="):
        seed(store, uuid, State.MERGING)
        fail_merge(store, uuid, f"failure of {uuid}")
    flaky = FlakySns(error, {"a=="})
    report = announce_failures(store, flaky, stack.operator_topic_arn)
    # The oldest failure could not be announced; the sweep went on with the others.
    assert flaky.attempts == ["a==", "b==", "c=="]
    assert report.announced == ["b==", "c=="] and len(report.errors) == 1
    assert "a==" in report.errors[0]
    assert metrics.count("FailureNoticeErrors") == 1
    assert FAILURE_NOTICES not in store.require("a==").attempts or (
        store.require("a==").attempts[FAILURE_NOTICES] == 0
    )
    # The claim was given back: the next pass announces it, once.
    assert sweep(stack, store) == ["a=="]
    assert sweep(stack, store) == []
    assert sorted(announced(stack)) == [("a==", "merge"), ("b==", "merge"), ("c==", "merge")]


def test_a_notice_in_doubt_is_never_sent_again(
    stack: ProvisionedStack, store: RecordingStore
) -> None:
    uuid = "doubt=="
    seed(store, uuid, State.MERGING)
    fail_merge(store, uuid, "ffmpeg exited 1")
    flaky = FlakySns(ReadTimeoutError(endpoint_url="https://sns.us-east-1.amazonaws.com"), {uuid})
    report = announce_failures(store, flaky, stack.operator_topic_arn)
    assert report.announced == [] and len(report.errors) == 1
    assert store.require(uuid).attempts[FAILURE_NOTICES] == 1  # the claim is kept
    assert sweep(stack, store) == []
    assert notices(stack) == []
