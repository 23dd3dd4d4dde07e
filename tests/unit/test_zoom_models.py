from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.core.intake import recording_from_zoom
from services.core.zoom_models import ParticipantAudioFile, RecordingCompletedEvent
from tests.support.zoom_events import recording_completed


@pytest.mark.parametrize(
    "uuid", ["AbC1/dEf+Gh==", "/startsWithSlash==", "has//double/slash+", "plain123=="]
)
def test_uuid_kept_exactly(uuid: str) -> None:
    event = RecordingCompletedEvent.model_validate(recording_completed(uuid))
    recording = recording_from_zoom(event.payload.object)
    assert recording.meeting_uuid == uuid


def test_payload_without_participant_files_falls_back_to_mixed_audio() -> None:
    event = RecordingCompletedEvent.model_validate(
        recording_completed(with_participant_files=False)
    )
    recording = recording_from_zoom(event.payload.object)
    assert recording.tracks == []
    assert recording.mixed_audio is not None
    assert recording.mixed_audio.file_id == "f-m4a"
    assert recording.mixed_audio.file_type == "M4A"


def test_hyphenated_names_are_kept_whole() -> None:
    event = RecordingCompletedEvent.model_validate(
        recording_completed(participants=["Ana Ruiz-Soto", "Jean-Luc - Team Lead", "李雷"])
    )
    names = [t.name for t in recording_from_zoom(event.payload.object).tracks]
    assert names == ["Ana Ruiz-Soto", "Jean-Luc - Team Lead", "李雷"]


def test_file_name_without_prefix_gets_a_stable_placeholder() -> None:
    f = ParticipantAudioFile.model_validate(
        {
            "id": "p-9",
            "recording_start": "2023-11-14T22:10:05Z",
            "recording_end": "2023-11-14T22:52:00Z",
            "file_name": "something else",
        }
    )
    assert f.speaker_name(2) == "Participant 3"
    assert f.model_copy(update={"file_name": "Audio only - "}).speaker_name(0) == "Participant 1"


def test_timeline_file_without_id_or_size_parses() -> None:
    event = RecordingCompletedEvent.model_validate(recording_completed())
    timeline = event.payload.object.recording_files[1]
    assert timeline.file_type == "TIMELINE"
    assert timeline.id is None and timeline.file_size is None


def test_track_times_are_normalised_to_utc_milliseconds() -> None:
    event = RecordingCompletedEvent.model_validate(recording_completed())
    track = recording_from_zoom(event.payload.object).tracks[1]
    assert track.recording_start == "2023-11-14T22:11:05.000Z"


def test_missing_uuid_is_a_validation_error() -> None:
    event = recording_completed()
    del event["payload"]["object"]["uuid"]
    with pytest.raises(ValidationError):
        RecordingCompletedEvent.model_validate(event)
