"""Audio fingerprints of scripted lines: which lines, and which of their words, a file holds.

The fake Symbl must recognise what was said from the submitted audio alone. The generator renders
every line with espeak-ng, so each rendered line is a *template* whose audio is known exactly;
`Recogniser` finds templates in any file ffmpeg decodes, wherever they were laid out, and tells
word by word which of them are present. It knows nothing but the audio and the templates: never a
segment map, a meeting's timeline or the script's times.

How (landmark hashing, numpy only):
- Spectrogram of 16 kHz mono (FRAME_SAMPLES window, HOP_SAMPLES hop) in dB within BAND_HZ. A
  *peak* is a local maximum louder than a floor (PeakRule); floors sit well above the -60..-56 dBFS
  noise floor of a silent track, so silence has no peaks.
- Stage 1, candidates: each landmark is paired with the FANOUT loudest landmarks shortly after it;
  a pair hashes (bin, bin difference, frame difference). The templates' pairs form a sorted table;
  the file's pairs vote for (template, file frame - template frame). An offset with MIN_VOTES is a
  candidate alignment.
- Stage 2, verification: a template's *checked* peaks are looked for in the file's denser
  *present* peaks: within MATCH_FRAMES frames and FREQ_TOLERANCE_BINS, and at a level within
  LEVEL_TOLERANCE_DB of what the other matches say (the same audio keeps its spectral shape; a
  chance peak of other audio does not). A word is *heard* when WORD_HEARD_SHARE of its checked
  peaks match, so a word whose audio was cut away, or replaced by silence, noise or another voice,
  is not heard.
- Candidates are accepted greedily, the most convincing first, and an accepted occurrence claims
  the file peaks it matched: a line sharing words with a stronger one (one voice saying "the
  security" in two sentences) is not heard again on the same audio, while a second voice talking
  at the same time keeps its own peaks. Two voices rendering the same words at the same place is
  one occurrence (the stronger).

Measured on realistic meetings laid out like compact files (every line and backchannel cut from
its AAC 32 kbit/s track with 0.12 s of padding, re-ordered, 0.1 s gaps, typing and coughs among
them), 4 and 12 speakers, 19,956 words: every line found within 40 ms, 5 words not heard (0.03 %),
no occurrence that was not there. A mono mixdown of a whole meeting (voices overlapping) loses
4-5 % of words where they overlap: the honest cost of mixing.

The file is decoded and analysed in CHUNK_SECONDS blocks: memory holds the file's peaks (about
15 MB per hour), never its audio or spectrogram. With 500 templates (12 speakers) the table takes
about 120 MB and a 60-minute file about 25 s of one core (plus 2.5 s of ffmpeg decoding). Template
peaks are cached in `cache_dir`.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import json
import subprocess
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FINGERPRINT_VERSION = 4  # bump when a parameter below changes: cached template peaks go stale
ANALYSIS_RATE = 16000
FRAME_SAMPLES = 512
HOP_SAMPLES = 128  # 8 ms
BAND_HZ = (200.0, 4000.0)  # what AAC at 32 kbit/s keeps well


@dataclass(frozen=True)
class PeakRule:
    """A peak is the maximum of its (2 time_radius + 1) x (2 bin_radius + 1) neighbourhood and
    louder than floor_db (dB of a bin's magnitude relative to a full-scale sine; a -58 dBFS white
    noise floor reads about -75)."""

    time_radius: int
    bin_radius: int
    floor_db: float


LANDMARKS = PeakRule(2, 2, -55.0)  # hashed, in templates and files alike
CHECKED = PeakRule(2, 2, -50.0)  # a template's peaks each word is verified on
PRESENT = PeakRule(1, 1, -60.0)  # a file's peaks, denser, that a checked peak may match
FANOUT = 6  # partners per landmark: the loudest of the next PAIR_LOOKAHEAD landmarks...
PAIR_LOOKAHEAD = 40
PAIR_MIN_FRAMES = 3  # ...this far after it (closer pairs are mostly one voice's harmonics)...
PAIR_MAX_FRAMES = 40  # ...and no further
PAIR_MAX_BINS = 48
PAIR_TIME_JITTER = 1  # the table also holds each pair with its frame difference this much off
MAX_TABLE_REPEATS = 64  # a hash this common in the templates carries no information
MIN_VOTES = 10  # on an offset +-1 frame
SEPARATION_FRAMES = 8  # one candidate per template within this many frames: the best voted
MATCH_FRAMES = 1  # a file peak may lie this many frames from where the template has it...
FREQ_TOLERANCE_BINS = 1.25  # ...at a frequency this close (bins, interpolated between bins)...
LEVEL_TOLERANCE_DB = 5.0  # ...at a level this close to the alignment's median difference
WORD_HEARD_SHARE = 0.6
MIN_MATCHED_PEAKS = 8  # an occurrence needs at least this many matched peaks in heard words
# An occurrence whose heard words lie mostly on words already heard must match at least this share
# of its template's peaks: one voice's short function word ("the", "for") matches another's by
# chance on a few peaks, while a second speaker really talking at the same time matches far more.
OVERLAP_MIN_SCORE = 0.15
TWIN_SECONDS = 0.1  # the same word heard twice this close: one word, two voices' renders
PARTIAL_WEIGHT = 0.5  # the rank of a template heard in part, against one heard whole
CHUNK_SECONDS = 30.0

_FFMPEG = ("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error")
_BIN_HZ = ANALYSIS_RATE / FRAME_SAMPLES
_LOW_BIN = int(np.ceil(BAND_HZ[0] / _BIN_HZ))
_HIGH_BIN = int(np.floor(BAND_HZ[1] / _BIN_HZ))
_BINS = _HIGH_BIN - _LOW_BIN + 1
_LEAD_FRAMES = FRAME_SAMPLES // HOP_SAMPLES  # frames before a template's start that hear it
_WINDOW = np.hanning(FRAME_SAMPLES).astype(np.float32)
# A full-scale sine's peak magnitude under the window: 0 dB of a PeakRule's floor.
_FULL_SCALE = float(_WINDOW.sum() / 2)

IntArray = npt.NDArray[np.signedinteger[Any]]
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class WordSpan:
    """A word of a template, seconds within the template's audio."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Template:
    """One rendered line: what `speaker` says when saying `text`."""

    key: str  # stable, unique per (speaker, text)
    speaker: str  # truth for measuring only; the fake never uses it to attribute
    text: str
    audio: str  # path of the render (raw s16le mono at `rate`)
    rate: int
    words: tuple[WordSpan, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "speaker": self.speaker,
            "text": self.text,
            "audio": self.audio,
            "rate": self.rate,
            "words": [[w.text, w.start, w.end] for w in self.words],
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Template:
        return cls(
            key=raw["key"],
            speaker=raw["speaker"],
            text=raw["text"],
            audio=raw["audio"],
            rate=int(raw["rate"]),
            words=tuple(WordSpan(t, float(a), float(b)) for t, a, b in raw["words"]),
        )


@dataclass(frozen=True)
class HeardWord:
    """A word found in the analysed file, seconds in that file."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Occurrence:
    """One place where (part of) a template was heard."""

    template: Template
    start: float  # seconds in the analysed file: the first heard word's start...
    end: float  # ...and the last heard word's end
    words: tuple[HeardWord, ...]  # only the words whose audio is present, in order
    score: float = 0.0  # share of the template's peaks matched at this alignment


def template_key(speaker: str, text: str) -> str:
    """The stable key of what `speaker` says when saying `text`."""
    return hashlib.sha256(json.dumps([speaker, text]).encode()).hexdigest()[:20]


# ---------------------------------------------------------------------------------------------
# Peaks
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Peaks:
    """Spectral peaks, sorted by (frame, bin): frame index, band bin index, level (dB) and where
    between bins the peak lies (-0.5..0.5 of a bin, from a parabola through the bin and its
    neighbours: harmonics of voices a few Hz apart differ there)."""

    frames: IntArray
    bins: IntArray
    levels: FloatArray
    offsets: FloatArray

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, where: slice) -> Peaks:
        return Peaks(self.frames[where], self.bins[where], self.levels[where], self.offsets[where])

    @classmethod
    def empty(cls) -> Peaks:
        nothing = np.zeros(0, np.int32)
        return cls(nothing, nothing, nothing.astype(np.float32), nothing.astype(np.float32))

    def shifted(self, frames: int) -> Peaks:
        return Peaks(self.frames + frames, self.bins, self.levels, self.offsets)


def frame_seconds(frames: float) -> float:
    """Seconds from the start of the audio to the start of frame `frames`."""
    return frames * HOP_SAMPLES / ANALYSIS_RATE


def _spectrogram_db(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """dB magnitudes (frames x band bins) of the frames fully inside `samples` (full scale 1.0)."""
    count = (len(samples) - FRAME_SAMPLES) // HOP_SAMPLES + 1
    if count <= 0:
        return np.zeros((0, _BINS), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(samples, FRAME_SAMPLES)[::HOP_SAMPLES]
    spectrum = np.fft.rfft(frames[:count] * _WINDOW, axis=1)[:, _LOW_BIN : _HIGH_BIN + 1]
    magnitude = np.abs(spectrum).astype(np.float32) / _FULL_SCALE
    decibels: FloatArray = (20.0 * np.log10(np.maximum(magnitude, 1e-7))).astype(np.float32)
    return decibels


def _sliding_max(values: npt.NDArray[np.float32], radius: int, axis: int) -> FloatArray:
    """The maximum over +-radius along `axis` (outside the array counts as -inf)."""
    result = values.copy()
    length = values.shape[axis]
    for step in range(1, min(radius, length - 1) + 1):
        ahead = [slice(None), slice(None)]
        behind = [slice(None), slice(None)]
        ahead[axis], behind[axis] = slice(step, None), slice(None, -step)
        np.maximum(result[tuple(behind)], values[tuple(ahead)], out=result[tuple(behind)])
        np.maximum(result[tuple(ahead)], values[tuple(behind)], out=result[tuple(ahead)])
    return result


def _pick_peaks(spec: npt.NDArray[np.float32], first: int, stop: int, rule: PeakRule) -> Peaks:
    """Peaks of spectrogram rows [first, stop); rows outside the array count as silence."""
    local = _sliding_max(_sliding_max(spec, rule.bin_radius, 1), rule.time_radius, 0)
    mask = (spec >= local) & (spec > rule.floor_db)
    mask[:first] = False
    mask[stop:] = False
    rows, bins = np.nonzero(mask)
    centre = spec[rows, bins]
    below = spec[rows, np.maximum(bins - 1, 0)]
    above = spec[rows, np.minimum(bins + 1, _BINS - 1)]
    curvature = below - 2 * centre + above
    safe = np.where(curvature < 0, curvature, -1.0)
    offsets = np.where(curvature < 0, 0.5 * (below - above) / safe, 0.0)
    offsets = np.clip(offsets, -0.5, 0.5).astype(np.float32)
    levels = (centre - 0.25 * (below - above) * offsets).astype(np.float32)
    return Peaks(rows.astype(np.int32), bins.astype(np.int32), levels, offsets)


def peaks_of_samples(
    blocks: Iterable[npt.NDArray[np.float32]], rules: Sequence[PeakRule]
) -> list[Peaks]:
    """Peaks by each rule of audio at ANALYSIS_RATE arriving in blocks; frame 0 starts at the
    first sample. Only a block and a few frames of context are in memory at a time."""
    radius = max(rule.time_radius for rule in rules)
    found: list[list[Peaks]] = [[] for _ in rules]
    pending = np.zeros(0, np.float32)  # samples not yet in a whole frame
    context = np.zeros((0, _BINS), np.float32)  # spectrogram rows kept for the next block
    context_start = 0  # frame index of context's first row
    done = 0  # peaks are found for frames < done

    def feed(block: npt.NDArray[np.float32], final: bool) -> None:
        nonlocal pending, context, context_start, done
        if final:  # let the last samples fill whole frames
            block = np.concatenate([block, np.zeros(FRAME_SAMPLES - HOP_SAMPLES, np.float32)])
        pending = np.concatenate([pending, block])
        fresh = _spectrogram_db(pending)
        pending = pending[len(fresh) * HOP_SAMPLES :]
        spec = np.concatenate([context, fresh])
        until = context_start + len(spec) - (0 if final else radius)
        if until > done:
            for rule, parts in zip(rules, found, strict=True):
                peaks = _pick_peaks(spec, done - context_start, until - context_start, rule)
                parts.append(peaks.shifted(context_start))
            done = until
        keep = max(0, done - radius - context_start)
        context = spec[keep:]
        context_start += keep

    for block in blocks:
        feed(np.asarray(block, np.float32), final=False)
    feed(np.zeros(0, np.float32), final=True)
    result = []
    for parts in found:
        if not parts:
            result.append(Peaks.empty())
            continue
        frames = np.concatenate([p.frames for p in parts])
        bins = np.concatenate([p.bins for p in parts])
        order = np.lexsort((bins, frames))
        levels = np.concatenate([p.levels for p in parts])
        offsets = np.concatenate([p.offsets for p in parts])
        result.append(Peaks(frames[order], bins[order], levels[order], offsets[order]))
    return result


# ---------------------------------------------------------------------------------------------
# Hashes
# ---------------------------------------------------------------------------------------------


def _hashes(peaks: Peaks) -> tuple[IntArray, IntArray]:
    """(hash, anchor frame) of peak pairs: each peak with the FANOUT loudest of the next
    PAIR_LOOKAHEAD peaks that lie PAIR_MIN_FRAMES..PAIR_MAX_FRAMES after it and within
    PAIR_MAX_BINS. Choosing partners by level keeps the pairs when a weak peak appears or
    vanishes in between (noise, AAC)."""
    count = len(peaks)
    if count < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    first = np.maximum(
        np.searchsorted(peaks.frames, peaks.frames + PAIR_MIN_FRAMES, "left"),
        np.arange(1, count + 1),
    )
    partner = first[:, None] + np.arange(PAIR_LOOKAHEAD)[None, :]
    valid = partner < count
    partner = np.minimum(partner, count - 1)
    dt = peaks.frames[partner] - peaks.frames[:, None]
    df = peaks.bins[partner] - peaks.bins[:, None]
    valid &= (dt <= PAIR_MAX_FRAMES) & (np.abs(df) <= PAIR_MAX_BINS)
    level = np.where(valid, peaks.levels[partner], -np.inf)
    chosen = np.argsort(-level, axis=1, kind="stable")[:, :FANOUT]
    rows = np.arange(count)[:, None]
    keep = valid[rows, chosen]
    anchor = np.broadcast_to(rows, chosen.shape)[keep]
    dt, df = dt[rows, chosen][keep], df[rows, chosen][keep]
    code = (peaks.bins[anchor] * (2 * PAIR_MAX_BINS + 1) + df + PAIR_MAX_BINS) * (
        PAIR_MAX_FRAMES + 1
    ) + dt
    return code, peaks.frames[anchor]


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------


def _channels(audio: Path) -> int:
    completed = subprocess.run(
        [
            *("ffprobe", "-v", "error", "-select_streams", "a:0"),
            *("-show_entries", "stream=channels", "-of", "json", str(audio)),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if completed.returncode != 0:
        raise ValueError(f"ffprobe could not read {audio.name}: {completed.stderr.strip()[-300:]}")
    streams = json.loads(completed.stdout or "{}").get("streams", [])
    if not streams:
        raise ValueError(f"{audio.name} has no audio stream")
    return int(streams[0].get("channels", 1))


def decode_blocks(audio: Path, channel: int | None = None) -> Iterator[FloatArray]:
    """`audio` as mono float samples at ANALYSIS_RATE, in blocks of CHUNK_SECONDS: the sum of
    all its channels, or only `channel` (1-based)."""
    channels = _channels(audio)
    if channel is not None and not 1 <= channel <= channels:
        raise ValueError(f"{audio.name} has {channels} channel(s), not a channel {channel}")
    if channel is not None:
        mix = [f"pan=mono|c0=c{channel - 1}"]
    elif channels > 1:
        mix = ["pan=mono|c0=" + "+".join(f"c{i}" for i in range(channels))]
    else:
        mix = []
    command = [
        *_FFMPEG,
        *("-i", str(audio), "-vn"),
        *(["-af", mix[0]] if mix else []),
        *("-ac", "1", "-ar", str(ANALYSIS_RATE), "-f", "f32le", "pipe:1"),
    ]
    block_bytes = 4 * int(CHUNK_SECONDS * ANALYSIS_RATE)
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors)
        assert process.stdout is not None
        try:
            while data := process.stdout.read(block_bytes):
                usable = len(data) - len(data) % 4
                yield np.frombuffer(data[:usable], dtype="<f4").astype(np.float32)
            if process.wait() != 0:
                errors.seek(0)
                message = errors.read().decode(errors="replace").strip()[-300:]
                raise ValueError(f"ffmpeg could not decode {audio.name}: {message}")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stdout.close()


def _resample(samples: npt.NDArray[np.float32], rate: int) -> npt.NDArray[np.float32]:
    """Band-limited resampling to ANALYSIS_RATE (FFT; the tail is padded so nothing wraps)."""
    if rate == ANALYSIS_RATE:
        return samples
    padded = np.concatenate([samples, np.zeros(rate // 10, np.float32)])
    count = round(len(padded) * ANALYSIS_RATE / rate)
    spectrum = np.fft.rfft(padded)
    kept = np.zeros(count // 2 + 1, complex)
    width = min(len(kept), len(spectrum))
    kept[:width] = spectrum[:width]
    out = np.fft.irfft(kept, count) * (count / len(padded))
    return out[: round(len(samples) * ANALYSIS_RATE / rate)].astype(np.float32)


def template_samples(template: Template) -> npt.NDArray[np.float32]:
    raw = np.fromfile(template.audio, dtype="<i2").astype(np.float32) / 32768.0
    return _resample(raw, template.rate)


# ---------------------------------------------------------------------------------------------
# Recognition
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilePeaks:
    """A file's peaks: the landmarks hashed and the denser set verification looks in."""

    landmarks: Peaks
    present: Peaks


def file_peaks(blocks: Iterable[npt.NDArray[np.float32]]) -> FilePeaks:
    landmarks, present = peaks_of_samples(blocks, [LANDMARKS, PRESENT])
    return FilePeaks(landmarks, present)


@dataclass(frozen=True)
class _Model:
    """A template's landmarks, its checked peaks and the word of each (-1: between words)."""

    template: Template
    landmarks: Peaks  # hashed
    checked: Peaks  # looked for in a file
    word_of_peak: IntArray  # of each checked peak
    frames: int  # frames from the template's start to its end


@dataclass
class _Candidate:
    model_index: int
    offset: int  # file frame of template frame 0


@dataclass(frozen=True)
class _Alignment:
    offset: int
    heard: list[tuple[int, float]]  # (word index, share of its checked peaks matched)
    matched: IntArray  # indices of the file peaks (`present`) matched in heard words

    @property
    def score(self) -> int:
        return len(self.matched)


class Recogniser:
    """Finds templates in audio files. Build once per set of templates; `recognise` keeps no
    state between files."""

    def __init__(self, templates: Sequence[Template], *, cache_dir: Path | None = None) -> None:
        self._models = [_model(t, cache_dir) for t in templates]
        hashes: list[npt.NDArray[np.int32]] = []
        owners: list[npt.NDArray[np.int32]] = []
        frames: list[npt.NDArray[np.int32]] = []
        for index, model in enumerate(self._models):
            code, anchor = _hashes(model.landmarks)
            # a file's peak may fall a frame early or late (where the frames cut the audio
            # differs): the table also holds each pair with its time difference one off
            dt = code % (PAIR_MAX_FRAMES + 1)
            for jitter in range(-PAIR_TIME_JITTER, PAIR_TIME_JITTER + 1):
                fits = (dt + jitter >= PAIR_MIN_FRAMES) & (dt + jitter <= PAIR_MAX_FRAMES)
                hashes.append((code[fits] + jitter).astype(np.int32))
                frames.append(anchor[fits].astype(np.int32))
                owners.append(np.full(int(fits.sum()), index, np.int32))
        table_hash = np.concatenate(hashes) if hashes else np.zeros(0, np.int32)
        order = np.argsort(table_hash, kind="stable")
        table_hash = table_hash[order]
        # drop the hashes too common to tell templates apart (runs longer than the limit)
        edges = np.flatnonzero(np.diff(table_hash)) + 1
        starts = np.concatenate([[0], edges])
        lengths = np.diff(np.concatenate([starts, [len(table_hash)]]))
        keep = np.repeat(lengths <= MAX_TABLE_REPEATS, lengths)
        self._table_hash = table_hash[keep]
        order = order[keep]
        self._table_owner = (np.concatenate(owners) if owners else np.zeros(0, np.int32))[order]
        self._table_frame = (np.concatenate(frames) if frames else np.zeros(0, np.int32))[order]
        self._longest = max((m.frames for m in self._models), default=0)

    @property
    def templates(self) -> list[Template]:
        return [m.template for m in self._models]

    def recognise(self, audio: Path, *, channel: int | None = None) -> list[Occurrence]:
        """Every place (part of) a template is heard in `audio` (all channels mixed, or only
        `channel`, 1-based), sorted by start."""
        return self.recognise_peaks(file_peaks(decode_blocks(Path(audio), channel)))

    def recognise_peaks(self, peaks: FilePeaks) -> list[Occurrence]:
        """`recognise` on peaks already extracted (`file_peaks` of samples)."""
        if not len(peaks.landmarks) or not self._models:
            return []
        return self._verify(peaks.present, self._candidates(peaks.landmarks))

    # --- stage 1: votes -----------------------------------------------------------------------

    def _candidates(self, landmarks: Peaks) -> list[_Candidate]:
        """(template, offset) pairs with at least MIN_VOTES votes, windowed by CHUNK_SECONDS so
        at most one window's votes are held at a time; each offset belongs to one window."""
        window = max(1, int(CHUNK_SECONDS * ANALYSIS_RATE / HOP_SAMPLES))
        span = self._longest + PAIR_MAX_FRAMES + 2
        found: list[_Candidate] = []
        start = -self._longest - 1
        while start <= int(landmarks.frames[-1]) + _LEAD_FRAMES:
            stop = start + window  # offsets [start, stop) are decided here
            low = int(np.searchsorted(landmarks.frames, start - _LEAD_FRAMES, "left"))
            high = int(np.searchsorted(landmarks.frames, stop + span, "left"))
            found += self._vote(landmarks[low:high], start, stop)
            start = stop
        return found

    def _vote(self, landmarks: Peaks, start: int, stop: int) -> list[_Candidate]:
        codes, anchors = _hashes(landmarks)
        left = np.searchsorted(self._table_hash, codes, "left")
        counts = np.searchsorted(self._table_hash, codes, "right") - left
        hit = counts > 0
        left, counts, anchors = left[hit], counts[hit], anchors[hit]
        if not len(left):
            return []
        # every table row each file hash matched, flattened
        rows = np.repeat(left - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
        owner = self._table_owner[rows].astype(np.int64)
        offset = np.repeat(anchors, counts) - self._table_frame[rows]
        # offsets a little outside [start, stop) vote too, so that a peak at the edge can be
        # compared with its neighbours; `pad` keeps neighbours inside one template's row
        margin = SEPARATION_FRAMES + 1
        pad = SEPARATION_FRAMES + 1
        keep = (offset >= start - margin) & (offset < stop + margin)
        base = start - margin - pad
        width = stop + margin + pad - base
        keys, votes = np.unique(owner[keep] * width + (offset[keep] - base), return_counts=True)
        if not len(keys):
            return []
        # votes on the offset +-1 frame (AAC and resampling move peaks by a frame)
        near = votes.copy()
        for step in (-1, 1):
            index = np.minimum(np.searchsorted(keys, keys + step), len(keys) - 1)
            near += np.where(keys[index] == keys + step, votes[index], 0)
        strong = near >= MIN_VOTES
        keys, near = keys[strong], near[strong]
        # a candidate has the most votes within SEPARATION_FRAMES of its template (ties: earliest)
        beaten = np.zeros(len(keys), bool)
        for step in range(-SEPARATION_FRAMES, SEPARATION_FRAMES + 1):
            if step == 0 or not len(keys):
                continue
            index = np.minimum(np.searchsorted(keys, keys + step), len(keys) - 1)
            other = np.where(keys[index] == keys + step, near[index], -1)
            beaten |= (other > near) | ((other == near) & (step < 0))
        position = keys % width + base
        chosen = ~beaten & (position >= start) & (position < stop)
        return [
            _Candidate(int(k // width), int(o))
            for k, o in zip(keys[chosen], position[chosen], strict=True)
        ]

    # --- stage 2: verification ----------------------------------------------------------------

    def _verify(self, present: Peaks, candidates: list[_Candidate]) -> list[Occurrence]:
        """Greedy, the most convincing first (`_rank`). Accepting an occurrence claims the file
        peaks it matched; a candidate whose frames hold peaks claimed since it was scored is
        scored again when it comes up, and accepted only if it still ranks first."""
        claimed = np.zeros(len(present), bool)
        candidates = sorted(candidates, key=lambda c: c.offset)
        heap: list[tuple[float, int]] = []
        scored: dict[int, tuple[_Alignment, int]] = {}  # candidate -> alignment, claims then
        batch = max(1, int(CHUNK_SECONDS * ANALYSIS_RATE / HOP_SAMPLES))
        offsets = np.array([c.offset for c in candidates], np.int64)
        first = 0
        while first < len(candidates):  # score in batches of one window of offsets
            last = int(np.searchsorted(offsets, offsets[first] + batch, "left"))
            # at the voted offset first, then within a frame of it for those that pass
            screened = self._align(candidates[first:last], present, claimed, shifts=(0,))
            promising = [
                number
                for number, alignment in enumerate(screened, start=first)
                if alignment.score >= MIN_MATCHED_PEAKS // 2
            ]
            alignments = self._align([candidates[n] for n in promising], present, claimed)
            for number, alignment in zip(promising, alignments, strict=True):
                if alignment.score >= MIN_MATCHED_PEAKS:
                    heap.append(self._rank(number, candidates[number], alignment))
                    scored[number] = (alignment, 0)
            first = last
        heapq.heapify(heap)
        claims: list[tuple[int, int]] = []  # frame spans of the peaks claimed, in order
        heard = _HeardWords()  # of the occurrences accepted
        accepted: list[Occurrence] = []
        while heap:
            number = heapq.heappop(heap)[1]
            candidate = candidates[number]
            alignment, seen = scored[number]
            low = candidate.offset - _LEAD_FRAMES - 1 - MATCH_FRAMES
            high = candidate.offset + self._models[candidate.model_index].frames + 2 + MATCH_FRAMES
            if any(a < high and low < b for a, b in claims[seen:]):
                alignment = self._align([candidate], present, claimed)[0]
                scored[number] = (alignment, len(claims))
                if alignment.score < MIN_MATCHED_PEAKS:
                    continue
                rank = self._rank(number, candidate, alignment)
                if heap and rank > heap[0]:
                    heapq.heappush(heap, rank)
                    continue
            occurrence = self._occurrence(candidate.model_index, alignment)
            if heard.twins(occurrence.words) * 2 >= len(occurrence.words):
                continue  # the same words at the same times: another voice's render of them
            if (
                occurrence.score < OVERLAP_MIN_SCORE
                and heard.overlap_share(occurrence.words) >= 0.5
            ):
                continue
            claimed[alignment.matched] = True
            frames = present.frames[alignment.matched]
            claims.append((int(frames.min()), int(frames.max()) + 1))
            heard.add(occurrence.words)
            accepted.append(occurrence)
        return sorted(accepted, key=lambda o: (o.start, o.end, o.template.key))

    def _rank(self, number: int, candidate: _Candidate, alignment: _Alignment) -> tuple[float, int]:
        """Heap order, the most convincing first: the speech heard (each heard word's duration
        weighted by the share of its peaks matched: a count of peaks would favour voices with
        many separate harmonics), discounted when only part of the template is heard (a line is
        usually heard whole; a part of one is the likelier explanation only when clearly
        stronger)."""
        words = self._models[candidate.model_index].template.words
        evidence = sum(share * (words[i].end - words[i].start) for i, share in alignment.heard)
        whole = len(alignment.heard) / max(1, len(words))
        return (-round(evidence * (PARTIAL_WEIGHT + (1 - PARTIAL_WEIGHT) * whole), 6), number)

    def _align(
        self,
        candidates: Sequence[_Candidate],
        present: Peaks,
        claimed: npt.NDArray[np.bool_],
        shifts: tuple[int, ...] = (0, -1, 1),
    ) -> list[_Alignment]:
        """Each candidate's best alignment at its offset + one of `shifts` (the first of equals),
        matched against the unclaimed file peaks. Vectorised over all (candidate, shift) pairs:
        rows of one array hold every checked template peak of every pair, pair by pair."""
        if not candidates:
            return []
        models = [self._models[c.model_index] for c in candidates]
        sizes = np.array([len(m.checked) for m in models for _ in shifts], np.int64)
        starts = np.cumsum(sizes) - sizes
        pair = np.repeat(np.arange(len(sizes)), sizes)  # (candidate, shift) of each row
        placed = [
            m.checked.shifted(c.offset + s)
            for m, c in zip(models, candidates, strict=True)
            for s in shifts
        ]
        looked_for = Peaks(
            np.concatenate([p.frames for p in placed]),
            np.concatenate([p.bins for p in placed]),
            np.concatenate([p.levels for p in placed]),
            np.concatenate([p.offsets for p in placed]),
        )
        words = np.concatenate([m.word_of_peak for m in models for _ in shifts])
        which = _nearest_peaks(looked_for, present, claimed)
        found = which >= 0
        difference = np.where(found, present.levels[which] - looked_for.levels, 0.0)
        typical = _group_medians(pair[found], difference[found], len(sizes))
        consistent = found & (np.abs(difference - typical[pair]) <= LEVEL_TOLERANCE_DB)
        most = 1 + max(len(m.template.words) for m in models)
        key = pair * most + np.where(words >= 0, words, most - 1)  # most - 1: between words
        totals = np.bincount(key, minlength=len(sizes) * most)
        hits = np.bincount(key, weights=consistent, minlength=len(sizes) * most)
        shares = np.divide(hits, totals, out=np.zeros(len(totals)), where=totals > 0)
        heard = (shares >= WORD_HEARD_SHARE) & (np.arange(len(totals)) % most != most - 1)
        in_heard = heard[key] & consistent
        scores = np.bincount(pair[in_heard], minlength=len(sizes)).reshape(-1, len(shifts))
        best = np.argmax(scores, axis=1)
        result = []
        for index, candidate in enumerate(candidates):
            number = len(shifts) * index + int(best[index])
            row = slice(number * most, number * most + len(models[index].template.words))
            heard_words = [
                (word, float(share))
                for word, (share, hit) in enumerate(zip(shares[row], heard[row], strict=True))
                if hit
            ]
            rows = slice(int(starts[number]), int(starts[number] + sizes[number]))
            matched = which[rows][in_heard[rows]]
            result.append(_Alignment(candidate.offset + shifts[best[index]], heard_words, matched))
        return result

    def _occurrence(self, model_index: int, alignment: _Alignment) -> Occurrence:
        model = self._models[model_index]
        shift = frame_seconds(alignment.offset)
        words = tuple(
            HeardWord(
                model.template.words[index].text,
                round(shift + model.template.words[index].start, 3),
                round(shift + model.template.words[index].end, 3),
            )
            for index, _ in alignment.heard
        )
        return Occurrence(
            template=model.template,
            start=words[0].start,
            end=words[-1].end,
            words=words,
            score=round(alignment.score / max(1, len(model.checked)), 3),
        )


class _HeardWords:
    """The words heard so far, by start, for questions about the ones near a time."""

    def __init__(self) -> None:
        self._starts: list[float] = []
        self._words: list[HeardWord] = []
        self._longest = 0.0

    def add(self, words: Sequence[HeardWord]) -> None:
        for word in words:
            index = bisect.bisect(self._starts, word.start)
            self._starts.insert(index, word.start)
            self._words.insert(index, word)
            self._longest = max(self._longest, word.end - word.start)

    def near(self, start: float, end: float) -> list[HeardWord]:
        """The words that may overlap [start, end)."""
        low = bisect.bisect_left(self._starts, start - self._longest)
        high = bisect.bisect_left(self._starts, end)
        return self._words[low:high]

    def twins(self, words: Sequence[HeardWord]) -> int:
        """How many of `words` were heard already: the same text starting within TWIN_SECONDS."""
        return sum(
            any(
                other.text == word.text and abs(other.start - word.start) <= TWIN_SECONDS
                for other in self.near(word.start - TWIN_SECONDS, word.start + TWIN_SECONDS)
            )
            for word in words
        )

    def overlap_share(self, words: Sequence[HeardWord]) -> float:
        """The share of the words' duration that lies on words heard already."""
        total = sum(w.end - w.start for w in words)
        if total <= 0:
            return 0.0
        covered = 0.0
        for word in words:
            pieces = sorted(
                (max(o.start, word.start), min(o.end, word.end))
                for o in self.near(word.start, word.end)
                if o.start < word.end and word.start < o.end
            )
            reach = word.start
            for a, b in pieces:
                covered += max(0.0, b - max(a, reach))
                reach = max(reach, b)
        return covered / total


def _nearest_peaks(peaks: Peaks, present: Peaks, claimed: npt.NDArray[np.bool_]) -> IntArray:
    """For each of `peaks` (placed on the file's frames): the index of the nearest unclaimed
    file peak within MATCH_FRAMES frames at a frequency within FREQ_TOLERANCE_BINS, or -1.
    Looked up in a dense grid of the frames concerned."""
    which = np.full(len(peaks), -1, np.int64)
    if not len(peaks) or not len(present):
        return which
    low = int(peaks.frames.min()) - MATCH_FRAMES
    high = int(peaks.frames.max()) + MATCH_FRAMES + 1
    first = int(np.searchsorted(present.frames, low, "left"))
    last = int(np.searchsorted(present.frames, high, "left"))
    grid = np.full((high - low, _BINS), -1, np.int64)
    index = np.arange(first, last)
    index = index[~claimed[first:last]]
    grid[present.frames[index] - low, present.bins[index]] = index
    best = np.full(len(peaks), np.inf)
    reach = int(np.ceil(FREQ_TOLERANCE_BINS + 0.5))
    for dt in range(-MATCH_FRAMES, MATCH_FRAMES + 1):
        row = peaks.frames + dt - low
        for df in range(-reach, reach + 1):
            column = peaks.bins + df
            inside = (column >= 0) & (column < _BINS)
            found = np.full(len(peaks), -1, np.int64)
            found[inside] = grid[row[inside], column[inside]]
            hit = found >= 0
            distance = np.abs(df + present.offsets[found] - peaks.offsets)
            cost = distance + 0.25 * abs(dt)
            better = hit & (distance <= FREQ_TOLERANCE_BINS) & (cost < best)
            which[better] = found[better]
            best[better] = cost[better]
    return which


def _group_medians(
    groups: IntArray, values: npt.NDArray[np.float64], count: int
) -> npt.NDArray[np.float64]:
    """The median of `values` in each of `count` groups (0 for an empty group)."""
    medians = np.zeros(count, np.float64)
    if not len(values):
        return medians
    order = np.lexsort((values, groups))
    ordered = values[order]
    sizes = np.bincount(groups, minlength=count)
    starts = np.cumsum(sizes) - sizes
    filled = sizes > 0
    lower = ordered[starts[filled] + (sizes[filled] - 1) // 2]
    upper = ordered[starts[filled] + sizes[filled] // 2]
    medians[filled] = (lower + upper) / 2
    return medians


def _model(template: Template, cache_dir: Path | None) -> _Model:
    landmarks, checked = _cached_peaks(template, cache_dir)
    centre = (checked.frames * HOP_SAMPLES + FRAME_SAMPLES / 2) / ANALYSIS_RATE
    word_of_peak = np.full(len(checked), -1, np.int64)
    for index, word in enumerate(template.words):
        word_of_peak[(centre >= word.start) & (centre < word.end)] = index
    samples = Path(template.audio).stat().st_size // 2 * ANALYSIS_RATE / template.rate
    return _Model(template, landmarks, checked, word_of_peak, int(samples // HOP_SAMPLES) + 1)


_TEMPLATE_RULES = {"landmark": LANDMARKS, "checked": CHECKED}


def _cached_peaks(template: Template, cache_dir: Path | None) -> list[Peaks]:
    """A template's peaks by each of _TEMPLATE_RULES, from `cache_dir` when they were made
    before from the same audio with the same parameters."""
    if cache_dir is None:
        return _template_peaks(template)
    audio = Path(template.audio).read_bytes()
    ident = json.dumps(
        [
            FINGERPRINT_VERSION,
            [ANALYSIS_RATE, FRAME_SAMPLES, HOP_SAMPLES, BAND_HZ],
            [[r.time_radius, r.bin_radius, r.floor_db] for r in _TEMPLATE_RULES.values()],
            template.rate,
            hashlib.sha256(audio).hexdigest(),
        ]
    )
    path = Path(cache_dir) / (hashlib.sha256(ident.encode()).hexdigest()[:32] + ".npz")
    if path.exists():
        with np.load(path, allow_pickle=False) as stored:
            return [
                Peaks(
                    stored[f"{name}_frames"].astype(np.int32),
                    stored[f"{name}_bins"].astype(np.int32),
                    stored[f"{name}_levels"].astype(np.float32),
                    stored[f"{name}_offsets"].astype(np.float32),
                )
                for name in _TEMPLATE_RULES
            ]
    found = _template_peaks(template)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{uuid.uuid4().hex}.tmp.npz")
    arrays: dict[str, npt.NDArray[Any]] = {}
    for name, peaks in zip(_TEMPLATE_RULES, found, strict=True):
        arrays[f"{name}_frames"] = peaks.frames.astype(np.int32)
        arrays[f"{name}_bins"] = peaks.bins.astype(np.int16)
        arrays[f"{name}_levels"] = peaks.levels.astype(np.float32)
        arrays[f"{name}_offsets"] = peaks.offsets.astype(np.float32)
    with partial.open("wb") as out:
        np.savez(out, allow_pickle=False, **arrays)
    partial.replace(path)
    return found


def _template_peaks(template: Template) -> list[Peaks]:
    """Peaks of the template with silence around it, as it sits in a file: at the edges of the
    bare array every loud bin would be a maximum in time. Frames before the template's first
    sample get negative indices."""
    lead = _LEAD_FRAMES * HOP_SAMPLES
    samples = template_samples(template)
    padded = np.concatenate([np.zeros(lead, np.float32), samples, np.zeros(lead, np.float32)])
    return [
        peaks.shifted(-_LEAD_FRAMES)
        for peaks in peaks_of_samples([padded], list(_TEMPLATE_RULES.values()))
    ]
