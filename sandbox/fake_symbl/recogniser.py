"""The fake's recogniser: everything that turns received audio into a conversation's messages.

The fake is a measuring instrument. It really downloads the submitted URL and probes it with
ffprobe, then recognises it one of two ways:

- By content (a submission with neither per-channel recognition nor diarization, of a meeting
  whose lines the `MeetingRegistry` holds audio templates of): `sandbox.fingerprint` finds, from
  the decoded audio alone, which scripted lines are in the file, where, and which of their words
  are really there. One message per line heard, its text the words heard, each word at its time
  in the file; a word whose audio is missing (clipped, dropped) is missing from the transcript.
  Nothing tells the recogniser who spoke: the messages carry no speaker (an empty `from`) until
  speaker events name them (`speakers`). The template's speaker is kept for measuring only.
- By timing (everything else): ffmpeg `silencedetect` finds speech per channel, so message
  timestamps are the true speech times in the submitted file. When the conversation name is a
  meeting topic known to the registry, the text of each message is what that channel's speaker
  was scripted to say at that time: a pipeline that maps a channel to the wrong speaker, or
  shifts the audio, gets wrong or "[unintelligible]" text back.

Decisions where the reference is silent:
- A mono submission without diarization carries no speaker: messages have an empty `from` and
  the conversation no members (the real service has nobody to name, and a generic "Speaker 1"
  would look like a diarization label the pipeline could mistake for a person). A multichannel
  file submitted so is mixed down first. Meetings without templates keep the older behaviour
  (the mixed-down file is treated as one speaker, "Speaker 1").
- Registry look-ups use the file's own t=0, also for a file appended to a conversation (whose
  timeline continues after the previous files).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from sandbox.fake_symbl.insights import _action_phrases
from sandbox.fake_symbl.model import (
    UNINTELLIGIBLE,
    Segment,
    _at,
    _Member,
    _Message,
    _numeric_id,
    _Rejected,
    _Transcript,
    _Word,
)
from sandbox.fingerprint import Occurrence, Recogniser, Template
from sandbox.registry import MeetingRegistry, ScriptLine

_FFMPEG = ("ffmpeg", "-nostdin", "-hide_banner", "-nostats")
_FFPROBE = ("ffprobe", "-v", "error", "-of", "json", "-show_entries")
_PROBED = "stream=codec_type,channels,sample_rate:format=duration,format_name"
_MIN_SPEECH_SECONDS = 0.1


@dataclass(frozen=True)
class AudioInfo:
    """What ffprobe says about a submitted file."""

    channels: int
    duration: float
    sample_rate: int = 0  # of the first audio stream; 0 when ffprobe gives none
    formats: frozenset[str] = frozenset()  # ffprobe's container names, e.g. {"mov", "mp4"}


@dataclass(frozen=True)
class _Speaker:
    name: str
    email: str | None


@dataclass(frozen=True)
class _Utterance:
    """Speech found in one file: who (by channel or diarization), when (file seconds), what."""

    speaker: _Speaker
    channel: int
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class _Plan:
    """How to recognise a file, fixed at submit time from the request body."""

    topic: str
    per_channel: bool
    speakers: dict[int, _Speaker]  # 1-based channel -> speaker (per-channel recognition)
    speaker_count: int  # diarization labels "Speaker 1..n"
    detect_phrases: bool
    by_content: bool = False  # neither per-channel recognition nor diarization was asked for

    def speaker_for(self, channel: int) -> _Speaker:
        return self.speakers.get(channel, _Speaker(f"Speaker {channel}", None))


class _AnalysisError(Exception):
    """ffmpeg could not analyse a file; the job ends `failed`."""


def _plan(body: dict[str, Any], topic: str) -> _Plan:
    diarization = body.get("enableSpeakerDiarization") is True
    per_channel = body.get("enableSeparateRecognitionPerChannel") is True and not diarization
    speakers = {
        entry["channel"]: _Speaker(
            entry["speaker"].get("name") or f"Speaker {entry['channel']}",
            entry["speaker"].get("email"),
        )
        for entry in body.get("channelMetadata", [])
    }
    return _Plan(
        topic=topic,
        per_channel=per_channel,
        speakers=speakers if per_channel else {},
        speaker_count=int(body.get("diarizationSpeakerCount", 2)) if diarization else 1,
        detect_phrases=body.get("detectPhrases") is True,
        by_content=not per_channel and not diarization,
    )


# ---------------------------------------------------------------------------------------------
# The received audio: download, probing
# ---------------------------------------------------------------------------------------------


def _download(url: str, directory: Path, timeout: float) -> Path:
    """Stream `url` to a temporary file; a redirect or any failure raises _Rejected (the job
    made of it fails)."""
    try:
        response = requests.get(url, stream=True, allow_redirects=False, timeout=timeout)
    except requests.RequestException as exc:
        raise _Rejected(f"url could not be downloaded ({type(exc).__name__}).") from exc
    with response:
        if 300 <= response.status_code < 400:
            raise _Rejected("url must be directly downloadable; it answered with a redirect.")
        if response.status_code >= 400:
            raise _Rejected(f"url could not be downloaded (HTTP {response.status_code}).")
        handle, name = tempfile.mkstemp(dir=directory, suffix=".media")
        path = Path(name)
        try:
            with os.fdopen(handle, "wb") as out:
                for chunk in response.iter_content(chunk_size=1 << 16):
                    out.write(chunk)
        except (requests.RequestException, OSError) as exc:
            path.unlink(missing_ok=True)
            raise _Rejected(f"url could not be downloaded ({type(exc).__name__}).") from exc
    return path


def probe_audio(path: Path) -> AudioInfo:
    """Channels, duration and sample rate of the first audio stream, and the container's names,
    in one ffprobe (each costs 0.1-0.2 s); ValueError when there is no audio stream with a known
    duration."""
    completed = subprocess.run(
        [*_FFPROBE, _PROBED, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        raise ValueError("ffprobe could not read the file")
    probe = json.loads(completed.stdout or "{}")
    streams = [s for s in probe.get("streams", []) if s.get("codec_type") == "audio"]
    form = probe.get("format", {})
    try:
        duration = float(form.get("duration", "nan"))
    except ValueError:
        duration = math.nan
    if not streams or not duration > 0:
        raise ValueError("no audio stream with a known duration")
    rate = str(streams[0].get("sample_rate", ""))
    return AudioInfo(
        channels=int(streams[0].get("channels", 1)),
        duration=duration,
        sample_rate=int(rate) if rate.isdigit() else 0,
        formats=frozenset(str(form.get("format_name", "")).split(",")) - {""},
    )


# ---------------------------------------------------------------------------------------------
# Speech segments: ffmpeg silencedetect per channel
# ---------------------------------------------------------------------------------------------


class _Ffmpeg:
    """The ffmpeg analyses running now, so that closing the fake can kill them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen[str]] = set()
        self._closed = False

    def spawn(self, args: list[str]) -> subprocess.Popen[str]:
        with self._lock:
            if self._closed:
                raise _AnalysisError("the fake Symbl state is closed")
            proc = subprocess.Popen(
                args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            self._procs.add(proc)
            return proc

    def reap(self, proc: subprocess.Popen[str]) -> str:
        try:
            _, stderr = proc.communicate()
        finally:
            with self._lock:
                self._procs.discard(proc)
        if proc.returncode != 0:
            raise _AnalysisError(f"ffmpeg exited {proc.returncode}: {stderr[-500:]}")
        return stderr

    def close(self) -> None:
        """Kill every running analysis; later spawns raise _AnalysisError."""
        with self._lock:
            self._closed = True
            procs = list(self._procs)
        for proc in procs:
            proc.kill()


def _find_speech(
    ffmpeg: _Ffmpeg,
    audio: Path,
    info: AudioInfo,
    plan: _Plan,
    silence_threshold_db: float,
    min_silence_seconds: float,
) -> dict[int, list[Segment]]:
    """Speech segments per 1-based channel (one mixed-down channel unless per-channel)."""
    if plan.per_channel:
        pans = {ch: f"pan=mono|c0=c{ch - 1}" for ch in range(1, info.channels + 1)}
    else:
        pans = {1: "pan=mono|c0=" + "+".join(f"c{i}" for i in range(info.channels))}
    detect = f"silencedetect=noise={silence_threshold_db}dB:d={min_silence_seconds}"
    procs = {
        channel: ffmpeg.spawn(
            [*_FFMPEG, "-i", str(audio), "-af", f"{pan},{detect}", "-f", "null", "-"]
        )
        for channel, pan in pans.items()
    }
    return {
        channel: speech_segments(ffmpeg.reap(proc), info.duration)
        for channel, proc in procs.items()
    }


_SILENCE_START = re.compile(r"silence_start: (-?[\d.]+)")
_SILENCE_END = re.compile(r"silence_end: (-?[\d.]+)")


def speech_segments(silencedetect_log: str, duration: float) -> list[Segment]:
    """The complement of the silences ffmpeg's silencedetect logged, within [0, duration]."""
    segments: list[Segment] = []
    speech_from: float | None = 0.0
    for line in silencedetect_log.splitlines():
        if start := _SILENCE_START.search(line):
            silence_start = max(0.0, float(start[1]))
            if speech_from is not None and silence_start - speech_from >= _MIN_SPEECH_SECONDS:
                segments.append((speech_from, silence_start))
            speech_from = None
        elif end := _SILENCE_END.search(line):
            speech_from = float(end[1])
    if speech_from is not None and duration - speech_from >= _MIN_SPEECH_SECONDS:
        segments.append((speech_from, duration))
    return segments


# ---------------------------------------------------------------------------------------------
# Recognition: speakers and text
# ---------------------------------------------------------------------------------------------


def _overlap(line: ScriptLine, start: float, end: float) -> float:
    return min(end, line.end) - max(start, line.start)


def _transcribe(
    plan: _Plan, segments: dict[int, list[Segment]], registry: MeetingRegistry | None
) -> list[_Utterance]:
    meeting = registry.get(plan.topic) if registry is not None else None
    if registry is None or meeting is None:
        return _synthetic(plan, segments)
    if plan.per_channel:
        return _scripted_by_channel(plan, segments, registry)
    return _scripted_diarized(plan, segments[1], registry, meeting.speakers)


def _synthetic(plan: _Plan, segments: dict[int, list[Segment]]) -> list[_Utterance]:
    """Unknown meeting: obviously invented sentences, still at the true speech times."""
    utterances = []
    for channel, spans in segments.items():
        for index, (start, end) in enumerate(spans):
            speaker = (
                plan.speaker_for(channel)
                if plan.per_channel
                else _Speaker(f"Speaker {index % plan.speaker_count + 1}", None)
            )
            text = f"Synthetic sentence {index + 1} from channel {channel}."
            utterances.append(_Utterance(speaker, channel, start, end, text))
    return utterances


def _scripted_by_channel(
    plan: _Plan, segments: dict[int, list[Segment]], registry: MeetingRegistry
) -> list[_Utterance]:
    """Per-channel recognition: the text is what this channel's speaker said at that time."""
    utterances = []
    for channel, spans in segments.items():
        speaker = plan.speaker_for(channel)
        lines = [(registry.line_at(plan.topic, speaker.name, s, e), s, e) for s, e in spans]
        for line, start, end in _merge_same_line(lines):
            text = line.text if line is not None else UNINTELLIGIBLE
            utterances.append(_Utterance(speaker, channel, start, end, text))
    return utterances


def _scripted_diarized(
    plan: _Plan, spans: list[Segment], registry: MeetingRegistry, speakers: Sequence[str]
) -> list[_Utterance]:
    """Diarization: the best-overlapping line of any speaker; voices are told apart but not
    named, so they are labelled "Speaker k" in order of first appearance."""
    labels: dict[str, _Speaker] = {}
    lines: list[tuple[ScriptLine | None, float, float]] = []
    for start, end in spans:
        candidates = [registry.line_at(plan.topic, name, start, end) for name in speakers]
        found = [line for line in candidates if line is not None]
        best = max(found, key=lambda line: _overlap(line, start, end), default=None)
        lines.append((best, start, end))
    utterances = []
    for line, start, end in _merge_same_line(lines):
        if line is None:
            speaker = _Speaker("Speaker 1", None)
        else:
            if line.speaker not in labels:
                labels[line.speaker] = _Speaker(
                    f"Speaker {len(labels) % plan.speaker_count + 1}", None
                )
            speaker = labels[line.speaker]
        text = line.text if line is not None else UNINTELLIGIBLE
        utterances.append(_Utterance(speaker, 1, start, end, text))
    return utterances


def _merge_same_line(
    lines: list[tuple[ScriptLine | None, float, float]],
) -> list[tuple[ScriptLine | None, float, float]]:
    """Join consecutive segments of one scripted line (a pause inside a sentence)."""
    merged: list[tuple[ScriptLine | None, float, float]] = []
    for line, start, end in lines:
        if merged and line is not None and merged[-1][0] == line:
            merged[-1] = (line, merged[-1][1], end)
        else:
            merged.append((line, start, end))
    return merged


# ---------------------------------------------------------------------------------------------
# Recognition by content: audio fingerprints of the script's lines
# ---------------------------------------------------------------------------------------------


def _templates(plan: _Plan, registry: MeetingRegistry | None) -> list[Template]:
    """The templates to recognise the file by content with; empty: recognise it by timing."""
    if not plan.by_content or registry is None:
        return []
    return registry.templates(plan.topic)


def _recognise(audio: Path, templates: Sequence[Template], cache_dir: Path) -> list[Occurrence]:
    """Where each template is heard in `audio`, from the audio alone."""
    return Recogniser(templates, cache_dir=cache_dir).recognise(audio)


def _heard_messages(
    job_id: str, offset: float, plan: _Plan, occurrences: Sequence[Occurrence]
) -> list[_Message]:
    """One message per occurrence with at least one word heard, its words on the conversation's
    clock (`offset`: where this file starts on it), nobody named as its speaker."""
    messages = []
    for index, occurrence in enumerate(sorted(occurrences, key=lambda o: o.start)):
        if not occurrence.words:
            continue
        words = tuple(
            _Word(w.text, round(offset + w.start, 3), round(offset + w.end, 3))
            for w in occurrence.words
        )
        text = " ".join(w.text for w in words)
        start, end = words[0].start, max(w.end for w in words)
        messages.append(
            _Message(
                id=_numeric_id("message", job_id, str(index)),
                text=text,
                member=None,
                time_offset=start,
                duration=round(end - start, 3),
                phrases=_action_phrases(text) if plan.detect_phrases else (),
                words=words,
                template_key=occurrence.template.key,
                true_speaker=occurrence.template.speaker,
            )
        )
    return messages


def _to_messages(
    job_id: str,
    conversation_id: str,
    offset: float,
    plan: _Plan,
    utterances: list[_Utterance],
) -> list[_Message]:
    ordered = sorted(utterances, key=lambda u: (u.start, u.channel))
    return [
        _Message(
            id=_numeric_id("message", job_id, str(index)),
            text=u.text,
            member=_member(conversation_id, u.speaker),
            time_offset=round(offset + u.start, 3),
            duration=round(u.end - u.start, 3),
            phrases=_action_phrases(u.text) if plan.detect_phrases else (),
        )
        for index, u in enumerate(ordered)
    ]


def _member(conversation_id: str, speaker: _Speaker) -> _Member:
    key = f"{conversation_id}|{speaker.name}|{speaker.email or ''}"
    return _Member(str(uuid.uuid5(uuid.NAMESPACE_URL, key)), speaker.name, speaker.email)


def _words(message: _Message, transcript: _Transcript) -> list[dict[str, Any]]:
    """The words heard at their times, or (recognised by timing) spread over the message's time
    in proportion to their length."""
    if message.words is not None:
        return [
            {
                "word": word.text,
                "startTime": _at(transcript, word.start),
                "endTime": _at(transcript, word.end),
                "score": 0.9,
                "timeOffset": word.start,
                "duration": round(word.end - word.start, 3),
            }
            for word in message.words
        ]
    words = message.text.split()
    total = sum(len(w) for w in words) or 1
    cursor = message.time_offset
    result = []
    for word in words:
        length = message.duration * len(word) / total
        result.append(
            {
                "word": word,
                "startTime": _at(transcript, cursor),
                "endTime": _at(transcript, cursor + length),
                "score": 0.9,
                "timeOffset": round(cursor, 3),
                "duration": round(length, 3),
            }
        )
        cursor += length
    return result
