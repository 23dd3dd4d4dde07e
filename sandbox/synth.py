"""Synthetic Zoom meetings: real spoken English per participant, with the script of who said what.

The merge, alignment and insight steps need audio whose truth is known. Each participant track is
built like Zoom's "Audio only - <name>" files (it starts when that person joined and ends when they
left), turns never overlap, and the script can be registered for the fake Symbl, so tests can check
timing to the millisecond and transcripts word for word.

`realistic=True` makes meetings that measure speech detection and layouts honestly: pauses where
nobody speaks, turns that cut into each other, listeners' backchannels ("yeah") inside another
speaker's line, a low noise floor on every track and occasional non-speech noises (typing, a
cough) that are recorded in the manifest but are not script lines. `realism_report` measures them.

Tracks are streamed into ffmpeg as PCM (silence + cached espeak-ng renders), so long meetings never
sit in memory, and every generated meeting is cached under a key derived from its parameters.

Registering a meeting also registers its *templates* (`sandbox.fingerprint.Template`): the render
of every line placed, once per (speaker, text), with the span of each word in it, so the fake Symbl
can recognise lines from audio alone. Word spans are espeak-ng's own: the command line reports no
word times, so the same text is synthesised again through libespeak-ng (the library the command
line runs; its samples are checked to be identical to the render), whose word events give the
sample where each word starts; each word then spans its samples at or above SPEECH_TRIM_DBFS
before the next word starts, so pauses after commas belong to no word. Those boundaries are the
synthesiser's own, exact to a sample. espeak-ng gives one event for a few function-word pairs ("on
the", about 5 % of words): their boundary is estimated at the quietest 5 ms near where the
letters put it, within a few tens of ms; both are far below a compact layout's 0.1-0.15 s padding.
"""

from __future__ import annotations

import array
import base64
import functools
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
import threading
import time
import unicodedata
import uuid as uuid_module
import wave
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sandbox.fingerprint import Template, WordSpan, template_key
from sandbox.registry import MeetingRegistry, ScriptedMeeting, ScriptLine

SPEECH = "speech"  # ScriptLine.kind of a sentence
BACKCHANNEL = "backchannel"  # ScriptLine.kind of a listener's "yeah" inside another speaker's line
KEYBOARD = "keyboard"  # NoiseEvent.kind: a train of key clicks
COUGH = "cough"  # NoiseEvent.kind: a 200-400 ms burst of shaped noise

FFMPEG_BINARY = "ffmpeg"
ESPEAK_BINARY = "espeak-ng"
ESPEAK_LIBRARY = "espeak-ng"  # libespeak-ng: word timings of a render (see the module docstring)
WORD_SPANS_VERSION = 2  # bump when the word span estimate changes (cached next to the renders)

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

# Realistic mode. The scheduler steers towards these shares (measured by `realism_report`):
REALISTIC_SILENCE_TARGET = 0.20  # of the meeting with nobody speaking
REALISTIC_TURN_OVERLAP_TARGET = 0.09  # of speech time overlapped by turns cutting in...
REALISTIC_OVERLAP_TARGET = 0.125  # ...then topped up to this by backchannels
REALISTIC_CONTINUE_P = 0.3  # the speaker goes on with another sentence after a short pause
REALISTIC_INTERRUPTION_P = 0.2  # an overlapping turn change is a 1-2 s interruption, not a cut-in
SELF_PAUSE_S = 0.2  # nobody starts a line sooner than this after their own previous one ends
BACKCHANNEL_GUARD_S = 0.3  # a backchannel keeps this far from the host line's edges and own lines
BACKCHANNEL_HOST_MIN_S = 1.6  # only lines at least this long receive a backchannel
BACKCHANNELS = ("Yeah.", "Right.", "Okay.", "Sure.", "Uh-huh.", "I see.", "Got it.", "True.")
NOISE_FLOOR_DBFS = (-60.0, -56.0)  # RMS range of each track's white noise floor (drawn per track)
NOISE_GUARD_S = 0.3  # a noise event keeps this far from its participant's own speech
KEYBOARD_EVERY_S = 80.0  # one typing burst per this much of a participant's window (at least one)
COUGH_EVERY_S = 140.0  # one cough per this much of a participant's window (at least one)

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
class NoiseEvent:
    """A non-speech sound on one participant's track (never over their own speech), in seconds
    from t0. Not a script line: nobody said words then, so a detector that keeps it is wrong."""

    kind: str  # KEYBOARD | COUGH
    start: float
    end: float


@dataclass(frozen=True)
class SyntheticParticipant:
    """A speaker: identity, voice, presence window (whole seconds from t0) and own audio file."""

    name: str
    email: str | None  # None: Zoom's participants API would give an empty user_email
    voice: Voice
    join_offset_s: int
    leave_offset_s: int
    audio: SyntheticFile
    noises: tuple[NoiseEvent, ...] = ()  # realistic meetings only, sorted by start


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
    realistic: bool = False
    render_dir: Path | None = None  # where the renders are; not in the manifest (a cache may move)

    @property
    def duration_minutes(self) -> int:
        """Zoom's `duration`: whole minutes, rounded up."""
        return math.ceil(self.duration_s / 60)

    @property
    def speakers(self) -> list[str]:
        return [p.name for p in self.participants]

    @property
    def span_seconds(self) -> float:
        """First join to last leave: the length of the meeting the participant files cover."""
        starts = [p.audio.recording_start for p in self.participants]
        ends = [p.audio.recording_end for p in self.participants]
        return (max(ends) - min(starts)).total_seconds()

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

    def templates(self) -> list[Template]:
        """One template per (speaker, text) of every line placed (speech and backchannels), in
        order of first appearance. Renders missing from `render_dir` are rendered again."""
        if self.render_dir is None:
            raise ValueError("this meeting does not know where its renders are")
        render_dir = self.render_dir
        voices = {p.name: p.voice for p in self.participants}
        said = list(dict.fromkeys((line.speaker, line.text) for line in self.lines))
        with ThreadPoolExecutor(max_workers=_workers()) as pool:
            return list(
                pool.map(
                    lambda pair: line_template(pair[0], pair[1], voices[pair[0]], render_dir),
                    said,
                )
            )

    def scripted(self) -> ScriptedMeeting:
        return ScriptedMeeting(
            uuid=self.uuid,
            topic=self.topic,
            speakers=self.speakers,
            lines=list(self.lines),
            templates=self.templates() if self.render_dir is not None else [],
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
    realistic: bool = False,
) -> SyntheticMeeting:
    """Generate (or reuse from `workdir`) a meeting and register its script in `registry`.

    `duration_s` is rounded to whole seconds because Zoom timestamps have second precision; join and
    leave offsets are whole seconds for the same reason. `start_time` must be timezone-aware and
    loses its microseconds. `cache_dir` holds the espeak-ng renders (default `workdir/.renders`);
    share it between workdirs to render each sentence once. `realistic` adds pauses, overlapping
    turns, backchannels, a noise floor and non-speech noises (see the module docstring).
    """
    names = _speaker_names(speakers)
    if realistic and len(names) < 2:
        raise ValueError("a realistic meeting needs at least two speakers (nobody talks alone)")
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
    if realistic:  # only then, so default meetings keep their keys and caches
        params["realistic"] = True
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:24]
    workdir = Path(workdir)
    directory = workdir / f"meeting-{key}"
    render_dir = Path(cache_dir) if cache_dir else workdir / ".renders"
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
                realistic=realistic,
            ),
            workdir=workdir,
            directory=directory,
            render_dir=render_dir,
        )
    meeting = replace(meeting, render_dir=render_dir)
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


def realism_report(meeting: SyntheticMeeting) -> dict[str, Any]:
    """What a detector or layout is measured against, from the script and the manifest: shares
    are of the meeting from the first join to the end (silence: nobody speaking) and of speech
    time (overlap: two or more speaking at once); backchannels count in both."""
    begin = min(p.join_offset_s for p in meeting.participants)
    length = meeting.duration_s - begin
    speech, overlap = _speech_and_overlap([(line.start, line.end) for line in meeting.lines])
    noises = [noise for p in meeting.participants for noise in p.noises]
    return {
        "meeting_s": float(length),
        "speech_s": round(speech, 4),
        "overlap_s": round(overlap, 4),
        "silence_s": round(length - speech, 4),
        "silence_share": (length - speech) / length,
        "overlap_share": overlap / speech if speech else 0.0,
        "lines": sum(1 for line in meeting.lines if line.kind == SPEECH),
        "backchannels": sum(1 for line in meeting.lines if line.kind == BACKCHANNEL),
        "noise_events": len(noises),
        "keyboard_events": sum(1 for noise in noises if noise.kind == KEYBOARD),
        "cough_events": sum(1 for noise in noises if noise.kind == COUGH),
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
    realistic: bool = False


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
    kind: str = SPEECH

    @property
    def end_sample(self) -> int:
        return self.start_sample + self.clip.samples


@dataclass(frozen=True)
class _Noise:
    """A non-speech sound placed on a participant's track; its PCM is rebuilt from `seed`."""

    speaker: int
    kind: str
    start_sample: int
    samples: int
    seed: int


@dataclass(frozen=True)
class _Piece:
    """Something audible on a track: `samples` of s16le PCM at RENDER_RATE from `pcm()`."""

    start_sample: int
    samples: int
    pcm: Callable[[], bytes]


@dataclass(frozen=True)
class _Floor:
    """A track's white noise floor: ffmpeg's anoisesrc at this RMS level with this seed."""

    dbfs: float
    seed: int

    @property
    def amplitude(self) -> float:
        return math.sqrt(3) * 10 ** (self.dbfs / 20)  # uniform noise in [-a, a] has RMS a/sqrt(3)


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
    if plan.realistic and count == 2:
        leaves = [plan.length_s] * count  # two people: the meeting would end when one left

    per_speaker = min(len(SENTENCES), math.ceil(plan.length_s / (3.0 * count)) + 2)
    texts = [rng.sample(SENTENCES, per_speaker) for _ in range(count)]
    render_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(text, voices[i]) for i in range(count) for text in texts[i]]
    if plan.realistic:
        jobs += [(text, voices[i]) for i in range(count) for text in BACKCHANNELS]
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        rendered = list(pool.map(lambda job: _render(job[0], job[1], render_dir), jobs))
    clips = [rendered[i * per_speaker : (i + 1) * per_speaker] for i in range(count)]
    noises: list[_Noise] = []
    floors: list[_Floor] = []
    if plan.realistic:
        first = count * per_speaker  # the backchannel renders follow the sentences
        short = len(BACKCHANNELS)
        backchannels = [rendered[first + i * short : first + (i + 1) * short] for i in range(count)]
        turns = _schedule_realistic(rng, clips, joins, leaves, plan.length_s)
        turns = _with_backchannels(rng, turns, backchannels, joins, leaves)
        noises = _place_noises(rng, turns, joins, leaves)
        floors = [
            _Floor(round(rng.uniform(*NOISE_FLOOR_DBFS), 2), rng.getrandbits(32))
            for _ in range(count + 1)
        ]
    else:
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
        # Track 0 is Zoom's mixed audio (everyone, the whole meeting), then one per participant.
        paths = [staging / "audio_only.m4a"]
        paths += [staging / f"participant-{index + 1}.m4a" for index in range(count)]
        windows = [(0, plan.length_s), *zip(joins, leaves, strict=True)]
        whose: list[int | None] = [None, *range(count)]  # None: everyone's
        encoders: list[Callable[[], None]] = []
        for speaker, path, (begin_s, end_s) in zip(whose, paths, windows, strict=True):
            mine = [t for t in turns if speaker is None or t.speaker == speaker]
            if plan.realistic:
                sounds = [n for n in noises if speaker is None or n.speaker == speaker]
                floor = floors[0 if speaker is None else speaker + 1]
                pieces = _pieces(mine, sounds)
                encoders.append(
                    functools.partial(
                        _encode_realistic_track,
                        pieces,
                        begin_s,
                        end_s,
                        path,
                        plan.sample_rate,
                        floor,
                    )
                )
            else:
                encoders.append(
                    functools.partial(_encode_track, mine, begin_s, end_s, path, plan.sample_rate)
                )
        with ThreadPoolExecutor(max_workers=_workers()) as pool:
            list(pool.map(lambda encode: encode(), encoders))
        video_path = staging / "video.mp4"
        shutil.copyfile(_placeholder_video(render_dir), video_path)
        lines = tuple(
            ScriptLine(
                speaker=plan.names[t.speaker],
                text=t.clip.text,
                start=round(t.start_sample / RENDER_RATE, 4),
                end=round((t.start_sample + t.clip.samples) / RENDER_RATE, 4),
                kind=t.kind,
            )
            for t in turns
        )
        emails = [_email_for(name, i, plan.host_email) for i, name in enumerate(plan.names)]
        timeline_path = staging / "timeline.json"
        # Zoom's active speaker does not switch for a "yeah" from a listener.
        spoken = [line for line in lines if line.kind == SPEECH]
        timeline_path.write_text(_timeline_json(spoken, plan.names, emails), encoding="utf-8")

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
                    paths[index + 1],
                    "M4A",
                    None,
                    "audio/mp4",
                    file_name=PARTICIPANT_FILE_PREFIX + name,
                    begin_s=joins[index],
                    end_s=leaves[index],
                ),
                noises=tuple(
                    NoiseEvent(
                        kind=n.kind,
                        start=round(n.start_sample / RENDER_RATE, 4),
                        end=round((n.start_sample + n.samples) / RENDER_RATE, 4),
                    )
                    for n in noises
                    if n.speaker == index
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
            audio_only=file_of(paths[0], "M4A", "audio_only", "audio/mp4"),
            video=file_of(video_path, "MP4", "shared_screen_with_speaker_view", "video/mp4"),
            timeline=file_of(timeline_path, "TIMELINE", None, "application/json"),
            lines=lines,
            directory=directory,
            cache_key=plan.key,
            from_cache=False,
            realistic=plan.realistic,
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


def _schedule_realistic(
    rng: random.Random,
    clips: Sequence[Sequence[_Clip]],
    joins: Sequence[int],
    leaves: Sequence[int],
    length_s: int,
) -> list[_Turn]:
    """Turns as people take them: the speaker sometimes goes on after a short pause, the next one
    sometimes cuts into the end of the line (or interrupts it for 1-2 s), otherwise a pause
    follows, lengthened while the meeting has less silence than REALISTIC_SILENCE_TARGET. At most
    two lines play at once, everyone speaks inside their own window, and only with company."""
    count = len(clips)
    said = [0] * count
    free_at = [-math.inf] * count  # when each speaker's own last line ends (seconds)
    turns: list[_Turn] = []
    speech = overlap = silence = 0.0
    floor_start = floor_end = 0.0  # the line that ends last: whoever holds the floor
    before_floor = 0.0  # the latest end among all the other lines

    def clip_of(index: int) -> _Clip:
        return clips[index][said[index] % len(clips[index])]

    def fits(index: int, start: float) -> bool:
        ends = start + clip_of(index).samples / RENDER_RATE
        return (
            joins[index] + EDGE_MARGIN_S <= start
            and ends <= leaves[index] - EDGE_MARGIN_S
            and free_at[index] + SELF_PAUSE_S <= start
            # Nobody talks while alone in the meeting.
            and any(
                other != index and joins[other] <= start and ends <= leaves[other]
                for other in range(count)
            )
        )

    def pick(candidates: list[int]) -> int:
        return min(candidates, key=lambda index: (said[index], rng.random()))

    first = EDGE_MARGIN_S + rng.uniform(0.3, 1.5)
    while True:
        holder = turns[-1].speaker if turns else None
        start: float | None = None
        speaker: int | None = None
        if holder is not None and rng.random() < REALISTIC_CONTINUE_P:
            candidate = floor_end + rng.uniform(0.2, 0.6)
            if fits(holder, candidate):
                start, speaker = candidate, holder
        jitter = rng.uniform(-0.02, 0.02)
        if speaker is None and turns and overlap / speech + jitter < REALISTIC_TURN_OVERLAP_TARGET:
            interruption = rng.random() < REALISTIC_INTERRUPTION_P
            cut = rng.uniform(1.0, 2.0) if interruption else rng.uniform(0.15, 0.7)
            # Cut into the floor holder's line only, well after it began and after every other
            # line has ended, so at most two people speak at once.
            cut = min(
                cut,
                0.6 * (floor_end - floor_start),
                floor_end - max(before_floor, floor_start + 0.5),
            )
            if cut >= 0.1:
                candidate = floor_end - cut
                cutters = [
                    index
                    for index in range(count)
                    if index != holder
                    and fits(index, candidate)
                    and 0.6 * clip_of(index).samples / RENDER_RATE >= cut
                ]
                if cutters:
                    start, speaker = candidate, pick(cutters)
        if speaker is None:
            if turns:
                gap = rng.uniform(0.4, 1.8)
                if silence / floor_end + rng.uniform(-0.02, 0.02) < REALISTIC_SILENCE_TARGET:
                    gap += rng.uniform(1.5, 4.0)
                candidate = floor_end + gap
            else:
                candidate = first
            while speaker is None:
                if candidate >= length_s - EDGE_MARGIN_S:
                    return turns
                ready = [index for index in range(count) if fits(index, candidate)]
                if ready:
                    others = [index for index in ready if index != holder] or ready
                    start, speaker = candidate, pick(others)
                    break
                later = [j + EDGE_MARGIN_S for j in joins if j + EDGE_MARGIN_S > candidate]
                if not later:
                    return turns
                candidate = min(later)
        assert start is not None and speaker is not None
        turn = _Turn(speaker, clip_of(speaker), round(start * RENDER_RATE))
        begins = turn.start_sample / RENDER_RATE
        ends = turn.end_sample / RENDER_RATE
        if begins >= floor_end:
            silence += begins - floor_end
            speech += ends - begins
        else:  # a cut-in: every cut leaves the new line ending after the one it cuts into
            overlap += floor_end - begins
            speech += ends - floor_end
        turns.append(turn)
        said[speaker] += 1
        free_at[speaker] = ends
        before_floor, floor_start, floor_end = floor_end, begins, ends


def _with_backchannels(
    rng: random.Random,
    turns: list[_Turn],
    backchannels: Sequence[Sequence[_Clip]],
    joins: Sequence[int],
    leaves: Sequence[int],
) -> list[_Turn]:
    """Add backchannels from listeners present for the whole line inside other speakers' lines,
    where only that line plays, until overlapped speech reaches REALISTIC_OVERLAP_TARGET. The
    result is sorted by start."""
    spans = [(t.start_sample, t.end_sample) for t in turns]
    speech, overlapped = _speech_and_overlap(spans)
    missing = REALISTIC_OVERLAP_TARGET * speech - overlapped  # samples
    guard = round(BACKCHANNEL_GUARD_S * RENDER_RATE)
    own: list[list[tuple[int, int]]] = [[] for _ in joins]
    for turn in turns:
        own[turn.speaker].append((turn.start_sample, turn.end_sample))
    hosts = [t for t in turns if t.clip.samples >= BACKCHANNEL_HOST_MIN_S * RENDER_RATE]
    rng.shuffle(hosts)
    added: list[_Turn] = []
    for host in hosts:
        if missing <= 0:
            break
        begins, ends = host.start_sample / RENDER_RATE, host.end_sample / RENDER_RATE
        listeners = [
            index
            for index in range(len(joins))
            if index != host.speaker
            and joins[index] + EDGE_MARGIN_S <= begins
            and ends <= leaves[index] - EDGE_MARGIN_S
        ]
        if not listeners:
            continue
        listener = rng.choice(listeners)
        clip = rng.choice(backchannels[listener])
        low, high = host.start_sample + guard, host.end_sample - guard - clip.samples
        if high <= low:
            continue
        start = rng.randrange(low, high)
        end = start + clip.samples
        if any(
            a < end and start < b
            for a, b in spans
            if (a, b) != (host.start_sample, host.end_sample)
        ):
            continue  # someone else already speaks there
        if any(a - guard < end and start < b + guard for a, b in own[listener]):
            continue
        added.append(_Turn(listener, clip, start, kind=BACKCHANNEL))
        spans.append((start, end))
        own[listener].append((start, end))
        missing -= clip.samples
    return sorted([*turns, *added], key=lambda turn: turn.start_sample)


def _place_noises(
    rng: random.Random, turns: Sequence[_Turn], joins: Sequence[int], leaves: Sequence[int]
) -> list[_Noise]:
    """Typing bursts and coughs on each participant's track, inside their window, at least
    NOISE_GUARD_S away from their own lines and from each other."""
    guard = round(NOISE_GUARD_S * RENDER_RATE)
    noises: list[_Noise] = []
    for index, (join, leave) in enumerate(zip(joins, leaves, strict=True)):
        low = round((join + EDGE_MARGIN_S) * RENDER_RATE)
        high = round((leave - EDGE_MARGIN_S) * RENDER_RATE)
        busy = sorted(
            (t.start_sample - guard, t.end_sample + guard) for t in turns if t.speaker == index
        )
        free: list[tuple[int, int]] = []
        cursor = low
        for a, b in busy:
            if a > cursor:
                free.append((cursor, min(a, high)))
            cursor = max(cursor, b)
        if cursor < high:
            free.append((cursor, high))
        window_s = (high - low) / RENDER_RATE
        kinds = [KEYBOARD] * max(1, round(window_s / KEYBOARD_EVERY_S))
        kinds += [COUGH] * max(1, round(window_s / COUGH_EVERY_S))
        rng.shuffle(kinds)
        mine: list[_Noise] = []
        for kind in kinds:
            seed = rng.getrandbits(32)
            samples = len(_noise_pcm(kind, seed)) // 2
            roomy = [k for k, (a, b) in enumerate(free) if b - a >= samples]
            if not roomy:
                continue
            k = rng.choice(roomy)
            a, b = free[k]
            start = rng.randrange(a, b - samples + 1)
            free[k : k + 1] = [(a, start - guard), (start + samples + guard, b)]
            mine.append(_Noise(index, kind, start, samples, seed))
        noises += sorted(mine, key=lambda noise: noise.start_sample)
    return noises


def _noise_pcm(kind: str, seed: int) -> bytes:
    """The s16le PCM at RENDER_RATE of one noise event; the same seed gives the same bytes."""
    rng = random.Random(seed)
    pcm = _keyboard(rng) if kind == KEYBOARD else _cough(rng)
    if sys.byteorder != "little":
        pcm.byteswap()
    return pcm.tobytes()


def _keyboard(rng: random.Random) -> array.array[int]:
    """Typing for 1.2-3.5 s: 4-12 ms decaying clicks (a key press, often a softer release) every
    80-220 ms, with pauses between words. Starts and ends on a click."""
    clicks: list[tuple[int, int, float]] = []  # offset, length, peak
    offset = 0
    until = round(rng.uniform(1.2, 3.5) * RENDER_RATE)
    while True:
        length = round(rng.uniform(0.004, 0.012) * RENDER_RATE)
        peak = 32767 * 10 ** (rng.uniform(-18.0, -8.0) / 20)
        clicks.append((offset, length, peak))
        if rng.random() < 0.5:
            release = offset + round(rng.uniform(0.03, 0.06) * RENDER_RATE)
            clicks.append((release, round(0.7 * length), 0.4 * peak))
        pause = rng.uniform(0.3, 0.6) if rng.random() < 0.12 else rng.uniform(0.08, 0.22)
        offset += round(pause * RENDER_RATE)
        if offset >= until:
            break
    pcm = array.array("h", bytes(2 * max(start + length for start, length, _ in clicks)))
    for start, length, peak in clicks:
        for i in range(length):
            value = pcm[start + i] + peak * math.exp(-5.0 * i / length) * rng.uniform(-1.0, 1.0)
            pcm[start + i] = max(-32768, min(32767, round(value)))
    return pcm


def _cough(rng: random.Random) -> array.array[int]:
    """200-400 ms of low-passed noise under a 20 ms attack and an exponential decay."""
    length = round(rng.uniform(0.2, 0.4) * RENDER_RATE)
    attack = round(0.02 * RENDER_RATE)
    smoothing = rng.uniform(0.15, 0.35)
    raw: list[float] = []
    level = 0.0
    for _ in range(length):
        level += smoothing * (rng.uniform(-1.0, 1.0) - level)
        raw.append(level)
    scale = 32767 * 10 ** (rng.uniform(-14.0, -8.0) / 20) / max(abs(v) for v in raw)
    pcm = array.array("h", bytes(2 * length))
    for i, value in enumerate(raw):
        envelope = i / attack if i < attack else math.exp(-3.5 * (i - attack) / (length - attack))
        pcm[i] = round(value * scale * envelope)
    return pcm


def _pieces(turns: Sequence[_Turn], noises: Sequence[_Noise]) -> list[_Piece]:
    pieces = [_Piece(t.start_sample, t.clip.samples, t.clip.path.read_bytes) for t in turns]
    pieces += [
        _Piece(n.start_sample, n.samples, functools.partial(_noise_pcm, n.kind, n.seed))
        for n in noises
    ]
    return sorted(pieces, key=lambda piece: piece.start_sample)


def _speech_and_overlap(spans: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Time covered by at least one span, and by at least two."""
    edges = sorted(
        [(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans],
        key=lambda edge: (edge[0], edge[1]),
    )
    covered = doubled = 0.0
    depth = 0
    previous = 0.0
    for moment, step in edges:
        if depth >= 1:
            covered += moment - previous
        if depth >= 2:
            doubled += moment - previous
        depth += step
        previous = moment
    return covered, doubled


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


def line_template(speaker: str, text: str, voice: Voice, render_dir: Path) -> Template:
    """The template of `speaker` saying `text` in `voice`: its render (made if missing) and the
    span of each of its words, cached next to the render."""
    render_dir.mkdir(parents=True, exist_ok=True)
    clip = _render(text, voice, render_dir)
    return Template(
        key=template_key(speaker, text),
        speaker=speaker,
        text=text,
        audio=str(clip.path.resolve()),
        rate=RENDER_RATE,
        words=_word_spans(clip, voice),
    )


def _word_spans(clip: _Clip, voice: Voice) -> tuple[WordSpan, ...]:
    """Each whitespace-separated word of the clip's text with its span in the clip (seconds); the
    first starts at 0 and the last ends at the clip's end (cached as JSON next to the render)."""
    path = clip.path.with_suffix(".words.json")
    if path.exists():
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("version") == WORD_SPANS_VERSION:
            return tuple(WordSpan(t, float(a), float(b)) for t, a, b in raw["words"])
    pcm, events = _espeak_word_starts(clip.text, voice)
    first, last = _speech_extent(pcm)
    if pcm[first : last + 1].tobytes() != clip.path.read_bytes():
        raise RuntimeError(f"libespeak-ng and {ESPEAK_BINARY} render {clip.text!r} differently")
    merged = _token_starts(clip.text, events, pcm, first, last)
    threshold = math.ceil(32768 * 10 ** (SPEECH_TRIM_DBFS / 20))
    spans: list[WordSpan] = []
    for index, (token, start) in enumerate(merged):
        stop = merged[index + 1][1] if index + 1 < len(merged) else last + 1
        low, high = max(start, first), max(min(stop, last + 1), start)
        # the word's own extent: from its first to its last loud sample before the next word
        loud = [i for i in range(low, high) if abs(pcm[i]) >= threshold]
        if loud:
            low, high = loud[0], loud[-1] + 1
        if index == 0:
            low = first
        if index + 1 == len(merged):
            high = last + 1
        high = max(high, low + 1)
        spans.append(
            WordSpan(
                token,
                round((low - first) / RENDER_RATE, 4),
                round((high - first) / RENDER_RATE, 4),
            )
        )
    document = {"version": WORD_SPANS_VERSION, "words": [[w.text, w.start, w.end] for w in spans]}
    partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    partial.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    os.replace(partial, path)
    return tuple(spans)


def _token_starts(
    text: str, events: Sequence[tuple[int, int]], pcm: array.array[int], first: int, last: int
) -> list[tuple[str, int]]:
    """Each whitespace-separated token of `text` with the sample where it starts. A token starts
    at the earliest word event inside it. espeak-ng joins some function words into one event ("on
    the"): the tokens of such a group split its span at the quietest 5 ms near where their
    letters' share of the group puts the boundary."""
    tokens = [(m.start(), m.end(), m.group()) for m in re.finditer(r"\S+", text)]
    if not tokens:
        raise RuntimeError(f"no words in {text!r}")
    groups: list[tuple[int, list[str]]] = []  # start sample, tokens
    for begin, end, token in tokens:
        inside = [sample for position, sample in events if begin <= position < end]
        if inside or not groups:
            groups.append((min(last, max(first, min(inside, default=first))), [token]))
        else:
            groups[-1][1].append(token)
    result: list[tuple[str, int]] = []
    for index, (start, members) in enumerate(groups):
        stop = groups[index + 1][0] if index + 1 < len(groups) else last + 1
        result.append((members[0], start))
        if len(members) == 1:
            continue
        weights = [max(1, sum(ch.isalnum() for ch in token)) for token in members]
        step = round(0.005 * RENDER_RATE)
        reach = 0.3 * (stop - start) / len(members)
        done = 0
        for k, token in enumerate(members[1:], start=1):
            done += weights[k - 1]
            guess = start + (stop - start) * done / sum(weights)
            low = max(result[-1][1] + step, round(guess - reach))
            high = min(stop - step, round(guess + reach))
            windows = range(low, max(low + 1, high - step + 1), step)
            quietest = min(windows, key=lambda w: sum(v * v for v in pcm[w : w + step]))
            result.append((token, min(quietest + step // 2, stop - 1)))
    return result


# Run in a fresh interpreter per text: libespeak-ng keeps state from one synthesis to the next
# (the waveform generator's), so only a first synthesis in a process matches the command line's.
# Prints {"samples": base64 s16le, "words": [[0-based character position, first sample], ...]}.
_WORD_EVENTS_SCRIPT = r"""
import array, base64, ctypes, ctypes.util, json, sys

library_name, voice, pitch, speed, text = sys.argv[1:6]

class Event(ctypes.Structure):  # espeak_EVENT of speak_lib.h
    _fields_ = [
        ("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int), ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8),
    ]

Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                            ctypes.POINTER(Event))
library = ctypes.CDLL(ctypes.util.find_library(library_name) or f"lib{library_name}.so.1")
rate = library.espeak_Initialize(2, 0, None, 0)  # AUDIO_OUTPUT_SYNCHRONOUS
samples = array.array("h")
words = []

def collect(wav, count, events):
    if count > 0:
        samples.extend(wav[:count])
    index = 0
    while events[index].type != 0:  # espeakEVENT_LIST_TERMINATED
        if events[index].type == 1:  # espeakEVENT_WORD
            words.append([events[index].text_position - 1, events[index].sample])
        index += 1
    return 0

callback = Callback(collect)
library.espeak_SetSynthCallback(callback)
class VoiceSelect(ctypes.Structure):  # espeak_VOICE of speak_lib.h
    _fields_ = [
        ("name", ctypes.c_char_p), ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p), ("gender", ctypes.c_ubyte), ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte), ("xx1", ctypes.c_ubyte), ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]

# as the command line: by name, else by language ("en-gb+f2")
if library.espeak_SetVoiceByName(voice.encode()) != 0:
    select = VoiceSelect(languages=voice.encode())
    if library.espeak_SetVoiceByProperties(ctypes.byref(select)) != 0:
        sys.exit(f"no voice {voice}")
library.espeak_SetParameter(1, int(speed), 0)  # espeakRATE
library.espeak_SetParameter(3, int(pitch), 0)  # espeakPITCH
encoded = text.encode() + b"\0"
# as the command line: POS_CHARACTER; UTF-8 | [[phonemes]] | a pause at the end
if library.espeak_Synth(encoded, len(encoded), 0, 1, 0, 0x1 | 0x100 | 0x1000, None, None):
    sys.exit("espeak_Synth failed")
library.espeak_Synchronize()
if sys.byteorder != "little":
    samples.byteswap()
print(json.dumps({"rate": rate, "samples": base64.b64encode(samples.tobytes()).decode(),
                  "words": words}))
"""


def _espeak_word_starts(text: str, voice: Voice) -> tuple[array.array[int], list[tuple[int, int]]]:
    """`text` synthesised by libespeak-ng as the command line does: its samples and, per word
    event, (0-based character position, sample where the word starts)."""
    completed = subprocess.run(
        [
            *(sys.executable, "-c", _WORD_EVENTS_SCRIPT, ESPEAK_LIBRARY, voice.name),
            *(str(voice.pitch), str(voice.speed), text),
        ],
        capture_output=True,
        check=False,
        timeout=120,
    )
    if completed.returncode != 0:
        message = completed.stderr.decode(errors="replace").strip()[-500:]
        raise RuntimeError(f"libespeak-ng failed on {text!r}: {message}")
    result = json.loads(completed.stdout)
    if result["rate"] != RENDER_RATE:
        raise RuntimeError(f"libespeak-ng renders at {result['rate']} Hz, not {RENDER_RATE}")
    samples = array.array("h", base64.b64decode(result["samples"]))
    if sys.byteorder != "little":
        samples.byteswap()
    return samples, [(int(position), int(sample)) for position, sample in result["words"]]


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

    def write(sink: IO[bytes]) -> None:
        position = 0
        for turn in turns:
            offset = turn.start_sample - origin
            _write_silence(sink, offset - position)
            sink.write(turn.clip.path.read_bytes())
            position = offset + turn.clip.samples
        _write_silence(sink, total - position)

    _pipe_into(command, write, out)


def _encode_realistic_track(
    pieces: Sequence[_Piece],
    begin_s: int,
    end_s: int,
    out: Path,
    sample_rate: int,
    floor: _Floor,
) -> None:
    """Like `_encode_track`, but pieces may overlap (they are summed) and ffmpeg adds the noise
    floor under the whole track, so no stretch of it is digital silence."""
    noise = (
        f"anoisesrc=r={RENDER_RATE}:a={floor.amplitude:.8f}:c=white:s={floor.seed}"
        f":d={end_s - begin_s}"
    )
    command = [
        FFMPEG_BINARY,
        *("-hide_banner", "-loglevel", "error", "-y"),
        *("-f", "s16le", "-ar", str(RENDER_RATE), "-ac", "1", "-i", "pipe:0"),
        *("-f", "lavfi", "-i", noise),
        *("-filter_complex", "[0:a][1:a]amix=inputs=2:duration=first:normalize=0[out]"),
        *("-map", "[out]", "-ar", str(sample_rate), "-ac", "1"),
        *("-c:a", "aac", "-b:a", AAC_BITRATE, "-movflags", "+faststart", str(out)),
    ]
    origin = begin_s * RENDER_RATE
    total = (end_s - begin_s) * RENDER_RATE
    _pipe_into(command, lambda sink: _write_mix(sink, pieces, origin, total), out)


def _pipe_into(command: list[str], write: Callable[[IO[bytes]], None], out: Path) -> None:
    """Run ffmpeg `command` with `write` streaming its stdin; raise with its stderr on failure."""
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=errors)
        assert process.stdin is not None
        try:
            write(process.stdin)
            process.stdin.close()
        except BrokenPipeError:
            pass
        returncode = process.wait()
        if returncode != 0:
            errors.seek(0)
            message = errors.read().decode(errors="replace").strip()
            raise RuntimeError(f"ffmpeg failed encoding {out.name}: {message}")


def _write_mix(sink: IO[bytes], pieces: Sequence[_Piece], origin: int, total: int) -> None:
    """Write samples [origin, origin + total) of the timeline: zeros where nothing plays, a
    piece's bytes where one plays, their sum where several do. Only playing pieces are loaded."""
    queue = sorted(pieces, key=lambda piece: piece.start_sample)
    playing: list[tuple[int, int, bytes]] = []  # start, end (relative to origin), PCM
    position = 0
    upcoming = 0
    while position < total:
        playing = [item for item in playing if item[1] > position]
        while upcoming < len(queue) and queue[upcoming].start_sample - origin <= position:
            piece = queue[upcoming]
            upcoming += 1
            start = piece.start_sample - origin
            if start < 0 or start + piece.samples > total:
                raise ValueError(f"a sound at sample {piece.start_sample} is outside the track")
            data = piece.pcm()
            if len(data) != 2 * piece.samples:
                raise ValueError("a sound's PCM does not have the length it was scheduled with")
            if piece.samples:
                playing.append((start, start + piece.samples, data))
        following = queue[upcoming].start_sample - origin if upcoming < len(queue) else total
        stop = min([following, total, *(end for _, end, _ in playing)])
        if not playing:
            _write_silence(sink, stop - position)
        elif len(playing) == 1:
            start, _, data = playing[0]
            sink.write(data[2 * (position - start) : 2 * (stop - start)])
        else:
            chunks = [
                data[2 * (position - start) : 2 * (stop - start)] for start, _, data in playing
            ]
            sink.write(_sum_pcm(chunks))
        position = stop


def _sum_pcm(chunks: Sequence[bytes]) -> bytes:
    """Sample-wise sum of equally long s16le chunks, clipped to the 16-bit range."""
    arrays = [array.array("h", chunk) for chunk in chunks]
    if sys.byteorder != "little":
        for item in arrays:
            item.byteswap()
    mixed = array.array("h", [max(-32768, min(32767, sum(v))) for v in zip(*arrays, strict=True)])
    if sys.byteorder != "little":
        mixed.byteswap()
    return mixed.tobytes()


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
                **(
                    {"noises": [{"kind": n.kind, "start": n.start, "end": n.end} for n in p.noises]}
                    if meeting.realistic
                    else {}
                ),
            }
            for p in meeting.participants
        ],
        "audio_only": _file_to_dict(meeting.audio_only),
        "video": _file_to_dict(meeting.video),
        "timeline": _file_to_dict(meeting.timeline),
        "lines": [
            [line.speaker, line.text, line.start, line.end]
            + ([line.kind] if line.kind != SPEECH else [])
            for line in meeting.lines
        ],
        "cache_key": meeting.cache_key,
    }
    if meeting.realistic:
        document["realistic"] = True
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
                noises=tuple(
                    NoiseEvent(n["kind"], float(n["start"]), float(n["end"]))
                    for n in p.get("noises", [])
                ),
            )
            for p in raw["participants"]
        ),
        audio_only=_file_from_dict(raw["audio_only"], directory),
        video=_file_from_dict(raw["video"], directory),
        timeline=_file_from_dict(raw["timeline"], directory),
        lines=tuple(
            ScriptLine(s, t, float(a), float(b), *kind) for s, t, a, b, *kind in raw["lines"]
        ),
        directory=directory,
        cache_key=raw["cache_key"],
        from_cache=from_cache,
        realistic=bool(raw.get("realistic", False)),
    )
