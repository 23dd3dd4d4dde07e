"""The speech-detector bench's pure parts (bench/vad.py): interval arithmetic, the padding and
merge every detector shares, the line-edge classification, the detectors' segmenters and the
choice rule. No audio, no detector packages."""

from __future__ import annotations

import pytest

from bench.vad import (
    CLIPPED,
    KEPT,
    LOST,
    Score,
    Track,
    best,
    classify_line,
    complement,
    frames_to_segments,
    intersection,
    pad_and_merge,
    parse_silencedetect,
    probabilities_to_segments,
    total,
    union,
)


def test_union_joins_overlapping_and_touching_and_drops_empty() -> None:
    assert union([(5.0, 6.0), (0.0, 1.0), (0.5, 2.0), (2.0, 3.0), (4.0, 4.0)]) == [
        (0.0, 3.0),
        (5.0, 6.0),
    ]


def test_total_counts_overlap_once() -> None:
    assert total([(0.0, 2.0), (1.0, 3.0), (10.0, 11.0)]) == pytest.approx(4.0)


def test_intersection_of_two_unions() -> None:
    a = [(0.0, 2.0), (3.0, 6.0)]
    b = [(1.0, 4.0), (5.0, 5.5), (7.0, 8.0)]
    assert intersection(a, b) == [(1.0, 2.0), (3.0, 4.0), (5.0, 5.5)]
    assert intersection(a, []) == []


def test_complement_within_bounds() -> None:
    assert complement([(1.0, 2.0), (3.0, 12.0)], 0.0, 10.0) == [(0.0, 1.0), (2.0, 3.0)]
    assert complement([], 0.0, 5.0) == [(0.0, 5.0)]
    assert complement([(-1.0, 5.0)], 0.0, 5.0) == []


def test_pad_and_merge_pads_each_side_merges_close_segments_and_clips_to_the_track() -> None:
    segments = [(0.1, 1.0), (1.6, 2.0), (5.0, 9.9)]
    out = pad_and_merge(segments, before=0.3, after=0.2, gap=0.3, lo=0.0, hi=10.0)
    # (0.1, 1.0) -> (0.0, 1.2); (1.6, 2.0) -> (1.3, 2.2): 0.1 s apart, merged; (4.7, 10.0) clipped
    assert out == [(0.0, pytest.approx(2.2)), (pytest.approx(4.7), 10.0)]
    far = pad_and_merge([(1.0, 2.0), (3.0, 4.0)], before=0.2, after=0.2, gap=0.3, lo=0.0, hi=9.0)
    assert len(far) == 2  # 0.6 s apart after padding: kept apart


@pytest.mark.parametrize(
    ("line", "verdict"),
    [
        ((1.0, 2.0), KEPT),  # inside one segment
        ((0.8, 2.1), KEPT),  # edges exactly on the segment's edges
        ((1.0, 3.5), KEPT),  # edges in two segments (a mid-line pause is not an edge)
        ((0.5, 1.5), CLIPPED),  # starts before the segment: the first word at risk
        ((2.5, 5.5), CLIPPED),  # ends after the last segment
        ((2.2, 2.8), LOST),  # between segments, nothing touches it
        ((6.0, 7.0), LOST),
    ],
)
def test_classify_line(line: tuple[float, float], verdict: str) -> None:
    segments = [(0.8, 2.1), (3.0, 5.0)]
    assert classify_line(line, segments) == verdict


def test_score_adds_missed_wasted_noise_and_line_verdicts() -> None:
    track = Track(
        speaker="Ana",
        pcm=b"",
        duration_s=20.0,
        lines=((1.0, 3.0), (5.0, 6.0), (10.0, 11.0)),
        noises=((14.0, 14.5), (17.0, 17.2)),
    )
    score = Score("x", "y")
    score.add(track, [(0.8, 3.2), (5.3, 6.2), (13.9, 14.6)], cpu_s=0.5)
    assert score.speech_s == pytest.approx(4.0)
    assert score.missed_s == pytest.approx(0.3 + 1.0)  # 5.0-5.3 clipped, the third line lost
    assert score.wasted_s == pytest.approx(0.4 + 0.2 + 0.7)
    assert score.noise_s == pytest.approx(0.5)
    assert (score.noise_hit, score.noise_events) == (1, 2)
    assert (score.lines, score.clipped, score.lost) == (3, 2, 1)
    assert score.cpu_per_hour == pytest.approx(0.5 * 3600 / 20.0)


def _score(detector: str, clipped: int, wasted_s: float, cpu_s: float) -> Score:
    score = Score(detector, "s")
    score.clipped, score.wasted_s, score.cpu_s, score.speech_s = clipped, wasted_s, cpu_s, 100.0
    return score


def test_choice_rule_fewest_clipped_then_least_wasted_then_cpu() -> None:
    cheap_but_clips = _score("a", clipped=1, wasted_s=5.0, cpu_s=0.1)
    wasteful = _score("b", clipped=0, wasted_s=40.0, cpu_s=0.1)
    lean_slow = _score("c", clipped=0, wasted_s=20.0, cpu_s=9.0)
    lean_fast = _score("d", clipped=0, wasted_s=20.0, cpu_s=1.0)
    assert best([cheap_but_clips, wasteful]) is wasteful
    assert best([cheap_but_clips, wasteful, lean_slow]) is lean_slow
    assert best([lean_slow, wasteful, lean_fast, cheap_but_clips]) is lean_fast


def test_parse_silencedetect_speech_is_the_complement_of_the_silences() -> None:
    stderr = (
        "[silencedetect @ 0x1] silence_start: 0\n"
        "[silencedetect @ 0x1] silence_end: 1.5 | silence_duration: 1.5\n"
        "[silencedetect @ 0x1] silence_start: 3.25\n"
        "[silencedetect @ 0x1] silence_end: 4 | silence_duration: 0.75\n"
        "[silencedetect @ 0x1] silence_start: 8.5\n"  # open at the end of the track
    )
    assert parse_silencedetect(stderr, 10.0) == [(1.5, 3.25), (4.0, 8.5)]
    assert parse_silencedetect("", 10.0) == [(0.0, 10.0)]


def test_frames_to_segments_hangover_and_minimum_run() -> None:
    flags = [False, True, True, False, True, True, False, False, False, False, True, False]
    # 0.1 s frames: runs (0.1-0.3), (0.4-0.6), (1.0-1.1); a 0.1 s gap is bridged by a 0.15 hangover
    segments = frames_to_segments(flags, 0.1, hangover_s=0.15, min_run_s=0.15)
    assert segments == [(pytest.approx(0.1), pytest.approx(0.6))]  # the 0.1 s run is dropped
    apart = frames_to_segments(flags, 0.1, hangover_s=0.05, min_run_s=0.0)
    assert len(apart) == 3


def test_probabilities_to_segments_hysteresis() -> None:
    window = 0.1
    probs = [0.0, 0.6, 0.4, 0.45, 0.3, 0.2, 0.1, 0.0, 0.6, 0.7, 0.0, 0.0]
    # threshold 0.5 -> off below 0.35: on at 0.1, dips under 0.35 from 0.4 for >= 0.1 s -> (0.1,
    # 0.4); on again at 0.8 until 1.0 -> (0.8, 1.0)
    segments = probabilities_to_segments(probs, window, threshold=0.5, min_speech_s=0.0)
    assert segments == [(pytest.approx(0.1), pytest.approx(0.4)), (0.8, pytest.approx(1.0))]
    longer = probabilities_to_segments(probs, window, threshold=0.5, min_speech_s=0.25)
    assert longer == [(pytest.approx(0.1), pytest.approx(0.4))]
    below = [0.4, 0.45, 0.0, 0.0]  # between the off and on thresholds: never switches on
    assert probabilities_to_segments(below, window, threshold=0.5, min_speech_s=0.0) == []
    still = probabilities_to_segments([0.0, 0.9, 0.9], window, threshold=0.5, min_speech_s=0.0)
    assert still == [(0.1, pytest.approx(0.3))]  # speech open at the end runs to the end


def test_the_production_detector_is_the_merger_s_own_at_its_default_settings() -> None:
    """The bench measures services.merger.speech itself (no copy of the model wrapper), first at
    MergerSettings' defaults, with the compact layout's padding first among the paddings."""
    from bench import vad
    from services.core.settings import MergerSettings
    from services.merger import speech

    assert vad.Silero is speech.Silero
    defaults = {name: f.default for name, f in MergerSettings.model_fields.items()}
    first = vad.production_sweep()[0]
    assert first == vad.production_defaults()
    assert (first.gate_db, first.gate_min_dbfs) == (
        defaults["speech_gate_db"],
        defaults["speech_gate_min_dbfs"],
    )
    assert (first.vad_threshold, first.check_seconds, first.min_speech_seconds) == (
        defaults["speech_vad_threshold"],
        defaults["speech_check_seconds"],
        defaults["compact_min_speech_seconds"],
    )
    assert first.edge_db == defaults["speech_edge_db"]
    # the sweep also measures the gate alone (no edges: the edge level is the gate's)
    assert any(p.edge_db == p.gate_db == first.gate_db for p in vad.production_sweep())
    assert vad.PADDINGS[0] == (
        defaults["compact_pad_before_seconds"],
        defaults["compact_pad_after_seconds"],
    )
    assert len(set(vad.production_sweep())) == len(vad.production_sweep())
