"""The content recogniser on synthetic signals: voiced "words" (harmonics under formants) placed in
a low noise floor, analysed without ffmpeg."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from sandbox import fingerprint
from sandbox.fingerprint import (
    ANALYSIS_RATE,
    Recogniser,
    Template,
    WordSpan,
    file_peaks,
    peaks_of_samples,
    template_key,
)
from sandbox.registry import MeetingRegistry, ScriptedMeeting, ScriptLine

pytestmark = pytest.mark.unit

Samples = npt.NDArray[np.float32]
RATE = 22050  # templates are stored at espeak-ng's rate, the analysis resamples them
NOISE_DBFS = -58.0
GAP_S = 0.06


def word_audio(seed: int, duration: float, pitch: float = 1.0) -> Samples:
    """A voiced "word": a pitch glide's harmonics shaped by two formants that move, with an
    attack and a decay, about -20 dBFS. Another `pitch` is another voice saying the word."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(duration * RATE)) / RATE
    f0 = pitch * rng.uniform(110, 230) * (1 + rng.uniform(-0.25, 0.25) * t / duration)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    formants = [
        rng.uniform(300, 900) + rng.uniform(-200, 200) * t / duration,
        rng.uniform(1100, 2600) + rng.uniform(-400, 400) * t / duration,
    ]
    signal = np.zeros_like(t)
    for k in range(1, 40):
        frequency = k * f0
        gain = sum(np.exp(-(((frequency - f) / 180.0) ** 2)) for f in formants)
        signal += gain * np.sin(k * phase) * (frequency < 4500)
    envelope = np.minimum(1.0, t / 0.02) * np.minimum(1.0, (duration - t) / 0.04)
    signal *= envelope
    return (0.1 * signal / np.sqrt(np.mean(signal**2))).astype(np.float32)


def make_template(
    directory: Path,
    speaker: str,
    text: str,
    seeds: list[int],
    durations: list[float],
    pitch: float = 1.0,
) -> Template:
    """Words separated by GAP_S of silence, written as raw s16le at RATE like a render."""
    pieces: list[Samples] = []
    spans: list[WordSpan] = []
    position = 0
    for index, (seed, duration) in enumerate(zip(seeds, durations, strict=True)):
        if index:
            pieces.append(np.zeros(round(GAP_S * RATE), np.float32))
            position += round(GAP_S * RATE)
        audio = word_audio(seed, duration, pitch)
        pieces.append(audio)
        spans.append(WordSpan(f"w{seed}", position / RATE, (position + len(audio)) / RATE))
        position += len(audio)
    pcm = np.clip(np.concatenate(pieces) * 32768, -32768, 32767).astype("<i2")
    path = directory / f"{template_key(speaker, text)}.s16"
    pcm.tofile(path)
    return Template(
        key=template_key(speaker, text),
        speaker=speaker,
        text=text,
        audio=str(path),
        rate=RATE,
        words=tuple(spans),
    )


def at_analysis_rate(template: Template) -> Samples:
    return fingerprint.template_samples(template)


def noise(seconds: float, seed: int = 99) -> Samples:
    amplitude = math.sqrt(3) * 10 ** (NOISE_DBFS / 20)
    rng = np.random.default_rng(seed)
    return rng.uniform(-amplitude, amplitude, round(seconds * ANALYSIS_RATE)).astype(np.float32)


def place(file: Samples, audio: Samples, at_s: float) -> None:
    start = round(at_s * ANALYSIS_RATE)
    file[start : start + len(audio)] += audio


@pytest.fixture
def templates(tmp_path: Path) -> list[Template]:
    return [
        make_template(tmp_path, "Ana", "first line", [1, 2, 3, 4], [0.32, 0.25, 0.4, 0.3]),
        make_template(tmp_path, "Bo", "second line", [11, 12, 13], [0.3, 0.35, 0.28]),
        make_template(tmp_path, "Ana", "third line", [21, 22, 23, 24, 25], [0.25] * 5),
    ]


def test_a_template_in_noise_is_found_at_its_offset_with_every_word(
    templates: list[Template],
) -> None:
    first, second, _ = templates
    file = noise(6.0)
    place(file, at_analysis_rate(first), 1.234)
    place(file, at_analysis_rate(second), 3.9)

    found = Recogniser(templates).recognise_peaks(file_peaks([file]))

    assert [o.template.key for o in found] == [first.key, second.key]
    for occurrence, at in zip(found, (1.234, 3.9), strict=True):
        template = occurrence.template
        assert occurrence.start == pytest.approx(at, abs=0.02)
        assert occurrence.end == pytest.approx(at + template.words[-1].end, abs=0.02)
        assert [w.text for w in occurrence.words] == [w.text for w in template.words]
        for heard, span in zip(occurrence.words, template.words, strict=True):
            assert heard.start == pytest.approx(at + span.start, abs=0.02)
            assert heard.end == pytest.approx(at + span.end, abs=0.02)


def test_a_word_whose_audio_is_missing_is_not_heard(templates: list[Template]) -> None:
    first = templates[0]
    audio = at_analysis_rate(first).copy()
    middle = first.words[2]
    audio[round(middle.start * ANALYSIS_RATE) : round(middle.end * ANALYSIS_RATE)] = 0.0
    file = noise(4.0)
    place(file, audio, 0.8)

    found = Recogniser(templates).recognise_peaks(file_peaks([file]))

    assert len(found) == 1
    assert found[0].template.key == first.key
    assert [w.text for w in found[0].words] == ["w1", "w2", "w4"]


def test_a_template_whose_audio_is_absent_is_not_found(templates: list[Template]) -> None:
    first, second, third = templates
    file = noise(5.0)
    place(file, at_analysis_rate(third), 2.0)

    found = Recogniser(templates).recognise_peaks(file_peaks([file]))

    assert [o.template.key for o in found] == [third.key]
    assert Recogniser([first, second]).recognise_peaks(file_peaks([file])) == []
    assert Recogniser(templates).recognise_peaks(file_peaks([noise(5.0)])) == []


def test_the_same_words_in_another_voice_are_not_this_template(
    templates: list[Template], tmp_path: Path
) -> None:
    first = templates[0]
    seeds, durations = [1, 2, 3, 4], [0.32, 0.25, 0.4, 0.3]
    other_voice = make_template(tmp_path, "Bo", "first line", seeds, durations, pitch=1.3)
    file = noise(4.0)
    place(file, at_analysis_rate(other_voice), 1.0)

    assert Recogniser(templates).recognise_peaks(file_peaks([file])) == []
    found = Recogniser([*templates, other_voice]).recognise_peaks(file_peaks([file]))
    assert [(o.template.key, len(o.words)) for o in found] == [(other_voice.key, 4)]
    assert first.key != other_voice.key


def test_a_line_said_twice_is_two_occurrences(templates: list[Template]) -> None:
    second = templates[1]
    file = noise(5.0)
    place(file, at_analysis_rate(second), 0.5)
    place(file, at_analysis_rate(second), 2.75)

    found = Recogniser(templates).recognise_peaks(file_peaks([file]))

    assert [o.template.key for o in found] == [second.key, second.key]
    assert [o.start for o in found] == [pytest.approx(0.5, abs=0.02), pytest.approx(2.75, abs=0.02)]
    assert all(len(o.words) == len(second.words) for o in found)


def test_peaks_do_not_depend_on_how_the_audio_is_split(templates: list[Template]) -> None:
    file = noise(5.0)
    place(file, at_analysis_rate(templates[0]), 1.0)
    rules = [fingerprint.LANDMARKS, fingerprint.PRESENT]
    whole = peaks_of_samples([file], rules)
    split = peaks_of_samples([file[:1000], file[1000:1003], file[1003:40000], file[40000:]], rules)
    for ours, theirs in zip(whole, split, strict=True):
        assert len(ours) > 50
        np.testing.assert_array_equal(ours.frames, theirs.frames)
        np.testing.assert_array_equal(ours.bins, theirs.bins)
        np.testing.assert_allclose(ours.levels, theirs.levels, atol=1e-3)


def test_template_peaks_are_cached(templates: list[Template], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = Recogniser(templates, cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == len(templates)
    file = noise(4.0)
    place(file, at_analysis_rate(templates[1]), 1.0)
    again = Recogniser(templates, cache_dir=cache)
    assert again.recognise_peaks(file_peaks([file])) == first.recognise_peaks(file_peaks([file]))


def test_templates_travel_in_the_registry(templates: list[Template], tmp_path: Path) -> None:
    registry = MeetingRegistry(tmp_path / "registry")
    lines = [ScriptLine("Ana", "first line", 1.0, 2.5)]
    registry.register(
        ScriptedMeeting(
            uuid="u", topic="t", speakers=["Ana", "Bo"], lines=lines, templates=templates
        )
    )
    assert registry.templates("t") == templates
    assert registry.templates("unknown") == []
    older = {"uuid": "u", "topic": "t", "speakers": ["Ana"], "lines": []}
    assert ScriptedMeeting.from_json(json.dumps(older)).templates == []


def test_template_keys_are_stable_and_per_speaker_and_text() -> None:
    assert template_key("Ana", "Hello.") == template_key("Ana", "Hello.")
    assert len({template_key("Ana", "Hello."), template_key("Bo", "Hello.")}) == 2
    assert template_key("Ana", "Hello.") != template_key("Ana", "Hello!")
