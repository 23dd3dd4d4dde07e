"""The Symbl adapter's speaker steps for a compact meeting, as the notifier runs them: events
sent, seen, bounded, crash-safe."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest

from services.core.errors import StateConflict
from services.core.recordings import Recording, RecordingStore, State
from services.core.settings import NotifierSettings
from services.core.speech.provider import InsightsRequest, SpeechAnalytics, Wait
from services.core.speech.segment_map import MapSpeaker, Segment, SegmentMap, speaker_events
from services.core.speech.symbl import SymblClient
from services.core.speech.symbl_provider import SPEAKER_WAIT, SymblProvider, SymblWaits
from services.notifier.notify import MeetingProgress, NotifierDeps, _wait

MAP = SegmentMap(
    layout="compact",
    duration_seconds=5.0,
    meeting_seconds=30.0,
    speakers=[
        MapSpeaker(id="u-a", name="Ana", email="ana@example.com"),
        MapSpeaker(id="u-b", name="Bo"),
    ],
    segments=[
        Segment(
            speaker="u-a", output_start=0.0, output_end=2.0, timeline_start=1.0, talk_seconds=1.8
        ),
        Segment(
            speaker="u-b", output_start=2.1, output_end=5.0, timeline_start=4.0, talk_seconds=2.5
        ),
    ],
)
UNNAMED = {"messages": [{"text": "hello", "from": {}}]}
NAMED = {"messages": [{"text": "hello", "from": {"name": "Ana", "email": "ana@example.com"}}]}


class Store:
    """The recordings table for one TRANSCRIBED meeting; `fail_next` makes a write fail as a
    crash would (after the provider call it follows)."""

    def __init__(self) -> None:
        self.item = Recording(
            meeting_uuid="m",
            meeting_id="1",
            start_time="2026-11-30T10:00:00Z",
            state=State.TRANSCRIBED,
        )
        self.fail_next = False

    def update_fields(
        self,
        uuid: str,
        expected: State,
        updates: dict[str, Any],
        *,
        count_attempt: str | None = None,
    ) -> Recording:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("table unreachable")
        if self.item.state != expected:
            raise StateConflict("moved on", actual=self.item.state)
        attempts = dict(self.item.attempts)
        if count_attempt:
            attempts[count_attempt] = attempts.get(count_attempt, 0) + 1
        self.item = self.item.model_copy(update={**updates, "attempts": attempts})
        return self.item


class Speech:
    def __init__(self, transcripts: list[dict[str, Any]]) -> None:
        self.puts: list[tuple[str, list[dict[str, Any]]]] = []
        self.transcripts = transcripts

    def put_speaker_events(self, conversation_id: str, events: list[dict[str, Any]]) -> None:
        self.puts.append((conversation_id, events))

    def conversation(self, conversation_id: str, part: str) -> dict[str, Any]:
        assert part == "messages"
        return self.transcripts.pop(0) if len(self.transcripts) > 1 else self.transcripts[0]


class Queue:
    def __init__(self) -> None:
        self.sent: list[tuple[Any, int]] = []

    def send(self, message: Any, *, delay_seconds: int = 0) -> None:
        self.sent.append((message, delay_seconds))


NOW = datetime(2026, 11, 30, 11, tzinfo=UTC)


def deps(store: Store, speech: Speech, queue: Queue, max_checks: int = 3) -> NotifierDeps:
    provider = SymblProvider(
        cast(SymblClient, speech),
        SymblWaits(speaker_max_checks=max_checks, speaker_retry_seconds=7),
    )
    return NotifierDeps(
        settings=NotifierSettings.model_construct(),
        store=cast(RecordingStore, store),
        speech=cast(SpeechAnalytics, provider),
        s3=None,
        mailer=None,  # type: ignore[arg-type]
        render=None,  # type: ignore[arg-type]
        sns=None,
        notify_queue=queue,
        link_key=lambda: "k" * 32,
        clock=lambda: NOW,
    )


def _give_speakers(
    recording: Recording, conversation: str, segment_map: SegmentMap, d: NotifierDeps
) -> str | None:
    """One notifier delivery's speaker step: None when the notes may go on, else what the
    notifier did with the provider's wait."""
    progress = MeetingProgress(
        cast(RecordingStore, d.store), recording.meeting_uuid, recording, d.clock
    )
    request = InsightsRequest(recording, segment_map, NOW, 3600, progress)
    provider = cast(SymblProvider, d.speech)
    waiting = provider._give_speakers(request, conversation, segment_map)
    if isinstance(waiting, Wait):
        return _wait(progress.recording, waiting, d)
    return None


def test_compact_events_go_once_and_the_notes_go_on_when_the_transcript_names_them() -> None:
    store, speech, queue = Store(), Speech([NAMED]), Queue()
    assert _give_speakers(store.item, "conv", MAP, deps(store, speech, queue)) is None
    assert speech.puts == [("conv", speaker_events(MAP))]
    assert store.item.speakers_sent_at and store.item.speakers_confirmed_at
    # A later delivery does not send them again.
    assert _give_speakers(store.item, "conv", MAP, deps(store, speech, queue)) is None
    assert len(speech.puts) == 1 and queue.sent == []


def test_compact_a_crash_after_sending_only_sends_the_same_events_again() -> None:
    store, speech, queue = Store(), Speech([NAMED]), Queue()
    store.fail_next = True
    with pytest.raises(ConnectionError):
        _give_speakers(store.item, "conv", MAP, deps(store, speech, queue))
    assert not store.item.speakers_sent_at
    assert _give_speakers(store.item, "conv", MAP, deps(store, speech, queue)) is None
    assert [body for _, body in speech.puts] == [speaker_events(MAP)] * 2
    assert store.item.speakers_confirmed_at


def test_compact_waits_with_delayed_requests_then_goes_on_without_confirmation() -> None:
    store, speech, queue = Store(), Speech([UNNAMED]), Queue()
    outcomes = []
    for _ in range(4):
        outcomes.append(_give_speakers(store.item, "conv", MAP, deps(store, speech, queue)))
    assert outcomes == ["waiting: speakers not applied yet"] * 3 + [None]
    assert store.item.attempts[SPEAKER_WAIT] == 3
    assert [delay for _, delay in queue.sent] == [7, 7, 7]
    assert len(speech.puts) == 1 and not store.item.speakers_confirmed_at


def test_compact_a_late_arrival_is_seen_on_a_later_look() -> None:
    store, speech, queue = Store(), Speech([UNNAMED, NAMED]), Queue()
    assert (
        _give_speakers(store.item, "conv", MAP, deps(store, speech, queue))
        == "waiting: speakers not applied yet"
    )
    assert _give_speakers(store.item, "conv", MAP, deps(store, speech, queue)) is None
    assert store.item.speakers_confirmed_at and store.item.attempts[SPEAKER_WAIT] == 1
