"""Transcribe's "Transcribe Job State Change" events (services/submitter/job_events.py) and their
SQS batch handler, with the real `settle_job` over in-memory stand-ins: an event is only a hint,
confirmed with `job_status` before the meeting moves; events of other stacks, of older jobs and
of jobs not yet recorded change nothing; one bad record never stops the batch."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.core import aws
from services.core.errors import NotFound, PermanentError, TransientError
from services.core.queues import NotifyRequest, SubmitRequest
from services.core.recordings import Recording, State
from services.core.settings import JobEventsSettings, settings_from
from services.core.speech.aws import job_name, transcript_key
from services.core.speech.provider import JobStatus
from services.core.transcription_jobs import JobDeps
from services.submitter.handler import handle_job_events
from services.submitter.job_events import handle_job_event
from tests.support.fakes import MemoryQueue, MemoryRecordings, MemorySlots

STACK = "zoom-insights"
UUID = "//ajXp112QmuoKj4854875=="
OTHER_UUID = "4444AAAiAAAAAiAiAiiAii=="
QUEUE_URL = "http://queue/job-events"


class Speech:
    """Transcribe as `job_status` sees it: a status, or an error, per job; every question kept."""

    provider = "aws"

    def __init__(self) -> None:
        self.statuses: dict[str, JobStatus] = {}
        self.errors: dict[str, Exception] = {}
        self.asked: list[str] = []

    def job_status(self, job_id: str) -> JobStatus:
        self.asked.append(job_id)
        if job_id in self.errors:
            raise self.errors[job_id]
        return self.statuses[job_id]


class Pump:
    def __init__(self) -> None:
        self.nudges: list[str] = []

    def nudge(self, reason: str) -> None:
        self.nudges.append(reason)


class Rig:
    def __init__(self) -> None:
        self.store = MemoryRecordings()
        self.slots = MemorySlots()
        self.speech = Speech()
        self.submit_queue = MemoryQueue()
        self.notify_queue = MemoryQueue()
        self.pump = Pump()
        self.deps = JobDeps(
            store=self.store,  # type: ignore[arg-type]
            slots=self.slots,  # type: ignore[arg-type]
            speech=self.speech,  # type: ignore[arg-type]
            submit_queue=self.submit_queue,
            notify_queue=self.notify_queue,
            pump=self.pump,
            job_attempts=2,
        )

    def submitted(self, uuid: str, attempt: int = 1, **changes: Any) -> str:
        """A meeting whose job `attempt` runs; returns the job's name."""
        name = job_name(STACK, uuid, attempt)
        values: dict[str, Any] = {
            "meeting_uuid": uuid,
            "meeting_id": "81234567890",
            "start_time": "2026-03-03T13:05:00Z",
            "state": State.SUBMITTED,
            "speech_provider": "aws",
            "job_id": name,
            "conversation_id": transcript_key(uuid, name),
            "attempts": {"transcribe": attempt},
        }
        values.update(changes)
        self.store.items[uuid] = Recording(**values)
        return name

    def untouched(self) -> bool:
        return (
            self.store.writes == 0
            and self.slots.released == []
            and self.notify_queue.messages == []
            and self.submit_queue.messages == []
            and self.pump.nudges == []
        )


@pytest.fixture
def rig() -> Rig:
    return Rig()


def event(
    name: str,
    status: str = "COMPLETED",
    *,
    source: str = "aws.transcribe",
    detail_type: str = "Transcribe Job State Change",
) -> str:
    """The EventBridge envelope the rule puts on the queue."""
    detail: dict[str, Any] = {"TranscriptionJobName": name, "TranscriptionJobStatus": status}
    if status == "FAILED":
        detail["FailureReason"] = "Unsupported media format"
    return json.dumps(
        {
            "version": "0",
            "id": "5c5f4e6a-1b2c-4d3e-8f90-0a1b2c3d4e5f",
            "detail-type": detail_type,
            "source": source,
            "account": "000000000000",
            "time": "2026-03-03T14:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": detail,
        }
    )


# ---- one event --------------------------------------------------------------------------------


def test_a_completed_job_is_confirmed_then_settled(rig: Rig) -> None:
    name = rig.submitted(UUID)
    rig.speech.statuses[name] = JobStatus.COMPLETED
    assert handle_job_event(event(name), rig.deps, STACK) == "transcribed"
    assert rig.speech.asked == [name]
    assert rig.store.items[UUID].state == State.TRANSCRIBED
    assert rig.slots.released == [name]
    assert rig.notify_queue.messages == [NotifyRequest(meeting_uuid=UUID)]
    assert rig.pump.nudges == ["slot freed"]


def test_a_repeated_event_settles_nothing_twice(rig: Rig) -> None:
    name = rig.submitted(UUID)
    rig.speech.statuses[name] = JobStatus.COMPLETED
    handle_job_event(event(name), rig.deps, STACK)
    assert handle_job_event(event(name), rig.deps, STACK) == "already settled"
    assert rig.notify_queue.messages == [NotifyRequest(meeting_uuid=UUID)]
    assert rig.store.items[UUID].state == State.TRANSCRIBED


def test_the_confirmed_status_decides_not_the_event_s(rig: Rig) -> None:
    name = rig.submitted(UUID)
    rig.speech.statuses[name] = JobStatus.IN_PROGRESS
    assert handle_job_event(event(name, "COMPLETED"), rig.deps, STACK) == "still running"
    assert rig.speech.asked == [name]
    assert rig.untouched()


def test_a_failed_job_spends_an_attempt_and_goes_back_for_submission(rig: Rig) -> None:
    name = rig.submitted(UUID)
    rig.speech.statuses[name] = JobStatus.FAILED
    assert handle_job_event(event(name, "FAILED"), rig.deps, STACK) == "resubmitted"
    item = rig.store.items[UUID]
    assert item.state == State.MERGED and item.job_id is None and item.conversation_id is None
    # The event's FailureReason is on the record, for the operator and the alarm's reader.
    assert item.last_error == f"Transcribe job {name} failed: Unsupported media format"
    assert rig.submit_queue.messages == [SubmitRequest(meeting_uuid=UUID)]
    assert rig.slots.released == [name]


def test_the_last_failed_attempt_ends_the_meeting_failed(rig: Rig) -> None:
    name = rig.submitted(UUID, attempt=2)
    rig.speech.statuses[name] = JobStatus.FAILED
    assert handle_job_event(event(name, "FAILED"), rig.deps, STACK) == "failed"
    item = rig.store.items[UUID]
    assert item.state == State.FAILED and item.failed_stage == "transcribe"
    assert rig.submit_queue.messages == []


@pytest.mark.parametrize(
    "name",
    [
        job_name("other-stack", UUID, 1),  # another deployment's job in the same account
        f"{STACK}-not base64!-1",
        job_name(STACK, "no-such-meeting", 1),  # ours by name, but no meeting of that key
    ],
)
def test_an_event_for_no_meeting_of_ours_asks_nothing(rig: Rig, name: str) -> None:
    rig.submitted(UUID)
    assert handle_job_event(event(name), rig.deps, STACK) == "not ours"
    assert rig.speech.asked == []
    assert rig.untouched()


def test_an_event_for_an_earlier_job_of_the_meeting_is_stale(rig: Rig) -> None:
    rig.submitted(UUID, attempt=2)
    old = job_name(STACK, UUID, 1)
    assert handle_job_event(event(old, "FAILED"), rig.deps, STACK) == "stale job"
    assert rig.speech.asked == []
    assert rig.untouched()
    assert rig.store.items[UUID].state == State.SUBMITTED


def test_an_event_before_the_pump_recorded_the_job_waits_for_the_pump(rig: Rig) -> None:
    rig.submitted(UUID, state=State.SUBMITTING, job_id=None, conversation_id=None)
    name = job_name(STACK, UUID, 1)
    assert handle_job_event(event(name), rig.deps, STACK) == "not recorded yet"
    assert rig.speech.asked == []
    assert rig.untouched()


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not json",
        "[]",
        json.dumps({"source": "aws.transcribe", "detail-type": "Transcribe Job State Change"}),
        json.dumps(
            {
                "source": "aws.transcribe",
                "detail-type": "Transcribe Job State Change",
                "detail": {"TranscriptionJobStatus": "COMPLETED"},
            }
        ),
        event(""),
        event("x" * 201),
        event(job_name(STACK, UUID, 1), source="aws.s3"),
        event(job_name(STACK, UUID, 1), detail_type="Call Analytics Job State Change"),
    ],
)
def test_what_is_not_a_transcribe_job_event_is_permanent(rig: Rig, body: str) -> None:
    rig.submitted(UUID)
    with pytest.raises(PermanentError):
        handle_job_event(body, rig.deps, STACK)
    assert rig.speech.asked == []
    assert rig.untouched()


# ---- a batch ----------------------------------------------------------------------------------


class Sqs:
    def __init__(self) -> None:
        self.visibility: list[dict[str, Any]] = []

    def change_message_visibility(self, **params: Any) -> None:
        self.visibility.append(params)


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Sqs:
    """The batch handler takes its SQS client from `aws.client`: this one, never a real one."""
    fake = Sqs()

    def client(service: str) -> Sqs:
        assert service == "sqs"
        return fake

    monkeypatch.setattr(aws, "client", client)
    return fake


@pytest.fixture(scope="module")
def settings() -> JobEventsSettings:
    return settings_from(
        JobEventsSettings,
        {
            "SPEECH_PROVIDER": "aws",
            "STACK_NAME": STACK,
            "RECORDINGS_TABLE": "x-recordings",
            "SLOTS_TABLE": "x-slots",
            "SUBMIT_QUEUE_URL": "http://queue/submit",
            "NOTIFY_QUEUE_URL": "http://queue/notify",
            "PUMP_FUNCTION_NAME": "x-pump",
            "JOB_EVENTS_QUEUE_URL": QUEUE_URL,
            "MAX_RECEIVE_COUNT": "5",
        },
    )


def record(message_id: str, body: str, receive_count: int = 1) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": str(receive_count)},
    }


def test_one_bad_record_does_not_stop_the_batch(
    rig: Rig, sqs: Sqs, settings: JobEventsSettings
) -> None:
    first, second = rig.submitted(UUID), rig.submitted(OTHER_UUID)
    rig.speech.statuses.update({first: JobStatus.COMPLETED, second: JobStatus.COMPLETED})
    batch = {
        "Records": [
            record("m-garbage", "{not json"),
            record("m-first", event(first)),
            record("m-foreign", event(job_name("other-stack", UUID, 1))),
            record("m-second", event(second)),
        ]
    }
    assert handle_job_events(batch, settings, rig.deps) == {"batchItemFailures": []}
    assert rig.store.items[UUID].state == State.TRANSCRIBED
    assert rig.store.items[OTHER_UUID].state == State.TRANSCRIBED
    assert sqs.visibility == []


def test_a_record_that_cannot_be_settled_now_is_reported_for_retry(
    rig: Rig, sqs: Sqs, settings: JobEventsSettings
) -> None:
    failing, fine = rig.submitted(UUID), rig.submitted(OTHER_UUID)
    rig.speech.errors[failing] = TransientError("Transcribe throttled GetTranscriptionJob")
    rig.speech.statuses[fine] = JobStatus.COMPLETED
    batch = {"Records": [record("m-failing", event(failing), 2), record("m-fine", event(fine))]}
    result = handle_job_events(batch, settings, rig.deps)
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-failing"}]}
    assert rig.store.items[UUID].state == State.SUBMITTED  # left for the retry / reconciler
    assert rig.store.items[OTHER_UUID].state == State.TRANSCRIBED
    # Hidden for a back-off that grows with its receives, on the job-events queue.
    assert sqs.visibility == [
        {"QueueUrl": QUEUE_URL, "ReceiptHandle": "rh-m-failing", "VisibilityTimeout": 60}
    ]


def test_an_event_for_a_job_transcribe_no_longer_knows_is_acknowledged(
    rig: Rig, sqs: Sqs, settings: JobEventsSettings
) -> None:
    """Retrying cannot bring the job back: the event is dropped, and the meeting is left to the
    reconciler, which spends the job's attempt."""
    gone = rig.submitted(UUID)
    rig.speech.errors[gone] = NotFound("gone meanwhile")
    batch = {"Records": [record("m-gone", event(gone), 1)]}
    assert handle_job_events(batch, settings, rig.deps) == {"batchItemFailures": []}
    assert rig.store.items[UUID].state == State.SUBMITTED
    assert sqs.visibility == []


def test_a_record_out_of_receives_is_reported_and_not_hidden_again(
    rig: Rig, sqs: Sqs, settings: JobEventsSettings
) -> None:
    failing = rig.submitted(UUID)
    rig.speech.errors[failing] = TransientError("still throttled")
    batch = {"Records": [record("m-failing", event(failing), settings.max_receive_count)]}
    result = handle_job_events(batch, settings, rig.deps)
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-failing"}]}
    assert sqs.visibility == []
    assert rig.store.items[UUID].state == State.SUBMITTED  # the reconciler still asks


def test_the_consumer_confirms_with_transcribe_whatever_the_provider_setting_says_now(
    settings: JobEventsSettings,
) -> None:
    """After a switch back to Symbl, jobs started on Transcribe still end: their events are
    confirmed with Transcribe and their slots freed in the AWS pool."""
    from services.submitter.handler import build_job_events_deps

    switched = settings.model_copy(
        update={"speech_provider": "symbl", "symbl_credentials_secret_arn": "arn:secret"}
    )
    deps = build_job_events_deps(switched)
    assert deps.speech.provider == "aws" and deps.slots.key == "aws"
