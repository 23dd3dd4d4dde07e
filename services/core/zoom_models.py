"""Zoom webhook event models (see the Zoom API reference: `recording.completed`, URL validation).

Parsing is strict about what the pipeline depends on and lenient about the rest: Zoom adds fields
over time, `CC`/`TIMELINE` files come without id/status/size, and the recordings API types `type`
as a string where the webhook sends a number.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

PARTICIPANT_FILE_PREFIX = "Audio only - "


class _ZoomModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# Bounds on what a signed event may carry: far above anything Zoom sends (UUIDs are 24 base64
# characters, topics at most 200, download URLs about 150), and low enough that an accepted
# event's key fits DynamoDB (2048 bytes) and its merge request an SQS message (256 KB). An event
# beyond them is refused with a 400, never a 5xx; one whose item still exceeds DynamoDB's 400 KB
# (hundreds of files with long names) is refused by the store (services/core/recordings.py).
Short = Annotated[str, Field(max_length=256)]
Url = Annotated[str, Field(max_length=1024)]
MAX_FILES = 1000


class RecordingFile(_ZoomModel):
    """An item of `recording_files` (the meeting-level files)."""

    id: Short | None = None
    meeting_id: Short | None = None
    recording_start: datetime | None = None
    recording_end: datetime | None = None
    file_type: Short | None = None
    file_extension: Short | None = None
    file_size: int | None = Field(default=None, ge=0)
    file_name: Short | None = None
    download_url: Url | None = None
    status: Short | None = None
    recording_type: Short | None = None


class ParticipantAudioFile(_ZoomModel):
    """An item of `participant_audio_files`: one participant's own audio track."""

    id: str = Field(min_length=1, max_length=256)
    recording_start: datetime
    recording_end: datetime
    file_type: Short | None = None
    file_extension: Short | None = None
    file_name: Short | None = None
    file_size: int | None = Field(default=None, ge=0)
    download_url: Url | None = None
    status: Short | None = None

    def speaker_name(self, position: int) -> str:
        """The display name from `file_name` ("Audio only - <name>"), or a stable placeholder.

        The prefix is removed literally, never split on '-', because names contain hyphens.
        """
        name = self.file_name or ""
        if name.startswith(PARTICIPANT_FILE_PREFIX):
            name = name[len(PARTICIPANT_FILE_PREFIX) :].strip()
            if name:
                return name
        return f"Participant {position + 1}"


class RecordingObject(_ZoomModel):
    """`payload.object` of `recording.completed` (and the recordings API response)."""

    uuid: str = Field(min_length=1, max_length=256)
    id: int | Short
    account_id: Short | None = None
    host_id: Short = ""
    host_email: Short | None = None
    topic: str = Field(default="", max_length=1024)
    type: int | Short | None = None
    start_time: datetime
    timezone: Short | None = None
    duration: int = Field(default=0, ge=0)
    total_size: int | None = None
    recording_count: int | None = None
    recording_files: list[RecordingFile] = Field(default_factory=list, max_length=MAX_FILES)
    participant_audio_files: list[ParticipantAudioFile] = Field(
        default_factory=list, max_length=MAX_FILES
    )

    @field_validator("participant_audio_files", "recording_files", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


class RecordingPayload(_ZoomModel):
    account_id: Short | None = None
    object: RecordingObject


class RecordingCompletedEvent(_ZoomModel):
    event: Literal["recording.completed"]
    event_ts: int
    download_token: str | None = Field(default=None, max_length=8192)
    payload: RecordingPayload


class UrlValidationPayload(_ZoomModel):
    plainToken: str = Field(min_length=1, max_length=1024)


class UrlValidationEvent(_ZoomModel):
    event: Literal["endpoint.url_validation"]
    event_ts: int | None = None
    payload: UrlValidationPayload


class ZoomEnvelope(_ZoomModel):
    """Just enough of any event to route it."""

    event: str = Field(min_length=1)
    event_ts: int | None = None
