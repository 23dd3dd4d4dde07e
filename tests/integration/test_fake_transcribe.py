"""The fake Amazon Transcribe through real boto3 clients, with moto's S3 for media and output.

The media are the fake Symbl's compact files (scripted lines rendered by espeak-ng, registered
as a meeting's templates): the fake must find every word from the audio alone, at the time it is
heard, and hold jobs to the documented names, quota, channel limit and life cycle.
"""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

import tests.integration.test_fake_symbl_compact as compact
from sandbox.fake_transcribe import (
    CONFLICT_MESSAGE,
    MEDIA_NOT_ACCESSIBLE,
    NOT_FOUND_MESSAGE,
    SPEAKER_LABELS_UNSUPPORTED,
    TOO_MANY_CHANNELS,
    UNSUPPORTED_MEDIA_FORMAT,
    FakeTranscribeState,
    create_app,
    split_token,
)
from sandbox.http_server import LoopbackServer
from sandbox.local_aws import LocalAws
from sandbox.registry import MeetingRegistry
from tests.integration.test_fake_symbl import SwitchableApp

pytestmark = pytest.mark.integration

# The compact meeting's audio and templates (module-scoped fixtures of the fake Symbl's tests).
media = compact.media
registry = compact.registry
CompactMedia = compact.CompactMedia
TIME_TOLERANCE_S = compact.TIME_TOLERANCE_S
REGION = "us-east-1"


def _stereo(media: CompactMedia, path: Path) -> None:
    """compact.flac split over two channels: lines 0 and 2 on ch_0, lines 1 and 3 on ch_1."""
    gap = compact.GAP_S / 2

    def muted(lines: list[int]) -> str:
        spans = "+".join(
            f"between(t,{media.placed[i].start - gap:.3f},{media.placed[i].end + gap:.3f})"
            for i in lines
        )
        return f"volume=0:enable='{spans}'"

    graph = (
        f"[0:a]asplit[a][b];[a]{muted([1, 3])}[l];[b]{muted([0, 2])}[r];"
        "[l][r]join=inputs=2:channel_layout=stereo[out]"
    )
    subprocess.run(
        [
            *(
                "ffmpeg",
                "-nostdin",
                "-v",
                "error",
                "-y",
                "-i",
                str(media.directory / "compact.flac"),
            ),
            *("-filter_complex", graph, "-map", "[out]", "-c:a", "flac", str(path)),
        ],
        check=True,
    )


@dataclass(frozen=True)
class Bucket:
    name: str
    uris: dict[str, str]  # file name -> s3:// URI


@pytest.fixture(scope="module")
def bucket(local_aws: LocalAws, media: CompactMedia) -> Bucket:
    """One moto bucket holding the compact files, a stereo split, a second of silence (quick to
    recognise, for tests about the life cycle rather than the words) and a file that is not
    audio."""
    _stereo(media, media.directory / "stereo.flac")
    subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi"),
            *("-i", "anullsrc=r=16000:cl=mono", "-t", "1", str(media.directory / "silence.flac")),
        ],
        check=True,
    )
    (media.directory / "notes.wav").write_bytes(b"these are meeting notes, not audio\n" * 40)
    name = f"tfake-{uuid.uuid4().hex[:10]}"
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=name)
    uris = {}
    files = (
        "compact.flac",
        "clipped.flac",
        "three.wav",
        "stereo.flac",
        "silence.flac",
        "notes.wav",
    )
    for file in files:
        s3.upload_file(str(media.directory / file), name, f"media/{file}")
        uris[file] = f"s3://{name}/media/{file}"
    return Bucket(name, uris)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[SwitchableApp, str]]:
    switch = SwitchableApp()
    with LoopbackServer(switch) as running:
        yield switch, running.url


@pytest.fixture(scope="module")
def fingerprints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fake_transcribe_fingerprints")


@dataclass
class Fake:
    state: FakeTranscribeState
    url: str
    client: Any  # boto3 Transcribe client
    events: list[dict[str, Any]]
    bucket: Bucket

    def start(self, file: str = "silence.flac", **params: Any) -> str:
        name: str = params.pop("TranscriptionJobName", f"job-{uuid.uuid4().hex[:12]}")
        self.client.start_transcription_job(
            TranscriptionJobName=name,
            Media={"MediaFileUri": self.bucket.uris.get(file, file)},
            **({"LanguageCode": "en-US"} | params),
        )
        return name

    def finish(self, name: str) -> dict[str, Any]:
        """Wait for the job to end, then answer GetTranscriptionJob's TranscriptionJob."""
        self.state.wait_for_job(name, timeout=20)
        job: dict[str, Any] = self.client.get_transcription_job(TranscriptionJobName=name)[
            "TranscriptionJob"
        ]
        return job

    def refused(self, **params: Any) -> ClientError:
        with pytest.raises(ClientError) as raised:
            self.client.start_transcription_job(**params)
        return raised.value


@pytest.fixture
def fake(
    server: tuple[SwitchableApp, str],
    registry: MeetingRegistry,
    fingerprints: Path,
    bucket: Bucket,
) -> Iterator[Fake]:
    switch, url = server
    events: list[dict[str, Any]] = []
    state = FakeTranscribeState(
        registry=registry,
        fingerprint_cache_dir=fingerprints,
        processing_seconds=0.05,
        on_event=events.append,
    )
    switch.app = create_app(state)
    client = boto3.client(
        "transcribe",
        endpoint_url=url,
        region_name=REGION,
        config=Config(retries={"total_max_attempts": 1}),  # see each first answer
    )
    try:
        yield Fake(state, url, client, events, bucket)
    finally:
        switch.app = None
        state.close()
    leaked = [t.name for t in threading.enumerate() if t.name.startswith("fake-transcribe")]
    assert leaked == []


def _code(error: ClientError) -> tuple[str, str]:
    return error.response["Error"]["Code"], error.response["Error"]["Message"]


def _read_json(bucket: str, key: str) -> dict[str, Any]:
    body = boto3.client("s3", region_name=REGION).get_object(Bucket=bucket, Key=key)["Body"]
    document: dict[str, Any] = json.loads(body.read())
    return document


def _spoken(media: CompactMedia, line: int, first_word: int = 0) -> list[str]:
    """The words of a placed line as Transcribe's pronunciation items carry them."""
    words = media.placed[line].template.words[first_word:]
    return [split[0] for w in words if (split := split_token(w.text)) is not None]


# ---------------------------------------------------------------------------------------------
# Life cycle, output, recognition
# ---------------------------------------------------------------------------------------------


def test_a_job_runs_queued_to_completed_and_writes_the_documented_transcript(
    fake: Fake, media: CompactMedia
) -> None:
    name = fake.start("compact.flac", OutputBucketName=fake.bucket.name, OutputKey="transcripts/")
    job = fake.finish(name)

    key = f"transcripts/{name}.json"
    assert job["TranscriptionJobStatus"] == "COMPLETED"
    assert job["Transcript"]["TranscriptFileUri"] == (
        f"https://s3.{REGION}.amazonaws.com/{fake.bucket.name}/{key}"
    )
    assert (job["MediaFormat"], job["MediaSampleRateHertz"], job["LanguageCode"]) == (
        "flac",
        compact.OUTPUT_RATE,
        "en-US",
    )
    assert job["Media"] == {"MediaFileUri": fake.bucket.uris["compact.flac"]}
    assert job["CreationTime"] <= job["StartTime"] <= job["CompletionTime"]
    assert "FailureReason" not in job
    record = fake.state.job(name)
    assert record is not None
    assert [status for status, _ in record.history] == ["QUEUED", "IN_PROGRESS", "COMPLETED"]

    document = _read_json(fake.bucket.name, key)
    assert (document["jobName"], document["accountId"], document["status"]) == (
        name,
        "123456789012",
        "COMPLETED",
    )
    results = document["results"]
    assert results["transcripts"] == [
        {"transcript": " ".join(p.template.text for p in media.placed)}
    ]
    items = results["items"]
    assert [item["id"] for item in items] == list(range(len(items)))
    words = [i for i in items if i["type"] == "pronunciation"]
    assert [w["alternatives"][0]["content"] for w in words] == [
        word for line in range(len(media.placed)) for word in _spoken(media, line)
    ]
    heard_at = [
        p.start + w.start for p in media.placed for w in p.template.words if split_token(w.text)
    ]
    for word, scripted in zip(words, heard_at, strict=True):
        assert isinstance(word["start_time"], str) and isinstance(word["end_time"], str)
        assert isinstance(word["alternatives"][0]["confidence"], str)
        assert float(word["start_time"]) == pytest.approx(scripted, abs=TIME_TOLERANCE_S)
        assert float(word["end_time"]) > float(word["start_time"])
    marks = [i for i in items if i["type"] == "punctuation"]
    assert [m["alternatives"][0]["content"] for m in marks] == ["?", ".", ".", "."]
    assert all("start_time" not in m and "end_time" not in m for m in marks)
    segments = results["audio_segments"]
    assert [s["transcript"] for s in segments] == [p.template.text for p in media.placed]
    assert [[items[i]["id"] for i in s["items"]] for s in segments] == [
        s["items"] for s in segments
    ]

    [event] = fake.events
    assert event["detail"] == {"TranscriptionJobName": name, "TranscriptionJobStatus": "COMPLETED"}
    assert (event["source"], event["detail-type"], event["version"]) == (
        "aws.transcribe",
        "Transcribe Job State Change",
        "0",
    )
    assert (event["account"], event["region"], event["resources"]) == ("123456789012", REGION, [])
    assert event["time"].endswith("Z") and uuid.UUID(event["id"])
    [sent] = fake.state.events_sent
    assert sent.delivered and not sent.lost

    [billing] = fake.state.billing()
    assert billing.media_seconds == pytest.approx(media.duration, abs=0.01)
    assert billing.billed_seconds == -(-media.duration // 1)
    assert billing.billed_seconds_with_minimum == max(15, billing.billed_seconds)
    assert billing.channels == 1


def test_a_word_whose_audio_is_missing_is_missing_from_the_items(
    fake: Fake, media: CompactMedia
) -> None:
    name = fake.start("clipped.flac", OutputBucketName=fake.bucket.name, OutputKey="out/c.json")
    assert fake.finish(name)["TranscriptionJobStatus"] == "COMPLETED"

    items = _read_json(fake.bucket.name, "out/c.json")["results"]["items"]
    words = [i["alternatives"][0]["content"] for i in items if i["type"] == "pronunciation"]
    clipped = media.clipped_line
    assert words == [
        word
        for line in range(len(media.placed))
        for word in _spoken(media, line, 1 if line == clipped else 0)
    ]


def test_channel_identification_labels_each_channels_items(fake: Fake, media: CompactMedia) -> None:
    name = fake.start(
        "stereo.flac", OutputBucketName=fake.bucket.name, Settings={"ChannelIdentification": True}
    )
    job = fake.finish(name)
    assert job["Settings"]["ChannelIdentification"] is True

    results = _read_json(fake.bucket.name, f"{name}.json")["results"]
    channels = results["channel_labels"]
    assert channels["number_of_channels"] == 2
    for channel in channels["channels"]:
        lines = [0, 2] if channel["channel_label"] == "ch_0" else [1, 3]
        assert [
            i["alternatives"][0]["content"]
            for i in channel["items"]
            if i["type"] == "pronunciation"
        ] == [word for line in lines for word in _spoken(media, line)]
    assert {i["channel_label"] for i in results["items"]} == {"ch_0", "ch_1"}
    [billing] = fake.state.billing()
    assert billing.channels == 2
    assert billing.billed_seconds == -(-media.duration // 1)  # channels do not multiply


def test_without_an_output_bucket_the_transcript_is_behind_a_temporary_url(fake: Fake) -> None:
    name = fake.start()
    uri = fake.finish(name)["Transcript"]["TranscriptFileUri"]

    assert uri.startswith(f"{fake.url}/_transcripts/{name}.json?")
    answer = requests.get(uri, timeout=5)
    assert answer.status_code == 200
    assert answer.json()["jobName"] == name
    forged = uri.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert requests.get(forged, timeout=5).status_code == 403
    assert fake.client.list_transcription_jobs()["TranscriptionJobSummaries"][0][
        "OutputLocationType"
    ] == ("SERVICE_BUCKET")


def test_a_kms_key_encrypts_the_output(fake: Fake) -> None:
    key_id = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    name = fake.start(OutputBucketName=fake.bucket.name, OutputEncryptionKMSKeyId=key_id)
    assert fake.finish(name)["TranscriptionJobStatus"] == "COMPLETED"

    head = boto3.client("s3", region_name=REGION).head_object(
        Bucket=fake.bucket.name, Key=f"{name}.json"
    )
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key_id)
    record = fake.state.job(name)
    assert record is not None and record.output is not None
    assert (record.output.kms_key_id, record.output.kms_applied) == (key_id, True)


# ---------------------------------------------------------------------------------------------
# Refusals at Start
# ---------------------------------------------------------------------------------------------


def test_a_second_job_with_the_same_name_is_a_conflict(fake: Fake) -> None:
    fake.state.delay(30)  # still QUEUED: nothing to wait for
    name = fake.start()
    error = fake.refused(
        TranscriptionJobName=name,
        Media={"MediaFileUri": fake.bucket.uris["silence.flac"]},
        LanguageCode="en-US",
    )
    assert _code(error) == ("ConflictException", CONFLICT_MESSAGE)
    assert [(a.job_name, a.error_code) for a in fake.state.start_attempts] == [
        (name, None),
        (name, "ConflictException"),
    ]


_GOOD = {"Media": {"MediaFileUri": "s3://media-bucket/a.flac"}, "LanguageCode": "en-US"}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"TranscriptionJobName": "has space"} | _GOOD, "regular expression"),
        ({"TranscriptionJobName": "x" * 201} | _GOOD, "length"),
        ({"TranscriptionJobName": "naïve"} | _GOOD, "regular expression"),
        (
            {"TranscriptionJobName": "j", "Media": _GOOD["Media"]},
            "exactly one of LanguageCode",
        ),
        (
            {"TranscriptionJobName": "j", "IdentifyLanguage": True} | _GOOD,
            "exactly one of LanguageCode",
        ),
        (
            {"TranscriptionJobName": "j", "Media": {"MediaFileUri": "https://x.example/a.flac"}}
            | {"LanguageCode": "en-US"},
            "s3://bucket/key",
        ),
        ({"TranscriptionJobName": "j", "MediaFormat": "aac"} | _GOOD, "mediaFormat"),
        (
            {
                "TranscriptionJobName": "j",
                "Settings": {"ShowSpeakerLabels": True, "MaxSpeakerLabels": 2},
            }
            | _GOOD,
            SPEAKER_LABELS_UNSUPPORTED,
        ),
    ],
)
def test_invalid_starts_are_bad_requests_and_recorded(
    fake: Fake, params: dict[str, Any], message: str
) -> None:
    code, said = _code(fake.refused(**params))
    assert code == "BadRequestException"
    assert message in said
    [attempt] = fake.state.start_attempts
    assert (attempt.job_name, attempt.error_code, attempt.accepted) == (
        params["TranscriptionJobName"],
        "BadRequestException",
        False,
    )
    assert attempt.params == params


def test_the_quota_refuses_with_limit_exceeded_and_the_attempt_is_recorded(fake: Fake) -> None:
    fake.state.set_quota(1)
    fake.state.delay(30)  # the first job holds the only slot, QUEUED
    held = fake.start()
    error = fake.refused(
        TranscriptionJobName="over-quota",
        Media={"MediaFileUri": fake.bucket.uris["silence.flac"]},
        LanguageCode="en-US",
    )
    assert _code(error)[0] == "LimitExceededException"
    refused = fake.state.start_attempts[-1]
    assert (refused.job_name, refused.error_code, refused.active, refused.quota) == (
        "over-quota",
        "LimitExceededException",
        1,
        1,
    )
    assert fake.client.get_transcription_job(TranscriptionJobName=held)["TranscriptionJob"][
        "TranscriptionJobStatus"
    ] == ("QUEUED")

    fake.client.delete_transcription_job(TranscriptionJobName=held)  # frees the slot
    fake.state.delay(0)
    assert fake.finish(fake.start(TranscriptionJobName="over-quota"))["TranscriptionJobStatus"] == (
        "COMPLETED"
    )
    assert fake.state.max_active == 1


# ---------------------------------------------------------------------------------------------
# Jobs that fail
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "params", "reason"),
    [
        ("three.wav", {}, TOO_MANY_CHANNELS),
        ("notes.wav", {}, UNSUPPORTED_MEDIA_FORMAT),
        ("s3://no-such-bucket-here/a.flac", {}, MEDIA_NOT_ACCESSIBLE),
        (
            "silence.flac",
            {"MediaSampleRateHertz": 8000},
            "The sample rate provided does not match the detected sample rate",
        ),
    ],
)
def test_media_the_service_cannot_use_fails_the_job_with_its_reason(
    fake: Fake, file: str, params: dict[str, Any], reason: str
) -> None:
    name = fake.start(file, OutputBucketName=fake.bucket.name, **params)
    job = fake.finish(name)

    assert (job["TranscriptionJobStatus"], job["FailureReason"]) == ("FAILED", reason)
    assert job["Transcript"] == {}
    [event] = fake.events
    assert event["detail"] == {
        "TranscriptionJobName": name,
        "TranscriptionJobStatus": "FAILED",
        "FailureReason": reason,
    }
    assert fake.state.billing() == []
    listed = boto3.client("s3", region_name=REGION).list_objects_v2(
        Bucket=fake.bucket.name, Prefix=name
    )
    assert listed["KeyCount"] == 0


def test_fail_next_fails_the_next_job_with_the_reason_given(fake: Fake) -> None:
    fake.state.fail_next(1, "Internal failure")
    failed, fine = fake.start(), fake.start()
    assert fake.finish(failed)["FailureReason"] == "Internal failure"
    assert fake.finish(fine)["TranscriptionJobStatus"] == "COMPLETED"


# ---------------------------------------------------------------------------------------------
# Events, deletion, listing, endpoint routing
# ---------------------------------------------------------------------------------------------


def test_lost_events_are_recorded_and_later_ones_sent(fake: Fake) -> None:
    fake.state.fail_next(2)  # FAILED jobs send events too, and end without reading media
    fake.state.lose_events(1)
    first = fake.start()
    fake.finish(first)
    second = fake.start()
    fake.finish(second)
    fake.state.wait_for(lambda: len(fake.state.events) == 2)

    assert [(e.job_name, e.lost, e.delivered) for e in fake.state.events] == [
        (first, True, False),
        (second, False, True),
    ]
    assert [e["detail"]["TranscriptionJobName"] for e in fake.events] == [second]


def test_deleted_jobs_are_gone_and_unknown_jobs_answer_the_configured_code(fake: Fake) -> None:
    fake.state.fail_next(1)  # ends without reading media
    done = fake.start()
    fake.finish(done)
    fake.state.delay(30)
    active = fake.start()
    for name in (done, active):
        fake.client.delete_transcription_job(TranscriptionJobName=name)

    with pytest.raises(ClientError) as gone:
        fake.client.get_transcription_job(TranscriptionJobName=done)
    assert _code(gone.value) == ("BadRequestException", NOT_FOUND_MESSAGE)
    fake.state.not_found_code("NotFoundException")
    with pytest.raises(ClientError) as again:
        fake.client.delete_transcription_job(TranscriptionJobName=done)
    assert _code(again.value)[0] == "NotFoundException"
    assert fake.state.deleted == [done, active]
    assert fake.state.active == 0
    assert [e["detail"]["TranscriptionJobName"] for e in fake.events] == [done]
    assert fake.client.list_transcription_jobs()["TranscriptionJobSummaries"] == []


def test_list_filters_by_status_and_name_and_pages(fake: Fake) -> None:
    fake.state.delay(30)
    names = [fake.start(TranscriptionJobName=f"listed-{i}") for i in range(3)]
    page = fake.client.list_transcription_jobs(
        Status="QUEUED", JobNameContains="LISTED", MaxResults=2
    )
    assert [s["TranscriptionJobName"] for s in page["TranscriptionJobSummaries"]] == names[:0:-1]
    rest = fake.client.list_transcription_jobs(
        Status="QUEUED", JobNameContains="listed", MaxResults=2, NextToken=page["NextToken"]
    )
    assert [s["TranscriptionJobName"] for s in rest["TranscriptionJobSummaries"]] == names[:1]
    assert "NextToken" not in rest
    assert (
        fake.client.list_transcription_jobs(Status="COMPLETED")["TranscriptionJobSummaries"] == []
    )


def test_a_client_without_endpoint_url_reaches_the_fake_through_the_env(
    fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_TRANSCRIBE", fake.url)
    fake.state.delay(30)
    client = boto3.client("transcribe", region_name=REGION)  # no endpoint_url
    client.start_transcription_job(
        TranscriptionJobName="through-env",
        Media={"MediaFileUri": fake.bucket.uris["silence.flac"]},
        LanguageCode="en-US",
    )
    assert [a.job_name for a in fake.state.start_attempts] == ["through-env"]
    job = client.get_transcription_job(TranscriptionJobName="through-env")["TranscriptionJob"]
    assert job["TranscriptionJobStatus"] == "QUEUED"
