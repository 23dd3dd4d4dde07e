"""The seam between the pipeline and a speech-analytics provider.

The pipeline submits a meeting's merged audio, learns when the job ends (a callback, an event or
a poll, each confirmed with `job_status`), then asks for the meeting's insights as our own
`Insights` (an `InsightsDocument` and its costs): never a vendor's JSON past the adapter. Two
adapters implement it:
`services.core.speech.symbl_provider` (Symbl's async API, job webhook, Speaker Events API) and
`services.core.speech.aws` (Amazon Transcribe for the transcript, Bedrock for the rest).

A provider may need several deliveries to produce the insights (Symbl writes a summary only when
asked and answers 404 until it is written): `insights` then returns a `Wait`, and the notifier
looks again later. What a provider has done for a meeting so far is kept in the meeting's
`attempts` counters through `Progress`, so every step happens once however often the notifier
runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal, Protocol

from services.core.errors import TransientError
from services.core.insights.document import InsightsDocument
from services.core.recordings import Recording
from services.core.speech.segment_map import SegmentMap

ProviderName = Literal["symbl", "aws"]
# How logs and failure reasons name a provider's jobs.
PROVIDER_LABELS: dict[str, str] = {"symbl": "Symbl", "aws": "Transcribe"}


class JobStatus(StrEnum):
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED)


class ConcurrencyLimitReached(TransientError):
    """The account already runs as many jobs as it may (ours or another client's)."""


class OutcomeUnknown(TransientError):
    """A request that is not idempotent was sent and no answer says what came of it (a read
    timeout, a cut connection, a 5xx): the job may exist. Never re-sent blindly."""


class NotReady(TransientError):
    """The provider's data is not complete yet."""


@dataclass(frozen=True)
class SubmittedJob:
    job_id: str
    # Where the results are read: Symbl's conversation id, the transcript's S3 key.
    conversation_id: str


@dataclass(frozen=True)
class Speaker:
    name: str
    email: str | None = None


@dataclass(frozen=True)
class SpeechJob:
    """One submission of a meeting's merged audio."""

    meeting_uuid: str
    attempt: int  # 1 for the first submission of the meeting, 2 for the next...
    name: str  # the meeting's topic, for the provider's records
    media_bucket: str
    media_key: str
    media_url: str  # presigned GET of the merged file (for a provider outside the account)
    callback_url: str  # where the provider posts the job's status (Symbl)
    channels: tuple[Speaker, ...] = ()  # one per channel, in channel order (multichannel)
    # Without channels: diarize (the mixed-audio fallback), or neither (a compact file, whose
    # speakers come from its segment map).
    diarize: bool = True
    diarization_speakers: int | None = None


@dataclass(frozen=True)
class Insights:
    """What a provider delivers for a meeting: our document, and what producing it cost and
    lacked (the notifier records these as metrics)."""

    document: InsightsDocument
    model_input_tokens: int = 0
    model_output_tokens: int = 0
    model_calls: int = 0
    # A compact meeting whose provider never showed the speakers it was given (Symbl).
    speakers_unconfirmed: bool = False


@dataclass(frozen=True)
class Wait:
    """The provider cannot give the insights yet: look again after `delay_seconds`; `counter`
    is the `attempts` counter the notifier adds one to (the provider bounds its own waits)."""

    reason: str
    counter: str
    delay_seconds: int


class Progress(Protocol):
    """A meeting's insights steps so far, kept in its `attempts` counters."""

    def count(self, counter: str) -> int: ...

    def record(self, counter: str) -> None:
        """Add one to `counter`; raises StateConflict when the meeting moved on meanwhile."""

    def stamp(self, field: str) -> None:
        """Set the meeting's timestamp `field` to now; raises StateConflict likewise."""


@dataclass(frozen=True)
class InsightsRequest:
    recording: Recording
    segment_map: SegmentMap | None
    now: datetime
    link_lifetime_seconds: int  # how long links in the document (hosted pages) may live
    progress: Progress


class SpeechAnalytics(Protocol):
    """What the pipeline needs from a speech-analytics provider."""

    @property
    def provider(self) -> ProviderName: ...

    def submit(self, job: SpeechJob) -> SubmittedJob:
        """Start a job. A retried submission of the same meeting and attempt must not create a
        second job where the provider allows telling (a deterministic job name)."""

    def job_status(self, job_id: str) -> JobStatus:
        """The job's confirmed status; NotFound when the provider no longer knows it."""

    def insights(self, request: InsightsRequest) -> Insights | Wait: ...

    def forget(self, recording: Recording) -> None:
        """Delete what the provider keeps of the meeting's job once its insights are stored
        (a Transcribe job record); nothing where the provider keeps nothing of ours."""
