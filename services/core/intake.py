"""Recording intake shared by the Zoom webhook and the operator's backfill: record the meeting
once, then ask for its merge."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from services.core.errors import QueueError
from services.core.observability import logger, mask_email
from services.core.queues import MergeRequest, StageMessage
from services.core.recordings import Recording, SourceFile, SpeakerTrack, State, iso
from services.core.zoom_models import RecordingFile, RecordingObject


class RecordingWriter(Protocol):
    def create_if_absent(self, recording: Recording) -> bool: ...
    def delete_if_state(self, meeting_uuid: str, state: State) -> bool: ...


class MessageSender(Protocol):
    def send(self, message: StageMessage, *, delay_seconds: int = 0) -> str: ...


class IntakeOutcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class IntakeResult:
    outcome: IntakeOutcome
    meeting_uuid: str


def _mixed_audio(files: list[RecordingFile]) -> SourceFile | None:
    """The mixed audio-only M4A, else the first MP4 (its audio track) to fall back on."""

    def pick(file_type: str) -> RecordingFile | None:
        for f in files:
            if f.file_type == file_type and f.id and f.download_url:
                return f
        return None

    chosen = pick("M4A") or pick("MP4")
    if chosen is None or chosen.id is None or chosen.file_type is None:
        return None
    return SourceFile(
        file_id=chosen.id,
        file_type=chosen.file_type,
        recording_start=iso(chosen.recording_start) if chosen.recording_start else None,
        recording_end=iso(chosen.recording_end) if chosen.recording_end else None,
        file_size=chosen.file_size,
        download_url=chosen.download_url,
        status=chosen.status,
    )


def recording_from_zoom(obj: RecordingObject) -> Recording:
    """The item for a meeting as Zoom describes it (webhook object or recordings API)."""
    tracks = [
        SpeakerTrack(
            file_id=f.id,
            name=f.speaker_name(position),
            recording_start=iso(f.recording_start),
            recording_end=iso(f.recording_end),
            file_size=f.file_size,
            download_url=f.download_url,
            status=f.status,
        )
        for position, f in enumerate(obj.participant_audio_files)
    ]
    return Recording(
        meeting_uuid=obj.uuid,
        meeting_id=str(obj.id),
        account_id=obj.account_id,
        host_id=obj.host_id,
        host_email=obj.host_email,
        topic=obj.topic,
        start_time=iso(obj.start_time),
        timezone=obj.timezone,
        duration_minutes=obj.duration,
        tracks=tracks,
        mixed_audio=_mixed_audio(obj.recording_files),
    )


def accept_recording(
    obj: RecordingObject,
    *,
    download_token: str | None,
    store: RecordingWriter,
    merge_queue: MessageSender,
) -> IntakeResult:
    """Create the recording item if absent and enqueue exactly one merge request for it.

    A duplicate delivery finds the item and writes nothing. If the merge request cannot be sent,
    the fresh item is removed again and QueueError propagates, so the sender's retry starts over
    instead of finding a meeting that nothing will ever merge.
    """
    recording = recording_from_zoom(obj)
    if not store.create_if_absent(recording):
        logger.info(
            "duplicate recording.completed ignored",
            meeting_uuid=obj.uuid,
            files=len(obj.participant_audio_files),
        )
        return IntakeResult(IntakeOutcome.DUPLICATE, obj.uuid)
    try:
        merge_queue.send(MergeRequest(meeting_uuid=obj.uuid, download_token=download_token))
    except QueueError:
        store.delete_if_state(obj.uuid, State.RECEIVED)
        raise
    logger.info(
        "recording accepted",
        meeting_uuid=obj.uuid,
        topic_length=len(obj.topic),
        host=mask_email(obj.host_email),
        participant_files=len(obj.participant_audio_files),
    )
    return IntakeResult(IntakeOutcome.ACCEPTED, obj.uuid)
