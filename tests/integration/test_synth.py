"""The synthetic meeting generator: real audio whose timing and script are exactly known."""

from __future__ import annotations

import array
import base64
import hashlib
import itertools
import json
import math
import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sandbox import synth
from sandbox.fingerprint import template_key
from sandbox.registry import MeetingRegistry, ScriptedMeeting, ScriptLine
from sandbox.synth import (
    PARTICIPANT_FILE_PREFIX,
    SILENCEDETECT_NOISE_DB,
    SyntheticMeeting,
    build_recording_completed,
    realism_report,
    synthesize_meeting,
)

pytestmark = pytest.mark.integration

TOLERANCE_S = 0.05
BASE_URL = "http://zoom.test"

# Shared with test_fake_zoom.py so the session generates this meeting once.
MEETING_PARAMS: dict[str, Any] = {"speakers": 3, "duration_s": 40, "seed": 11}
REALISTIC_PARAMS: dict[str, Any] = {"speakers": 4, "duration_s": 240, "seed": 5, "realistic": True}

# MEETING_PARAMS as generated before the realistic mode existed: its cache key (a function of the
# parameters alone) and the SHA-256 of its manifest and files in `files()` order. The files also
# depend on the encoder and the voices, so the digest is compared only under the tools it was
# computed with; the key and the manifest's shape are compared everywhere.
DEFAULT_KEY = "2b17d95cfc4fb93094c47fd6"
DEFAULT_DIGEST = "e2cb2c460eb856611519958631d1b1924a5e363ec93514c812ef273a6a94fae8"
DIGEST_TOOLS = ("ffmpeg version 5.1.9-0+deb12u1 ", "eSpeak NG text-to-speech: 1.51 ")
DECODE_RATE = 16000


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "synth"


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> MeetingRegistry:
    return MeetingRegistry(tmp_path_factory.mktemp("registry"))


@pytest.fixture(scope="session")
def meeting(synth_dir: Path, registry: MeetingRegistry) -> SyntheticMeeting:
    return synthesize_meeting(**MEETING_PARAMS, workdir=synth_dir, registry=registry)


@pytest.fixture(scope="session")
def realistic(synth_dir: Path, registry: MeetingRegistry) -> SyntheticMeeting:
    return synthesize_meeting(**REALISTIC_PARAMS, workdir=synth_dir, registry=registry)


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
    with pytest.raises(ValueError, match="two speakers"):
        synthesize_meeting(speakers=1, duration_s=30, seed=1, workdir=tmp_path, realistic=True)


# --- realistic mode ---------------------------------------------------------------------------


def decode(path: Path) -> array.array[int]:
    """A track as mono s16le samples at DECODE_RATE."""
    pcm = array.array("h")
    pcm.frombytes(
        subprocess.run(
            [
                *("ffmpeg", "-hide_banner", "-loglevel", "error", "-i", str(path)),
                *("-f", "s16le", "-ac", "1", "-ar", str(DECODE_RATE), "-"),
            ],
            capture_output=True,
            check=True,
        ).stdout
    )
    if sys.byteorder != "little":
        pcm.byteswap()
    return pcm


def level_dbfs(pcm: array.array[int], start_s: float, end_s: float) -> float:
    """RMS of [start_s, end_s) of a decoded track in dBFS (-inf for digital silence)."""
    window = pcm[round(start_s * DECODE_RATE) : round(end_s * DECODE_RATE)]
    assert len(window) > 0
    mean_square = sum(v * v for v in window) / len(window)
    return 10 * math.log10(mean_square / 32768**2) if mean_square else -math.inf


def longest_zero_run(pcm: array.array[int]) -> int:
    longest = run = 0
    for value in pcm:
        run = run + 1 if value == 0 else 0
        longest = max(longest, run)
    return longest


def quiet_spans(
    sounds: list[tuple[float, float]], end_s: float, margin_s: float = 0.15
) -> list[tuple[float, float]]:
    """[0, end_s) minus the sounds, each widened by margin_s (AAC smears edges); spans >= 0.3 s."""
    spans = []
    cursor = 0.0
    for start, end in sorted(sounds):
        if start - margin_s - cursor >= 0.3:
            spans.append((cursor, start - margin_s))
        cursor = max(cursor, end + margin_s)
    if end_s - cursor >= 0.3:
        spans.append((cursor, end_s))
    return spans


def grid_shares(meeting: SyntheticMeeting) -> tuple[float, float, int]:
    """Silence share of the meeting, overlap share of speech and the most voices at once, counted
    on a 10 ms grid (independently of `realism_report`)."""
    voices = [0] * (meeting.duration_s * 100)
    for line in meeting.lines:
        for tick in range(math.ceil(line.start * 100), math.ceil(line.end * 100)):
            voices[tick] += 1
    speech = sum(1 for v in voices if v)
    return (
        (len(voices) - speech) / len(voices),
        sum(1 for v in voices if v >= 2) / speech,
        max(voices),
    )


def test_realistic_meeting_has_pauses_overlaps_and_backchannels(
    realistic: SyntheticMeeting,
) -> None:
    silence, overlap, most = grid_shares(realistic)
    assert silence >= 0.15
    assert 0.10 <= overlap <= 0.15
    assert most == 2
    report = realism_report(realistic)
    assert report["silence_share"] == pytest.approx(silence, abs=0.005)
    assert report["overlap_share"] == pytest.approx(overlap, abs=0.005)

    speech = [line for line in realistic.lines if line.kind == "speech"]
    backchannels = [line for line in realistic.lines if line.kind == "backchannel"]
    assert report["lines"] == len(speech)
    assert report["backchannels"] == len(backchannels) >= 3
    for short in backchannels:
        assert short.text in synth.BACKCHANNELS
        assert short.end - short.start < 1.0
        assert any(
            host.speaker != short.speaker and host.start <= short.start and short.end <= host.end
            for host in speech
        ), short
    # Turn changes: some cut into the end of the line before, a few interrupt it for over a second.
    cuts = [
        before.end - after.start
        for before, after in itertools.combinations(speech, 2)
        if before.speaker != after.speaker and before.start < after.start < before.end
    ]
    assert len(cuts) >= 5
    assert any(cut >= 1.0 for cut in cuts)
    assert sum(cut < 1.0 for cut in cuts) > len(cuts) / 2


def test_realistic_speakers_never_overlap_themselves_or_talk_alone(
    realistic: SyntheticMeeting,
) -> None:
    for participant in realistic.participants:
        own = realistic.lines_of(participant.name)
        assert own, participant.name
        for before, after in itertools.pairwise(own):
            assert after.start >= before.end
        for line in own:
            assert participant.join_offset_s <= line.start < line.end <= participant.leave_offset_s
            company = [
                p
                for p in realistic.participants
                if p is not participant and p.join_offset_s <= line.start < p.leave_offset_s
            ]
            assert company, line


def test_realistic_noise_events_are_in_the_manifest_not_the_script(
    realistic: SyntheticMeeting, registry: MeetingRegistry
) -> None:
    kinds = Counter(n.kind for p in realistic.participants for n in p.noises)
    assert kinds["keyboard"] >= 2
    assert kinds["cough"] >= 2
    report = realism_report(realistic)
    assert (report["keyboard_events"], report["cough_events"]) == (
        kinds["keyboard"],
        kinds["cough"],
    )
    for participant in realistic.participants:
        own = realistic.lines_of(participant.name)
        for noise in participant.noises:
            assert participant.join_offset_s <= noise.start < noise.end
            assert noise.end <= participant.leave_offset_s
            if noise.kind == "cough":
                assert 0.2 <= noise.end - noise.start <= 0.4
            else:
                assert noise.kind == "keyboard"
                assert noise.end - noise.start >= 1.0
            assert all(line.end <= noise.start or noise.end <= line.start for line in own), noise
    raw = json.loads((realistic.directory / synth.MANIFEST_NAME).read_text(encoding="utf-8"))
    assert raw["realistic"] is True
    assert [
        [(n["kind"], n["start"], n["end"]) for n in p["noises"]] for p in raw["participants"]
    ] == [[(n.kind, n.start, n.end) for n in p.noises] for p in realistic.participants]
    scripted = registry.get(realistic.topic)
    assert scripted is not None
    assert scripted.lines == list(realistic.lines)
    assert {line.text for line in scripted.lines} <= {*synth.SENTENCES, *synth.BACKCHANNELS}


def test_realistic_tracks_have_a_noise_floor_noises_and_speech(
    realistic: SyntheticMeeting,
) -> None:
    for participant in realistic.participants:
        pcm = decode(participant.audio.path)
        shift = participant.join_offset_s
        window = participant.leave_offset_s - shift
        pcm = pcm[: window * DECODE_RATE]  # AAC pads a few ms past the end
        own = realistic.lines_of(participant.name)
        sounds = [(x.start - shift, x.end - shift) for x in [*own, *participant.noises]]
        quiet = quiet_spans(sounds, window)
        assert len(quiet) >= 5
        floors = [level_dbfs(pcm, start, end) for start, end in quiet]
        assert all(-75.0 < level < -50.0 for level in floors), (participant.name, floors)
        floor = max(floors)
        assert longest_zero_run(pcm) < DECODE_RATE // 100, participant.name  # no 10 ms
        for noise in participant.noises:
            level = level_dbfs(pcm, noise.start - shift, noise.end - shift)
            assert level >= floor + 10.0, (participant.name, noise, level, floor)
        for line in own:
            level = level_dbfs(pcm, line.start - shift, line.end - shift)
            assert level >= max(-35.0, floor + 20.0), (participant.name, line, level)
    mixed = decode(realistic.audio_only.path)[: realistic.duration_s * DECODE_RATE]
    assert longest_zero_run(mixed) < DECODE_RATE // 100
    for line in realistic.lines:
        assert level_dbfs(mixed, line.start, line.end) >= -35.0, line


def test_realistic_generation_is_deterministic_and_cached(
    realistic: SyntheticMeeting,
    synth_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(synth, "ESPEAK_BINARY", "/nonexistent/espeak-ng")
    renders = synth_dir / ".renders"

    twin = synthesize_meeting(**REALISTIC_PARAMS, workdir=tmp_path, cache_dir=renders)

    assert not twin.from_cache
    assert twin.realistic
    assert twin.cache_key == realistic.cache_key != DEFAULT_KEY
    assert twin.lines == realistic.lines
    for ours, theirs in zip(twin.files(), realistic.files(), strict=True):
        assert ours.path.read_bytes() == theirs.path.read_bytes(), ours.path.name
    assert [p.noises for p in twin.participants] == [p.noises for p in realistic.participants]

    monkeypatch.setattr(synth, "FFMPEG_BINARY", "/nonexistent/ffmpeg")
    again = synthesize_meeting(**REALISTIC_PARAMS, workdir=tmp_path, cache_dir=renders)

    assert again.from_cache
    assert again.realistic
    assert again.lines == twin.lines
    assert [p.noises for p in again.participants] == [p.noises for p in twin.participants]


def test_default_meetings_are_unchanged_by_the_realistic_mode(meeting: SyntheticMeeting) -> None:
    assert meeting.cache_key == DEFAULT_KEY
    assert not meeting.realistic
    manifest = (meeting.directory / synth.MANIFEST_NAME).read_bytes()
    raw = json.loads(manifest)
    assert "realistic" not in raw
    assert all("noises" not in p for p in raw["participants"])
    assert all(len(line) == 4 for line in raw["lines"])
    assert {line.kind for line in meeting.lines} == {"speech"}
    assert all(not p.noises for p in meeting.participants)
    versions = [
        subprocess.run(command, capture_output=True, text=True).stdout
        for command in (["ffmpeg", "-version"], ["espeak-ng", "--version"])
    ]
    if all(v.startswith(tool) for v, tool in zip(versions, DIGEST_TOOLS, strict=True)):
        digest = hashlib.sha256(manifest)
        for item in meeting.files():
            digest.update(item.path.read_bytes())
        assert digest.hexdigest() == DEFAULT_DIGEST


def test_script_documents_without_a_kind_read_as_speech(tmp_path: Path) -> None:
    older = {
        "uuid": "u",
        "topic": "t",
        "speakers": ["A", "B"],
        "lines": [{"speaker": "A", "text": "Hello.", "start": 1.0, "end": 2.5}],
    }
    assert ScriptedMeeting.from_json(json.dumps(older)).lines == [
        ScriptLine("A", "Hello.", 1.0, 2.5, "speech")
    ]
    registry = MeetingRegistry(tmp_path)
    lines = [
        ScriptLine("A", "Hello there.", 1.0, 3.0),
        ScriptLine("B", "Yeah.", 2.0, 2.4, kind="backchannel"),
    ]
    registry.register(ScriptedMeeting(uuid="u", topic="t", speakers=["A", "B"], lines=lines))
    stored = registry.get("t")
    assert stored is not None
    assert stored.lines == lines


# --- templates: what the fake Symbl recognises lines by ----------------------------------------


def test_every_line_placed_registers_its_template_with_word_spans(
    meeting: SyntheticMeeting, realistic: SyntheticMeeting, registry: MeetingRegistry
) -> None:
    for generated in (meeting, realistic):
        templates = registry.templates(generated.topic)
        assert templates == generated.templates()
        said = {(line.speaker, line.text) for line in generated.lines}
        assert [(t.speaker, t.text) for t in templates] == list(
            dict.fromkeys((line.speaker, line.text) for line in generated.lines)
        )
        assert len(templates) == len(said)
        for template in templates:
            assert template.key == template_key(template.speaker, template.text)
            assert template.rate == synth.RENDER_RATE
            duration = Path(template.audio).stat().st_size / 2 / template.rate
            for line in generated.lines:
                if (line.speaker, line.text) == (template.speaker, template.text):
                    assert line.end - line.start == pytest.approx(duration, abs=1e-3)
            words = template.words
            assert " ".join(w.text for w in words) == template.text
            assert words[0].start == 0.0
            assert words[-1].end == pytest.approx(duration, abs=1e-4)
            for word in words:
                assert word.start < word.end
            for before, after in itertools.pairwise(words):
                assert before.end <= after.start
    kinds = {line.kind for line in realistic.lines}
    assert kinds == {"speech", "backchannel"}


def test_word_spans_are_espeak_ngs_own_and_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    voice = synth.VOICES[5]  # joins "on the" into one word event
    text = "Let's start with a quick update on the migration."
    template = synth.line_template("Fatima", text, voice, tmp_path)
    spans = {w.text: w for w in template.words}
    assert list(spans) == text.split()
    assert spans["on"].end - spans["on"].start >= 0.04
    assert spans["the"].end - spans["the"].start >= 0.04
    pcm = array.array("h", Path(template.audio).read_bytes())
    loud = math.ceil(32768 * 10 ** (synth.SPEECH_TRIM_DBFS / 20))
    for word in template.words:  # each span starts and ends on its own audio (+-0.1 ms)
        for edge in (round(word.start * synth.RENDER_RATE), round(word.end * synth.RENDER_RATE)):
            assert max(abs(v) for v in pcm[max(0, edge - 3) : edge + 3]) >= loud, word
    comma = synth.line_template("Ana", synth.SENTENCES[0], synth.VOICES[0], tmp_path).words
    assert comma[2].text == "everyone,"
    assert comma[3].start - comma[2].end >= 0.1  # the pause after the comma is in no word

    def unavailable(*_: Any) -> Any:
        raise AssertionError("word spans were computed again")

    monkeypatch.setattr(synth, "_espeak_word_starts", unavailable)
    assert synth.line_template("Fatima", text, voice, tmp_path) == template


def test_word_spans_refuse_a_library_render_unlike_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = synth._espeak_word_starts

    def louder(text: str, voice: synth.Voice) -> tuple[array.array[int], list[tuple[int, int]]]:
        samples, words = real(text, voice)
        return array.array("h", (max(-32768, min(32767, 2 * v)) for v in samples)), words

    monkeypatch.setattr(synth, "_espeak_word_starts", louder)
    with pytest.raises(RuntimeError, match="differently"):
        synth.line_template("Ana", "Thanks, that is really helpful.", synth.VOICES[1], tmp_path)
