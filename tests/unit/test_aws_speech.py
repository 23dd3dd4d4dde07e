"""The AWS speech adapter (services/core/speech/aws.py) against in-memory stand-ins: job names
and their way back to the meeting, the StartTranscriptionJob request, how Transcribe's errors
become domain errors, job status, forgetting a job, the insights built from a transcript JSON
(through a compact file's segment map, or Transcribe's own speaker labels), and the settings and
factory that choose the provider.

The stand-ins are small fakes that record what they are asked; one test sends the request
through a real botocore client under `Stubber`, so the parameters are checked against
Transcribe's own service model without any network.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.stub import Stubber

from services.core.errors import (
    ConfigurationError,
    NotFound,
    PermanentError,
    TransientError,
)
from services.core.insights.document import InsightsDocument
from services.core.recordings import Recording, State
from services.core.s3_stream import meeting_key
from services.core.secrets import SecretCache
from services.core.settings import JobEventsSettings, SpeechSettings, settings_from
from services.core.speech.aws import (
    MAX_SPEAKER_LABELS,
    MODEL_WAIT,
    AwsSpeech,
    AwsSpeechConfig,
    job_meeting,
    job_name,
    transcript_key,
)
from services.core.speech.bedrock import TOOL_NAME
from services.core.speech.provider import (
    ConcurrencyLimitReached,
    Insights,
    InsightsRequest,
    JobStatus,
    Speaker,
    SpeechJob,
    SubmittedJob,
    Wait,
)
from services.core.speech.providers import speech_provider
from services.core.speech.segment_map import MapSpeaker, Segment, SegmentMap
from services.core.speech.symbl_provider import SymblProvider
from services.ops.cli import replay
from services.submitter.pump import build_submission
from tests.support.fakes import MemoryQueue, MemoryRecordings

STACK = "zoom-insights"
BUCKET = "media-bucket"
KMS_KEY = "arn:aws:kms:us-east-1:000000000000:key/1234abcd-12ab-34cd-56ef-1234567890ab"
TRANSCRIBE_NAME = re.compile(r"[0-9a-zA-Z._-]+")
# Zoom meeting-instance UUIDs as they come: '/', '+', '=' and a leading '//' (the ones Zoom's
# API wants double-encoded). The last two give base64url keys with '-' and '_' in them.
AWKWARD_UUIDS = [
    "4444AAAiAAAAAiAiAiiAii==",
    "/Pg4+eXa//mPle==",
    "//ajXp112QmuoKj4854875==",
    "+/=",
    "ab>>>cd",
    "x???y=",
]
UUID = "/Pg4+eXa//mPle=="
NOW = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)


def client_error(code: str, message: str = "", operation: str = "Operation") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


class FakeTranscribe:
    """The three calls the adapter makes; each recorded, each answering from `statuses` or
    raising the error queued for it in `errors`."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.errors: dict[str, Exception] = {}
        self.statuses: dict[str, str] = {}

    def _call(self, operation: str, params: dict[str, Any]) -> None:
        self.calls.append((operation, params))
        error = self.errors.get(operation)
        if error is not None:
            raise error

    def start_transcription_job(self, **params: Any) -> dict[str, Any]:
        self._call("start", params)
        return {"TranscriptionJob": {"TranscriptionJobStatus": "IN_PROGRESS"}}

    def get_transcription_job(self, **params: Any) -> dict[str, Any]:
        self._call("get", params)
        name = params["TranscriptionJobName"]
        return {
            "TranscriptionJob": {
                "TranscriptionJobName": name,
                "TranscriptionJobStatus": self.statuses[name],
            }
        }

    def delete_transcription_job(self, **params: Any) -> None:
        self._call("delete", params)


class FakeS3:
    """The media bucket, holding the transcripts Transcribe wrote."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        body = self.objects.get((Bucket, Key))
        if body is None:
            raise client_error("NoSuchKey", "The specified key does not exist.", "GetObject")
        return {"Body": io.BytesIO(body)}


class FakeBedrock:
    """`converse` answering with one valid `record_insights` tool use; requests recorded."""

    def __init__(self, tool_input: dict[str, Any]) -> None:
        self.tool_input = tool_input
        self.requests: list[dict[str, Any]] = []

    def converse(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(kwargs)
        return {
            "output": {
                "message": {
                    "role": "assistant",
                    "content": [
                        {
                            "toolUse": {
                                "toolUseId": "tooluse-1",
                                "name": TOOL_NAME,
                                "input": self.tool_input,
                            }
                        }
                    ],
                }
            },
            "stopReason": "tool_use",
            "usage": {"inputTokens": 900, "outputTokens": 120, "totalTokens": 1020},
        }


class Rig:
    def __init__(self, config: AwsSpeechConfig | None = None) -> None:
        self.transcribe = FakeTranscribe()
        self.s3 = FakeS3()
        self.bedrock = FakeBedrock(TOOL_INPUT)
        self.bedrock_clients = 0
        self.speech = AwsSpeech(
            config or AwsSpeechConfig(stack_name=STACK, media_bucket=BUCKET),
            transcribe=lambda: self.transcribe,
            s3=lambda: self.s3,
            bedrock=self._bedrock,
        )

    def _bedrock(self) -> FakeBedrock:
        self.bedrock_clients += 1
        return self.bedrock


@pytest.fixture
def rig() -> Rig:
    return Rig()


def speech_job(**changes: Any) -> SpeechJob:
    values: dict[str, Any] = {
        "meeting_uuid": UUID,
        "attempt": 1,
        "name": "Weekly sync",
        "media_bucket": BUCKET,
        "media_key": f"merged/{meeting_key(UUID)}/run-1.flac",
        "media_url": "https://example.invalid/presigned",
        "callback_url": "",
        "diarize": False,
    }
    values.update(changes)
    return SpeechJob(**values)


# ---- job names ------------------------------------------------------------------------------


def test_the_awkward_uuids_include_keys_with_both_url_safe_characters() -> None:
    keys = "".join(meeting_key(uuid) for uuid in AWKWARD_UUIDS)
    assert "-" in keys and "_" in keys


@pytest.mark.parametrize("uuid", AWKWARD_UUIDS)
def test_job_names_are_deterministic_per_attempt_and_lead_back_to_the_meeting(uuid: str) -> None:
    first, again, second = (
        job_name(STACK, uuid, 1),
        job_name(STACK, uuid, 1),
        job_name(STACK, uuid, 2),
    )
    assert first == again
    assert first != second
    for name in (first, second):
        assert TRANSCRIBE_NAME.fullmatch(name) and len(name) <= 200
        assert name.startswith(f"{STACK}-")  # what the EventBridge rule and IAM match
        assert job_meeting(STACK, name) == uuid


def test_different_meetings_never_share_a_job_name() -> None:
    names = {job_name(STACK, uuid, 1) for uuid in AWKWARD_UUIDS}
    assert len(names) == len(AWKWARD_UUIDS)


def test_the_longest_stack_name_still_fits_a_zoom_uuid() -> None:
    stack = "s" * 120  # the most SpeechSettings allows
    name = job_name(stack, "4444AAAiAAAAAiAiAiiAii==", 99)
    assert len(name) <= 200 and job_meeting(stack, name) == "4444AAAiAAAAAiAiAiiAii=="


def test_a_name_over_transcribe_s_limit_is_refused() -> None:
    with pytest.raises(PermanentError, match="too long"):
        job_name(STACK, "u" * 150, 1)


@pytest.mark.parametrize("attempt", [0, -1])
def test_attempts_count_from_one(attempt: int) -> None:
    with pytest.raises(ValueError, match="from 1"):
        job_name(STACK, UUID, attempt)


@pytest.mark.parametrize(
    "name",
    [
        job_name("other-stack", UUID, 1),  # another stack's job
        f"{meeting_key(UUID)}-1",  # no stack at all
        f"{STACK}x-{meeting_key(UUID)}-1",  # a stack whose name merely starts like ours
        f"{STACK}-{meeting_key('4444AAAiAAAAAiAiAiiAii==')}",  # no attempt (key without '-')
        f"{STACK}-{meeting_key(UUID)}-",  # empty attempt
        f"{STACK}-{meeting_key(UUID)}-x1",  # attempt not a number
        f"{STACK}--1",  # no key
        f"{STACK}-A-1",  # not base64 (a lone character)
        f"{STACK}-!!!!-1",  # not base64 at all
        f"{STACK}-__4-1",  # base64 of bytes that are not UTF-8
        "",
        "garbage",
        STACK,
    ],
)
def test_names_that_are_not_ours_name_no_meeting(name: str) -> None:
    assert job_meeting(STACK, name) is None


# ---- the StartTranscriptionJob request ------------------------------------------------------


def test_a_compact_job_asks_for_plain_recognition_of_the_file_in_s3(rig: Rig) -> None:
    job = speech_job()
    name = job_name(STACK, UUID, 1)
    params = rig.speech.start_request(job)
    assert params == {
        "TranscriptionJobName": name,
        "Media": {"MediaFileUri": f"s3://{BUCKET}/merged/{meeting_key(UUID)}/run-1.flac"},
        "MediaFormat": "flac",
        "LanguageCode": "en-US",
        "OutputBucketName": BUCKET,
        "OutputKey": transcript_key(UUID, name),
    }
    assert params["OutputKey"] == f"transcripts/{meeting_key(UUID)}/{name}.json"


def test_language_and_kms_key_come_from_the_configuration() -> None:
    config = AwsSpeechConfig(
        stack_name=STACK, media_bucket=BUCKET, language_code="de-DE", transcript_kms_key_arn=KMS_KEY
    )
    params = Rig(config).speech.start_request(speech_job())
    assert params["LanguageCode"] == "de-DE"
    assert params["OutputEncryptionKMSKeyId"] == KMS_KEY


@pytest.mark.parametrize(
    ("key", "media_format"),
    [
        ("merged/m/run.m4a", "m4a"),
        ("merged/m/run.WAV", "wav"),
        ("merged/m/run.mp4", "mp4"),
        ("merged/m/run.opus", None),  # not a format Transcribe names: left to detection
        ("merged/m.x/run", None),
    ],
)
def test_media_format_follows_the_file_extension(
    rig: Rig, key: str, media_format: str | None
) -> None:
    params = rig.speech.start_request(speech_job(media_key=key))
    assert params.get("MediaFormat") == media_format


@pytest.mark.parametrize(
    ("speakers", "labels"), [(None, MAX_SPEAKER_LABELS), (1, 2), (2, 2), (7, 7), (30, 30), (45, 30)]
)
def test_diarized_jobs_ask_for_speaker_labels_within_transcribe_s_range(
    rig: Rig, speakers: int | None, labels: int
) -> None:
    params = rig.speech.start_request(speech_job(diarize=True, diarization_speakers=speakers))
    assert params["Settings"] == {"ShowSpeakerLabels": True, "MaxSpeakerLabels": labels}


def test_a_multichannel_job_is_refused_before_anything_is_sent(rig: Rig) -> None:
    job = speech_job(channels=(Speaker("Ann"), Speaker("Bo")))
    with pytest.raises(PermanentError, match="AUDIO_LAYOUT=compact"):
        rig.speech.submit(job)
    assert rig.transcribe.calls == []


# ---- submit ---------------------------------------------------------------------------------


def test_submit_sends_the_request_and_names_job_and_transcript(rig: Rig) -> None:
    job = speech_job(attempt=2)
    submitted = rig.speech.submit(job)
    name = job_name(STACK, UUID, 2)
    assert submitted == SubmittedJob(job_id=name, conversation_id=transcript_key(UUID, name))
    assert rig.transcribe.calls == [("start", rig.speech.start_request(job))]


def test_a_job_that_exists_already_is_adopted(rig: Rig) -> None:
    rig.transcribe.errors["start"] = client_error("ConflictException", "The job name exists.")
    name = job_name(STACK, UUID, 1)
    assert rig.speech.submit(speech_job()) == SubmittedJob(name, transcript_key(UUID, name))


@pytest.mark.parametrize(
    ("code", "expected", "not_expected"),
    [
        ("LimitExceededException", ConcurrencyLimitReached, None),
        ("ThrottlingException", ConcurrencyLimitReached, None),
        ("BadRequestException", PermanentError, TransientError),
        ("InternalFailureException", TransientError, ConcurrencyLimitReached),
    ],
)
def test_start_errors_become_domain_errors(
    rig: Rig, code: str, expected: type[Exception], not_expected: type[Exception] | None
) -> None:
    rig.transcribe.errors["start"] = client_error(code, "refused")
    with pytest.raises(expected) as caught:
        rig.speech.submit(speech_job())
    if not_expected is not None:
        assert not isinstance(caught.value, not_expected)
    assert isinstance(caught.value.__cause__, ClientError)


def test_a_start_that_never_got_an_answer_may_be_sent_again(rig: Rig) -> None:
    rig.transcribe.errors["start"] = EndpointConnectionError(endpoint_url="https://transcribe")
    with pytest.raises(TransientError):
        rig.speech.submit(speech_job())


@pytest.fixture(scope="module")
def real_transcribe() -> Iterator[Any]:
    """A real botocore client (dummy credentials, no endpoint ever reached) for `Stubber`."""
    client = boto3.session.Session().client(
        "transcribe",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    yield client


@pytest.mark.parametrize("diarize", [False, True])
def test_the_request_is_valid_for_transcribe_s_service_model(
    real_transcribe: Any, diarize: bool
) -> None:
    config = AwsSpeechConfig(stack_name=STACK, media_bucket=BUCKET, transcript_kms_key_arn=KMS_KEY)
    speech = AwsSpeech(config, transcribe=lambda: real_transcribe)
    job = speech_job(diarize=diarize, diarization_speakers=4)
    with Stubber(real_transcribe) as stub:
        stub.add_response(
            "start_transcription_job",
            {"TranscriptionJob": {"TranscriptionJobStatus": "QUEUED"}},
            expected_params=speech.start_request(job),
        )
        stub.add_client_error(
            "start_transcription_job", service_error_code="ConflictException", http_status_code=400
        )
        first = speech.submit(job)
        # botocore's own ClientError for an existing name: adopted the same way.
        assert speech.submit(job) == first
        stub.assert_no_pending_responses()


# ---- job status and forget ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("QUEUED", JobStatus.SCHEDULED),
        ("IN_PROGRESS", JobStatus.IN_PROGRESS),
        ("COMPLETED", JobStatus.COMPLETED),
        ("FAILED", JobStatus.FAILED),
    ],
)
def test_job_status_maps_transcribe_s_four_statuses(rig: Rig, raw: str, status: JobStatus) -> None:
    rig.transcribe.statuses["job-a"] = raw
    assert rig.speech.job_status("job-a") == status
    assert rig.transcribe.calls == [("get", {"TranscriptionJobName": "job-a"})]


def test_an_unexpected_status_is_transient(rig: Rig) -> None:
    rig.transcribe.statuses["job-a"] = "PAUSED"
    with pytest.raises(TransientError, match="unexpected status"):
        rig.speech.job_status("job-a")


@pytest.mark.parametrize(
    "error",
    [
        client_error("NotFoundException", "Job not found"),
        client_error(
            "BadRequestException",
            "The requested job couldn't be found. Check the job name and try your request again.",
        ),
    ],
)
def test_a_job_transcribe_does_not_know_is_not_found(rig: Rig, error: ClientError) -> None:
    rig.transcribe.errors["get"] = error
    with pytest.raises(NotFound):
        rig.speech.job_status("job-a")


@pytest.mark.parametrize(
    "error",
    [
        # Not a missing job: what the code does is retry (see the report: arguably permanent).
        client_error("BadRequestException", "1 validation error detected"),
        client_error("LimitExceededException", "Rate exceeded"),
        client_error("InternalFailureException", "oops"),
        EndpointConnectionError(endpoint_url="https://transcribe"),
    ],
)
def test_other_status_errors_are_transient(rig: Rig, error: Exception) -> None:
    rig.transcribe.errors["get"] = error
    with pytest.raises(TransientError) as caught:
        rig.speech.job_status("job-a")
    assert not isinstance(caught.value, NotFound | ConcurrencyLimitReached)


def recording(**changes: Any) -> Recording:
    name = job_name(STACK, UUID, 1)
    values: dict[str, Any] = {
        "meeting_uuid": UUID,
        "meeting_id": "81234567890",
        "topic": "Weekly sync",
        "host_email": "host@example.com",
        "start_time": "2026-03-03T13:05:00Z",
        "duration_minutes": 1,
        "state": State.TRANSCRIBED,
        "audio_layout": "compact",
        "speech_provider": "aws",
        "job_id": name,
        "conversation_id": transcript_key(UUID, name),
    }
    values.update(changes)
    return Recording(**values)


def test_forget_deletes_the_meeting_s_job(rig: Rig) -> None:
    rig.speech.forget(recording())
    assert rig.transcribe.calls == [("delete", {"TranscriptionJobName": job_name(STACK, UUID, 1)})]


def test_forget_without_a_job_asks_nothing(rig: Rig) -> None:
    rig.speech.forget(recording(job_id=None))
    assert rig.transcribe.calls == []


@pytest.mark.parametrize(
    "error",
    [
        client_error("NotFoundException"),
        client_error("BadRequestException", "The requested job couldn't be found."),
    ],
)
def test_forgetting_a_job_already_gone_is_fine(rig: Rig, error: ClientError) -> None:
    rig.transcribe.errors["delete"] = error
    rig.speech.forget(recording())
    assert len(rig.transcribe.calls) == 1


def test_other_delete_errors_reach_the_caller(rig: Rig) -> None:
    rig.transcribe.errors["delete"] = client_error("LimitExceededException", "Rate exceeded")
    with pytest.raises(ClientError):
        rig.speech.forget(recording())


# ---- insights -------------------------------------------------------------------------------

TOOL_INPUT: dict[str, Any] = {
    "summary": ["Ann opened the sync and Bo reported on the release."],
    "topics": [{"text": "release", "score": 0.9}],
    "questions": [{"text": "Is the release on track?", "asked_by": "Ann Lee"}],
    "action_items": [
        {"text": "Publish the release notes", "assignee": "Bo Chen", "due_date": "2026-03-10"}
    ],
    "follow_ups": [{"text": "Review the metrics next week", "assignee": None, "due_date": None}],
}


def word(content: str, start: float, end: float, label: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "pronunciation",
        "start_time": f"{start:.2f}",  # Transcribe writes times as strings
        "end_time": f"{end:.2f}",
        "alternatives": [{"confidence": "0.99", "content": content}],
    }
    if label is not None:
        item["speaker_label"] = label
    return item


def mark(content: str, label: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "punctuation",
        "alternatives": [{"confidence": "0.0", "content": content}],
    }
    if label is not None:
        item["speaker_label"] = label
    return item


def transcript_json(items: list[dict[str, Any]]) -> bytes:
    """Reference §4's shape: job name, status, results with transcripts and items."""
    for index, item in enumerate(items):
        item["id"] = index
    text = " ".join(i["alternatives"][0]["content"] for i in items)
    return json.dumps(
        {
            "jobName": job_name(STACK, UUID, 1),
            "accountId": "000000000000",
            "status": "COMPLETED",
            "results": {"transcripts": [{"transcript": text}], "items": items},
        }
    ).encode()


# A compact file of two stretches: Ann's (file 0-2 s, said 10 s into the meeting) and Bo's
# (file 2.05-4 s, said at 30 s). Talk time in the map differs from the words' own durations.
SEGMENT_MAP = SegmentMap(
    layout="compact",
    duration_seconds=4.0,
    meeting_seconds=60.0,
    speakers=[
        MapSpeaker(id="u-ann", name="Ann Lee", email="ann@example.com"),
        MapSpeaker(id="u-bo", name="Bo Chen"),
    ],
    segments=[
        Segment(
            speaker="u-ann", output_start=0.0, output_end=2.0, timeline_start=10.0, talk_seconds=1.5
        ),
        Segment(
            speaker="u-bo", output_start=2.05, output_end=4.0, timeline_start=30.0, talk_seconds=4.5
        ),
    ],
)
COMPACT_ITEMS = [
    word("Is", 0.5, 0.6),
    word("the", 0.6, 0.7),
    word("release", 0.7, 1.1),
    word("on", 1.1, 1.2),
    word("track", 1.2, 1.6),
    mark("?"),
    word("Yes", 2.5, 2.8),
    mark(","),
    word("mostly", 2.9, 3.4),
    mark("."),
]


def request(segment_map: SegmentMap | None, **changes: Any) -> InsightsRequest:
    return InsightsRequest(
        recording=recording(**changes),
        segment_map=segment_map,
        now=NOW,
        link_lifetime_seconds=3600,
        progress=None,  # type: ignore[arg-type]  # the AWS provider keeps no progress
    )


def store_transcript(rig: Rig, items: list[dict[str, Any]]) -> None:
    name = job_name(STACK, UUID, 1)
    rig.s3.objects[(BUCKET, transcript_key(UUID, name))] = transcript_json(items)


def insights(rig: Rig, segment_map: SegmentMap | None, **changes: Any) -> InsightsDocument:
    outcome = rig.speech.insights(request(segment_map, **changes))
    assert isinstance(outcome, Insights)
    return outcome.document


def test_a_compact_meeting_s_transcript_follows_the_segment_map(rig: Rig) -> None:
    store_transcript(rig, COMPACT_ITEMS)
    document = insights(rig, SEGMENT_MAP)
    said = [(u.speaker, u.text) for u in document.transcript]
    assert said == [("Ann Lee", "Is the release on track?"), ("Bo Chen", "Yes, mostly.")]
    # On the meeting's clock: each stretch's place in the meeting plus the word's in the stretch.
    starts = [u.start_seconds for u in document.transcript]
    assert starts == pytest.approx([10.5, 30.45])
    # Talk time is the map's detected speech, not the words' durations.
    talk = [(s.name, s.email, s.talk_seconds, s.talk_percent) for s in document.speakers]
    assert talk == [("Bo Chen", None, 4.5, 75.0), ("Ann Lee", "ann@example.com", 1.5, 25.0)]


def test_the_model_s_sections_land_in_the_document(rig: Rig) -> None:
    store_transcript(rig, COMPACT_ITEMS)
    document = insights(rig, SEGMENT_MAP)
    assert document.provider == "aws"
    assert document.conversation_id == job_name(STACK, UUID, 1)
    assert document.meeting.uuid == UUID and document.meeting.duration_seconds == 60
    assert document.summary == TOOL_INPUT["summary"]
    assert [(t.text, t.score) for t in document.topics] == [("release", 0.9)]
    assert [(q.text, q.asked_by) for q in document.questions] == [
        ("Is the release on track?", "Ann Lee")
    ]
    assert [(t.text, t.assignee, t.due_date) for t in document.action_items] == [
        ("Publish the release notes", "Bo Chen", date(2026, 3, 10))
    ]
    assert [(t.text, t.assignee, t.due_date) for t in document.follow_ups] == [
        ("Review the metrics next week", None, None)
    ]
    assert document.sections_missing == [] and document.summary_missing is None
    # One call, with the configured model and the lines on the meeting's clock.
    [sent] = rig.bedrock.requests
    assert sent["modelId"] == "amazon.nova-lite-v1:0"
    text = sent["messages"][0]["content"][0]["text"]
    assert "[00:00:10] Ann Lee: Is the release on track?" in text
    assert "[00:00:30] Bo Chen: Yes, mostly." in text


def test_a_mixed_recording_is_named_by_transcribe_s_speakers_in_order_of_appearance(
    rig: Rig,
) -> None:
    store_transcript(
        rig,
        [
            word("Morning", 1.0, 1.5, "spk_1"),
            mark(",", "spk_1"),
            word("all", 1.5, 2.0, "spk_1"),
            word("Hi", 3.0, 3.3, "spk_0"),
            mark(".", "spk_0"),
            word("Shall", 4.0, 4.5, "spk_1"),
            word("we", 4.5, 5.0, "spk_1"),
            mark("?", "spk_1"),
        ],
    )
    document = insights(rig, None, audio_layout="mixed")
    said = [(u.speaker, u.start_seconds, u.text) for u in document.transcript]
    assert said == [
        ("Speaker 1", 1.0, "Morning, all"),
        ("Speaker 2", 3.0, "Hi."),
        ("Speaker 1", 4.0, "Shall we?"),
    ]
    talk = [(s.name, s.talk_seconds, s.talk_percent) for s in document.speakers]
    assert talk == [("Speaker 1", 2.0, 87.0), ("Speaker 2", 0.3, 13.0)]
    assert document.summary == TOOL_INPUT["summary"]


def test_a_transcript_without_words_is_not_sent_to_the_model(rig: Rig) -> None:
    store_transcript(rig, [])
    document = insights(rig, SEGMENT_MAP)
    assert document.summary_missing == "no_speech"
    assert document.transcript == [] and document.summary == []
    assert rig.bedrock_clients == 0 and rig.bedrock.requests == []


def test_a_transcript_missing_from_the_bucket_is_permanent(rig: Rig) -> None:
    with pytest.raises(PermanentError, match="gone"):
        rig.speech.insights(request(SEGMENT_MAP))


def test_a_transcript_that_is_not_json_is_permanent(rig: Rig) -> None:
    rig.s3.objects[(BUCKET, transcript_key(UUID, job_name(STACK, UUID, 1)))] = b"<html>"
    with pytest.raises(PermanentError, match="not JSON"):
        rig.speech.insights(request(SEGMENT_MAP))


# ---- a replayed meeting (a bug this test shows; see the report) ------------------------------


def test_a_replayed_meeting_gets_a_job_name_it_has_not_used(rig: Rig) -> None:
    """A meeting that FAILED in transcription after two AWS jobs, replayed by an operator, must
    not be submitted under a name one of its old jobs holds: Transcribe keeps job records for 90
    days, so the start would meet ConflictException and the adapter would adopt the old, failed
    job instead of transcribing again."""
    used = {job_name(STACK, UUID, attempt) for attempt in (1, 2)}
    store = MemoryRecordings()
    store.items[UUID] = recording(
        state=State.FAILED,
        failed_stage="transcribe",
        attempts={"transcribe": 2, "merge": 1},
        speech_jobs=2,  # two jobs were recorded before it failed
        merged_key=f"merged/{meeting_key(UUID)}/run-1.flac",
        job_id=None,
        conversation_id=None,
    )
    replay(store, {"submit": MemoryQueue()}, UUID)  # type: ignore[arg-type, dict-item]
    job = build_submission(store.items[UUID], "https://example.invalid/p", "", BUCKET)
    assert rig.speech.start_request(job)["TranscriptionJobName"] not in used


# ---- settings and the provider factory ------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read the process environment too: none of theirs may leak into these tests."""
    for field in {*SpeechSettings.model_fields, *JobEventsSettings.model_fields}:
        monkeypatch.delenv(field.upper(), raising=False)


SYMBL_ARN = "arn:aws:secretsmanager:us-east-1:000000000000:secret:symbl"


@pytest.mark.usefixtures("clean_env")
def test_the_aws_provider_needs_no_symbl_secret() -> None:
    settings = settings_from(SpeechSettings, {"SPEECH_PROVIDER": "aws"})
    assert settings.speech_provider == "aws"
    assert settings.provider_secret_arns == ()


@pytest.mark.usefixtures("clean_env")
def test_symbl_needs_its_secret() -> None:
    with pytest.raises(ConfigurationError, match="SYMBL_CREDENTIALS_SECRET_ARN"):
        settings_from(SpeechSettings, {"SPEECH_PROVIDER": "symbl"})
    settings = settings_from(
        SpeechSettings, {"SPEECH_PROVIDER": "symbl", "SYMBL_CREDENTIALS_SECRET_ARN": SYMBL_ARN}
    )
    assert settings.provider_secret_arns == (SYMBL_ARN,)


@pytest.mark.usefixtures("clean_env")
def test_output_tokens_may_take_at_most_half_the_context() -> None:
    env = {"SPEECH_PROVIDER": "aws", "BEDROCK_CONTEXT_TOKENS": "10000"}
    settings = settings_from(SpeechSettings, {**env, "BEDROCK_MAX_OUTPUT_TOKENS": "5000"})
    assert settings.bedrock_max_output_tokens == 5000
    with pytest.raises(ConfigurationError, match="BEDROCK_MAX_OUTPUT_TOKENS"):
        settings_from(SpeechSettings, {**env, "BEDROCK_MAX_OUTPUT_TOKENS": "5001"})


@pytest.mark.usefixtures("clean_env")
def test_job_events_settings_take_the_aws_provider_and_name_their_queue() -> None:
    env = {
        "SPEECH_PROVIDER": "aws",
        "RECORDINGS_TABLE": "x-recordings",
        "SLOTS_TABLE": "x-slots",
        "SUBMIT_QUEUE_URL": "http://queue/submit",
        "NOTIFY_QUEUE_URL": "http://queue/notify",
        "PUMP_FUNCTION_NAME": "x-pump",
    }
    with pytest.raises(ConfigurationError, match="JOB_EVENTS_QUEUE_URL"):
        settings_from(JobEventsSettings, env)
    settings = settings_from(JobEventsSettings, {**env, "JOB_EVENTS_QUEUE_URL": "http://q/events"})
    assert settings.provider_secret_arns == () and settings.max_receive_count == 5


def _refuse_secrets() -> Any:
    raise AssertionError("building a provider must not read a secret")


@pytest.mark.usefixtures("clean_env")
def test_the_factory_builds_the_configured_provider() -> None:
    secrets = SecretCache(client_factory=_refuse_secrets)
    aws_settings = settings_from(
        SpeechSettings,
        {
            "SPEECH_PROVIDER": "aws",
            "STACK_NAME": "prod-notes",
            "TRANSCRIBE_LANGUAGE_CODE": "fr-FR",
            "TRANSCRIPT_KMS_KEY_ARN": KMS_KEY,
            "BEDROCK_MODEL_ID": "us.amazon.nova-pro-v1:0",
        },
    )
    aws_speech = speech_provider(aws_settings, secrets, media_bucket=BUCKET)
    assert isinstance(aws_speech, AwsSpeech) and aws_speech.provider == "aws"
    assert aws_speech.config == AwsSpeechConfig(
        stack_name="prod-notes",
        media_bucket=BUCKET,
        language_code="fr-FR",
        transcript_kms_key_arn=KMS_KEY,
        model_id="us.amazon.nova-pro-v1:0",
        context_tokens=300_000,
        max_output_tokens=4_096,
    )
    symbl_settings = settings_from(
        SpeechSettings, {"SPEECH_PROVIDER": "symbl", "SYMBL_CREDENTIALS_SECRET_ARN": SYMBL_ARN}
    )
    symbl = speech_provider(symbl_settings, secrets)
    assert isinstance(symbl, SymblProvider) and symbl.provider == "symbl"


class Waits:
    """The notifier's record of a meeting's waits (`Progress`), in memory."""

    def __init__(self, model_waits: int) -> None:
        self.counts = {MODEL_WAIT: model_waits}

    def count(self, counter: str) -> int:
        return self.counts.get(counter, 0)

    def record(self, counter: str) -> None:
        self.counts[counter] = self.count(counter) + 1

    def stamp(self, field: str) -> None:
        raise AssertionError("the AWS provider stamps nothing")


def throttled(**_: Any) -> dict[str, Any]:
    raise ClientError(
        {
            "Error": {"Code": "ThrottlingException", "Message": "Too many requests"},
            "ResponseMetadata": {"HTTPStatusCode": 429},
        },
        "Converse",
    )


def test_a_busy_model_makes_the_notes_wait_without_spending_a_delivery(rig: Rig) -> None:
    """Throttling (after botocore's own retries) is waiting, not failing: the notifier asks
    again later with a delayed request, at most `model_max_waits` times; then the error goes to
    the notify queue's bounded retries."""
    store_transcript(rig, COMPACT_ITEMS)
    rig.bedrock.converse = throttled  # type: ignore[method-assign]
    waiting = replace(request(SEGMENT_MAP), progress=Waits(0))
    outcome = rig.speech.insights(waiting)
    assert isinstance(outcome, Wait)
    assert (outcome.counter, outcome.delay_seconds) == (MODEL_WAIT, 60)
    spent = replace(request(SEGMENT_MAP), progress=Waits(rig.speech.config.model_max_waits))
    with pytest.raises(TransientError):
        rig.speech.insights(spent)
