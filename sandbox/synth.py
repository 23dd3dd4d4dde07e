"""Synthetic Zoom meetings: real spoken English per participant, with the script of who said what.

The merge, alignment and insight steps need audio whose truth is known. Each participant track is
built like Zoom's "Audio only - <name>" files (it starts when that person joined and ends when they
left), turns never overlap, and the script can be registered for the fake Symbl, so tests can check
timing to the millisecond and transcripts word for word.

Tracks are streamed into ffmpeg as PCM (silence + cached espeak-ng renders), so long meetings never
sit in memory, and every generated meeting is cached under a key derived from its parameters.
"""

from __future__ import annotations

import array
import base64
import hashlib
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
import uuid as uuid_module
import wave
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sandbox.registry import MeetingRegistry, ScriptedMeeting, ScriptLine

FFMPEG_BINARY = "ffmpeg"
ESPEAK_BINARY = "espeak-ng"

DEFAULT_ACCOUNT_ID = "sandbox-account"
DEFAULT_HOST_EMAIL = "host@example.com"
DEFAULT_TIMEZONE = "America/New_York"
PARTICIPANT_FILE_PREFIX = "Audio only - "
DEFAULT_NAMES = (
    "Ana Ruiz-Soto",
    "Bo Chen",
    "Carla Mendes",
    "Dev Patel",
    "Erik Larsen",
    "Fatima Noor",
    "Grace Kim",
    "Hugo Martin",
)

# Bump when the generated files or the manifest change, so stale caches are not reused.
SYNTH_VERSION = 1
MANIFEST_NAME = "meeting.json"
MIN_DURATION_S = 20
RENDER_RATE = 22050  # espeak-ng's native rate; tracks are resampled to `sample_rate` on encode
# Renders are cut where their level first/last reaches SPEECH_TRIM_DBFS and everything else is
# digital silence, so ffmpeg `silencedetect=noise=<SILENCEDETECT_NOISE_DB>dB` finds each line's
# registered extent within a few ms: trimming a little above the detection level keeps AAC's
# smearing of quiet word tails from moving the edges.
SPEECH_TRIM_DBFS = -45.0
SILENCEDETECT_NOISE_DB = -50.0
MIN_TURN_GAP_S = 0.6
EDGE_MARGIN_S = 0.5  # speech starts this long after a join and ends this long before a leave
AAC_BITRATE = "32k"

SENTENCES = (
    "Good morning everyone, thanks for joining the call.",
    "Let's start with a quick update on the migration.",
    "The new dashboard went live on Tuesday.",
    "We closed twelve support tickets this week.",
    "The vendor confirmed the delivery date.",
    "I think the onboarding flow is still too long.",
    "Customers keep asking for a dark mode.",
    "The latency numbers look much better after the cache change.",
    "Our test coverage is now above eighty percent.",
    "Marketing wants the release notes one day earlier.",
    "The budget for the next quarter is almost final.",
    "We should simplify the signup form.",
    "The security review found two minor issues.",
    "Sales closed the deal with the logistics company.",
    "The design team shared three new mockups.",
    "Could you share the latest numbers with the team?",
    "What is the status of the data migration?",
    "Do we have a date for the customer workshop?",
    "Who is taking the lead on the hiring plan?",
    "Can we move the demo to Thursday afternoon?",
    "Is the staging environment stable again?",
    "How many users tried the beta so far?",
    "I will send the report by Friday.",
    "Let's review the budget next week.",
    "I will follow up with the vendor tomorrow.",
    "We will finish the security fixes before the release.",
    "I'll schedule a meeting with the design team.",
    "Let's decide on the pricing model by the end of the month.",
    "I will update the project plan tonight.",
    "Please send me the slides after the call.",
    "That sounds good to me.",
    "I agree with that approach.",
    "Thanks, that is really helpful.",
    "Let me check and get back to you.",
)


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice (language + variant), pitch (0-99) and speed (words per minute)."""

    name: str
    pitch: int
    speed: int

    def espeak_args(self) -> list[str]:
        return ["-v", self.name, "-p", str(self.pitch), "-s", str(self.speed)]


VOICES = (
    Voice("en-us+m3", 40, 165),
    Voice("en-gb+f2", 60, 150),
    Voice("en-us+f4", 75, 175),
    Voice("en+m5", 30, 160),
    Voice("en-gb-scotland+m1", 45, 155),
    Voice("en-us+f1", 65, 170),
    Voice("en-gb-x-rp+m7", 35, 150),
    Voice("en-029+f3", 55, 160),
)


@dataclass(frozen=True)
class SyntheticFile:
    """One downloadable recording file, with what Zoom lists about it and where its bytes are."""

    file_id: str  # Zoom's file `id` (TIMELINE files carry none in payloads; this is internal)
    file_type: str  # MP4 | M4A | TIMELINE
    file_extension: str
    recording_type: str | None  # None for participant files and TIMELINE
    file_name: str | None  # "Audio only - <name>" for participant files
    path: Path
    file_size: int
    content_type: str
    recording_start: datetime
    recording_end: datetime
    download_key: str  # opaque last segment of the webhook download_url


@dataclass(frozen=True)
class SyntheticParticipant:
    """A speaker: identity, voice, presence window (whole seconds from t0) and own audio file."""

    name: str
    email: str | None  # None: Zoom's participants API would give an empty user_email
    voice: Voice
    join_offset_s: int
    leave_offset_s: int
    audio: SyntheticFile


@dataclass(frozen=True)
class SyntheticMeeting:
    """A generated meeting. `start_time` is the timeline origin t0 (= speaker 0's join)."""

    uuid: str
    meeting_number: int
    topic: str
    account_id: str
    host_id: str
    host_email: str
    start_time: datetime
    duration_s: int
    timezone: str
    password: str
    recording_play_passcode: str
    sample_rate: int
    participants: tuple[SyntheticParticipant, ...]
    audio_only: SyntheticFile
    video: SyntheticFile
    timeline: SyntheticFile
    lines: tuple[ScriptLine, ...]  # seconds from t0, sorted by start
    directory: Path
    cache_key: str
    from_cache: bool

    @property
    def duration_minutes(self) -> int:
        """Zoom's `duration`: whole minutes, rounded up."""
        return math.ceil(self.duration_s / 60)

    @property
    def speakers(self) -> list[str]:
        return [p.name for p in self.participants]

    def participant(self, name: str) -> SyntheticParticipant:
        for participant in self.participants:
            if participant.name == name:
                return participant
        raise KeyError(name)

    def lines_of(self, name: str) -> list[ScriptLine]:
        return [line for line in self.lines if line.speaker == name]

    def files(self) -> tuple[SyntheticFile, ...]:
        """Every file a fake Zoom serves for this meeting."""
        return (self.video, self.audio_only, self.timeline, *(p.audio for p in self.participants))

    def scripted(self) -> ScriptedMeeting:
        return ScriptedMeeting(
            uuid=self.uuid, topic=self.topic, speakers=self.speakers, lines=list(self.lines)
        )


def synthesize_meeting(
    *,
    speakers: int | list[str],
    duration_s: float,
    seed: int,
    workdir: Path,
    topic: str | None = None,
    start_time: datetime | None = None,
    uuid: str | None = None,
    sample_rate: int = 32000,
    registry: MeetingRegistry | None = None,
    cache_dir: Path | None = None,
    host_email: str = DEFAULT_HOST_EMAIL,
    account_id: str = DEFAULT_ACCOUNT_ID,
    timezone: str = DEFAULT_TIMEZONE,
) -> SyntheticMeeting:
    """Generate (or reuse from `workdir`) a meeting and register its script in `registry`.

    `duration_s` is rounded to whole seconds because Zoom timestamps have second precision; join and
    leave offsets are whole seconds for the same reason. `start_time` must be timezone-aware and
    loses its microseconds. `cache_dir` holds the espeak-ng renders (default `workdir/.renders`);
    share it between workdirs to render each sentence once.
    """
    names = _speaker_names(speakers)
    length_s = round(duration_s)
    if length_s < MIN_DURATION_S:
        raise ValueError(f"duration_s must be at least {MIN_DURATION_S} s, got {duration_s}")
    if start_time is not None:
        if start_time.tzinfo is None:
            raise ValueError("start_time must be timezone-aware")
        start_time = start_time.astimezone(UTC).replace(microsecond=0)
    params = {
        "version": SYNTH_VERSION,
        "speakers": names,
        "duration_s": length_s,
        "seed": seed,
        "topic": topic,
        "start_time": _iso(start_time) if start_time else None,
        "uuid": uuid,
        "sample_rate": sample_rate,
        "host_email": host_email,
        "account_id": account_id,
        "timezone": timezone,
    }
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:24]
    workdir = Path(workdir)
    directory = workdir / f"meeting-{key}"
    meeting = _load_cached(directory)
    if meeting is None:
        meeting = _generate(
            _Plan(
                key=key,
                names=names,
                length_s=length_s,
                topic=topic,
                start_time=start_time,
                uuid=uuid,
                sample_rate=sample_rate,
                host_email=host_email,
                account_id=account_id,
                timezone=timezone,
            ),
            workdir=workdir,
            directory=directory,
            render_dir=Path(cache_dir) if cache_dir else workdir / ".renders",
        )
    if registry is not None:
        registry.register(meeting.scripted())
    return meeting


def build_recording_object(
    meeting: SyntheticMeeting,
    *,
    base_url: str,
    with_participant_files: bool = True,
    with_timeline: bool = True,
    download_url: Callable[[SyntheticFile], str] | None = None,
) -> dict[str, Any]:
    """`payload.object` of `recording.completed` (zoom-api.md §1.2-1.4).

    `download_url` maps a file to its URL; the default is the webhook form
    `<base_url>/rec/webhook_download/<download_key>`.
    """
    base = base_url.rstrip("/")

    def url_of(item: SyntheticFile) -> str:
        if download_url is not None:
            return download_url(item)
        return f"{base}/rec/webhook_download/{item.download_key}"

    def media_entry(item: SyntheticFile) -> dict[str, Any]:
        return {
            "id": item.file_id,
            "meeting_id": meeting.uuid,
            "recording_start": _iso(item.recording_start),
            "recording_end": _iso(item.recording_end),
            "file_type": item.file_type,
            "file_extension": item.file_extension,
            "file_size": item.file_size,
            "play_url": f"{base}/rec/play/{item.download_key}",
            "download_url": url_of(item),
            "status": "completed",
            "recording_type": item.recording_type,
        }

    recording_files = [media_entry(meeting.video), media_entry(meeting.audio_only)]
    if with_timeline:
        timeline = meeting.timeline
        recording_files.append(
            {
                "meeting_id": meeting.uuid,
                "recording_start": _iso(timeline.recording_start),
                "recording_end": _iso(timeline.recording_end),
                "file_type": timeline.file_type,
                "file_extension": timeline.file_extension,
                "download_url": url_of(timeline),
            }
        )
    participant_files = [
        {
            "id": p.audio.file_id,
            "recording_start": _iso(p.audio.recording_start),
            "recording_end": _iso(p.audio.recording_end),
            "file_name": p.audio.file_name,
            "file_type": p.audio.file_type,
            "file_extension": p.audio.file_extension,
            "file_size": p.audio.file_size,
            "play_url": f"{base}/rec/play/{p.audio.download_key}",
            "download_url": url_of(p.audio),
            "status": "completed",
        }
        for p in meeting.participants
    ]
    sized = [f for f in recording_files if "file_size" in f]
    counted = sized + (participant_files if with_participant_files else [])
    obj: dict[str, Any] = {
        "uuid": meeting.uuid,
        "id": meeting.meeting_number,
        "account_id": meeting.account_id,
        "host_id": meeting.host_id,
        "host_email": meeting.host_email,
        "topic": meeting.topic,
        "type": 2,
        "start_time": _iso(meeting.start_time),
        "timezone": meeting.timezone,
        "duration": meeting.duration_minutes,
        "total_size": sum(int(f["file_size"]) for f in counted),
        "recording_count": len(counted),
        "share_url": f"{base}/rec/share/{meeting.cache_key}",
        "password": meeting.password,
        "recording_play_passcode": meeting.recording_play_passcode,
        "recording_files": recording_files,
    }
    if with_participant_files:
        obj["participant_audio_files"] = participant_files
    return obj


def build_recording_completed(
    meeting: SyntheticMeeting,
    *,
    base_url: str,
    download_token: str,
    event_ts_ms: int | None = None,
    with_participant_files: bool = True,
    with_timeline: bool = True,
) -> dict[str, Any]:
    """The `recording.completed` event (zoom-api.md §1), `download_token` at the top level."""
    return {
        "event": "recording.completed",
        "event_ts": event_ts_ms if event_ts_ms is not None else int(time.time() * 1000),
        "download_token": download_token,
        "payload": {
            "account_id": meeting.account_id,
            "object": build_recording_object(
                meeting,
                base_url=base_url,
                with_participant_files=with_participant_files,
                with_timeline=with_timeline,
            ),
        },
    }


# --- generation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    key: str
    names: list[str]
    length_s: int
    topic: str | None
    start_time: datetime | None
    uuid: str | None
    sample_rate: int
    host_email: str
    account_id: str
    timezone: str


@dataclass(frozen=True)
class _Clip:
    """A trimmed render: raw s16le mono PCM at RENDER_RATE, first and last sample are speech."""

    text: str
    path: Path
    samples: int


@dataclass(frozen=True)
class _Turn:
    speaker: int
    clip: _Clip
    start_sample: int  # on the meeting timeline, at RENDER_RATE


def _speaker_names(speakers: int | list[str]) -> list[str]:
    if isinstance(speakers, int):
        if speakers < 1:
            raise ValueError("speakers must be at least 1")
        extra = [f"Guest {i + 1}" for i in range(len(DEFAULT_NAMES), speakers)]
        return [*DEFAULT_NAMES[:speakers], *extra]
    names = [name.strip() for name in speakers]
    if not names or any(not name for name in names):
        raise ValueError("speaker names must be non-empty")
    if len(set(names)) != len(names):
        raise ValueError("speaker names must be unique (the script is keyed by name)")
    return names


def _generate(plan: _Plan, *, workdir: Path, directory: Path, render_dir: Path) -> SyntheticMeeting:
    rng = random.Random(plan.key)
    count = len(plan.names)
    voices = [_voice_for(index) for index in range(count)]
    joins, leaves = _presence(rng, count, plan.length_s)

    per_speaker = min(len(SENTENCES), math.ceil(plan.length_s / (3.0 * count)) + 2)
    texts = [rng.sample(SENTENCES, per_speaker) for _ in range(count)]
    render_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(text, voices[i]) for i in range(count) for text in texts[i]]
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        rendered = list(pool.map(lambda job: _render(job[0], job[1], render_dir), jobs))
    clips = [rendered[i * per_speaker : (i + 1) * per_speaker] for i in range(count)]
    turns = _schedule(rng, clips, joins, leaves, plan.length_s)

    meeting_uuid = plan.uuid or _zoom_uuid(rng)
    meeting_number = rng.randrange(81_000_000_000, 89_999_999_999)
    start = plan.start_time or (
        datetime(2024, 5, 6, 14, 0, tzinfo=UTC)
        + timedelta(days=rng.randrange(28), minutes=5 * rng.randrange(96))
    )
    topic = plan.topic or f"Synthetic sync {plan.key[:8]}"

    workdir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{plan.key}-", dir=workdir))
    try:
        track_jobs: list[tuple[list[_Turn], int, int, Path]] = [
            (turns, 0, plan.length_s, staging / "audio_only.m4a")
        ]
        for index in range(count):
            mine = [t for t in turns if t.speaker == index]
            track_jobs.append(
                (mine, joins[index], leaves[index], staging / f"participant-{index + 1}.m4a")
            )
        with ThreadPoolExecutor(max_workers=_workers()) as pool:
            list(
                pool.map(
                    lambda job: _encode_track(job[0], job[1], job[2], job[3], plan.sample_rate),
                    track_jobs,
                )
            )
        video_path = staging / "video.mp4"
        shutil.copyfile(_placeholder_video(render_dir), video_path)
        lines = tuple(
            ScriptLine(
                speaker=plan.names[t.speaker],
                text=t.clip.text,
                start=round(t.start_sample / RENDER_RATE, 4),
                end=round((t.start_sample + t.clip.samples) / RENDER_RATE, 4),
            )
            for t in turns
        )
        emails = [_email_for(name, i, plan.host_email) for i, name in enumerate(plan.names)]
        timeline_path = staging / "timeline.json"
        timeline_path.write_text(_timeline_json(lines, plan.names, emails), encoding="utf-8")

        def file_of(
            path: Path,
            file_type: str,
            recording_type: str | None,
            content_type: str,
            *,
            file_name: str | None = None,
            begin_s: int = 0,
            end_s: int = plan.length_s,
        ) -> SyntheticFile:
            return SyntheticFile(
                file_id=str(uuid_module.UUID(int=rng.getrandbits(128), version=4)),
                file_type=file_type,
                file_extension=path.suffix.lstrip(".").upper(),
                recording_type=recording_type,
                file_name=file_name,
                path=directory / path.name,
                file_size=path.stat().st_size,
                content_type=content_type,
                recording_start=start + timedelta(seconds=begin_s),
                recording_end=start + timedelta(seconds=end_s),
                download_key=_opaque(rng),
            )

        participants = [
            SyntheticParticipant(
                name=name,
                email=emails[index],
                voice=voices[index],
                join_offset_s=joins[index],
                leave_offset_s=leaves[index],
                audio=file_of(
                    track_jobs[index + 1][3],
                    "M4A",
                    None,
                    "audio/mp4",
                    file_name=PARTICIPANT_FILE_PREFIX + name,
                    begin_s=joins[index],
                    end_s=leaves[index],
                ),
            )
            for index, name in enumerate(plan.names)
        ]
        meeting = SyntheticMeeting(
            uuid=meeting_uuid,
            meeting_number=meeting_number,
            topic=topic,
            account_id=plan.account_id,
            host_id=_opaque(rng)[:22],
            host_email=plan.host_email,
            start_time=start,
            duration_s=plan.length_s,
            timezone=plan.timezone,
            password=_opaque(rng)[:10],
            recording_play_passcode=_opaque(rng)[:32],
            sample_rate=plan.sample_rate,
            participants=tuple(participants),
            audio_only=file_of(track_jobs[0][3], "M4A", "audio_only", "audio/mp4"),
            video=file_of(video_path, "MP4", "shared_screen_with_speaker_view", "video/mp4"),
            timeline=file_of(timeline_path, "TIMELINE", None, "application/json"),
            lines=lines,
            directory=directory,
            cache_key=plan.key,
            from_cache=False,
        )
        (staging / MANIFEST_NAME).write_text(_manifest_json(meeting), encoding="utf-8")
        try:
            staging.rename(directory)
        except OSError:
            if not (directory / MANIFEST_NAME).exists():
                raise
            # Another process generated the same meeting first; its files are just as good.
            return _load_manifest(directory, from_cache=True)
        return meeting
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _workers() -> int:
    return max(1, os.cpu_count() or 1)


def _voice_for(index: int) -> Voice:
    base = VOICES[index % len(VOICES)]
    lap = index // len(VOICES)
    return Voice(base.name, (base.pitch + 17 * lap) % 100, base.speed + 7 * lap)


def _presence(rng: random.Random, count: int, length_s: int) -> tuple[list[int], list[int]]:
    """Whole-second join/leave offsets: speaker 0 spans the meeting, others join later (distinct
    offsets up to 20% in), and one of them leaves at 55-75% of the meeting."""
    offsets = list(range(2, max(2, int(0.2 * length_s)) + 1))
    if len(offsets) >= count - 1:
        late = rng.sample(offsets, count - 1)
    else:
        late = [rng.choice(offsets) for _ in range(count - 1)]
    joins = [0, *late]
    leaves = [length_s] * count
    if count > 1:
        leaver = rng.randrange(1, count)
        early = round(length_s * rng.uniform(0.55, 0.75))
        leaves[leaver] = max(joins[leaver] + 10, min(early, length_s - 5))
    return joins, leaves


def _schedule(
    rng: random.Random,
    clips: Sequence[Sequence[_Clip]],
    joins: Sequence[int],
    leaves: Sequence[int],
    length_s: int,
) -> list[_Turn]:
    """One speaker at a time, gaps of at least MIN_TURN_GAP_S, everyone inside their own window."""
    said = [0] * len(clips)
    turns: list[_Turn] = []
    last: int | None = None
    t = EDGE_MARGIN_S + rng.uniform(0.0, 0.5)
    while t < length_s - EDGE_MARGIN_S:
        fits = []
        for index, own in enumerate(clips):
            clip = own[said[index] % len(own)]
            ends = t + clip.samples / RENDER_RATE
            if joins[index] + EDGE_MARGIN_S <= t and ends <= leaves[index] - EDGE_MARGIN_S:
                fits.append(index)
        if not fits:
            later = [j + EDGE_MARGIN_S for j in joins if j + EDGE_MARGIN_S > t]
            if not later:
                break
            t = min(later)
            continue
        others = [index for index in fits if index != last] or fits
        speaker = min(others, key=lambda index: (said[index], rng.random()))
        clip = clips[speaker][said[speaker] % len(clips[speaker])]
        start_sample = round(t * RENDER_RATE)
        turns.append(_Turn(speaker, clip, start_sample))
        said[speaker] += 1
        last = speaker
        t = (start_sample + clip.samples) / RENDER_RATE + rng.uniform(MIN_TURN_GAP_S + 0.1, 1.6)
    return turns


def _render(text: str, voice: Voice, render_dir: Path) -> _Clip:
    """espeak-ng `text` once per voice, trimmed to the speech extent, cached as raw PCM."""
    ident = json.dumps([SYNTH_VERSION, voice.espeak_args(), SPEECH_TRIM_DBFS, text])
    path = render_dir / (hashlib.sha256(ident.encode()).hexdigest()[:32] + ".s16")
    if not path.exists():
        with tempfile.TemporaryDirectory(dir=render_dir) as scratch:
            wav_path = Path(scratch) / "render.wav"
            _run([ESPEAK_BINARY, *voice.espeak_args(), "-w", str(wav_path), text])
            with wave.open(str(wav_path), "rb") as wav:
                if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (
                    RENDER_RATE,
                    1,
                    2,
                ):
                    raise RuntimeError(f"unexpected espeak-ng output format for voice {voice}")
                pcm = array.array("h", wav.readframes(wav.getnframes()))
            if sys.byteorder != "little":
                pcm.byteswap()
            first, last = _speech_extent(pcm)
            partial = Path(scratch) / "clip.s16"
            partial.write_bytes(pcm[first : last + 1].tobytes())
            os.replace(partial, path)
    return _Clip(text=text, path=path, samples=path.stat().st_size // 2)


def _speech_extent(pcm: array.array[int]) -> tuple[int, int]:
    """First and last sample at or above SPEECH_TRIM_DBFS (scans inwards from both ends)."""
    threshold = math.ceil(32768 * 10 ** (SPEECH_TRIM_DBFS / 20))
    first = next((i for i in range(len(pcm)) if abs(pcm[i]) >= threshold), None)
    if first is None:
        raise RuntimeError("espeak-ng produced no audible speech")
    last = next(i for i in range(len(pcm) - 1, first - 1, -1) if abs(pcm[i]) >= threshold)
    return first, last


_ZEROS = bytes(2 * RENDER_RATE)


def _write_silence(sink: IO[bytes], samples: int) -> None:
    remaining = 2 * samples
    while remaining > 0:
        step = min(remaining, len(_ZEROS))
        sink.write(_ZEROS[:step])
        remaining -= step


def _encode_track(
    turns: Sequence[_Turn], begin_s: int, end_s: int, out: Path, sample_rate: int
) -> None:
    """Stream silence + speech for [begin_s, end_s) of the timeline into ffmpeg's AAC encoder."""
    command = [
        FFMPEG_BINARY,
        *("-hide_banner", "-loglevel", "error", "-y"),
        *("-f", "s16le", "-ar", str(RENDER_RATE), "-ac", "1", "-i", "pipe:0"),
        *("-ar", str(sample_rate), "-ac", "1", "-c:a", "aac", "-b:a", AAC_BITRATE),
        *("-movflags", "+faststart", str(out)),
    ]
    origin = begin_s * RENDER_RATE
    total = (end_s - begin_s) * RENDER_RATE
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=errors)
        assert process.stdin is not None
        try:
            position = 0
            for turn in turns:
                offset = turn.start_sample - origin
                _write_silence(process.stdin, offset - position)
                process.stdin.write(turn.clip.path.read_bytes())
                position = offset + turn.clip.samples
            _write_silence(process.stdin, total - position)
            process.stdin.close()
        except BrokenPipeError:
            pass
        returncode = process.wait()
        if returncode != 0:
            errors.seek(0)
            message = errors.read().decode(errors="replace").strip()
            raise RuntimeError(f"ffmpeg failed encoding {out.name}: {message}")


def _placeholder_video(render_dir: Path) -> Path:
    """A one-second black MP4 standing in for the meeting video (the pipeline never decodes it)."""
    path = render_dir / f"placeholder-v{SYNTH_VERSION}.mp4"
    if not path.exists():
        with tempfile.TemporaryDirectory(dir=render_dir) as scratch:
            partial = Path(scratch) / "video.mp4"
            _run(
                [
                    FFMPEG_BINARY,
                    *("-hide_banner", "-loglevel", "error", "-y"),
                    *("-f", "lavfi", "-i", "color=c=black:s=160x90:r=5:d=1"),
                    *("-f", "lavfi", "-i", "anullsrc=r=32000:cl=mono"),
                    *("-t", "1", "-c:v", "mpeg4", "-c:a", "aac", "-b:a", AAC_BITRATE),
                    *("-movflags", "+faststart", str(partial)),
                ]
            )
            os.replace(partial, path)
    return path


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"{command[0]} failed ({result.returncode}): {message}")


def _timeline_json(lines: Sequence[ScriptLine], names: list[str], emails: list[str | None]) -> str:
    """Zoom's TIMELINE file: who was the active speaker from each timestamp on."""
    email_of = dict(zip(names, emails, strict=True))
    entries = []
    for line in lines:
        ms = round(line.start * 1000)
        stamp = (
            f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"
        )
        entries.append(
            {
                "ts": stamp,
                "users": [
                    {
                        "username": line.speaker,
                        "multiple_people": False,
                        "email_address": email_of[line.speaker] or "",
                    }
                ],
            }
        )
    return json.dumps({"timeline": entries}, ensure_ascii=False)


def _email_for(name: str, index: int, host_email: str) -> str | None:
    """The host keeps host_email; every third other speaker has none, like guests in Zoom."""
    if index == 0:
        return host_email
    if index % 3 == 2:
        return None
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", ".", ascii_name.lower()).strip(".")
    return f"{slug or f'user{index}'}@example.com"


def _zoom_uuid(rng: random.Random) -> str:
    """24 base64 characters ending in '==' (so '/' and '+' can occur), like Zoom's UUIDs."""
    return base64.b64encode(rng.randbytes(16)).decode()


def _opaque(rng: random.Random) -> str:
    return base64.urlsafe_b64encode(rng.randbytes(32)).decode().rstrip("=")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


# --- manifest (the cache's record of a generated meeting) --------------------------------------


def _file_to_dict(item: SyntheticFile) -> dict[str, Any]:
    return {
        "file_id": item.file_id,
        "file_type": item.file_type,
        "file_extension": item.file_extension,
        "recording_type": item.recording_type,
        "file_name": item.file_name,
        "path": item.path.name,
        "file_size": item.file_size,
        "content_type": item.content_type,
        "recording_start": _iso(item.recording_start),
        "recording_end": _iso(item.recording_end),
        "download_key": item.download_key,
    }


def _file_from_dict(raw: dict[str, Any], directory: Path) -> SyntheticFile:
    return SyntheticFile(
        file_id=raw["file_id"],
        file_type=raw["file_type"],
        file_extension=raw["file_extension"],
        recording_type=raw["recording_type"],
        file_name=raw["file_name"],
        path=directory / raw["path"],
        file_size=int(raw["file_size"]),
        content_type=raw["content_type"],
        recording_start=_parse_iso(raw["recording_start"]),
        recording_end=_parse_iso(raw["recording_end"]),
        download_key=raw["download_key"],
    )


def _manifest_json(meeting: SyntheticMeeting) -> str:
    document = {
        "uuid": meeting.uuid,
        "meeting_number": meeting.meeting_number,
        "topic": meeting.topic,
        "account_id": meeting.account_id,
        "host_id": meeting.host_id,
        "host_email": meeting.host_email,
        "start_time": _iso(meeting.start_time),
        "duration_s": meeting.duration_s,
        "timezone": meeting.timezone,
        "password": meeting.password,
        "recording_play_passcode": meeting.recording_play_passcode,
        "sample_rate": meeting.sample_rate,
        "participants": [
            {
                "name": p.name,
                "email": p.email,
                "voice": [p.voice.name, p.voice.pitch, p.voice.speed],
                "join_offset_s": p.join_offset_s,
                "leave_offset_s": p.leave_offset_s,
                "audio": _file_to_dict(p.audio),
            }
            for p in meeting.participants
        ],
        "audio_only": _file_to_dict(meeting.audio_only),
        "video": _file_to_dict(meeting.video),
        "timeline": _file_to_dict(meeting.timeline),
        "lines": [[line.speaker, line.text, line.start, line.end] for line in meeting.lines],
        "cache_key": meeting.cache_key,
    }
    return json.dumps(document, ensure_ascii=False, indent=1)


def _load_cached(directory: Path) -> SyntheticMeeting | None:
    """The cached meeting in `directory` if all its files are intact; a damaged one is removed."""
    if not (directory / MANIFEST_NAME).exists():
        return None
    meeting = _load_manifest(directory, from_cache=True)
    if all(f.path.is_file() and f.path.stat().st_size == f.file_size for f in meeting.files()):
        return meeting
    shutil.rmtree(directory, ignore_errors=True)
    return None


def _load_manifest(directory: Path, *, from_cache: bool) -> SyntheticMeeting:
    raw = json.loads((directory / MANIFEST_NAME).read_text(encoding="utf-8"))
    return SyntheticMeeting(
        uuid=raw["uuid"],
        meeting_number=int(raw["meeting_number"]),
        topic=raw["topic"],
        account_id=raw["account_id"],
        host_id=raw["host_id"],
        host_email=raw["host_email"],
        start_time=_parse_iso(raw["start_time"]),
        duration_s=int(raw["duration_s"]),
        timezone=raw["timezone"],
        password=raw["password"],
        recording_play_passcode=raw["recording_play_passcode"],
        sample_rate=int(raw["sample_rate"]),
        participants=tuple(
            SyntheticParticipant(
                name=p["name"],
                email=p["email"],
                voice=Voice(*p["voice"]),
                join_offset_s=int(p["join_offset_s"]),
                leave_offset_s=int(p["leave_offset_s"]),
                audio=_file_from_dict(p["audio"], directory),
            )
            for p in raw["participants"]
        ),
        audio_only=_file_from_dict(raw["audio_only"], directory),
        video=_file_from_dict(raw["video"], directory),
        timeline=_file_from_dict(raw["timeline"], directory),
        lines=tuple(ScriptLine(s, t, float(a), float(b)) for s, t, a, b in raw["lines"]),
        directory=directory,
        cache_key=raw["cache_key"],
        from_cache=from_cache,
    )
