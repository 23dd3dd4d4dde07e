"""The participant-audio merge: wall time, realtime factor, memory and disk against baselines.

Synthetic meetings of 4 and 8 speakers, 10 and 60 minutes long (AAC M4A participant files like
Zoom's: each speaker joins at a different time, one leaves early, everyone talks now and then).
The files are served over HTTP with Range support from a loopback server, as S3 would serve
presigned URLs, and each approach is measured in the same run:

- merge: `services.merger.mixdown.merge_tracks` (ffmpeg reads the URLs, writes one FLAC).
- decode floor: one ffmpeg decoding the same inputs to `-f null` (every input's audio mapped to
  the null muxer), the least a single-process merge can cost. A tighter reference is also shown,
  "decode (concat)": the decoded streams go through `concat` into one null output, which skips
  the null muxer's per-stream PCM encoding and interleaving.
- naive: download every file to disk first, then a plain `amerge` (which stops at the shortest
  input: its output duration shows the truncation).

Peak RSS is sampled every 50 ms: "RSS" is this process plus its children, which includes this
harness and the server feeding the files; "ffmpeg" is the ffmpeg processes alone (each one's
kernel high-water mark, VmHWM), the memory the merge itself needs. Peak disk is the size of the
approach's scratch directory; CPU is the user + system time of the ffmpeg processes, which is
steadier than wall time on a busy machine. Generated inputs are cached under .cache/bench-merge/.

Targets, for the merge: merge <= 1.5 x decode floor; peak RSS <= 300 MB, both the tree's and
ffmpeg's own, and within +-20 % between 10 and 60 minutes (memory must not grow with meeting
length). ffmpeg's MP4 demuxer keeps each input's sample index in memory (24 bytes per AAC packet,
about 2.7 MB per track-hour at 32 kHz), so ffmpeg's RSS grows that much with length in the decode
floor as in the merge; nothing else does: ffmpeg's own growth from 10 to 60 minutes, less the
decode floor's, must stay within 20 % of its RSS at 10 minutes. The bench exits 1 when a target
is missed.

    .venv/bin/python bench/merge.py [--quick]    # --quick: the 10-minute meetings only
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import TracebackType

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ffmpeg  # noqa: E402
import requests  # noqa: E402
from flask import Flask, Response, send_from_directory  # noqa: E402

from bench._targets import Target, report  # noqa: E402
from sandbox.http_server import LoopbackServer  # noqa: E402
from sandbox.synth import SENTENCES, VOICES  # noqa: E402
from services.merger.ffmpeg_plan import (  # noqa: E402
    HTTP_THREAD_QUEUE_SIZE,
    TrackSource,
    network_options,
)
from services.merger.mixdown import merge_tracks, probe, run_ffmpeg  # noqa: E402

CACHE = ROOT / ".cache" / "bench-merge" / "v1"  # bump when the generated inputs change
SAMPLE_RATE = 16000
MAX_CHANNELS = 8
SOURCE_RATE = 32000  # Zoom's participant files: AAC, mono, 32 kHz
SLOT_S = 4.0  # every speaker gets one slot per cycle of MAX_SPEAKERS slots
MAX_SPEAKERS = 8
JOIN_STEP_FRACTION = 0.02  # speaker i joins 2 % of the meeting after speaker i - 1
EARLY_LEAVER = 3  # this speaker leaves at 70 % of the meeting
SAMPLE_INTERVAL_S = 0.05
PEAK_RSS_LIMIT = 300e6
RSS_GROWTH_LIMIT = 0.2  # 60 vs 10 minutes
MERGE_VS_FLOOR_LIMIT = 1.5
TIMEOUT_S = 3600.0
FULL_CASES = ((4, 10), (8, 10), (4, 60), (8, 60))
QUICK_CASES = ((4, 10), (8, 10))


# --- inputs ------------------------------------------------------------------------------------


def speaker_track(index: int, minutes: int) -> tuple[Path, float, float]:
    """(file, offset, duration) of speaker `index` in a meeting of `minutes`; generated once."""
    length_s = minutes * 60.0
    offset_s = round(index * JOIN_STEP_FRACTION * length_s + 0.137 * index, 3)
    end_s = 0.7 * length_s if index == EARLY_LEAVER else length_s
    path = CACHE / f"{minutes}min" / f"speaker{index}.m4a"
    return path, offset_s, round(end_s - offset_s, 3)


def generate_inputs(minutes_list: list[int]) -> None:
    """One espeak-ng sentence per speaker, placed in its slot of a looped cycle, as AAC M4A."""
    jobs: list[Callable[[], None]] = []
    for index in range(MAX_SPEAKERS):
        for minutes in minutes_list:
            path, _, duration_s = speaker_track(index, minutes)
            if not path.exists():
                jobs.append(partial(_encode, _cycle_path(index), path, duration_s))
    if not jobs:
        return
    print(f"generating {len(jobs)} input files under {CACHE} (once)...", flush=True)
    for index in range(MAX_SPEAKERS):
        _cycle(index, _cycle_path(index), SLOT_S * MAX_SPEAKERS)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()


def _cycle_path(index: int) -> Path:
    return CACHE / "cycles" / f"speaker{index}.wav"


def _cycle(index: int, unit: Path, cycle_s: float) -> None:
    if unit.exists():
        return
    unit.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=unit.parent) as scratch:
        clip = Path(scratch) / "clip.wav"
        voice = VOICES[index % len(VOICES)]
        sentence = SENTENCES[(7 * index) % len(SENTENCES)]
        _run(["espeak-ng", *voice.espeak_args(), "-w", str(clip), sentence])
        partial = Path(scratch) / "unit.wav"
        delay = round(index * SLOT_S * SOURCE_RATE)
        _ffmpeg(
            *("-i", str(clip)),
            *("-af", f"aresample={SOURCE_RATE},adelay={delay}S:all=1,apad"),
            *("-t", str(cycle_s), "-ac", "1", str(partial)),
        )
        os.replace(partial, unit)


def _encode(unit: Path, path: Path, duration_s: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.m4a")
    _ffmpeg(
        *("-stream_loop", "-1", "-i", str(unit), "-t", str(duration_s)),
        *("-c:a", "aac", "-b:a", "32k", "-ar", str(SOURCE_RATE), "-ac", "1"),
        *("-movflags", "+faststart", str(partial)),
    )
    os.replace(partial, path)


def _ffmpeg(*args: str) -> None:
    _run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args])


def _run(command: list[str]) -> None:
    subprocess.run(command, check=True, capture_output=True)


# --- measuring ---------------------------------------------------------------------------------


class PeakSampler:
    """Peak RSS of this process tree and of its ffmpeg processes, and peak size of a directory."""

    def __init__(self, watched_dir: Path) -> None:
        self.watched_dir = watched_dir
        self.tree_rss = 0
        self.ffmpeg_rss = 0
        self.disk = 0
        self._me = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def sample(self) -> None:
        children = ffmpeg_peaks = 0
        for child in self._me.children(recursive=True):
            try:
                children += child.memory_info().rss
                if child.name() == "ffmpeg":
                    ffmpeg_peaks += _peak_rss(child)
            except psutil.Error:
                continue
        self.ffmpeg_rss = max(self.ffmpeg_rss, ffmpeg_peaks)
        self.tree_rss = max(self.tree_rss, self._me.memory_info().rss + children)
        self.disk = max(self.disk, _dir_size(self.watched_dir))

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            self.sample()

    def __enter__(self) -> PeakSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def _peak_rss(process: psutil.Process) -> int:
    """The kernel's high-water mark of the process's RSS (a peak between samples counts too)."""
    try:
        status = Path(f"/proc/{process.pid}/status").read_text()
    except OSError:
        return int(process.memory_info().rss)
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return int(process.memory_info().rss)


def _dir_size(path: Path) -> int:
    total = 0
    for entry in path.rglob("*"):
        try:
            total += entry.stat().st_size if entry.is_file() else 0
        except FileNotFoundError:
            continue
    return total


@dataclass
class Measured:
    wall_s: float
    cpu_s: float
    tree_rss: int
    ffmpeg_rss: int
    disk: int
    output_bytes: int
    output_s: float


def measure(action: Callable[[Path], Path | None]) -> Measured:
    """Run `action(scratch_dir)`; it returns the output file it wrote there, if any."""
    with tempfile.TemporaryDirectory(prefix="bench-merge-") as scratch:
        scratch_dir = Path(scratch)
        with PeakSampler(scratch_dir) as sampler:
            cpu_before = _children_cpu_s()
            started = time.perf_counter()
            output = action(scratch_dir)
            wall = time.perf_counter() - started
            cpu = _children_cpu_s() - cpu_before
        size = output.stat().st_size if output else 0
        length = probe(output).duration_s if output else 0.0
        return Measured(wall, cpu, sampler.tree_rss, sampler.ffmpeg_rss, sampler.disk, size, length)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- the approaches ----------------------------------------------------------------------------


def merge(tracks: list[TrackSource]) -> Callable[[Path], Path]:
    def action(scratch: Path) -> Path:
        output = scratch / "merged.flac"
        merge_tracks(
            tracks,
            max_channels=MAX_CHANNELS,
            sample_rate=SAMPLE_RATE,
            output_path=output,
            timeout_s=TIMEOUT_S,
        )
        return output

    return action


def decode_floor(tracks: list[TrackSource]) -> Callable[[Path], None]:
    """Every input decoded by one ffmpeg, read the same way as the merge reads them."""

    def action(scratch: Path) -> None:
        streams = [
            ffmpeg.input(t.url, **network_options(t.url), thread_queue_size=HTTP_THREAD_QUEUE_SIZE)[
                "a:0"
            ]
            for t in tracks
        ]
        output = ffmpeg.output(*streams, "-", format="null").global_args(
            "-nostdin", "-hide_banner", "-loglevel", "error"
        )
        run_ffmpeg(ffmpeg.compile(output), timeout_s=TIMEOUT_S)

    return action


def decode_concat(tracks: list[TrackSource]) -> Callable[[Path], None]:
    """Every input decoded by one ffmpeg into a single null output, with no per-stream muxing."""

    def action(scratch: Path) -> None:
        streams = [
            ffmpeg.input(t.url, **network_options(t.url), thread_queue_size=HTTP_THREAD_QUEUE_SIZE)[
                "a:0"
            ]
            for t in tracks
        ]
        joined = ffmpeg.concat(*streams, v=0, a=1)
        output = ffmpeg.output(joined, "-", format="null").global_args(
            "-nostdin", "-hide_banner", "-loglevel", "error"
        )
        run_ffmpeg(ffmpeg.compile(output), timeout_s=TIMEOUT_S)

    return action


def naive(tracks: list[TrackSource]) -> Callable[[Path], Path]:
    """Download each file whole, then `amerge` the local copies (no alignment, no padding)."""

    def action(scratch: Path) -> Path:
        local = []
        with requests.Session() as session:
            for track in tracks:
                path = scratch / f"{track.key}.m4a"
                with session.get(track.url, stream=True, timeout=60) as response:
                    response.raise_for_status()
                    with path.open("wb") as sink:
                        for chunk in response.iter_content(chunk_size=1 << 20):
                            sink.write(chunk)
                local.append(path)
        output = scratch / "naive.flac"
        inputs = [arg for path in local for arg in ("-i", str(path))]
        _ffmpeg(
            *inputs,
            *("-filter_complex", f"amerge=inputs={len(local)}"),
            *("-c:a", "flac", "-sample_fmt", "s16", "-ar", str(SAMPLE_RATE), str(output)),
        )
        return output

    return action


# --- the run -----------------------------------------------------------------------------------


def serve(directory: Path) -> LoopbackServer:
    app = Flask("bench-media")

    @app.get("/media/<path:name>")
    def media(name: str) -> Response:
        return send_from_directory(directory, name, conditional=True)

    return LoopbackServer(app)


@dataclass
class CaseResult:
    speakers: int
    minutes: int
    merge: Measured
    floor: Measured
    concat: Measured
    naive: Measured


def run_case(server: LoopbackServer, speakers: int, minutes: int) -> CaseResult:
    tracks = []
    for index in range(speakers):
        path, offset_s, duration_s = speaker_track(index, minutes)
        url = f"{server.url}/media/{path.relative_to(CACHE)}?X-Amz-Signature=bench{index}"
        tracks.append(TrackSource(f"speaker{index}", url, offset_s, duration_s))
    print(f"  {speakers} speakers, {minutes} min ...", flush=True)
    floor = measure(decode_floor(tracks))
    concat = measure(decode_concat(tracks))
    merged = measure(merge(tracks))
    baseline = measure(naive(tracks))
    return CaseResult(speakers, minutes, merged, floor, concat, baseline)


def mb(value: int) -> str:
    return f"{value / 1e6:.1f}"


def print_table(results: list[CaseResult]) -> None:
    print()
    header = (
        f"{'meeting':<16}{'approach':<16}{'wall s':>8}{'cpu s':>7}{'x RT':>7}{'RSS MB':>8}"
        f"{'ffmpeg MB':>10}{'disk MB':>9}{'out MB':>8}{'out s':>8}"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        meeting_s = result.minutes * 60.0
        name = f"{result.speakers} spk {result.minutes} min"
        for label, figures in (
            ("merge", result.merge),
            ("decode floor", result.floor),
            ("decode (concat)", result.concat),
            ("naive", result.naive),
        ):
            out_s = f"{figures.output_s:.1f}" if figures.output_bytes else "-"
            out_mb = mb(figures.output_bytes) if figures.output_bytes else "-"
            print(
                f"{name:<16}{label:<16}{figures.wall_s:>8.2f}{figures.cpu_s:>7.2f}"
                f"{meeting_s / figures.wall_s:>7.0f}{mb(figures.tree_rss):>8}"
                f"{mb(figures.ffmpeg_rss):>10}{mb(figures.disk):>9}{out_mb:>8}{out_s:>8}"
            )
            name = ""
    print()
    for result in results:
        name = f"{result.speakers} spk {result.minutes} min"
        vs_floor = result.merge.wall_s / result.floor.wall_s
        vs_concat = result.merge.wall_s / result.concat.wall_s
        cpu_vs_floor = result.merge.cpu_s / result.floor.cpu_s
        vs_naive = result.naive.wall_s / result.merge.wall_s
        print(
            f"{name:<16}merge/floor {vs_floor:.2f} (cpu {cpu_vs_floor:.2f}, "
            f"vs concat {vs_concat:.2f})   naive/merge {vs_naive:.2f}   "
            f"naive output {result.naive.output_s:.0f} s of {result.minutes * 60} s"
        )
    print()


def targets(results: list[CaseResult]) -> list[Target]:
    """The merge's targets: speed against the decode floor, memory ceilings, no growth."""
    judged = []
    for result in results:
        name = f"{result.speakers} spk {result.minutes} min"
        merged = result.merge
        vs_floor = merged.wall_s / result.floor.wall_s
        judged += [
            Target(
                f"{name}: merge <= {MERGE_VS_FLOOR_LIMIT} x decode floor",
                vs_floor <= MERGE_VS_FLOOR_LIMIT,
                f"{vs_floor:.2f}",
            ),
            Target(
                f"{name}: peak RSS (tree) <= 300 MB",
                merged.tree_rss <= PEAK_RSS_LIMIT,
                f"{mb(merged.tree_rss)} MB",
            ),
            Target(
                f"{name}: ffmpeg peak RSS <= 300 MB",
                0 < merged.ffmpeg_rss <= PEAK_RSS_LIMIT,
                f"{mb(merged.ffmpeg_rss)} MB",
            ),
        ]
    by_key = {(r.speakers, r.minutes): r for r in results}
    for speakers in sorted({r.speakers for r in results}):
        short, long = by_key.get((speakers, 10)), by_key.get((speakers, 60))
        if not (short and long):
            continue
        change = long.merge.tree_rss / short.merge.tree_rss - 1
        judged.append(
            Target(
                f"{speakers} spk: RSS (tree) 60 vs 10 min within +-20 %",
                abs(change) <= RSS_GROWTH_LIMIT,
                f"{change:+.0%}",
            )
        )
        grown = long.merge.ffmpeg_rss - short.merge.ffmpeg_rss
        index = long.floor.ffmpeg_rss - short.floor.ffmpeg_rss
        beyond = (grown - index) / short.merge.ffmpeg_rss if short.merge.ffmpeg_rss else math.inf
        judged.append(
            Target(
                f"{speakers} spk: ffmpeg RSS 60 vs 10 min, beyond the floor's growth, <= 20 %",
                abs(beyond) <= RSS_GROWTH_LIMIT,
                f"{beyond:+.0%}: merge {grown / 1e6:+.1f} MB, floor {index / 1e6:+.1f} MB",
            )
        )
    return judged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="only the 10-minute meetings")
    options = parser.parse_args(argv)
    cases = QUICK_CASES if options.quick else FULL_CASES
    if shutil.which("ffmpeg") is None or shutil.which("espeak-ng") is None:
        print("needs ffmpeg and espeak-ng (make setup)", file=sys.stderr)
        return 2
    generate_inputs(sorted({minutes for _, minutes in cases}))
    print(f"merge benchmark: inputs over HTTP (loopback, Range), {os.cpu_count()} CPUs")
    with serve(CACHE) as server:
        results = [run_case(server, speakers, minutes) for speakers, minutes in cases]
    print_table(results)
    return report(targets(results))


if __name__ == "__main__":
    sys.exit(main())
