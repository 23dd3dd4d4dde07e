"""The synthetic meeting generator: real audio whose timing and script are exactly known."""

from __future__ import annotations

import base64
import itertools
import json
import math
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sandbox import synth
from sandbox.registry import MeetingRegistry, ScriptLine
from sandbox.synth import (
    PARTICIPANT_FILE_PREFIX,
    SILENCEDETECT_NOISE_DB,
    SyntheticMeeting,
    build_recording_completed,
    synthesize_meeting,
)

pytestmark = pytest.mark.integration

TOLERANCE_S = 0.05
BASE_URL = "http://zoom.test"

# Shared with test_fake_zoom.py so the session generates this meeting once.
MEETING_PARAMS: dict[str, Any] = {"speakers": 3, "duration_s": 40, "seed": 11}


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "synth"


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> MeetingRegistry:
    return MeetingRegistry(tmp_path_factory.mktemp("registry"))


@pytest.fixture(scope="session")
def meeting(synth_dir: Path, registry: MeetingRegistry) -> SyntheticMeeting:
    return synthesize_meeting(**MEETING_PARAMS, workdir=synth_dir, registry=registry)


def probe(path: Path) -> dict[str, Any]:
    output = subprocess.run(
        [
            *("ffprobe", "-v", "error", "-of", "json"),
            *(
                "-show_entries",
                "stream=codec_name,channels,sample_rate:format=format_name,duration",
            ),
            str(path),
        ],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(output)
    return result


def speech_spans(path: Path) -> list[tuple[float, float]]:
    """Non-silent spans of a file as ffmpeg's silencedetect sees them (complement of silence)."""
    duration = float(probe(path)["format"]["duration"])
    log = subprocess.run(
        [
            *("ffmpeg", "-hide_banner", "-nostats", "-i", str(path)),
            *("-af", f"silencedetect=noise={SILENCEDETECT_NOISE_DB}dB:d=0.4", "-f", "null", "-"),
        ],
        capture_output=True,
        check=True,
        text=True,
    ).stderr
    starts = [float(v) for v in re.findall(r"silence_start: (-?[\d.]+)", log)]
    ends = [float(v) for v in re.findall(r"silence_end: ([\d.]+)", log)]
    spans: list[tuple[float, float]] = []
    cursor = 0.0
    for index, start in enumerate(starts):
        if start > cursor:
            spans.append((cursor, start))
        cursor = ends[index] if index < len(ends) else duration
    if cursor < duration:
        spans.append((cursor, duration))
    return spans


def assert_spans_match(spans: list[tuple[float, float]], lines: list[ScriptLine]) -> None:
    assert len(spans) == len(lines), (spans, lines)
    for (start, end), line in zip(spans, lines, strict=True):
        assert start == pytest.approx(line.start, abs=TOLERANCE_S), line
        assert end == pytest.approx(line.end, abs=TOLERANCE_S), line


def test_every_file_is_mono_aac_in_an_m4a_container(meeting: SyntheticMeeting) -> None:
    for item in [meeting.audio_only, *(p.audio for p in meeting.participants)]:
        info = probe(item.path)
        (stream,) = info["streams"]
        assert stream["codec_name"] == "aac"
        assert stream["channels"] == 1
        assert int(stream["sample_rate"]) == meeting.sample_rate
        assert "m4a" in info["format"]["format_name"]
        expected = (item.recording_end - item.recording_start).total_seconds()
        assert float(info["format"]["duration"]) == pytest.approx(expected, abs=TOLERANCE_S)
        assert item.file_size == item.path.stat().st_size


def test_participants_join_late_and_one_leaves_early(meeting: SyntheticMeeting) -> None:
    first, *others = meeting.participants
    assert first.join_offset_s == 0
    assert first.audio.recording_start == meeting.start_time
    joins = [p.join_offset_s for p in others]
    assert all(0 < join <= 0.2 * meeting.duration_s for join in joins)
    assert len(set(joins)) == len(joins)
    assert any(p.leave_offset_s <= 0.8 * meeting.duration_s for p in others)
    for participant in meeting.participants:
        start = meeting.start_time + timedelta(seconds=participant.join_offset_s)
        assert participant.audio.recording_start == start
        assert participant.audio.file_name == PARTICIPANT_FILE_PREFIX + participant.name


def test_registered_lines_match_silencedetect_per_participant(
    meeting: SyntheticMeeting, registry: MeetingRegistry
) -> None:
    scripted = registry.get(meeting.topic)
    assert scripted is not None
    assert scripted.uuid == meeting.uuid
    assert scripted.speakers == meeting.speakers
    for participant in meeting.participants:
        lines = [line for line in scripted.lines if line.speaker == participant.name]
        assert lines, f"{participant.name} never speaks"
        shift = participant.join_offset_s
        spans = [(a + shift, b + shift) for a, b in speech_spans(participant.audio.path)]
        assert_spans_match(spans, lines)


def test_mixed_audio_holds_every_line_on_the_meeting_timeline(meeting: SyntheticMeeting) -> None:
    assert_spans_match(speech_spans(meeting.audio_only.path), list(meeting.lines))


def test_turns_never_overlap_and_stay_inside_presence(meeting: SyntheticMeeting) -> None:
    lines = sorted(meeting.lines, key=lambda line: line.start)
    for before, after in itertools.pairwise(lines):
        assert after.start - before.end >= synth.MIN_TURN_GAP_S
    for line in lines:
        participant = meeting.participant(line.speaker)
        assert participant.join_offset_s <= line.start < line.end <= participant.leave_offset_s


def test_sentence_pool_has_questions_and_commitments() -> None:
    assert sum(text.endswith("?") for text in synth.SENTENCES) >= 5
    assert "I will send the report by Friday." in synth.SENTENCES
    assert "Let's review the budget next week." in synth.SENTENCES


def test_recording_completed_payload_is_shaped_like_zooms(meeting: SyntheticMeeting) -> None:
    event = build_recording_completed(
        meeting, base_url=BASE_URL, download_token="token", event_ts_ms=1_700_000_000_000
    )
    assert event["event"] == "recording.completed"
    assert event["event_ts"] == 1_700_000_000_000
    assert event["download_token"] == "token"
    assert event["payload"]["account_id"] == meeting.account_id
    obj = event["payload"]["object"]
    assert obj["uuid"] == meeting.uuid
    assert obj["id"] == meeting.meeting_number
    assert obj["host_email"] == "host@example.com"
    assert obj["type"] == 2
    assert obj["start_time"] == meeting.start_time.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert obj["duration"] == math.ceil(meeting.duration_s / 60)

    by_type = {f["file_type"]: f for f in obj["recording_files"]}
    assert by_type["MP4"]["recording_type"] == "shared_screen_with_speaker_view"
    assert by_type["M4A"]["recording_type"] == "audio_only"
    assert by_type["M4A"]["meeting_id"] == meeting.uuid
    assert not {"id", "status", "file_size", "recording_type"} & set(by_type["TIMELINE"])

    participant_files = obj["participant_audio_files"]
    assert [f["file_name"] for f in participant_files] == [
        f"Audio only - {name}" for name in meeting.speakers
    ]
    for entry, participant in zip(participant_files, meeting.participants, strict=True):
        assert entry["file_size"] == participant.audio.path.stat().st_size
        assert entry["status"] == "completed"
        assert "recording_type" not in entry
        assert entry["download_url"] == (
            f"{BASE_URL}/rec/webhook_download/{participant.audio.download_key}"
        )
    sized = [f for f in obj["recording_files"] if "file_size" in f] + participant_files
    assert obj["total_size"] == sum(f["file_size"] for f in sized)
    assert obj["recording_count"] == len(sized) == 2 + len(meeting.participants)

    bare = build_recording_completed(
        meeting, base_url=BASE_URL, download_token="t", with_participant_files=False
    )["payload"]["object"]
    assert "participant_audio_files" not in bare
    assert bare["recording_count"] == 2
    assert bare["total_size"] == meeting.video.file_size + meeting.audio_only.file_size


def test_default_uuid_is_zoom_like(meeting: SyntheticMeeting) -> None:
    assert len(meeting.uuid) == 24
    assert meeting.uuid.endswith("==")
    assert len(base64.b64decode(meeting.uuid)) == 16


def test_cache_hit_reuses_files_without_running_espeak_or_ffmpeg(
    meeting: SyntheticMeeting,
    synth_dir: Path,
    registry: MeetingRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files = [item.path for item in meeting.files()]
    mtimes = [path.stat().st_mtime_ns for path in files]
    monkeypatch.setattr(synth, "ESPEAK_BINARY", "/nonexistent/espeak-ng")
    monkeypatch.setattr(synth, "FFMPEG_BINARY", "/nonexistent/ffmpeg")

    again = synthesize_meeting(**MEETING_PARAMS, workdir=synth_dir, registry=registry)

    assert again.from_cache
    assert [item.path for item in again.files()] == files
    assert [path.stat().st_mtime_ns for path in files] == mtimes
    assert again.lines == meeting.lines
    assert again.uuid == meeting.uuid


def test_generation_is_deterministic_and_shares_renders(
    meeting: SyntheticMeeting,
    synth_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(synth, "ESPEAK_BINARY", "/nonexistent/espeak-ng")

    twin = synthesize_meeting(**MEETING_PARAMS, workdir=tmp_path, cache_dir=synth_dir / ".renders")

    assert not twin.from_cache
    assert twin.uuid == meeting.uuid
    assert twin.lines == meeting.lines
    for ours, theirs in zip(twin.participants, meeting.participants, strict=True):
        assert (ours.join_offset_s, ours.leave_offset_s) == (
            theirs.join_offset_s,
            theirs.leave_offset_s,
        )
        assert ours.audio.path.read_bytes() == theirs.audio.path.read_bytes()


def test_a_damaged_cache_entry_is_regenerated(synth_dir: Path, tmp_path: Path) -> None:
    renders = synth_dir / ".renders"
    first = synthesize_meeting(**MEETING_PARAMS, workdir=tmp_path, cache_dir=renders)
    damaged = first.participants[1].audio.path
    original = damaged.read_bytes()
    damaged.unlink()

    again = synthesize_meeting(**MEETING_PARAMS, workdir=tmp_path, cache_dir=renders)

    assert not again.from_cache
    assert again.participants[1].audio.path.read_bytes() == original


def test_explicit_identity_and_non_ascii_names(synth_dir: Path, tmp_path: Path) -> None:
    registry = MeetingRegistry(tmp_path / "registry")
    names = ["Zoë Ødegård", "李雷", "Ana Ruiz-Soto"]
    start = datetime(2024, 2, 29, 23, 59, 30, 123456, tzinfo=UTC)

    meeting = synthesize_meeting(
        speakers=names,
        duration_s=24,
        seed=3,
        workdir=synth_dir,
        topic="Planning — Q3 (Zoë)",
        start_time=start,
        uuid="/ab//cd+ef==",
        registry=registry,
    )

    assert meeting.uuid == "/ab//cd+ef=="
    assert meeting.start_time == start.replace(microsecond=0)
    assert meeting.speakers == names
    assert [p.audio.file_name for p in meeting.participants] == [
        PARTICIPANT_FILE_PREFIX + name for name in names
    ]
    assert meeting.participants[0].email == "host@example.com"
    assert meeting.participants[1].email == "user1@example.com"
    assert meeting.participants[2].email is None
    scripted = registry.get("Planning — Q3 (Zoë)")
    assert scripted is not None
    line = scripted.lines[0]
    assert registry.line_at(scripted.topic, line.speaker, line.start, line.end) == line


def test_rejects_meetings_too_short_or_with_duplicate_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="duration_s"):
        synthesize_meeting(speakers=2, duration_s=5, seed=1, workdir=tmp_path)
    with pytest.raises(ValueError, match="unique"):
        synthesize_meeting(speakers=["Bo", "Bo"], duration_s=30, seed=1, workdir=tmp_path)
    with pytest.raises(ValueError, match="timezone-aware"):
        synthesize_meeting(
            speakers=2, duration_s=30, seed=1, workdir=tmp_path, start_time=datetime(2024, 1, 1)
        )
