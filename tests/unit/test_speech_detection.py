"""Speech detection's pure parts (services/merger/speech.py): frame levels, the gate over the
noise floor, candidate runs, the check that confirms them (a stand-in model here; the real
silero-vad runs in tests/integration/test_compact_merge.py) and the run edges that follow soft
speech outwards."""

from __future__ import annotations

import numpy as np
import pytest

from services.merger.speech import (
    EDGE_MAX_SECONDS,
    FRAME_SAMPLES,
    GATE_CEILING_DBFS,
    SAMPLE_RATE,
    DetectionParams,
    Samples,
    Silero,
    candidate_runs,
    detect_in_pcm,
    edge_level,
    find_speech,
    frame_levels,
    gate_level,
    widen_runs,
)

pytestmark = pytest.mark.compact

PARAMS = DetectionParams(
    gate_db=12.0,
    gate_min_dbfs=-50.0,
    vad_threshold=0.5,
    check_seconds=1.0,
    min_speech_seconds=0.1,
    edge_db=3.0,
)
rng = np.random.default_rng(7)


def tone(seconds: float, dbfs: float) -> Samples:
    """A 1 kHz sine (whole cycles per 10 ms frame) whose RMS is `dbfs`."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    amplitude = 32768 * 10 ** (dbfs / 20) * np.sqrt(2)
    return (amplitude * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)


def noise(seconds: float, dbfs: float) -> Samples:
    level = 32768 * 10 ** (dbfs / 20)
    return np.clip(rng.normal(0, level, round(seconds * SAMPLE_RATE)), -32768, 32767).astype(
        np.int16
    )


class Judge:
    """A stand-in for silero: a window is speech when it holds enough of the tone's level."""

    def __init__(self, louder_than: float = 1000.0) -> None:
        self.louder_than = louder_than
        self.calls: list[int] = []  # samples handed over per check

    def reaches(self, samples: Samples, threshold: float) -> bool:
        self.calls.append(len(samples))
        return bool(len(samples) and np.abs(samples.astype(np.int32)).max() > self.louder_than)

    def confirm(self, clips: list[Samples], threshold: float) -> list[bool]:
        return [self.reaches(clip, threshold) for clip in clips]


def test_compact_frame_levels_are_rms_dbfs_per_10_ms() -> None:
    samples = np.concatenate([tone(0.1, -20.0), np.zeros(FRAME_SAMPLES * 2, np.int16)])
    levels = frame_levels(np.concatenate([samples, np.ones(17, np.int16)]))  # partial frame out
    assert len(levels) == 12
    assert levels[:10] == pytest.approx(np.full(10, -20.0), abs=0.1)
    assert np.isneginf(levels[10:]).all()


def test_compact_gate_is_floor_plus_margin_between_the_minimum_and_the_ceiling() -> None:
    levels = np.concatenate(
        [np.full(900, -60.0), np.full(100, -20.0), np.full(500, -np.inf)]
    ).astype(np.float32)
    # the floor: a low percentile of the frames above digital silence (which are left out)
    assert gate_level(levels, PARAMS) == pytest.approx(-48.0)
    quiet = np.full(100, -75.0, np.float32)
    assert gate_level(quiet, PARAMS) == -50.0  # never below speech_gate_min_dbfs
    words_only = np.concatenate([np.full(50, -35.0), np.full(50, -20.0)]).astype(np.float32)
    assert gate_level(words_only, PARAMS) == GATE_CEILING_DBFS  # no floor but speech: capped
    assert gate_level(np.full(10, -np.inf, np.float32), PARAMS) is None


def test_compact_candidate_runs_bridge_short_dips_only() -> None:
    levels = np.full(200, -60.0, np.float32)
    levels[10:40] = levels[60:90] = levels[150:160] = -20.0
    # a 20-frame dip is bridged at 30 frames, the 60-frame one is not
    assert candidate_runs(levels, -45.0, bridge_frames=30) == [(10, 90), (150, 160)]
    assert candidate_runs(levels, -45.0, bridge_frames=5) == [(10, 40), (60, 90), (150, 160)]
    levels[195:] = -20.0  # a run open at the end of the track ends there
    assert candidate_runs(levels, -45.0, bridge_frames=5)[-1] == (195, 200)


def test_compact_find_speech_keeps_confirmed_runs_and_drops_the_rest() -> None:
    floor = noise(6.0, -60.0)
    floor[16000:32000] += tone(1.0, -20.0)  # 1-2 s: "speech" (the judge says so)
    floor[48000:56000] = noise(0.5, -35.0)  # 3-3.5 s: loud, not speech (typing)
    floor[72000:72800] += tone(0.05, -20.0)  # 4.5 s: 50 ms, shorter than the minimum
    judge = Judge(louder_than=4000)
    found = find_speech(frame_levels(floor), lambda a, b: floor[a:b], PARAMS, judge)  # type: ignore[arg-type]
    assert found.runs == ((1.0, 2.0),)
    assert found.candidates == 2  # the 50 ms run never reached the check
    assert found.gate_dbfs == pytest.approx(-48.0, abs=1.0)


def test_compact_the_check_reads_at_most_check_seconds_from_the_run_start() -> None:
    samples = noise(12.0, -60.0)
    samples[16000 : 16000 * 10] += tone(9.0, -20.0)  # one 9 s run
    judge = Judge()
    params = DetectionParams(**{**PARAMS.__dict__, "check_seconds": 0.5})
    found = find_speech(frame_levels(samples), lambda a, b: samples[a:b], params, judge)  # type: ignore[arg-type]
    assert found.runs == ((1.0, 10.0),)
    (handed,) = judge.calls
    assert handed <= 0.5 * SAMPLE_RATE + 2 * 512  # the check window plus the lead-in


def test_compact_run_edges_reach_a_soft_onset_and_tail_below_the_gate() -> None:
    samples = noise(6.0, -60.0)  # floor -60 dBFS: gate -48, edge -57
    samples[16000:18400] += tone(0.15, -53.0)  # 1.0-1.15 s: a soft first consonant
    samples[18400:32000] += tone(0.85, -20.0)  # 1.15-2.0 s: the loud part the gate sees
    samples[32000:35200] += tone(0.2, -53.0)  # 2.0-2.2 s: a fading last syllable
    judge = Judge(louder_than=4000)
    found = find_speech(frame_levels(samples), lambda a, b: samples[a:b], PARAMS, judge)  # type: ignore[arg-type]
    assert found.gate_dbfs is not None and found.gate_dbfs > -53.0  # the soft parts are under it
    assert found.runs == ((pytest.approx(1.0), pytest.approx(2.2)),)


def test_compact_a_floor_above_the_edge_level_grows_a_run_by_the_bound_only() -> None:
    samples = noise(8.0, -60.0)
    samples[32000:112000] += tone(5.0, -53.0)  # 2-7 s: a hum over the edge level, under the gate
    samples[64000:80000] += tone(1.0, -20.0)  # 4-5 s: speech in the middle of it
    judge = Judge(louder_than=4000)
    found = find_speech(frame_levels(samples), lambda a, b: samples[a:b], PARAMS, judge)  # type: ignore[arg-type]
    assert EDGE_MAX_SECONDS <= 0.3
    assert found.runs == (
        (pytest.approx(4.0 - EDGE_MAX_SECONDS), pytest.approx(5.0 + EDGE_MAX_SECONDS)),
    )


def test_compact_widen_runs_stops_at_quiet_frames_and_bound_and_joins_runs_that_meet() -> None:
    levels = np.full(120, -60.0, np.float32)
    levels[20:30] = levels[40:50] = levels[95:100] = -20.0  # three runs the gate found
    levels[15:20] = -55.0  # a soft onset, 5 frames
    levels[30:40] = -55.0  # soft audio filling the pause: the first two runs meet
    levels[60:95] = -55.0  # 35 frames of hum before the third run: only 10 are taken
    levels[100:103] = -55.0
    levels[103] = -np.inf  # digital silence ends the tail
    levels[104:] = -55.0
    runs = [(20, 30), (40, 50), (95, 100)]
    assert widen_runs(levels, runs, -57.0, max_frames=10) == [(15, 50), (85, 103)]
    assert widen_runs(levels, runs, -50.0, max_frames=10) == runs  # nothing louder than the edge
    assert widen_runs(levels, [(0, 5), (115, 120)], -57.0, max_frames=10) == [(0, 5), (105, 120)]


def test_compact_edge_level_is_floor_plus_margin_never_above_the_gate() -> None:
    assert edge_level(-60.0, PARAMS) == pytest.approx(-57.0)
    wide = DetectionParams(**{**PARAMS.__dict__, "edge_db": 20.0})
    assert edge_level(-60.0, wide) == pytest.approx(-48.0)  # the gate itself
    assert edge_level(-35.0, PARAMS) == GATE_CEILING_DBFS  # the gate is capped: so is the edge


def test_compact_digital_silence_has_no_runs_and_no_check() -> None:
    judge = Judge()
    found = find_speech(
        frame_levels(np.zeros(SAMPLE_RATE, np.int16)),
        lambda a, b: np.zeros(0, np.int16),
        PARAMS,
        judge,  # type: ignore[arg-type]
    )
    assert (found.runs, found.gate_dbfs, judge.calls) == ((), None, [])


def test_compact_silero_rejects_typing_like_clicks_and_stops_at_the_first_speech_window() -> None:
    model = Silero()
    clicks = noise(2.0, -65.0)
    for start in range(0, len(clicks) - 400, 2400):  # a key every 150 ms
        clicks[start : start + 400] += noise(0.025, -22.0)
    assert not model.reaches(clicks, 0.5)
    probabilities = list(model.iter_probabilities(clicks[:5120]))
    assert len(probabilities) == 10 and max(probabilities) < 0.5
    found = detect_in_pcm(clicks.tobytes(), PARAMS, model)
    assert found.candidates >= 1 and found.runs == ()
