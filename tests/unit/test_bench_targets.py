"""The benches' verdicts: a missed target makes the bench exit 1 (bench/_targets.py), and the
merge and submitter benches judge what their docstrings claim."""

from __future__ import annotations

import importlib
import os
import subprocess
import time
from pathlib import Path
from types import ModuleType
from unittest import mock

import pytest

from bench._targets import Target, report

MB = 1_000_000


def run_report(targets: list[Target]) -> tuple[int, list[str]]:
    lines: list[str] = []
    return report(targets, write=lines.append), lines


def test_all_targets_met_exit_0() -> None:
    code, lines = run_report([Target("p99 ≤ 30 ms", True, "12 ms"), Target("cold ≤ 1 s", True)])
    assert code == 0
    assert lines[-1] == "all 2 judged targets met"
    assert any("p99 ≤ 30 ms" in line and "met" in line and "(12 ms)" in line for line in lines)


def test_a_missed_target_exits_1_and_says_which() -> None:
    code, lines = run_report([Target("p99 ≤ 30 ms", True), Target("cold ≤ 1 s", False, "1.4 s")])
    assert code == 1
    assert any("cold ≤ 1 s" in line and "MISSED" in line and "(1.4 s)" in line for line in lines)
    assert lines[-1] == "1 of 2 judged targets MISSED"


def test_a_target_not_judged_is_shown_but_never_fails() -> None:
    code, lines = run_report(
        [
            Target("judged", True),
            Target("shown", False, judged=False),
            Target("also", True, judged=False),
        ]
    )
    assert code == 0
    assert any("shown" in line and "missed (not judged)" in line for line in lines)
    assert any("also" in line and "met (not judged)" in line for line in lines)
    assert lines[-1] == "all 1 judged targets met"


def test_no_targets_at_all_is_a_failure() -> None:
    assert run_report([])[0] == 1


# --- the merge bench -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def merge() -> ModuleType:
    return importlib.import_module("bench.merge")


def case(merge: ModuleType, minutes: int, merge_ffmpeg: int, floor_ffmpeg: int) -> object:
    def measured(wall_s: float, ffmpeg_rss: int) -> object:
        return merge.Measured(wall_s, wall_s, 150 * MB, ffmpeg_rss, 0, 1, 60.0 * minutes)

    return merge.CaseResult(
        8,
        minutes,
        merge=measured(10.0, merge_ffmpeg),
        floor=measured(9.0, floor_ffmpeg),
        concat=measured(8.0, floor_ffmpeg),
        naive=measured(20.0, floor_ffmpeg),
    )


def merge_verdicts(merge: ModuleType, results: list[object]) -> dict[str, bool]:
    return {target.claim: target.met for target in merge.targets(results)}


def test_merge_judges_ffmpeg_growth_beyond_the_decode_floor(merge: ModuleType) -> None:
    # ffmpeg grows by the sample index (as the floor does): met.
    flat = [case(merge, 10, 60 * MB, 40 * MB), case(merge, 60, 80 * MB, 60 * MB)]
    claim = "8 spk: ffmpeg RSS 60 vs 10 min, beyond the floor's growth, <= 20 %"
    assert merge_verdicts(merge, flat)[claim] is True
    assert merge.report(merge.targets(flat), write=lambda line: None) == 0
    # The merge's ffmpeg doubles while the floor's grows by 20 MB; the tree stays at 150 MB.
    grows = [case(merge, 10, 60 * MB, 40 * MB), case(merge, 60, 120 * MB, 60 * MB)]
    verdicts = merge_verdicts(merge, grows)
    assert verdicts[claim] is False
    assert verdicts["8 spk: RSS (tree) 60 vs 10 min within +-20 %"] is True
    assert merge.report(merge.targets(grows), write=lambda line: None) == 1


def test_merge_judges_ffmpeg_peak_rss_on_its_own(merge: ModuleType) -> None:
    verdicts = merge_verdicts(merge, [case(merge, 10, 320 * MB, 40 * MB)])
    assert verdicts["8 spk 10 min: ffmpeg peak RSS <= 300 MB"] is False
    # Not measured at all is not a pass.
    verdicts = merge_verdicts(merge, [case(merge, 10, 0, 40 * MB)])
    assert verdicts["8 spk 10 min: ffmpeg peak RSS <= 300 MB"] is False


def test_peak_sampler_counts_ffmpeg_apart_from_other_children(
    merge: ModuleType, tmp_path: Path
) -> None:
    other = subprocess.Popen(["sleep", "60"])
    ffmpeg = None
    try:
        sampler = merge.PeakSampler(tmp_path)
        sampler.sample()
        assert sampler.tree_rss > 0 and sampler.ffmpeg_rss == 0
        silence = ("-re", "-f", "lavfi", "-i", "anullsrc", "-f", "null", "-")
        ffmpeg = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "error", *silence])
        deadline = time.monotonic() + 30
        while sampler.ffmpeg_rss < MB and time.monotonic() < deadline:
            sampler.sample()
        assert sampler.ffmpeg_rss >= MB  # ffmpeg's own high-water mark, a few MB at least
        assert sampler.tree_rss > sampler.ffmpeg_rss
    finally:
        for process in (other, ffmpeg):
            if process is not None:
                process.kill()
                process.wait()


# --- the submitter bench -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def submitter() -> ModuleType:
    with mock.patch.dict(os.environ):  # the bench quiets powertools in its own environment
        return importlib.import_module("bench.submitter")


def submitter_targets(
    submitter: ModuleType, scheme: str, scale: float, *, utilisation: float, lost: int
) -> dict[str, Target]:
    metrics = submitter.Metrics(
        wall=1.0,
        backlog_seconds=1.0,
        utilisation=utilisation,
        steady_utilisation=utilisation,
        ramp_seconds=0.0,
        refill=[0.2],
        slot_idle=[0.1],
        callback_leg=[0.1],
        pump_leg=[0.1],
        rejections_429=0,
        max_in_flight=2,
        lost=lost,
        doubled=0,
    )
    cfg = submitter.Config(
        backlog=12,
        limit=2,
        pump_threads=0,
        pump_procs=3,
        naive_consumers=3,
        naive_defer=5,
        reconcile_every=1.0,
        webhook_workers=16,
        timeout=600.0,
        scale=scale,
    )
    return {t.claim: t for t in submitter.targets(metrics, cfg, scheme)}


def test_submitter_judges_ours_at_the_claimed_scale(submitter: ModuleType) -> None:
    found = submitter_targets(submitter, "ours", 16, utilisation=0.9, lost=0)
    assert found["utilisation ≥ 97 %"].judged and not found["utilisation ≥ 97 %"].met
    assert report(list(found.values()), write=lambda line: None) == 1


def test_submitter_judges_correctness_at_every_scale(submitter: ModuleType) -> None:
    found = submitter_targets(submitter, "ours", 4, utilisation=0.9, lost=1)
    assert not found["utilisation ≥ 97 %"].judged  # the stress case: moto sets the pace
    assert found["zero lost or doubled"].judged and not found["zero lost or doubled"].met
    found = submitter_targets(submitter, "ours", 4, utilisation=0.9, lost=0)
    assert report(list(found.values()), write=lambda line: None) == 0


def test_submitter_naive_baseline_judges_nothing(submitter: ModuleType) -> None:
    found = submitter_targets(submitter, "naive", 16, utilisation=0.5, lost=3)
    assert not any(target.judged for target in found.values())
    assert report(list(found.values()), write=lambda line: None) == 0
