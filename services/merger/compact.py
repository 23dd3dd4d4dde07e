"""The compact layout: every speaker's speech, once, in meeting order, in one mono file.

Planning is pure and works in samples at 16 kHz, so every place in the file and on the meeting
timeline is an exact sample: each speech run found in a participant track is widened by the
padding (clipped to its track), runs of one speaker whose padded gap is shorter than the join
pause become one stretch (the pause is kept), and the stretches of all speakers are laid out by
their start on the meeting timeline with a short silence between them. Speech of two speakers at
the same time becomes two stretches in a row: both are kept, one after the other. Every stretch
costs its padding and a gap; the detector's runs already hold their soft edges, so both stay
small and the file stays shorter than the meeting (its silences outweigh the serialised
overlap). The plan is a `SegmentMap` (one segment per stretch) plus, per segment, the PCM it
copies.

Writing streams those PCM slices and the silences into one ffmpeg that encodes a mono 16 kHz FLAC,
copying in fixed-size chunks, then checks the file's length against the plan. The tracks' scratch
PCM files are removed afterwards, whatever happened.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from services.core.settings import MergerSettings
from services.core.speech.segment_map import Breakdown, MapSpeaker, Segment, SegmentMap
from services.merger.ffmpeg_plan import build_pcm_to_flac_command
from services.merger.mixdown import MixdownInputError, run_ffmpeg
from services.merger.speech import BYTES_PER_SAMPLE, SAMPLE_RATE, TrackSpeech, remove_pcm

COPY_BYTES = 1 << 20  # per write into ffmpeg: 32 s of audio
_ZEROS = bytes(COPY_BYTES)

Span = tuple[int, int]  # [start, end) in samples


@dataclass(frozen=True)
class LayoutParams:
    pad_before_s: float
    pad_after_s: float
    gap_s: float
    join_pause_s: float

    @classmethod
    def from_settings(cls, settings: MergerSettings) -> LayoutParams:
        return cls(
            pad_before_s=settings.compact_pad_before_seconds,
            pad_after_s=settings.compact_pad_after_seconds,
            gap_s=settings.compact_gap_seconds,
            join_pause_s=settings.compact_join_pause_seconds,
        )


@dataclass(frozen=True)
class CompactTrack:
    """One participant track as the plan needs it."""

    key: str  # the track's identity; names its PCM when writing
    speaker: str  # MapSpeaker.id (a participant who rejoined has several tracks, one speaker)
    offset_s: float  # its first sample on the meeting timeline
    samples: int  # its length at SAMPLE_RATE
    runs: tuple[tuple[float, float], ...]  # detected speech, seconds on the track's own clock

    @classmethod
    def of(cls, detected: TrackSpeech, *, speaker: str, offset_s: float) -> CompactTrack:
        return cls(detected.key, speaker, offset_s, detected.samples, detected.runs)


@dataclass(frozen=True)
class Piece:
    """A slice of the output: `samples` from `track`'s PCM at `start`, or silence (no track)."""

    track: str | None
    start: int
    samples: int


@dataclass(frozen=True)
class PlannedSegment:
    segment: Segment
    output: Span  # in samples of the file
    timeline: Span  # in samples of the meeting timeline
    pieces: tuple[Piece, ...]


@dataclass(frozen=True)
class CompactPlan:
    segment_map: SegmentMap
    segments: tuple[PlannedSegment, ...]
    gap_samples: int
    total_samples: int

    @property
    def duration_s(self) -> float:
        return self.total_samples / SAMPLE_RATE


@dataclass(frozen=True)
class CompactOutcome:
    plan: CompactPlan
    duration_s: float  # of the written file, from its STREAMINFO
    elapsed_s: float
    output_bytes: int

    @property
    def segment_map(self) -> SegmentMap:
        return self.plan.segment_map


# ---- planning (pure) -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Run:
    speaker: str
    track: int  # index into the tracks
    padded: Span  # timeline samples
    speech: Span  # timeline samples


@dataclass
class _Stretch:
    speaker: str
    start: int
    end: int
    runs: list[_Run]


def _samples(seconds: float) -> int:
    return round(seconds * SAMPLE_RATE)


def plan_compact(
    tracks: Sequence[CompactTrack], speakers: Sequence[MapSpeaker], params: LayoutParams
) -> CompactPlan:
    """The compact file of these tracks: which stretch goes where, and the map that says so.
    A plan without segments means no track holds any speech."""
    keys = [track.key for track in tracks]
    if len(set(keys)) != len(keys):
        raise ValueError("every track needs its own key")
    order = {speaker.id: index for index, speaker in enumerate(speakers)}
    unknown = sorted({t.speaker for t in tracks} - set(order))
    if unknown:
        raise ValueError(f"tracks name unknown speakers: {', '.join(unknown)}")
    offsets = [_samples(track.offset_s) for track in tracks]
    stretches = _stretches(tracks, offsets, params)
    stretches.sort(key=lambda s: (s.start, order[s.speaker]))

    gap = _samples(params.gap_s)
    planned: list[PlannedSegment] = []
    breakdown = {"speech": 0, "overlap": 0, "padding": 0}
    earlier: list[tuple[int, list[Span]]] = []  # placed stretches' ends and speech
    cursor = 0
    for index, stretch in enumerate(stretches):
        if index:
            cursor += gap
        length = stretch.end - stretch.start
        speech = _union(run.speech for run in stretch.runs)
        heard = _length(speech)
        # Speech that an already placed stretch also covers on the timeline is a serialised copy.
        # That stretch is another speaker's: one speaker's overlapping runs form one stretch.
        earlier = [item for item in earlier if item[0] > stretch.start]
        overlap = _length(_intersection(speech, _union(s for _, spans in earlier for s in spans)))
        earlier.append((stretch.end, speech))
        breakdown["speech"] += heard - overlap
        breakdown["overlap"] += overlap
        breakdown["padding"] += length - heard
        segment = Segment(
            speaker=stretch.speaker,
            output_start=cursor / SAMPLE_RATE,
            output_end=(cursor + length) / SAMPLE_RATE,
            timeline_start=stretch.start / SAMPLE_RATE,
            talk_seconds=heard / SAMPLE_RATE,
        )
        planned.append(
            PlannedSegment(
                segment=segment,
                output=(cursor, cursor + length),
                timeline=(stretch.start, stretch.end),
                pieces=_pieces(stretch, tracks, offsets),
            )
        )
        cursor += length
    gaps = gap * max(0, len(planned) - 1)
    total = cursor
    ends = (offset + track.samples for offset, track in zip(offsets, tracks, strict=True))
    meeting = max(ends, default=0)
    segment_map = SegmentMap(
        layout="compact",
        duration_seconds=total / SAMPLE_RATE,
        meeting_seconds=meeting / SAMPLE_RATE,
        speakers=list(speakers),
        segments=[p.segment for p in planned],
        breakdown=Breakdown(
            speech=breakdown["speech"] / SAMPLE_RATE,
            overlap=breakdown["overlap"] / SAMPLE_RATE,
            padding=breakdown["padding"] / SAMPLE_RATE,
            gaps=gaps / SAMPLE_RATE,
        ),
    )
    return CompactPlan(segment_map, tuple(planned), gap, total)


def _stretches(
    tracks: Sequence[CompactTrack], offsets: Sequence[int], params: LayoutParams
) -> list[_Stretch]:
    """Each speaker's padded runs (from all their tracks), joined across short pauses."""
    before, after = _samples(params.pad_before_s), _samples(params.pad_after_s)
    join = _samples(params.join_pause_s)
    runs: list[_Run] = []
    for index, (track, offset) in enumerate(zip(tracks, offsets, strict=True)):
        for start_s, end_s in track.runs:
            start = max(0, math.floor(start_s * SAMPLE_RATE))
            end = min(track.samples, math.ceil(end_s * SAMPLE_RATE))
            if end <= start:
                continue
            padded = (offset + max(0, start - before), offset + min(track.samples, end + after))
            runs.append(_Run(track.speaker, index, padded, (offset + start, offset + end)))
    runs.sort(key=lambda run: (run.speaker, run.padded[0], run.track))
    stretches: list[_Stretch] = []
    for run in runs:
        last = stretches[-1] if stretches else None
        if last is not None and last.speaker == run.speaker and run.padded[0] - last.end < join:
            last.end = max(last.end, run.padded[1])
            last.runs.append(run)
        else:
            stretches.append(_Stretch(run.speaker, run.padded[0], run.padded[1], [run]))
    return stretches


def _pieces(
    stretch: _Stretch, tracks: Sequence[CompactTrack], offsets: Sequence[int]
) -> tuple[Piece, ...]:
    """Where a stretch's audio comes from. From each run's start, the run's own track supplies
    the audio (its speech, padding and the pause after it) until the next run starts; a pause
    between two tracks of one speaker that neither covers is silence."""
    pieces: list[Piece] = []

    def add(track: str | None, start: int, count: int) -> None:
        if count <= 0:
            return
        last = pieces[-1] if pieces else None
        if last and last.track == track and (track is None or last.start + last.samples == start):
            pieces[-1] = Piece(track, last.start, last.samples + count)
        else:
            pieces.append(Piece(track, start if track else 0, count))

    for index, run in enumerate(stretch.runs):
        lo = run.padded[0] if index else stretch.start
        hi = stretch.runs[index + 1].padded[0] if index + 1 < len(stretch.runs) else stretch.end
        hi = max(lo, hi)
        offset, track = offsets[run.track], tracks[run.track]
        covered_end = min(hi, offset + track.samples)
        add(track.key, lo - offset, covered_end - lo)
        add(None, 0, hi - max(lo, covered_end))
    return tuple(pieces)


def _union(spans: Iterable[Span]) -> list[Span]:
    out: list[Span] = []
    for start, end in sorted(spans):
        if end <= start:
            continue
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _intersection(a: Sequence[Span], b: Sequence[Span]) -> list[Span]:
    out: list[Span] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _length(spans: Sequence[Span]) -> int:
    return sum(end - start for start, end in spans)


# ---- writing ---------------------------------------------------------------------------------


def write_compact(
    plan: CompactPlan,
    pcm_paths: Mapping[str, Path],
    output_path: str | os.PathLike[str],
    *,
    timeout_s: float,
) -> CompactOutcome:
    """Encode the plan's audio into one mono 16 kHz FLAC at `output_path` and check its length.
    On failure no partial file is left behind."""
    started = time.monotonic()
    output = str(output_path)
    handles: dict[str, IO[bytes]] = {}
    written = 0

    def feed(sink: IO[bytes]) -> None:
        nonlocal written
        for index, planned in enumerate(plan.segments):
            if index:
                written += _write_silence(sink, plan.gap_samples)
            for piece in planned.pieces:
                if piece.track is None:
                    written += _write_silence(sink, piece.samples)
                    continue
                handle = handles.get(piece.track)
                if handle is None:
                    handle = handles[piece.track] = pcm_paths[piece.track].open("rb")
                written += _copy(handle, sink, piece)

    try:
        try:
            run_ffmpeg(
                build_pcm_to_flac_command(sample_rate=SAMPLE_RATE, output_path=output),
                timeout_s=timeout_s,
                write_stdin=feed,
            )
        finally:
            for handle in handles.values():
                handle.close()
        if written != plan.total_samples:
            raise MixdownInputError(
                f"compact audio is {written} samples, the plan {plan.total_samples}"
            )
        info = flac_stream_info(output)
        expected = FlacStreamInfo(SAMPLE_RATE, 1, 16, plan.total_samples)
        if info != expected:
            raise MixdownInputError(f"compact file is wrong: {info}, expected {expected}")
    except BaseException:
        Path(output).unlink(missing_ok=True)
        raise
    return CompactOutcome(
        plan=plan,
        duration_s=info.total_samples / info.sample_rate,
        elapsed_s=time.monotonic() - started,
        output_bytes=os.path.getsize(output),
    )


@dataclass(frozen=True)
class FlacStreamInfo:
    sample_rate: int
    channels: int
    bits_per_sample: int
    total_samples: int


def flac_stream_info(path: str | os.PathLike[str]) -> FlacStreamInfo:
    """The FLAC file's STREAMINFO block (the first metadata block, which the encoder rewrites
    with the exact sample count when it finishes): read directly, so checking the written file
    costs no ffprobe process. Layout: "fLaC", a 4-byte block header (type 0, length 34), then
    min/max block size (2 x 16 bits), min/max frame size (2 x 24), sample rate (20), channels - 1
    (3), bits per sample - 1 (5), total samples (36), MD5 (128)."""
    with open(path, "rb") as handle:
        head = handle.read(4 + 4 + 34)
    if len(head) < 42 or head[:4] != b"fLaC" or head[4] & 0x7F != 0:
        raise MixdownInputError("compact file is not a FLAC file with STREAMINFO first")
    packed = int.from_bytes(head[18:26], "big")  # rate .. total samples: 64 bits
    return FlacStreamInfo(
        sample_rate=packed >> 44,
        channels=((packed >> 41) & 0x7) + 1,
        bits_per_sample=((packed >> 36) & 0x1F) + 1,
        total_samples=packed & ((1 << 36) - 1),
    )


def _write_silence(sink: IO[bytes], samples: int) -> int:
    remaining = samples * BYTES_PER_SAMPLE
    while remaining > 0:
        count = min(remaining, COPY_BYTES)
        sink.write(_ZEROS[:count])
        remaining -= count
    return samples


def _copy(handle: IO[bytes], sink: IO[bytes], piece: Piece) -> int:
    handle.seek(piece.start * BYTES_PER_SAMPLE)
    remaining = piece.samples * BYTES_PER_SAMPLE
    while remaining > 0:
        chunk = handle.read(min(remaining, COPY_BYTES))
        if not chunk:
            raise MixdownInputError(f"track {piece.track}: scratch audio ends before the plan")
        sink.write(chunk)
        remaining -= len(chunk)
    return piece.samples


def build_compact(
    detected: Sequence[TrackSpeech],
    tracks: Sequence[CompactTrack],
    speakers: Sequence[MapSpeaker],
    params: LayoutParams,
    output_path: str | os.PathLike[str],
    *,
    timeout_s: float,
) -> CompactOutcome | None:
    """Plan and write the compact file from detected tracks; None when no track holds speech
    (nothing is written). The detected tracks' PCM files are removed in every case."""
    try:
        plan = plan_compact(tracks, speakers, params)
        if not plan.segments:
            return None
        paths = {track.key: track.pcm_path for track in detected}
        return write_compact(plan, paths, output_path, timeout_s=timeout_s)
    finally:
        remove_pcm(detected)
