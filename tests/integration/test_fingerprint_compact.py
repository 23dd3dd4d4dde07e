"""The content recogniser on real espeak-ng speech: a realistic meeting's tracks (AAC at 32 kbit/s
over a -60..-56 dBFS noise floor, with typing and coughs) cut into a compact-like file, every line
somewhere else than in the meeting, and recognised from the audio alone."""

from __future__ import annotations

import random
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from sandbox.fingerprint import Occurrence, Recogniser, Template, template_key
from sandbox.registry import ScriptLine
from sandbox.synth import SyntheticMeeting, synthesize_meeting
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

RATE = 16000
PAD_S = 0.12  # kept around each line, as a compact layout pads its stretches
GAP_S = 0.1  # digital silence between stretches
CUT_S = 0.3
TOLERANCE_S = 0.04

Samples = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Placed:
    line: ScriptLine
    at: float  # where the line's template starts in the file (seconds)


@pytest.fixture(scope="module")
def meeting() -> SyntheticMeeting:
    return synthesize_meeting(
        speakers=3,
        duration_s=90,
        seed=21,
        workdir=ROOT / ".cache" / "synth",
        topic="Fingerprint test: a realistic meeting",
        realistic=True,
    )


@pytest.fixture(scope="module")
def templates(meeting: SyntheticMeeting) -> dict[str, Template]:
    return {t.key: t for t in meeting.templates()}


@pytest.fixture(scope="module")
def recogniser(
    templates: dict[str, Template], tmp_path_factory: pytest.TempPathFactory
) -> Recogniser:
    return Recogniser(list(templates.values()), cache_dir=tmp_path_factory.mktemp("peaks"))


@pytest.fixture(scope="module")
def tracks(meeting: SyntheticMeeting) -> dict[str, Samples]:
    """Each participant's track decoded to 16 kHz, from the meeting's t0 (silence before the
    join)."""
    decoded = {}
    for participant in meeting.participants:
        pcm = subprocess.run(
            [
                *("ffmpeg", "-v", "error", "-i", str(participant.audio.path)),
                *("-f", "s16le", "-ac", "1", "-ar", str(RATE), "-"),
            ],
            capture_output=True,
            check=True,
        ).stdout
        samples = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768
        lead = np.zeros(participant.join_offset_s * RATE, np.float32)
        decoded[participant.name] = np.concatenate([lead, samples])
    return decoded


def cut(track: Samples, start: float, end: float) -> Samples:
    return track[round(start * RATE) : round(end * RATE)]


def write_flac(samples: Samples, path: Path) -> Path:
    pcm = np.clip(samples * 32768, -32768, 32767).astype("<i2")
    subprocess.run(
        [
            *("ffmpeg", "-v", "error", "-y", "-f", "s16le", "-ar", str(RATE), "-ac", "1"),
            *("-i", "-", "-c:a", "flac", str(path)),
        ],
        input=pcm.tobytes(),
        check=True,
    )
    return path


def lay_out(
    meeting: SyntheticMeeting,
    tracks: dict[str, Samples],
    *,
    clipped: ScriptLine | None = None,
    with_noises: bool = True,
) -> tuple[Samples, list[Placed]]:
    """Every line (speech and backchannels) cut from its speaker's track with PAD_S around it,
    in a shuffled order, GAP_S of silence apart, the typing and coughs among them. `clipped`
    starts CUT_S late: its first words are missing."""
    pieces: list[tuple[ScriptLine | None, Samples, float]] = []
    for line in meeting.lines:
        start = line.start + CUT_S if line == clipped else line.start - PAD_S
        pieces.append((line, cut(tracks[line.speaker], start, line.end + PAD_S), start))
    if with_noises:
        for participant in meeting.participants:
            for noise in participant.noises:
                track = tracks[participant.name]
                pieces.append((None, cut(track, noise.start - PAD_S, noise.end + PAD_S), 0.0))
    random.Random(5).shuffle(pieces)
    gap = np.zeros(round(GAP_S * RATE), np.float32)
    parts: list[Samples] = [gap]
    placed = []
    position = len(gap)
    for line, audio, start in pieces:
        if line is not None:
            placed.append(Placed(line, position / RATE + (line.start - start)))
        parts += [audio, gap]
        position += len(audio) + len(gap)
    return np.concatenate(parts), placed


def occurrence_of(found: list[Occurrence], template: Template, at: float) -> Occurrence:
    """The one occurrence of `template` placed within TOLERANCE_S of `at` (where the template's
    start falls in the file, whether or not its first words were heard)."""
    matches = [o for o in found if o.template.key == template.key and heard_at(o, at)]
    assert len(matches) == 1, (template.speaker, template.text, at, matches)
    return matches[0]


def heard_at(occurrence: Occurrence, at: float) -> bool:
    """Whether every heard word lies where the template, started at `at`, has a word of its
    text."""
    return all(
        any(
            span.text == word.text and abs(at + span.start - word.start) <= TOLERANCE_S
            for span in occurrence.template.words
        )
        for word in occurrence.words
    )


def heard_indices(occurrence: Occurrence, at: float) -> set[int]:
    """The template's words (by index) that were heard, placed at `at`."""
    return {
        index
        for index, span in enumerate(occurrence.template.words)
        for word in occurrence.words
        if span.text == word.text and abs(at + span.start - word.start) <= TOLERANCE_S
    }


def test_every_line_is_found_at_its_new_place_with_every_word(
    meeting: SyntheticMeeting,
    templates: dict[str, Template],
    recogniser: Recogniser,
    tracks: dict[str, Samples],
    tmp_path: Path,
) -> None:
    samples, placed = lay_out(meeting, tracks)
    assert sum(1 for p in placed if p.line.kind == "backchannel") >= 3

    found = recogniser.recognise(write_flac(samples, tmp_path / "compact.flac"))

    assert len(found) == len(placed)
    for item in placed:
        template = templates[template_key(item.line.speaker, item.line.text)]
        occurrence = occurrence_of(found, template, item.at)
        assert occurrence.template.speaker == item.line.speaker
        assert occurrence.start == pytest.approx(item.at, abs=TOLERANCE_S)
        assert occurrence.end == pytest.approx(item.at + template.words[-1].end, abs=TOLERANCE_S)
        assert [w.text for w in occurrence.words] == [w.text for w in template.words]
        for heard, span in zip(occurrence.words, template.words, strict=True):
            assert heard.start == pytest.approx(item.at + span.start, abs=TOLERANCE_S)


def test_a_line_cut_at_its_start_loses_its_first_words_and_nothing_else(
    meeting: SyntheticMeeting,
    templates: dict[str, Template],
    recogniser: Recogniser,
    tracks: dict[str, Samples],
    tmp_path: Path,
) -> None:
    clipped = next(
        line
        for line in meeting.lines
        if line.kind == "speech"
        and templates[template_key(line.speaker, line.text)].words[0].end < CUT_S - 0.05
    )
    template = templates[template_key(clipped.speaker, clipped.text)]
    samples, placed = lay_out(meeting, tracks, clipped=clipped)

    found = recogniser.recognise(write_flac(samples, tmp_path / "clipped.flac"))

    assert len(found) == len(placed)
    for item in placed:
        whole = templates[template_key(item.line.speaker, item.line.text)]
        heard = heard_indices(occurrence_of(found, whole, item.at), item.at)
        if item.line != clipped:
            assert heard == set(range(len(whole.words))), item.line
            continue
        gone = {k for k, w in enumerate(template.words) if w.end <= CUT_S}
        kept = {k for k, w in enumerate(template.words) if w.start >= CUT_S}
        assert gone
        assert kept <= heard
        assert not gone & heard
        # the word the cut went through may go either way; no other


def test_typing_and_coughs_are_not_speech(
    meeting: SyntheticMeeting, recogniser: Recogniser, tracks: dict[str, Samples], tmp_path: Path
) -> None:
    kinds = [n.kind for p in meeting.participants for n in p.noises]
    assert kinds.count("keyboard") >= 2
    assert kinds.count("cough") >= 2
    gap = np.zeros(round(GAP_S * RATE), np.float32)
    parts = [gap]
    for participant in meeting.participants:
        for noise in participant.noises:
            track = tracks[participant.name]
            parts += [cut(track, noise.start - PAD_S, noise.end + PAD_S), gap]

    assert recogniser.recognise(write_flac(np.concatenate(parts), tmp_path / "noise.flac")) == []


def test_each_channel_or_their_mix(
    meeting: SyntheticMeeting,
    templates: dict[str, Template],
    recogniser: Recogniser,
    tracks: dict[str, Samples],
    tmp_path: Path,
) -> None:
    first, second = (
        next(line for line in meeting.lines if line.speaker == name and line.kind == "speech")
        for name in meeting.speakers[:2]
    )
    left = cut(tracks[first.speaker], first.start - PAD_S, first.end + PAD_S)
    right = cut(tracks[second.speaker], second.start - PAD_S, second.end + PAD_S)
    length = max(len(left), len(right)) + RATE // 2
    stereo = np.zeros((length, 2), np.float32)
    stereo[: len(left), 0] = left
    stereo[RATE // 4 : RATE // 4 + len(right), 1] = right
    path = tmp_path / "two-channels.flac"
    pcm = np.clip(stereo * 32768, -32768, 32767).astype("<i2")
    subprocess.run(
        [
            *("ffmpeg", "-v", "error", "-y", "-f", "s16le", "-ar", str(RATE), "-ac", "2"),
            *("-i", "-", "-c:a", "flac", str(path)),
        ],
        input=pcm.tobytes(),
        check=True,
    )
    keys = [template_key(line.speaker, line.text) for line in (first, second)]

    assert [o.template.key for o in recogniser.recognise(path, channel=1)] == keys[:1]
    assert [o.template.key for o in recogniser.recognise(path, channel=2)] == keys[1:]
    assert {o.template.key for o in recogniser.recognise(path)} == set(keys)
    with pytest.raises(ValueError, match="channel 3"):
        recogniser.recognise(path, channel=3)
    assert templates[keys[0]].speaker == first.speaker
