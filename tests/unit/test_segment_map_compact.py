"""The segment map: speaker events as Symbl takes them, words attributed and timed through it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from services.core.recordings import Recording
from services.core.speech.segment_map import (
    MapSpeaker,
    Segment,
    SegmentMap,
    TimedWord,
    attribute_words,
    segment_map_key,
    speaker_events,
    speaker_id,
)
from services.core.speech.symbl_insights import gather_insights
from services.core.speech.symbl_provider import speakers_arrived

ANA = MapSpeaker(id="u-ana", name="Ana Ruiz-Soto", email="ana@example.com")
BO = MapSpeaker(id="u-bo", name="Bo Chen")


def compact_map() -> SegmentMap:
    # Ana 10.0-13.0 on the meeting clock, Bo cuts in at 12.0 (serialised after her), Ana again.
    return SegmentMap(
        layout="compact",
        duration_seconds=9.2,
        meeting_seconds=60.0,
        speakers=[ANA, BO],
        segments=[
            Segment(
                speaker="u-ana",
                output_start=0.0,
                output_end=3.0,
                timeline_start=10.0,
                talk_seconds=2.75,
            ),
            Segment(
                speaker="u-bo",
                output_start=3.1,
                output_end=5.6,
                timeline_start=12.0,
                talk_seconds=2.25,
            ),
            Segment(
                speaker="u-ana",
                output_start=5.7,
                output_end=9.2,
                timeline_start=40.5,
                talk_seconds=3.0,
            ),
        ],
    )


def test_compact_speaker_events_are_sorted_pairs_with_normalised_offsets() -> None:
    events = speaker_events(compact_map())
    assert len(events) == 6
    assert [e["type"] for e in events] == [
        "started_speaking",
        "stopped_speaking",
        "started_speaking",
        "stopped_speaking",
        "started_speaking",
        "stopped_speaking",
    ]
    offsets = [e["offset"]["seconds"] + e["offset"]["nanos"] / 1e9 for e in events]
    assert offsets == sorted(offsets)
    assert offsets == pytest.approx([0.0, 3.0, 3.1, 5.6, 5.7, 9.2])
    assert all(0 <= e["offset"]["nanos"] < 1_000_000_000 for e in events)
    assert events[2]["offset"] == {"seconds": 3, "nanos": 100_000_000}
    assert events[0]["user"] == {"id": "u-ana", "name": "Ana Ruiz-Soto", "email": "ana@example.com"}
    assert events[2]["user"] == {"id": "u-bo", "name": "Bo Chen"}  # no email: none sent


def test_compact_stop_comes_before_a_start_at_the_same_offset() -> None:
    touching = SegmentMap(
        layout="compact",
        duration_seconds=4.0,
        meeting_seconds=10.0,
        speakers=[ANA, BO],
        segments=[
            Segment(
                speaker="u-ana",
                output_start=0.0,
                output_end=2.0,
                timeline_start=0.0,
                talk_seconds=2.0,
            ),
            Segment(
                speaker="u-bo",
                output_start=2.0,
                output_end=4.0,
                timeline_start=1.0,
                talk_seconds=2.0,
            ),
        ],
    )
    kinds = [(e["type"], e["user"]["id"]) for e in speaker_events(touching)]
    assert kinds[1:3] == [("stopped_speaking", "u-ana"), ("started_speaking", "u-bo")]


def test_compact_words_go_to_the_stretch_they_were_cut_from_on_the_meeting_clock() -> None:
    words = [
        TimedWord(text="Let's", start=0.2, end=0.5),
        TimedWord(text="start.", start=0.5, end=0.9),
        TimedWord(text="Wait,", start=3.3, end=3.6),  # Bo's stretch: meeting 12.0 + 0.2
        TimedWord(text="one", start=3.6, end=3.8),
        TimedWord(text="question.", start=3.8, end=4.3),
        TimedWord(text="Sure.", start=5.9, end=6.3),  # Ana's second stretch: 40.5 + 0.2
    ]
    lines = attribute_words(compact_map(), words)
    assert [(line.speaker_id, line.start_seconds, line.text) for line in lines] == [
        ("u-ana", 10.2, "Let's start."),
        ("u-bo", 12.2, "Wait, one question."),
        ("u-ana", 40.7, "Sure."),
    ]


def test_compact_a_word_in_a_gap_goes_to_the_nearest_stretch() -> None:
    lines = attribute_words(compact_map(), [TimedWord(text="um", start=3.02, end=3.08)])
    assert lines[0].speaker_id == "u-ana"


def test_compact_map_refuses_overlapping_segments_and_unknown_speakers() -> None:
    base = compact_map().model_dump()
    overlapping = dict(base)
    overlapping["segments"] = [dict(s) for s in base["segments"]]
    overlapping["segments"][1]["output_start"] = 2.5
    with pytest.raises(ValidationError, match="must not overlap"):
        SegmentMap.model_validate(overlapping)
    unknown = dict(base)
    unknown["segments"] = [dict(s) for s in base["segments"]]
    unknown["segments"][0]["speaker"] = "u-nobody"
    with pytest.raises(ValidationError, match="unknown speaker"):
        SegmentMap.model_validate(unknown)


def test_compact_map_round_trips_and_sums_talk_time() -> None:
    segment_map = compact_map()
    assert SegmentMap.from_json(segment_map.to_json()) == segment_map
    assert segment_map.talk_seconds() == {"u-ana": 5.75, "u-bo": 2.25}


def test_speaker_ids_are_stable_per_person() -> None:
    assert speaker_id("Ana", "ANA@example.com ") == speaker_id("Ana R.", "ana@example.com")
    assert speaker_id("Bo  Chen", None) == speaker_id("bo chen", "")
    assert speaker_id("Bo Chen", None) != speaker_id("Bo Chan", None)


def test_the_map_lives_next_to_the_merged_file() -> None:
    assert segment_map_key("merged/abc/run-1.flac") == "merged/abc/run-1.segments.json"


def test_compact_speakers_arrived_only_when_every_message_names_one_of_ours() -> None:
    segment_map = compact_map()
    applied = {
        "messages": [
            {"text": "a", "from": {"id": "1", "name": "Ana Ruiz-Soto", "email": "ana@example.com"}},
            {"text": "b", "from": {"id": "2", "name": "Bo Chen"}},
        ]
    }
    assert speakers_arrived(applied, segment_map)
    pending = {"messages": [*applied["messages"], {"text": "c", "from": {}}]}
    assert not speakers_arrived(pending, segment_map)
    generic = {"messages": [{"text": "c", "from": {"name": "Speaker 1"}}]}
    assert not speakers_arrived(generic, segment_map)


class _Conversation:
    """A provider whose transcript attributes everything to one generic speaker."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.messages = messages

    def conversation(self, conversation_id: str, part: str) -> dict[str, Any]:
        if part == "messages":
            return {"messages": self.messages}
        if part == "analytics":
            return {"members": [{"name": "Speaker 1", "talkTime": {"seconds": 99.0}}]}
        if part == "members":
            return {"members": [{"name": "Speaker 1"}]}
        if part == "":
            return {"startTime": "2026-11-30T10:00:00.000Z"}
        key = {"action-items": "actionItems", "follow-ups": "followUps"}.get(part, part)
        return {key: []}

    def create_experience(self, *args: Any, **kwargs: Any) -> None:
        return None


def test_compact_notes_take_speakers_times_and_talk_time_from_the_map() -> None:
    word = lambda text, start, end: {"word": text, "timeOffset": start, "duration": end - start}  # noqa: E731
    speech = _Conversation(
        [
            {
                "text": "Let's start. Wait,",  # one provider message across two stretches
                "from": {"name": "Speaker 1"},
                "timeOffset": 0.2,
                "duration": 3.4,
                "words": [
                    word("Let's", 0.2, 0.5),
                    word("start.", 0.5, 0.9),
                    word("Wait,", 3.3, 3.6),
                ],
            },
            {"text": "Sure.", "from": {"name": "Speaker 1"}, "timeOffset": 5.9, "duration": 0.4},
        ]
    )
    recording = Recording(
        meeting_uuid="m1",
        meeting_id="1",
        start_time="2026-11-30T10:00:00Z",
        conversation_id="c1",
    )
    document = gather_insights(
        recording,
        speech,  # type: ignore[arg-type]
        now=datetime(2026, 11, 30, 11, tzinfo=UTC),
        summary=[],
        link_lifetime_seconds=3600,
        segment_map=compact_map(),
    )
    assert [(u.speaker, u.start_seconds, u.text) for u in document.transcript] == [
        ("Ana Ruiz-Soto", 10.2, "Let's start."),
        ("Bo Chen", 12.2, "Wait,"),
        ("Ana Ruiz-Soto", 40.7, "Sure."),
    ]
    talk = {s.name: (s.talk_seconds, s.talk_percent, s.email) for s in document.speakers}
    assert talk == {
        "Ana Ruiz-Soto": (5.8, 71.9, "ana@example.com"),
        "Bo Chen": (2.2, 28.1, None),
    }
