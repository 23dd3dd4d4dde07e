"""Run the merge: ffmpeg reads every participant file by URL and writes one local FLAC file.

ffmpeg streams from input to output, so memory does not grow with the meeting length; Python only
reads ffmpeg's log lines, keeping the last few for error messages. Failures become domain errors:
bad input is a `PermanentError` (retrying cannot help), network trouble and timeouts a
`TransientError`. Presigned URLs carry signatures, so their query strings never reach a message.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from services.core.errors import InsightsError, PermanentError, TransientError
from services.merger.ffmpeg_plan import (
    ChannelPlan,
    TrackSource,
    build_merge_command,
    build_mono_command,
    build_probe_command,
    build_speech_command,
    plan_channels,
    timeline_seconds,
)

STDERR_TAIL_LINES = 12
DURATION_TOLERANCE_S = 0.05
PROBE_TIMEOUT_S = 60.0

# Matched against ffmpeg's lowercased stderr. Network symptoms are checked first: a connection cut
# mid-file also makes the demuxer report invalid data, and that deserves a retry.
_TRANSIENT_MARKERS = (
    "connection refused",
    "connection reset",
    "timed out",
    "network is unreachable",
    "broken pipe",
    "input/output error",
    "temporary failure in name resolution",
    "server returned 5",
    # S3 answers 403 when a presigned URL has expired; the next attempt presigns afresh.
    "server returned 403",
    "no space left on device",
)
_PERMANENT_MARKERS = (
    "invalid data found when processing input",
    "moov atom not found",
    "does not contain any stream",
    "matches no streams",
    "no such file or directory",
    "server returned 4",
)
# A URL's query string, up to a space or quote; ffmpeg's "URL: message" colon is kept.
_QUERY_STRING = re.compile(
    r"(https?://[^\s?#'\"]*)[?#][^\s'\"]*?(?=:?(?:[\s'\"]|$))", re.IGNORECASE
)
_SILENCE_DURATION = re.compile(r"silence_duration:\s*([0-9.]+)")
_OUT_TIME_US = re.compile(r"^out_time_us=(\d+)\s*$")
_SILENCE_LINE = re.compile(r"\bsilence_(start|end):")
_PROGRESS_LINE = re.compile(r"^[a-z_0-9]+=\S*$")


class MixdownError(InsightsError):
    """ffmpeg could not produce the merged file. `stderr_tail` holds its last log lines."""

    def __init__(self, message: str, *, stderr_tail: str = "") -> None:
        self.stderr_tail = stderr_tail
        super().__init__(f"{message}: {stderr_tail}" if stderr_tail else message)


class MixdownInputError(MixdownError, PermanentError):
    """An input is not usable audio (HTML instead of M4A, no audio stream, 404), or the output
    came out wrong; the same inputs would fail the same way again."""


class MixdownTransientError(MixdownError, TransientError):
    """The network failed or ffmpeg ran out of time; a later attempt may succeed."""


@dataclass(frozen=True)
class FfmpegRun:
    elapsed_s: float
    stderr_tail: str  # redacted


@dataclass(frozen=True)
class ProbeResult:
    duration_s: float
    channels: int
    sample_rate: int
    codec: str


@dataclass(frozen=True)
class MergeOutcome:
    """What was written. `plan` is empty for the mono fallback (speakers come from diarization)."""

    plan: tuple[ChannelPlan, ...]
    channels: int
    duration_s: float  # of the output file, as ffprobe reads it
    sample_rate: int
    elapsed_s: float  # the whole call: speech measurement, ffmpeg and verification
    output_bytes: int

    @property
    def realtime_factor(self) -> float:
        """Meeting seconds merged per wall-clock second."""
        return self.duration_s / self.elapsed_s if self.elapsed_s > 0 else math.inf


def redact(text: str) -> str:
    """Drop query strings (presigned signatures) from every URL in `text`."""
    return _QUERY_STRING.sub(r"\1?…", text)


def run_ffmpeg(
    argv: Sequence[str],
    *,
    timeout_s: float,
    on_stderr_line: Callable[[str], bool] | None = None,
    read_stdout: Callable[[IO[bytes]], None] | None = None,
    write_stdin: Callable[[IO[bytes]], None] | None = None,
) -> FfmpegRun:
    """Run ffmpeg to completion, killing it after `timeout_s`.

    stderr is read line by line, never accumulated: each line goes to `on_stderr_line`, which
    returns True for data it consumed (measurements); the last few other lines are kept for the
    error message. `read_stdout` consumes ffmpeg's stdout (raw audio it writes to `pipe:1`) and
    `write_stdin` feeds its stdin (`pipe:0`); either runs in the calling thread while another
    thread drains stderr, so neither pipe can fill up and stall the other. An exception raised
    by either callback kills ffmpeg and propagates.
    """
    tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    timed_out = threading.Event()
    started = time.monotonic()
    process = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if write_stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE if read_stdout else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    def kill() -> None:
        timed_out.set()
        process.kill()

    def drain_stderr() -> None:
        assert process.stderr is not None
        for raw in process.stderr:
            stripped = raw.decode(errors="replace").rstrip()
            consumed = on_stderr_line is not None and on_stderr_line(stripped)
            if stripped and not consumed:
                tail.append(redact(stripped))

    watchdog = threading.Timer(timeout_s, kill)
    watchdog.start()
    try:
        if read_stdout is None and write_stdin is None:
            drain_stderr()
        else:
            drainer = threading.Thread(target=drain_stderr, name="ffmpeg-stderr", daemon=True)
            drainer.start()
            try:
                _exchange(process, read_stdout, write_stdin)
            except BaseException:
                process.kill()
                raise
            finally:
                process.wait()
                drainer.join()
        returncode = process.wait()
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    elapsed = time.monotonic() - started
    stderr_tail = "\n".join(tail)
    if timed_out.is_set():
        raise MixdownTransientError(
            f"ffmpeg did not finish within {timeout_s:.0f} s", stderr_tail=stderr_tail
        )
    if returncode != 0:
        raise _classify(f"ffmpeg failed (exit {returncode})", stderr_tail)
    return FfmpegRun(elapsed_s=elapsed, stderr_tail=stderr_tail)


def _exchange(
    process: subprocess.Popen[bytes],
    read_stdout: Callable[[IO[bytes]], None] | None,
    write_stdin: Callable[[IO[bytes]], None] | None,
) -> None:
    """Feed stdin, then read stdout (a command here uses one or the other). A writer that finds
    the pipe closed stops quietly: ffmpeg exited, and its exit status and log tell why."""
    if write_stdin is not None:
        assert process.stdin is not None
        try:
            write_stdin(process.stdin)
            process.stdin.close()
        except BrokenPipeError:
            pass
    if read_stdout is not None:
        assert process.stdout is not None
        read_stdout(process.stdout)


def merge_tracks(
    tracks: Sequence[TrackSource],
    *,
    max_channels: int,
    sample_rate: int,
    output_path: str | os.PathLike[str],
    timeout_s: float,
    speech_seconds: Mapping[str, float] | None = None,
) -> MergeOutcome:
    """Write one FLAC channel per speaker to `output_path`, every channel as long as the meeting.

    With more tracks than `max_channels`, the quietest speakers share the last channel; their
    speech is measured here (one decode pass per track, in parallel) unless `speech_seconds`
    gives it. The output is checked with ffprobe before it is reported; on any failure no
    partial file is left behind.
    """
    started = time.monotonic()
    deadline = started + timeout_s
    if len(tracks) > max_channels and speech_seconds is None:
        speech_seconds = _measure_all(tracks, deadline=deadline)
    plan = plan_channels(tracks, max_channels=max_channels, speech_seconds=speech_seconds)
    total_s = timeline_seconds(tracks)
    output = str(output_path)
    argv = build_merge_command(tracks, plan, sample_rate=sample_rate, output_path=output)
    try:
        run_ffmpeg(argv, timeout_s=_remaining(deadline))
        result = probe(output)
        _verify(result, channels=len(plan), duration_s=total_s)
    except BaseException:
        Path(output).unlink(missing_ok=True)
        raise
    return MergeOutcome(
        plan=tuple(plan),
        channels=result.channels,
        duration_s=result.duration_s,
        sample_rate=result.sample_rate,
        elapsed_s=time.monotonic() - started,
        output_bytes=os.path.getsize(output),
    )


def mono_mixdown(
    source_url: str,
    *,
    sample_rate: int,
    output_path: str | os.PathLike[str],
    timeout_s: float,
) -> MergeOutcome:
    """The fallback without participant files: the mixed recording as one mono FLAC channel."""
    started = time.monotonic()
    output = str(output_path)
    argv = build_mono_command(source_url, sample_rate=sample_rate, output_path=output)
    try:
        run_ffmpeg(argv, timeout_s=timeout_s)
        result = probe(output)
        _verify(result, channels=1, duration_s=None)
    except BaseException:
        Path(output).unlink(missing_ok=True)
        raise
    return MergeOutcome(
        plan=(),
        channels=1,
        duration_s=result.duration_s,
        sample_rate=result.sample_rate,
        elapsed_s=time.monotonic() - started,
        output_bytes=os.path.getsize(output),
    )


def measure_speech_seconds(url: str, *, timeout_s: float) -> float:
    """Seconds of non-silence in a track's first audio stream (decoded length minus silences)."""
    silence_s = 0.0
    decoded_us = 0

    def on_line(line: str) -> bool:
        nonlocal silence_s, decoded_us
        if match := _SILENCE_DURATION.search(line):
            silence_s += float(match.group(1))
        elif match := _OUT_TIME_US.match(line):
            decoded_us = int(match.group(1))
        return bool(_SILENCE_LINE.search(line) or _PROGRESS_LINE.match(line))

    run_ffmpeg(build_speech_command(url), timeout_s=timeout_s, on_stderr_line=on_line)
    return max(0.0, decoded_us / 1_000_000 - silence_s)


def probe(
    path_or_url: str | os.PathLike[str], *, timeout_s: float = PROBE_TIMEOUT_S
) -> ProbeResult:
    """Duration, channels, rate and codec of the first audio stream, via ffprobe's JSON."""
    source = str(path_or_url)
    try:
        completed = subprocess.run(
            build_probe_command(source),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise MixdownTransientError(f"ffprobe did not finish within {timeout_s:.0f} s") from e
    stderr_tail = redact("\n".join(completed.stderr.strip().splitlines()[-STDERR_TAIL_LINES:]))
    if completed.returncode != 0:
        raise _classify(f"ffprobe failed (exit {completed.returncode})", stderr_tail)
    document = json.loads(completed.stdout or "{}")
    streams = document.get("streams") or []
    if not streams:
        raise MixdownInputError("no audio stream", stderr_tail=stderr_tail)
    stream = streams[0]
    duration = stream.get("duration") or document.get("format", {}).get("duration")
    if duration is None:
        raise MixdownInputError("ffprobe reports no duration", stderr_tail=stderr_tail)
    return ProbeResult(
        duration_s=float(duration),
        channels=int(stream["channels"]),
        sample_rate=int(stream["sample_rate"]),
        codec=str(stream["codec_name"]),
    )


def _measure_all(tracks: Sequence[TrackSource], *, deadline: float) -> dict[str, float]:
    """Speech per track, one ffmpeg per track, as many at once as there are CPUs."""
    workers = max(1, min(len(tracks), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="speech") as pool:
        measured = pool.map(
            lambda track: measure_speech_seconds(track.url, timeout_s=_remaining(deadline)),
            tracks,
        )
        return {track.key: seconds for track, seconds in zip(tracks, measured, strict=True)}


def _verify(result: ProbeResult, *, channels: int, duration_s: float | None) -> None:
    """The file must hold the planned channels and, for a merge, the whole meeting."""
    problems = []
    if result.codec != "flac":
        problems.append(f"codec {result.codec}, expected flac")
    if result.channels != channels:
        problems.append(f"{result.channels} channels, expected {channels}")
    if duration_s is None:
        if result.duration_s <= 0:
            problems.append("no audio")
    elif abs(result.duration_s - duration_s) > DURATION_TOLERANCE_S:
        problems.append(f"{result.duration_s:.3f} s long, expected {duration_s:.3f} s")
    if problems:
        raise MixdownInputError(f"merged file is wrong: {'; '.join(problems)}")


def _classify(message: str, stderr_tail: str) -> MixdownError:
    lowered = stderr_tail.lower()
    if any(marker in lowered for marker in _TRANSIENT_MARKERS):
        return MixdownTransientError(message, stderr_tail=stderr_tail)
    if any(marker in lowered for marker in _PERMANENT_MARKERS):
        return MixdownInputError(message, stderr_tail=stderr_tail)
    # Unrecognised: a retry is cheap and bounded by the caller's budget; giving up is not undone.
    return MixdownTransientError(message, stderr_tail=stderr_tail)


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise MixdownTransientError("merge ran out of time")
    return remaining
