"""The compact layout with real ffmpeg and the real silero-vad model: speech detection on a
realistic synthetic meeting (noise floor, overlaps, backchannels, typing, coughs), and the merge
through moto and the fake Zoom, down to the samples of the file it writes."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from sandbox.aws_resources import ProvisionedStack
from sandbox.credentials import SandboxCredentials
from sandbox.intervals import Interval, intersection, total, union
from sandbox.synth import SyntheticMeeting, synthesize_meeting
from services.core import aws
from services.core.errors import PermanentError
from services.core.recordings import State
from services.core.settings import MergerSettings
from services.core.speech.segment_map import (
    MapSpeaker,
    SegmentMap,
    load_segment_map,
    segment_map_key,
    speaker_id,
)
from services.merger import compact, speech
from services.merger.ffmpeg_plan import TrackSource, build_decode_command
from services.merger.merge import merge_meeting
from services.merger.mixdown import MixdownError, MixdownInputError
from services.merger.speech import SAMPLE_RATE, DetectionParams, TrackSpeech, detect_speech
from tests.conftest import ROOT
from tests.support.merger_rig import MergerRig, merger_rig, probe

pytestmark = pytest.mark.compact

CACHE = ROOT / ".cache" / "synth"
DEFAULTS = {name: field.default for name, field in MergerSettings.model_fields.items()}
PAD_BEFORE = DEFAULTS["compact_pad_before_seconds"]
PAD_AFTER = DEFAULTS["compact_pad_after_seconds"]


@pytest.fixture(scope="session")
def realistic3() -> SyntheticMeeting:
    """Three speakers, 2.5 minutes, realistic: the compact tests' meeting, cached."""
    return synthesize_meeting(
        speakers=["Ana Ruiz-Soto", "Bo Chen", "Zoë Ødegård"],
        duration_s=150,
        seed=31,
        workdir=CACHE,
        topic="Compact merge test: three speakers",
        realistic=True,
    )


@pytest.fixture
def rig(stack: ProvisionedStack, credentials: SandboxCredentials) -> Iterator[MergerRig]:
    with merger_rig(stack, credentials) as r:
        yield r


def offset_of(meeting: SyntheticMeeting, name: str) -> float:
    participant = meeting.participant(name)
    return (participant.audio.recording_start - meeting.start_time).total_seconds()


def sources(meeting: SyntheticMeeting) -> list[TrackSource]:
    return [
        TrackSource(
            key=p.audio.file_id,
            url=str(p.audio.path),
            offset_s=offset_of(meeting, p.name),
            duration_s=float(p.leave_offset_s - p.join_offset_s),
        )
        for p in meeting.participants
    ]


def params() -> DetectionParams:
    return DetectionParams(
        gate_db=DEFAULTS["speech_gate_db"],
        gate_min_dbfs=DEFAULTS["speech_gate_min_dbfs"],
        vad_threshold=DEFAULTS["speech_vad_threshold"],
        check_seconds=DEFAULTS["speech_check_seconds"],
        min_speech_seconds=DEFAULTS["compact_min_speech_seconds"],
        edge_db=DEFAULTS["speech_edge_db"],
    )


def layout() -> compact.LayoutParams:
    return compact.LayoutParams(
        pad_before_s=PAD_BEFORE,
        pad_after_s=PAD_AFTER,
        gap_s=DEFAULTS["compact_gap_seconds"],
        join_pause_s=DEFAULTS["compact_join_pause_seconds"],
    )


def word_spans(meeting: SyntheticMeeting) -> list[tuple[str, str, Interval]]:
    """(speaker, word, span on the meeting timeline) of every scripted word, from the renders'
    own word timings."""
    templates = {(t.speaker, t.text): t for t in meeting.templates()}
    return [
        (line.speaker, word.text, (line.start + word.start, line.start + word.end))
        for line in meeting.lines
        for word in templates[line.speaker, line.text].words
    ]


def decode(source: str | Path) -> np.ndarray:
    """16 kHz mono s16le samples, through the merger's own resample and downmix."""
    argv = build_decode_command(str(source), sample_rate=SAMPLE_RATE)
    out = subprocess.run(argv, capture_output=True, check=True).stdout
    return np.frombuffer(out, dtype="<i2")


def covered(span: Interval, spans: list[Interval]) -> bool:
    return total(intersection([span], union(spans))) >= (span[1] - span[0]) - 1e-6


# --- detection --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def detected(
    realistic3: SyntheticMeeting, tmp_path_factory: pytest.TempPathFactory
) -> list[TrackSpeech]:
    scratch = tmp_path_factory.mktemp("speech")
    return detect_speech(sources(realistic3), scratch, params(), timeout_s=120)


def test_compact_detection_keeps_every_scripted_line_after_padding(
    realistic3: SyntheticMeeting, detected: list[TrackSpeech]
) -> None:
    for participant, found in zip(realistic3.participants, detected, strict=True):
        assert found.key == participant.audio.file_id
        offset = offset_of(realistic3, participant.name)
        padded = [
            (max(0.0, s - PAD_BEFORE), min(found.duration_s, e + PAD_AFTER)) for s, e in found.runs
        ]
        lines = [
            (line.start - offset, line.end - offset)
            for line in realistic3.lines_of(participant.name)
        ]
        assert lines
        missing = [line for line in lines if not covered(line, padded)]
        assert not missing, (participant.name, missing)
        # and the detector is not "everything is speech": the silences stay out
        speech = total(union(lines))
        assert total(union(padded)) < speech * 1.3, participant.name


def test_compact_layout_at_the_defaults_is_shorter_than_the_meeting_and_clips_no_word(
    realistic3: SyntheticMeeting, detected: list[TrackSpeech]
) -> None:
    """The default padding, gap and join are small enough for the file to stay well under the
    meeting's length (24 % silence, 13 % of speech overlapped: the overlap is serialised), and
    with the detected runs' soft edges, large enough that every scripted word is in the file."""
    speakers = [MapSpeaker(id=p.name, name=p.name) for p in realistic3.participants]
    tracks = [
        compact.CompactTrack.of(found, speaker=p.name, offset_s=offset_of(realistic3, p.name))
        for p, found in zip(realistic3.participants, detected, strict=True)
    ]
    plan = compact.plan_compact(tracks, speakers, layout())
    segments = plan.segment_map.segments
    assert plan.duration_s <= 0.97 * realistic3.duration_s, plan.segment_map.breakdown
    assert plan.segment_map.breakdown.overlap > 0
    by_speaker = {
        p.name: [(s.timeline_start, s.timeline_end) for s in segments if s.speaker == p.name]
        for p in realistic3.participants
    }
    words = word_spans(realistic3)
    assert len(words) > 100
    clipped = [(who, word, span) for who, word, span in words if not covered(span, by_speaker[who])]
    assert not clipped


def test_compact_detection_rejects_typing_and_coughs(
    realistic3: SyntheticMeeting, detected: list[TrackSpeech]
) -> None:
    events = 0
    for participant, found in zip(realistic3.participants, detected, strict=True):
        offset = offset_of(realistic3, participant.name)
        lines = union(
            (line.start - offset, line.end - offset)
            for line in realistic3.lines_of(participant.name)
        )
        for noise in participant.noises:
            events += 1
            span = (noise.start - offset, noise.end - offset)
            for run in found.runs:
                if intersection([span], [run]):
                    # only a run that also holds this speaker's speech may touch a noise
                    assert intersection([run], lines), (participant.name, noise, run)
        assert found.candidates > len(found.runs), "the gate passed nothing for the check to drop"
    assert events >= 5


def test_compact_detection_leaves_the_decoded_pcm_for_the_layout(
    realistic3: SyntheticMeeting, detected: list[TrackSpeech]
) -> None:
    for participant, found in zip(realistic3.participants, detected, strict=True):
        expected = decode(participant.audio.path)
        pcm = np.fromfile(found.pcm_path, dtype="<i2")
        assert found.samples == len(pcm) == len(expected)
        assert np.array_equal(pcm, expected)
        assert (
            abs(found.duration_s - (participant.leave_offset_s - participant.join_offset_s)) < 0.1
        )


def test_compact_detection_failure_is_classified_and_leaves_no_scratch(
    realistic3: SyntheticMeeting, tmp_path: Path
) -> None:
    html = tmp_path / "page.m4a"
    html.write_text("<html><body>Sign in</body></html>")
    good = sources(realistic3)
    bad = TrackSource(key="html", url=str(html), offset_s=0.0, duration_s=10.0)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(MixdownInputError, match="ffmpeg failed"):
        detect_speech([*good, bad], scratch, params(), timeout_s=120)
    assert list(scratch.iterdir()) == []


def test_compact_write_failure_removes_the_scratch_pcm(
    realistic3: SyntheticMeeting, tmp_path: Path
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    found = detect_speech(sources(realistic3)[:1], scratch, params(), timeout_s=120)
    ana = MapSpeaker(id=speaker_id("Ana Ruiz-Soto", None), name="Ana Ruiz-Soto")
    tracks = [compact.CompactTrack.of(found[0], speaker=ana.id, offset_s=0.0)]
    assert found[0].runs and found[0].pcm_path.exists()
    with pytest.raises(MixdownError):
        compact.build_compact(
            found,
            tracks,
            [ana],
            compact.LayoutParams(0.15, 0.1, 0.1, 0.35),
            tmp_path / "no-such-directory" / "out.flac",
            timeout_s=60,
        )
    assert list(scratch.iterdir()) == []


# --- the merge --------------------------------------------------------------------------------


def timeline_offsets(merged_tracks: list, meeting: SyntheticMeeting) -> dict[str, float]:
    """Each participant's offset on the merge's timeline (0 = the earliest recording_start)."""

    def seconds(stamp: str) -> float:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()

    origin = min(seconds(t.recording_start) for t in merged_tracks)
    return {t.name: seconds(t.recording_start) - origin for t in merged_tracks}


def test_compact_merge_stores_the_map_and_a_mono_file_of_the_speech(
    rig: MergerRig, realistic3: SyntheticMeeting, tmp_path: Path
) -> None:
    meeting = replace(realistic3, uuid="compact/merge==")
    uuid, token = rig.receive(meeting)
    merged = merge_meeting(uuid, rig.deps(), download_token=token)  # compact is the default
    assert merged.state == State.MERGED
    assert merged.audio_layout == "compact"
    assert merged.channel_map == [] and merged.diarization is False
    assert merged.merged_key and merged.segment_map_key == segment_map_key(merged.merged_key)
    segment_map: SegmentMap = load_segment_map(
        aws.client("s3"), rig.stack.names.media_bucket, merged.segment_map_key
    )
    assert segment_map.layout == "compact"

    # the file: mono 16 kHz FLAC, as long as the map says
    path = rig.merged_file(merged, tmp_path)
    info = probe(path)
    stream = info["streams"][0]
    assert (stream["codec_name"], stream["channels"], stream["sample_rate"]) == ("flac", 1, "16000")
    audio = decode(path)
    assert len(audio) == round(segment_map.duration_seconds * SAMPLE_RATE)
    assert merged.merged_seconds == pytest.approx(segment_map.duration_seconds, abs=0.01)
    # shorter than the meeting (this one is dense: 24 % silence, 13 % overlap); multichannel 3x
    assert segment_map.duration_seconds <= 0.97 * segment_map.meeting_seconds
    b = segment_map.breakdown
    assert b.speech + b.overlap + b.padding + b.gaps == pytest.approx(
        segment_map.duration_seconds, abs=1e-6
    )
    assert b.overlap > 0  # the realistic meeting talks over itself, and both copies are kept

    # speakers: stable ids from name and email, emails from the participants API
    emails = {p.name: p.email for p in meeting.participants}
    assert [(s.name, s.email) for s in segment_map.speakers] == list(emails.items())
    assert [s.id for s in segment_map.speakers] == [speaker_id(n, e) for n, e in emails.items()]
    by_id = {s.id: s.name for s in segment_map.speakers}

    # every segment's audio is its speaker's own track at the mapped place, sample for sample
    offsets = timeline_offsets(merged.tracks, meeting)
    tracks = {p.name: decode(p.audio.path) for p in meeting.participants}
    for segment in segment_map.segments:
        name = by_id[segment.speaker]
        first = round(segment.output_start * SAMPLE_RATE)
        count = round(segment.length * SAMPLE_RATE)
        source = round((segment.timeline_start - offsets[name]) * SAMPLE_RATE)
        assert source >= 0
        expected = tracks[name][source : source + count]
        assert np.array_equal(audio[first : first + count], expected), (name, segment)
    # and between segments, silence
    gaps = np.ones(len(audio), bool)
    for segment in segment_map.segments:
        start, end = (round(t * SAMPLE_RATE) for t in (segment.output_start, segment.output_end))
        gaps[start:end] = False
    assert gaps.any() and not audio[gaps].any()
    # at least 50 ms of it between any two segments: the recogniser's boundary
    for before, after in zip(segment_map.segments, segment_map.segments[1:], strict=False):
        assert after.output_start - before.output_end >= 0.05 - 1e-9

    # every scripted word is in the file, in a segment of its own speaker
    for speaker, word, span in word_spans(meeting):
        spans = [
            (s.timeline_start, s.timeline_end)
            for s in segment_map.segments
            if by_id[s.speaker] == speaker
        ]
        assert covered(span, spans), (speaker, word, span)


def test_compact_merge_of_tracks_without_speech_fails_with_the_reason(
    rig: MergerRig, realistic3: SyntheticMeeting, tmp_path: Path
) -> None:
    """Each track keeps only its typing and coughs: loud, and not speech."""
    participants = []
    for p in realistic3.participants:
        offset = offset_of(realistic3, p.name)
        keep = "+".join(f"between(t,{n.start - offset:.3f},{n.end - offset:.3f})" for n in p.noises)
        out = tmp_path / f"{p.audio.file_id}.m4a"
        subprocess.run(
            [
                *(
                    "ffmpeg",
                    "-nostdin",
                    "-hide_banner",
                    "-loglevel",
                    "error",
                    "-i",
                    str(p.audio.path),
                ),
                *("-af", f"volume=0:enable='not({keep})'", "-c:a", "aac", "-b:a", "64k", str(out)),
            ],
            check=True,
        )
        audio = replace(p.audio, path=out, file_size=out.stat().st_size)
        participants.append(replace(p, audio=audio))
    meeting = replace(realistic3, uuid="compact/noise-only==", participants=tuple(participants))
    uuid, token = rig.receive(meeting)
    with pytest.raises(PermanentError, match="no speech detected in any participant file"):
        merge_meeting(uuid, rig.deps(), download_token=token)
    record = rig.store.require(uuid)
    assert record.state == State.FAILED
    assert "no speech detected" in (record.failure_reason or "")


def test_multichannel_layout_is_still_there_on_request(
    rig: MergerRig, realistic3: SyntheticMeeting
) -> None:
    meeting = replace(realistic3, uuid="compact/multichannel==")
    uuid, token = rig.receive(meeting)
    merged = merge_meeting(uuid, rig.deps(AUDIO_LAYOUT="multichannel"), download_token=token)
    assert merged.audio_layout == "multichannel" and merged.segment_map_key is None
    assert len(merged.channel_map) == 3
    assert merged.merged_seconds == pytest.approx(150.0, abs=0.1)


def test_compact_without_participant_files_is_the_mixed_fallback(
    rig: MergerRig, realistic3: SyntheticMeeting
) -> None:
    meeting = replace(realistic3, uuid="compact/mixed==")
    uuid, token = rig.receive(meeting, with_participant_files=False)
    merged = merge_meeting(uuid, rig.deps(), download_token=token)
    assert merged.audio_layout == "mixed" and merged.diarization
    assert merged.segment_map_key is None and merged.channel_map == []


def test_compact_batched_confirmation_gives_each_clip_the_verdict_it_gets_alone(
    realistic3: SyntheticMeeting,
) -> None:
    """Candidates are checked eight at a time, rows refilled as they finish: every clip's
    verdict must be the one silero gives it alone (speech, typing, coughs, silence, ragged
    lengths, an empty clip)."""
    track = decode(realistic3.participants[0].audio.path)
    rng = np.random.default_rng(3)
    clips = [track[:0]]
    for _ in range(60):
        start = int(rng.integers(0, len(track) - 20000))
        clips.append(track[start : start + int(rng.integers(1, 17000))])
    model = speech.shared_model()
    alone = [model.reaches(clip, 0.5) for clip in clips]
    assert 5 < sum(alone) < len(clips) - 5  # both verdicts are exercised
    assert model.confirm(iter(clips), 0.5) == alone


def test_compact_file_check_reads_flac_streaminfo_as_ffprobe_does(tmp_path: Path) -> None:
    """The written file is checked from its STREAMINFO, not with an ffprobe process."""
    output = tmp_path / "tone.flac"
    subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi"),
            *("-i", "sine=frequency=440:sample_rate=16000:duration=3.21"),
            *("-ac", "1", "-c:a", "flac", "-sample_fmt", "s16", str(output)),
        ],
        check=True,
    )
    info = compact.flac_stream_info(output)
    assert info == compact.FlacStreamInfo(16000, 1, 16, round(3.21 * 16000))
    assert int(probe(output)["streams"][0]["duration_ts"]) == info.total_samples
    not_flac = tmp_path / "page.flac"
    not_flac.write_bytes(b"<html>" + bytes(64))
    with pytest.raises(MixdownInputError, match="not a FLAC"):
        compact.flac_stream_info(not_flac)
