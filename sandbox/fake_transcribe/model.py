"""What the fake Transcribe's modules share: job statuses, the error every action may answer, the
documented and assumed messages, and the records tests inspect."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from sandbox.fake_symbl.measure import HeardLine

JobStatus = Literal["QUEUED", "IN_PROGRESS", "FAILED", "COMPLETED"]
ACTIVE_STATUSES: frozenset[str] = frozenset({"QUEUED", "IN_PROGRESS"})
TERMINAL_STATUSES: frozenset[str] = frozenset({"COMPLETED", "FAILED"})

MEDIA_FORMATS: tuple[str, ...] = ("mp3", "mp4", "wav", "flac", "ogg", "amr", "webm", "m4a")
"""`MediaFormat` values the API accepts (reference §1)."""

MAX_CHANNELS = 2
MAX_DURATION_SECONDS = 4 * 3600.0
MIN_DURATION_SECONDS = 0.5
MAX_FILE_BYTES = 2 * 1024**3
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 48000
BILLING_MINIMUM_SECONDS = 15

# FailureReason values the API reference documents (botocore's TranscriptionJob.FailureReason).
UNSUPPORTED_MEDIA_FORMAT = "Unsupported media format"
MEDIA_FORMAT_MISMATCH = "The media format provided does not match the detected media format"
INVALID_SAMPLE_RATE = "Invalid sample rate for audio file"
SAMPLE_RATE_MISMATCH = "The sample rate provided does not match the detected sample rate"
FILE_TOO_LARGE = "Invalid file size: file size too large"
TOO_MANY_CHANNELS = "Invalid number of channels: number of channels too large"
# FailureReason values nobody documents: assumed, in the documented ones' style.
MEDIA_TOO_LONG = "Invalid file duration: file duration too long"  # ASSUMED (> 4 h)
MEDIA_TOO_SHORT = "Invalid file duration: file duration too short"  # ASSUMED (< 500 ms)
MEDIA_NOT_ACCESSIBLE = (  # ASSUMED: a missing object, bucket or read permission
    "The S3 URI that you provided can't be accessed. Make sure that you have read permission "
    "and try your request again."
)
OUTPUT_NOT_WRITABLE = (  # ASSUMED: the transcript could not be put in the output bucket
    "The output S3 location can't be accessed. Make sure that you have write permission and "
    "try your request again."
)
DEFAULT_FAILURE = "Internal failure"  # `fail_next` without a reason (ASSUMED wording)

# Error messages of the API.
CONFLICT_MESSAGE = "The requested job name already exists. Use a different job name."
NOT_FOUND_MESSAGE = (
    "The requested job couldn't be found. Check the job name and try your request again."
)
LIMIT_MESSAGE = (  # ASSUMED wording; the exception is the documented one
    "You have reached the limit of {quota} concurrent transcription jobs. Wait for a job to "
    "finish and try your request again."
)
SPEAKER_LABELS_UNSUPPORTED = (
    "The sandbox's fake Transcribe does not support ShowSpeakerLabels: it recognises scripted "
    "lines from the audio but cannot tell voices apart. Send a compact (mono) file, or use "
    "ChannelIdentification with at most 2 channels."
)

NotFoundCode = Literal["BadRequestException", "NotFoundException"]


class TranscribeError(Exception):
    """An error answer: `{"__type": code, "Message": message}` with `status`."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def bad_request(message: str) -> TranscribeError:
    return TranscribeError("BadRequestException", message)


@dataclass(frozen=True)
class StartAttempt:
    """One StartTranscriptionJob as it arrived, accepted or refused: tests see the caller tried,
    what it sent, and how the account looked then."""

    at: float  # time.monotonic() on arrival
    job_name: object  # as sent (not necessarily a valid name, or a string)
    params: dict[str, Any]  # the whole request body
    active: int  # QUEUED/IN_PROGRESS jobs on arrival
    quota: int
    error_code: str | None  # None: accepted
    message: str | None

    @property
    def accepted(self) -> bool:
        return self.error_code is None


@dataclass(frozen=True)
class EventRecord:
    """One "Transcribe Job State Change" event: sent to `on_event`, or lost by the knob."""

    envelope: dict[str, Any]
    lost: bool
    delivered: bool  # `on_event` returned without raising (False when lost or no receiver)
    error: str | None  # what `on_event` raised

    @property
    def job_name(self) -> str:
        return str(self.envelope["detail"]["TranscriptionJobName"])

    @property
    def status(self) -> str:
        return str(self.envelope["detail"]["TranscriptionJobStatus"])


@dataclass(frozen=True)
class JobBilling:
    """What one completed job bills: per second of audio, channels not multiplied (§2).

    Whether the pricing page's 15-second minimum per request applies to standard batch jobs is
    UNCONFIRMED, so both figures are given."""

    job_name: str
    media_seconds: float  # the probed duration
    channels: int

    @property
    def billed_seconds(self) -> int:
        """1-second increments, no minimum."""
        return math.ceil(self.media_seconds - 1e-9)

    @property
    def billed_seconds_with_minimum(self) -> int:
        """1-second increments, at least 15 s."""
        return max(BILLING_MINIMUM_SECONDS, self.billed_seconds)


@dataclass(frozen=True)
class OutputWrite:
    """Where a completed job's transcript went, and how it was encrypted."""

    bucket: str | None  # None: the service's own bucket (kept by the fake, served over HTTP)
    key: str
    kms_key_id: str | None  # as asked (`OutputEncryptionKMSKeyId`)
    kms_applied: bool  # the put used SSE-KMS with that key (False: fell back, see `kms_error`)
    kms_error: str | None  # why the SSE-KMS put was refused, when it fell back to the default


@dataclass(frozen=True)
class JobRecord:
    """A job as the fake holds it (a snapshot): status history, why it failed, where its
    transcript went, and the transcript document itself."""

    name: str
    status: JobStatus
    history: tuple[tuple[JobStatus, float], ...]  # (status, time.monotonic())
    params: dict[str, Any]
    failure_reason: str | None
    output: OutputWrite | None  # once COMPLETED
    transcript: dict[str, Any] | None  # once COMPLETED
    media_seconds: float | None  # once probed
    channels: int | None
    heard: tuple[HeardLine, ...] = ()  # the scripted lines recognised, with their true speaker
