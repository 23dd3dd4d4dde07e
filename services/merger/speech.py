"""Speech per participant track: when each participant spoke, found for little CPU.

Each track is decoded once by ffmpeg to 16 kHz mono s16le (resampled and downmixed as the merge
does). Python writes that PCM to a scratch file, which the compact layout later copies its
stretches from, so no track is decoded twice, and measures every 10 ms frame's level on the way.

A level gate finds candidate runs: frames louder than the track's own noise floor by
`speech_gate_db` (never below `speech_gate_min_dbfs`). Loud is not speech, though: typing and
coughs pass any level gate. silero-vad (its ONNX model, on onnxruntime and numpy, without torch)
confirms each candidate from its first `speech_check_seconds` and stops at the first window that
reaches `speech_vad_threshold`; unconfirmed runs are dropped. Running the model on every window of
a track costs about 13 CPU s per track-hour, some 15 times the decode; on the start of each
candidate only, it costs a small fraction of the decode.

A confirmed run's edges then follow the speech outwards (the classic double threshold): while the
frames before its start, and after its end, stay louder than the floor by `speech_edge_db`, they
belong to the run, at most EDGE_MAX_SECONDS each way. A soft first consonant or a fading last
syllable is quieter than the gate but louder than the room, so it lands inside the run and the
compact layout's fixed padding can stay small; the bound keeps a floor that rises (a fan, a
neighbour's voice) from growing a run without end.

Tracks run in parallel threads (numpy, onnxruntime and the ffmpeg pipes release the GIL), as many
as there are CPUs. Memory stays flat: PCM passes through in fixed chunks, and what stays is one
level per 10 ms frame (1.4 MB per track-hour) while that track is examined.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from services.core.settings import MergerSettings
from services.merger.ffmpeg_plan import TrackSource, build_decode_command
from services.merger.mixdown import MixdownTransientError, run_ffmpeg

SAMPLE_RATE = 16000  # silero-vad's rate, and the compact layout's
BYTES_PER_SAMPLE = 2  # s16le
FRAME_SAMPLES = SAMPLE_RATE // 100  # 10 ms level frames
FRAMES_PER_SECOND = SAMPLE_RATE // FRAME_SAMPLES
READ_BYTES = 1 << 18  # 8 s of PCM per read from ffmpeg
# Frames quieter than this are digital silence (RMS under one step of 16-bit audio): a muted or
# not yet connected microphone, not a room; they say nothing about the noise floor.
DIGITAL_SILENCE_DBFS = -90.0
# The noise floor is this percentile of the frames above digital silence: even a participant who
# talks most of the time is silent between sentences for more than a tenth of their track.
FLOOR_PERCENTILE = 10.0
# The gate never rises above this, whatever the floor: on a track that is digital silence between
# words (noise suppression, push-to-talk) every non-silent frame is speech, the "floor" lands on
# quiet speech, and floor + gate would cut soft syllables. No room's noise floor is this loud.
GATE_CEILING_DBFS = -40.0
# Dips below the gate shorter than this stay inside the run: pauses between words and at commas
# are shorter, so a sentence is one candidate and is confirmed as a whole. A trailing word cut off
# into a run of its own would be checked alone, on a fraction of a second of audio; the pauses
# that separate sentences (and that the layout may keep or cut) are longer.
BRIDGE_SECONDS = 0.3
# A confirmed run's edge moves outwards over at most this much audio above the edge level: a soft
# onset or a fading tail lasts a few tens of ms to a couple of hundred, a floor that stays above
# the edge level is not speech for longer.
EDGE_MAX_SECONDS = 0.3
SILERO_WINDOW = 512  # samples per model call at 16 kHz
SILERO_CONTEXT = 64  # samples of the previous window prepended at 16 kHz
CONFIRM_BATCH = 8  # candidates checked together (measured: 62 us per clip-window vs 117 alone)
# The check starts this many windows before the run, so the model's state has settled on the
# room when the first syllable arrives (a soft onset is often just under the gate).
SILERO_LEAD_IN_WINDOWS = 2

Interval = tuple[float, float]
Samples = npt.NDArray[np.int16]


@dataclass(frozen=True)
class DetectionParams:
    gate_db: float
    gate_min_dbfs: float
    vad_threshold: float
    check_seconds: float
    min_speech_seconds: float
    edge_db: float

    @classmethod
    def from_settings(cls, settings: MergerSettings) -> DetectionParams:
        return cls(
            gate_db=settings.speech_gate_db,
            gate_min_dbfs=settings.speech_gate_min_dbfs,
            vad_threshold=settings.speech_vad_threshold,
            check_seconds=settings.speech_check_seconds,
            min_speech_seconds=settings.compact_min_speech_seconds,
            edge_db=settings.speech_edge_db,
        )


@dataclass(frozen=True)
class Detection:
    """What the detector found in one track's PCM: speech runs in seconds on the track's clock."""

    runs: tuple[Interval, ...]
    gate_dbfs: float | None  # None: the track is digital silence throughout
    candidates: int  # runs the gate passed to the check


@dataclass(frozen=True)
class TrackSpeech:
    """One participant track after detection: its runs, its decoded length and its PCM."""

    key: str
    runs: tuple[Interval, ...]  # seconds on the track's own clock (0 = its first sample)
    samples: int  # decoded length at SAMPLE_RATE
    pcm_path: Path  # 16 kHz mono s16le, `samples` long; the caller removes it
    gate_dbfs: float | None
    candidates: int

    @property
    def duration_s(self) -> float:
        return self.samples / SAMPLE_RATE

    @property
    def speech_s(self) -> float:
        return sum(end - start for start, end in self.runs)


# ---- silero-vad on onnxruntime ---------------------------------------------------------------


def silero_model_path() -> Path:
    """silero_vad/data/silero_vad.onnx, found without importing the package (it imports torch)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "silero-vad is not installed (pip install --no-deps -c constraints.txt silero-vad)"
        )
    path = Path(spec.origin).parent / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise RuntimeError(f"silero-vad's model is missing: {path}")
    return path


class Silero:
    """The ONNX model, called as silero_vad.utils_vad.OnnxWrapper calls it at 16 kHz: 512-sample
    windows with the previous 64 samples prepended, state [2, 1, 128]. One session serves every
    thread (onnxruntime's `run` is thread-safe; the state travels with each call)."""

    def __init__(self, model_path: Path | None = None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(model_path or silero_model_path()),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        self._rate = np.array(SAMPLE_RATE, dtype=np.int64)

    def iter_probabilities(self, samples: Samples) -> Iterator[float]:
        """Speech probability per 512-sample window, from a fresh state; the last window is
        zero-padded. A generator: the caller stops it when it has seen enough."""
        audio = samples.astype(np.float32) / 32768.0
        remainder = len(audio) % SILERO_WINDOW
        if remainder:
            audio = np.concatenate([audio, np.zeros(SILERO_WINDOW - remainder, np.float32)])
        state = np.zeros((2, 1, 128), np.float32)
        context = np.zeros((1, SILERO_CONTEXT), np.float32)
        for offset in range(0, len(audio), SILERO_WINDOW):
            chunk = np.concatenate([context, audio[None, offset : offset + SILERO_WINDOW]], axis=1)
            prob, state = self.session.run(None, {"input": chunk, "state": state, "sr": self._rate})
            context = chunk[:, -SILERO_CONTEXT:]
            yield float(prob[0][0])

    def probabilities(self, pcm: bytes) -> list[float]:
        """Every window of s16le `pcm` (the whole-stream mode the detector bench compares)."""
        return list(self.iter_probabilities(np.frombuffer(pcm, dtype="<i2")))

    def reaches(self, samples: Samples, threshold: float) -> bool:
        """Whether any window of `samples` reaches `threshold`; stops at the first that does."""
        return any(prob >= threshold for prob in self.iter_probabilities(samples))

    def confirm(self, clips: Iterable[Samples], threshold: float) -> list[bool]:
        """`reaches` for many clips at once: each clip from a fresh state, in a batch of
        CONFIRM_BATCH rows stepped together (one model call per window for the whole batch
        costs about half as much per clip as one call per clip). A row whose clip reached the
        threshold or ran out takes the next clip, so the batch stays full; only CONFIRM_BATCH
        clips are held at a time."""
        pending = iter(enumerate(clips))
        results: list[bool] = []
        rows: list[tuple[int, npt.NDArray[np.float32]] | None] = [None] * CONFIRM_BATCH
        steps = [0] * CONFIRM_BATCH
        state = np.zeros((2, CONFIRM_BATCH, 128), np.float32)
        context = np.zeros((CONFIRM_BATCH, SILERO_CONTEXT), np.float32)
        window = np.zeros((CONFIRM_BATCH, SILERO_WINDOW), np.float32)

        def refill(row: int) -> None:
            nxt = next(pending, None)
            if nxt is None:
                rows[row] = None
                return
            index, clip = nxt
            audio = clip.astype(np.float32) / 32768.0
            remainder = len(audio) % SILERO_WINDOW
            if remainder or not len(audio):
                audio = np.concatenate([audio, np.zeros(SILERO_WINDOW - remainder, np.float32)])
            results.append(False)
            rows[row] = (index, audio)
            steps[row] = 0
            state[:, row, :] = 0.0
            context[row] = 0.0

        for row in range(CONFIRM_BATCH):
            refill(row)
        while any(row is not None for row in rows):
            for row, held in enumerate(rows):
                start = steps[row] * SILERO_WINDOW
                window[row] = held[1][start : start + SILERO_WINDOW] if held else 0.0
            chunk = np.concatenate([context, window], axis=1)
            prob, state = self.session.run(None, {"input": chunk, "state": state, "sr": self._rate})
            context = chunk[:, -SILERO_CONTEXT:].copy()
            for row, held in enumerate(rows):
                if held is None:
                    continue
                index, audio = held
                steps[row] += 1
                if prob[row][0] >= threshold:
                    results[index] = True
                    refill(row)
                elif steps[row] * SILERO_WINDOW >= len(audio):
                    refill(row)
        return results


@functools.cache
def shared_model() -> Silero:
    """The process's one model session (loading it costs more than checking a track)."""
    return Silero()


# ---- levels, gate, runs (pure) ---------------------------------------------------------------


def frame_levels(samples: Samples) -> npt.NDArray[np.float32]:
    """RMS level of each whole 10 ms frame in dBFS; digital silence comes out at -inf."""
    whole = len(samples) // FRAME_SAMPLES * FRAME_SAMPLES
    frames = samples[:whole].reshape(-1, FRAME_SAMPLES).astype(np.float32)
    # The sum of squares without a temporary of the squares: ten times faster than mean(f * f).
    energy = np.einsum("ij,ij->i", frames, frames) / (FRAME_SAMPLES * 32768.0**2)
    with np.errstate(divide="ignore"):
        levels: npt.NDArray[np.float32] = (10.0 * np.log10(energy)).astype(np.float32)
    return levels


def noise_floor(levels: npt.NDArray[np.float32]) -> float | None:
    """The track's noise floor in dBFS: a low percentile of its frames above digital silence.
    None when every frame is digital silence."""
    audible = levels[levels > DIGITAL_SILENCE_DBFS]
    if audible.size == 0:
        return None
    return float(np.percentile(audible, FLOOR_PERCENTILE))


def gate_level(levels: npt.NDArray[np.float32], params: DetectionParams) -> float | None:
    """The level a frame must exceed to be a speech candidate: the track's noise floor plus
    `gate_db`, at most GATE_CEILING_DBFS and never below `gate_min_dbfs`. None when every frame
    is digital silence."""
    floor = noise_floor(levels)
    return None if floor is None else _gate(floor, params)


def _gate(floor: float, params: DetectionParams) -> float:
    return max(min(floor + params.gate_db, GATE_CEILING_DBFS), params.gate_min_dbfs)


def edge_level(floor: float, params: DetectionParams) -> float:
    """The level a frame must exceed to extend a confirmed run's edge: the floor plus `edge_db`,
    never above the gate."""
    return min(floor + params.edge_db, _gate(floor, params))


def candidate_runs(
    levels: npt.NDArray[np.float32], gate: float, *, bridge_frames: int
) -> list[tuple[int, int]]:
    """Runs of frames above `gate` as [start, end) frame indices, dips shorter than
    `bridge_frames` bridged."""
    above = np.concatenate([[False], levels > gate, [False]])
    edges = np.flatnonzero(np.diff(above.astype(np.int8)))
    runs: list[tuple[int, int]] = []
    for start, end in zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True):
        if runs and start - runs[-1][1] < bridge_frames:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    return runs


def widen_runs(
    levels: npt.NDArray[np.float32],
    runs: Sequence[tuple[int, int]],
    edge: float,
    *,
    max_frames: int,
) -> list[tuple[int, int]]:
    """Each [start, end) frame run extended outwards over the frames louder than `edge` next to
    it, at most `max_frames` each way; runs that then touch or overlap become one."""
    above = levels > edge
    widened: list[tuple[int, int]] = []
    for start, end in runs:
        low = max(0, start - max_frames)
        quiet_before = np.flatnonzero(~above[low:start])
        start = low + int(quiet_before[-1]) + 1 if quiet_before.size else low
        high = min(len(levels), end + max_frames)
        quiet_after = np.flatnonzero(~above[end:high])
        end = end + int(quiet_after[0]) if quiet_after.size else high
        if widened and start <= widened[-1][1]:
            widened[-1] = (widened[-1][0], max(widened[-1][1], end))
        else:
            widened.append((start, end))
    return widened


def find_speech(
    levels: npt.NDArray[np.float32],
    read: Callable[[int, int], Samples],
    params: DetectionParams,
    model: Silero,
) -> Detection:
    """Confirmed speech runs of a track, from its frame levels, their edges widened over the soft
    audio next to them; `read(start, end)` returns the track's samples in [start, end) (fewer at
    its end)."""
    floor = noise_floor(levels)
    if floor is None:
        return Detection(runs=(), gate_dbfs=None, candidates=0)
    gate = _gate(floor, params)
    bridge = round(BRIDGE_SECONDS * FRAMES_PER_SECOND)
    min_frames = params.min_speech_seconds * FRAMES_PER_SECOND
    candidates = [
        run
        for run in candidate_runs(levels, gate, bridge_frames=bridge)
        if run[1] - run[0] >= min_frames
    ]
    check = max(1, math.ceil(params.check_seconds * SAMPLE_RATE))
    lead = SILERO_LEAD_IN_WINDOWS * SILERO_WINDOW
    clips = (
        read(
            max(0, start * FRAME_SAMPLES - lead),
            min(end * FRAME_SAMPLES, start * FRAME_SAMPLES + check),
        )
        for start, end in candidates
    )
    verdicts = model.confirm(clips, params.vad_threshold)
    confirmed = [run for run, speech in zip(candidates, verdicts, strict=True) if speech]
    runs = widen_runs(
        levels,
        confirmed,
        edge_level(floor, params),
        max_frames=round(EDGE_MAX_SECONDS * FRAMES_PER_SECOND),
    )
    return Detection(
        runs=tuple((start / FRAMES_PER_SECOND, end / FRAMES_PER_SECOND) for start, end in runs),
        gate_dbfs=gate,
        candidates=len(candidates),
    )


def detect_in_pcm(pcm: bytes, params: DetectionParams, model: Silero) -> Detection:
    """The detector on PCM in memory (16 kHz mono s16le), as the bench runs it."""
    samples = np.frombuffer(pcm, dtype="<i2")
    return find_speech(frame_levels(samples), lambda a, b: samples[a:b], params, model)


# ---- tracks ----------------------------------------------------------------------------------


class _PcmSink:
    """Writes ffmpeg's PCM to the scratch file and keeps each whole frame's level."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.samples = 0
        self.levels: list[npt.NDArray[np.float32]] = []
        self._carry = b""

    def __call__(self, stream: IO[bytes]) -> None:
        with self.path.open("wb") as out:
            while chunk := stream.read(READ_BYTES):
                out.write(chunk)
                data = self._carry + chunk
                usable = len(data) // (FRAME_SAMPLES * BYTES_PER_SAMPLE) * FRAME_SAMPLES
                self.levels.append(frame_levels(np.frombuffer(data, "<i2", count=usable)))
                self._carry = data[usable * BYTES_PER_SAMPLE :]
                self.samples += len(chunk) // BYTES_PER_SAMPLE

    def all_levels(self) -> npt.NDArray[np.float32]:
        return np.concatenate(self.levels) if self.levels else np.zeros(0, np.float32)


def _pcm_reader(handle: IO[bytes]) -> Callable[[int, int], Samples]:
    def read(start: int, end: int) -> Samples:
        handle.seek(start * BYTES_PER_SAMPLE)
        data = handle.read(max(0, end - start) * BYTES_PER_SAMPLE)
        return np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2")

    return read


def detect_track(
    source: TrackSource,
    pcm_path: Path,
    params: DetectionParams,
    *,
    timeout_s: float,
    model: Silero | None = None,
) -> TrackSpeech:
    """Decode `source` once into `pcm_path` and find its speech. ffmpeg's failures are
    classified as the merge's are (bad input permanent, network trouble transient); a scratch
    disk that fills up is transient. On any failure `pcm_path` is removed."""
    sink = _PcmSink(pcm_path)
    try:
        try:
            run_ffmpeg(
                build_decode_command(source.url, sample_rate=SAMPLE_RATE),
                timeout_s=timeout_s,
                read_stdout=sink,
            )
        except OSError as e:  # the scratch file, not ffmpeg: full disk, lost volume
            raise MixdownTransientError(f"scratch audio not written: {e.strerror or e}") from e
        with pcm_path.open("rb") as handle:
            found = find_speech(
                sink.all_levels(), _pcm_reader(handle), params, model or shared_model()
            )
    except BaseException:
        pcm_path.unlink(missing_ok=True)
        raise
    return TrackSpeech(
        key=source.key,
        runs=found.runs,
        samples=sink.samples,
        pcm_path=pcm_path,
        gate_dbfs=found.gate_dbfs,
        candidates=found.candidates,
    )


def detect_speech(
    sources: Sequence[TrackSource],
    scratch_dir: str | os.PathLike[str],
    params: DetectionParams,
    *,
    timeout_s: float,
    model: Silero | None = None,
) -> list[TrackSpeech]:
    """Every track's speech, in the order given, tracks in parallel (one thread per CPU). Each
    track's PCM is left in `scratch_dir` for the layout; if any track fails, every PCM file
    written is removed and the first failure is raised."""
    deadline = time.monotonic() + timeout_s
    directory = Path(scratch_dir)
    model = model or shared_model()

    def one(indexed: tuple[int, TrackSource]) -> TrackSpeech:
        index, source = indexed
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise MixdownTransientError("speech detection ran out of time")
        path = directory / f"track-{index:03d}.s16"
        return detect_track(source, path, params, timeout_s=remaining, model=model)

    workers = max(1, min(len(sources), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="speech") as pool:
        futures = [pool.submit(one, item) for item in enumerate(sources)]
        results: list[TrackSpeech] = []
        failure: BaseException | None = None
        for future in futures:
            try:
                results.append(future.result())
            except BaseException as e:  # noqa: BLE001 - re-raised below, once every file is known
                failure = failure or e
                for later in futures:
                    later.cancel()
    if failure is not None:
        remove_pcm(results)
        raise failure
    return results


def remove_pcm(tracks: Sequence[TrackSpeech]) -> None:
    for track in tracks:
        track.pcm_path.unlink(missing_ok=True)


def summary(tracks: Sequence[TrackSpeech]) -> dict[str, Any]:
    """Figures for the merge's log line."""
    return {
        "tracks": len(tracks),
        "speech_runs": sum(len(t.runs) for t in tracks),
        "candidates": sum(t.candidates for t in tracks),
        "speech_seconds": round(sum(t.speech_s for t in tracks), 3),
        "track_seconds": round(sum(t.duration_s for t in tracks), 3),
    }
