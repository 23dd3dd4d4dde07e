"""A meeting's insights as one versioned JSON document, whichever provider produced them: stored
in S3 next to the media, read back by the insights page, rendered into the email.

The document is structured data in the provider-neutral shape below, never a provider's responses
pasted in: the page and the email depend on this schema, not on Symbl's or Amazon's. Readers check
`schema_version`; a change that old readers cannot read needs a new version (fields added with a
default are read by old and new alike).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from services.core import aws
from services.core.errors import TransientError
from services.core.recordings import Recording
from services.core.s3_stream import meeting_key
from services.core.speech.segment_map import SegmentMap, TimedWord, attribute_words

CONTENT_TYPE = "application/json; charset=utf-8"

# Why a document has no summary: the conversation was too short to summarise (Symbl's
# threshold), none had been written when the notes were sent, or no words were recognised at all.
SummaryMissing = Literal["too_short", "not_ready", "no_speech"]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class MeetingInfo(_Doc):
    uuid: str
    meeting_id: str
    topic: str
    host_email: str | None = None
    start_time: str  # ISO 8601 UTC, as Zoom reported it
    timezone: str | None = None  # IANA name from Zoom; renderers fall back to UTC
    duration_seconds: int = 0


class SpeakerTalkTime(_Doc):
    name: str
    email: str | None = None
    talk_seconds: float = 0.0
    talk_percent: float = 0.0  # share of all talk time in the meeting


class Task(_Doc):
    """An action item or follow-up."""

    text: str
    assignee: str | None = None
    assignee_email: str | None = None
    due_date: date | None = None


class Question(_Doc):
    text: str
    asked_by: str | None = None


class Topic(_Doc):
    text: str
    score: float = 0.0


class Utterance(_Doc):
    speaker: str
    start_seconds: float  # from the start of the recording
    text: str


# The sections a provider extracts; one it could not deliver is listed in `sections_missing`.
Section = Literal["summary", "topics", "questions", "action_items", "follow_ups"]
SECTIONS: tuple[Section, ...] = ("summary", "topics", "questions", "action_items", "follow_ups")


class InsightsDocument(_Doc):
    schema_version: Literal[1] = 1
    generated_at: str
    conversation_id: str  # the provider's handle: a Symbl conversation, a Transcribe job
    meeting: MeetingInfo
    speakers: list[SpeakerTalkTime] = Field(default_factory=list)
    summary: list[str] = Field(default_factory=list)
    action_items: list[Task] = Field(default_factory=list)
    follow_ups: list[Task] = Field(default_factory=list)
    questions: list[Question] = Field(default_factory=list)
    topics: list[Topic] = Field(default_factory=list)  # highest score first
    transcript: list[Utterance] = Field(default_factory=list)
    experience_url: str | None = None
    # Set when no summary was generated, to say why; None when there is one. Documents stored
    # before this field have none, and read as before.
    summary_missing: SummaryMissing | None = None
    # Which provider produced the document ("symbl", "aws"); None in documents stored before.
    provider: str | None = None
    # Sections the provider did not deliver valid (the email says so); empty when complete.
    sections_missing: list[Section] = Field(default_factory=list)


def insights_key(meeting_uuid: str) -> str:
    return f"insights/{meeting_key(meeting_uuid)}.json"


def meeting_info(recording: Recording, duration_seconds: int) -> MeetingInfo:
    return MeetingInfo(
        uuid=recording.meeting_uuid,
        meeting_id=recording.meeting_id,
        topic=recording.topic,
        host_email=recording.host_email,
        start_time=recording.start_time,
        timezone=recording.timezone,
        duration_seconds=duration_seconds,
    )


# ---------------------------------------------------------------------------------------------
# Through a compact file's segment map
# ---------------------------------------------------------------------------------------------


def mapped_transcript(segment_map: SegmentMap, words: Iterable[TimedWord]) -> list[Utterance]:
    """A compact file's transcript on the meeting's clock: every word (timed in the submitted
    file) goes to the stretch it was cut from (its speaker, its place in the meeting), whatever
    the provider attributed."""
    words = sorted(words, key=lambda word: word.start)
    names = {speaker.id: speaker.name for speaker in segment_map.speakers}
    lines = [
        Utterance(speaker=names[line.speaker_id], start_seconds=line.start_seconds, text=line.text)
        for line in attribute_words(segment_map, words)
    ]
    return sorted(lines, key=lambda line: line.start_seconds)


def mapped_speakers(segment_map: SegmentMap) -> list[SpeakerTalkTime]:
    """Talk time per speaker from the segment map: detected speech, exact to the frame."""
    talk = segment_map.talk_seconds()
    total = sum(talk.values())
    speakers = [
        SpeakerTalkTime(
            name=speaker.name,
            email=speaker.email,
            talk_seconds=round(talk[speaker.id], 1),
            talk_percent=round(100 * talk[speaker.id] / total, 1) if total else 0.0,
        )
        for speaker in segment_map.speakers
    ]
    return sorted(speakers, key=lambda s: s.talk_seconds, reverse=True)


# ---------------------------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------------------------


def store_insights(s3: Any, bucket: str, document: InsightsDocument) -> str:
    """Write the document to its fixed key (a retry overwrites it); returns the key."""
    key = insights_key(document.meeting.uuid)
    body = json.dumps(document.model_dump(mode="json"), ensure_ascii=False, indent=1).encode()
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=CONTENT_TYPE)
    except (ClientError, BotoCoreError) as e:
        raise TransientError(f"could not store insights at s3://{bucket}/{key}: {e}") from e
    return key


def load_insights(s3: Any, bucket: str, key: str) -> InsightsDocument | None:
    """The stored document, or None when there is none at `key`."""
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as e:
        if aws.error_code(e) in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    return InsightsDocument.model_validate_json(response["Body"].read())
