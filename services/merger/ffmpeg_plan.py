"""Channel planning and ffmpeg command lines for the merge: pure functions, no I/O.

Zoom records one file per participant, each starting when that person's audio starts. The merge
puts every file on the meeting timeline (delay by its offset, pad to the full meeting length) and
writes one FLAC channel per speaker, because Symbl transcribes a multichannel file per channel.

Every channel is cut to exactly the same number of samples: `join` and `amerge` stop at their
shortest input, so without padding a participant who left early would truncate the whole meeting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ffmpeg

FFMPEG_BINARY = "ffmpeg"
FFPROBE_BINARY = "ffprobe"
FLAC_MAX_CHANNELS = 8

# Layouts whose native channel order is FLAC's own channel order for that count, so ffmpeg's FLAC
# encoder stores them without remixing and channel k of the file is the k-th name listed here.
CHANNEL_LAYOUTS: Mapping[int, tuple[str, tuple[str, ...]]] = {
    1: ("mono", ("FC",)),
    2: ("stereo", ("FL", "FR")),
    3: ("3.0", ("FL", "FR", "FC")),
    4: ("quad", ("FL", "FR", "BL", "BR")),
    5: ("5.0", ("FL", "FR", "FC", "BL", "BR")),
    6: ("5.1", ("FL", "FR", "FC", "LFE", "BL", "BR")),
    7: ("6.1", ("FL", "FR", "FC", "LFE", "BC", "SL", "SR")),
    8: ("7.1", ("FL", "FR", "FC", "LFE", "BL", "BR", "SL", "SR")),
}

# Survive a dropped connection or an S3 hiccup mid-stream instead of failing an hour-long merge;
# rw_timeout turns a stalled socket into an error rather than a hang.
HTTP_RECONNECT_DELAY_MAX_S = 30
HTTP_RW_TIMEOUT_S = 60
# Packets each input's reader thread may queue ahead of the decoder (~30 s of 32 kb/s AAC), so
# network jitter on one input does not stall the others; bounded, so memory stays flat.
HTTP_THREAD_QUEUE_SIZE = 1024

# Samples per frame through the filters (see _mono_audio); no padding of the last frame.
FRAME_SAMPLES = 8192

# Speech measurement: quieter than this for at least this long counts as silence.
SILENCE_NOISE_DB = -35
SILENCE_MIN_SECONDS = 0.3


@dataclass(frozen=True)
class TrackSource:
    """One participant file as ffmpeg will read it, placed on the meeting timeline."""

    key: str  # stable identity of the track (Zoom file id)
    url: str  # what ffmpeg opens: an http(s) URL or a local path
    offset_s: float  # start on the meeting timeline: recording_start - earliest recording_start
    duration_s: float  # recording_end - recording_start

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("a track needs a key")
        if not (math.isfinite(self.offset_s) and self.offset_s >= 0):
            raise ValueError(f"track {self.key}: offset_s must be finite and >= 0")
        if not (math.isfinite(self.duration_s) and self.duration_s >= 0):
            raise ValueError(f"track {self.key}: duration_s must be finite and >= 0")

    @property
    def end_s(self) -> float:
        return self.offset_s + self.duration_s


@dataclass(frozen=True)
class ChannelPlan:
    """Which tracks one output channel carries."""

    channel: int  # 1-based, as Symbl's channelMetadata counts
    track_keys: tuple[str, ...]  # one key normally; several when speakers share the last channel


def plan_channels(
    tracks: Sequence[TrackSource],
    *,
    max_channels: int,
    speech_seconds: Mapping[str, float] | None = None,
) -> list[ChannelPlan]:
    """One channel per track, in the given order, while the tracks fit in `max_channels`.

    Beyond that, the `max_channels - 1` tracks with the most speech keep their own channels (in
    their original relative order) and every other track shares the last channel: the quiet
    speakers lose the least attribution by sharing. Speech comes from `speech_seconds` (seconds per
    key), or from each track's duration when it is not given. Ties go to the earlier track, so the
    plan depends only on the tracks given and their order.
    """
    _check_keys(tracks)
    if not 1 <= max_channels <= FLAC_MAX_CHANNELS:
        raise ValueError(f"max_channels must be between 1 and {FLAC_MAX_CHANNELS}")
    if len(tracks) <= max_channels:
        return [ChannelPlan(index + 1, (track.key,)) for index, track in enumerate(tracks)]

    speech = _speech_by_key(tracks, speech_seconds)
    ranked = sorted(range(len(tracks)), key=lambda index: (-speech[tracks[index].key], index))
    kept = set(ranked[: max_channels - 1])
    plan = [
        ChannelPlan(channel, (tracks[index].key,))
        for channel, index in enumerate(sorted(kept), start=1)
    ]
    shared = tuple(track.key for index, track in enumerate(tracks) if index not in kept)
    plan.append(ChannelPlan(max_channels, shared))
    return plan


def timeline_seconds(tracks: Sequence[TrackSource]) -> float:
    """The meeting length: the latest end of any track, so that nothing is cut off."""
    if not tracks:
        raise ValueError("no tracks")
    return max(track.end_s for track in tracks)


def build_merge_command(
    tracks: Sequence[TrackSource],
    plan: Sequence[ChannelPlan],
    *,
    sample_rate: int,
    output_path: str,
    total_seconds: float | None = None,
) -> list[str]:
    """The ffmpeg argv writing one FLAC channel per `plan` entry, every channel the same length.

    Each track: resample to `sample_rate` and downmix to mono (one resampler does both), delay by
    its offset in samples (sample-exact, unlike milliseconds), pad with silence and trim to the
    total length. Tracks sharing a channel are summed (`amix` without normalisation, so a speaker
    is not made quieter by sharing). `join` then lays the channels out with an explicit map: its
    default mapping matches mono inputs (FC) to the layout's FC channel first, which would move
    track 1 to the third channel of a 3.0 file.
    """
    _check_plan(tracks, plan)
    meeting_s = timeline_seconds(tracks)
    total_s = meeting_s if total_seconds is None else total_seconds
    total_samples = round(total_s * sample_rate)
    if total_samples < round(meeting_s * sample_rate):
        raise ValueError(f"total_seconds {total_s} would cut off the meeting ({meeting_s} s)")

    aligned = {
        track.key: _aligned_track(track, sample_rate=sample_rate, total_samples=total_samples)
        for track in tracks
    }
    channels = [_channel_stream([aligned[key] for key in entry.track_keys]) for entry in plan]
    layout, names = CHANNEL_LAYOUTS[len(plan)]
    if len(channels) == 1:
        merged = channels[0]
    else:
        mapping = "|".join(f"{index}.0-{name}" for index, name in enumerate(names))
        merged = ffmpeg.filter(
            channels, "join", inputs=len(channels), channel_layout=layout, map=mapping
        )
    return _flac_output(merged, output_path=output_path, sample_rate=sample_rate)


def build_mono_command(source_url: str, *, sample_rate: int, output_path: str) -> list[str]:
    """The fallback without participant files: the mixed recording (an M4A, or the audio of an
    MP4) as one mono FLAC, for Symbl to diarize. Only the first audio stream is read."""
    audio = _mono_audio(_input(source_url), sample_rate)
    return _flac_output(audio, output_path=output_path, sample_rate=sample_rate, vn=None)


def build_speech_command(source_url: str) -> list[str]:
    """One decode pass that logs every silence (`silencedetect`) and the decoded length
    (`-progress` on stderr), from which the seconds of speech follow."""
    detected = _input(source_url)["a:0"].filter(
        "silencedetect", noise=f"{SILENCE_NOISE_DB}dB", d=SILENCE_MIN_SECONDS
    )
    output = ffmpeg.output(detected, "-", format="null").global_args(
        "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info", "-progress", "pipe:2"
    )
    argv: list[str] = ffmpeg.compile(output, cmd=FFMPEG_BINARY)
    return argv


def build_decode_command(source_url: str, *, sample_rate: int) -> list[str]:
    """The first audio stream as raw mono s16le PCM on stdout, resampled and downmixed as the
    merge does (`_mono_audio`), for speech detection and the compact layout to read once."""
    audio = _mono_audio(_input(source_url), sample_rate)
    output = ffmpeg.output(
        audio, "pipe:1", format="s16le", acodec="pcm_s16le", ar=sample_rate, vn=None
    ).global_args("-nostdin", "-hide_banner", "-loglevel", "error")
    argv: list[str] = ffmpeg.compile(output, cmd=FFMPEG_BINARY)
    return argv


def build_pcm_to_flac_command(*, sample_rate: int, output_path: str) -> list[str]:
    """Mono s16le PCM from stdin encoded as a mono FLAC file (the compact layout's writer).

    Only stdin may be read: the input is a pipe, so the protocol whitelist is `pipe` alone."""
    source = ffmpeg.input("pipe:0", format="s16le", ar=sample_rate, ac=1, protocol_whitelist="pipe")
    return _flac_output(source["a:0"], output_path=output_path, sample_rate=sample_rate, ac=1)


def build_probe_command(source: str) -> list[str]:
    """ffprobe JSON for the first audio stream and the container."""
    return [
        FFPROBE_BINARY,
        *("-v", "error", "-print_format", "json"),
        *("-select_streams", "a:0"),
        *("-show_entries", "stream=codec_name,channels,sample_rate,duration:format=duration"),
        *_option_args(network_options(source)),
        *("-protocol_whitelist", protocol_whitelist(source)),
        *("-i", source),
    ]


def protocol_whitelist(source: str) -> str:
    """The protocols ffmpeg may open for `source`, references inside it included (an HLS
    playlist, a data reference): a presigned S3 URL needs https over tls and tcp (http and tcp
    on the local stack), a local path only file. Without it ffmpeg's defaults would also let an
    input reach udp, rtp, data and the other web protocols."""
    if not _is_url(source):
        return "file"
    if source.lower().startswith("https://"):
        return "https,tls,tcp"
    return "http,tcp"


def network_options(source: str) -> dict[str, Any]:
    """Protocol options for an http(s) `source` (reconnect, timeouts); none for a local path."""
    if not _is_url(source):
        return {}
    return {
        "reconnect": 1,
        "reconnect_streamed": 1,
        "reconnect_on_network_error": 1,
        "reconnect_on_http_error": "5xx",
        "reconnect_delay_max": HTTP_RECONNECT_DELAY_MAX_S,
        "rw_timeout": HTTP_RW_TIMEOUT_S * 1_000_000,
    }


def _is_url(source: str) -> bool:
    """http(s) sources get the network options; anything else is a local path."""
    return source.lower().startswith(("http://", "https://"))


def _input(source: str) -> Any:
    options = network_options(source)
    if options:
        options["thread_queue_size"] = HTTP_THREAD_QUEUE_SIZE
    return ffmpeg.input(source, protocol_whitelist=protocol_whitelist(source), **options)


def _option_args(options: Mapping[str, Any]) -> list[str]:
    return [arg for name, value in options.items() for arg in (f"-{name}", str(value))]


def _aligned_track(track: TrackSource, *, sample_rate: int, total_samples: int) -> Any:
    stream = _mono_audio(_input(track.url), sample_rate)
    delay_samples = round(track.offset_s * sample_rate)
    if delay_samples > 0:
        stream = stream.filter("adelay", delays=f"{delay_samples}S", all=1)
    return stream.filter("apad", whole_len=total_samples).filter("atrim", end_sample=total_samples)


def _mono_audio(source: Any, sample_rate: int) -> Any:
    """First audio stream, resampled and downmixed to mono.

    The decoder's frames are regrouped into large ones first: AAC decodes 1024 samples at a time,
    and every filter after it costs per frame, so batching cut the merge's CPU time by about a
    fifth in bench/merge.py. `aformat` constrains the preceding `aresample` to a mono layout, so
    one resampler converts rate and channels together, averaging a stereo input's channels
    rather than keeping only the left one.
    """
    return (
        source["a:0"]
        .filter("asetnsamples", n=FRAME_SAMPLES, p=0)
        .filter("aresample", sample_rate)
        .filter("aformat", channel_layouts="mono")
    )


def _channel_stream(streams: list[Any]) -> Any:
    if len(streams) == 1:
        return streams[0]
    return ffmpeg.filter(streams, "amix", inputs=len(streams), normalize=0, duration="longest")


def _flac_output(stream: Any, *, output_path: str, sample_rate: int, **extra: Any) -> list[str]:
    output = ffmpeg.output(
        stream,
        output_path,
        format="flac",
        acodec="flac",
        sample_fmt="s16",
        ar=sample_rate,
        map_metadata=-1,
        **extra,
    ).global_args("-nostdin", "-hide_banner", "-loglevel", "error")
    argv: list[str] = ffmpeg.compile(output, cmd=FFMPEG_BINARY, overwrite_output=True)
    return argv


def _check_keys(tracks: Sequence[TrackSource]) -> None:
    if not tracks:
        raise ValueError("no tracks")
    keys = [track.key for track in tracks]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(f"duplicate track keys: {', '.join(duplicates)}")


def _check_sources(tracks: Sequence[TrackSource]) -> None:
    """ffmpeg-python merges identical nodes, so two tracks reading one URL would share a chain."""
    urls = [track.url for track in tracks]
    if len(set(urls)) != len(urls):
        raise ValueError("every track needs its own url")


def _speech_by_key(
    tracks: Sequence[TrackSource], speech_seconds: Mapping[str, float] | None
) -> dict[str, float]:
    if speech_seconds is None:
        return {track.key: track.duration_s for track in tracks}
    missing = [track.key for track in tracks if track.key not in speech_seconds]
    if missing:
        raise ValueError(f"speech_seconds has no value for: {', '.join(missing)}")
    return {track.key: speech_seconds[track.key] for track in tracks}


def _check_plan(tracks: Sequence[TrackSource], plan: Sequence[ChannelPlan]) -> None:
    """The plan must use channels 1..N and place every track exactly once."""
    _check_keys(tracks)
    _check_sources(tracks)
    if not 1 <= len(plan) <= FLAC_MAX_CHANNELS:
        raise ValueError(f"a plan needs 1 to {FLAC_MAX_CHANNELS} channels, got {len(plan)}")
    if [entry.channel for entry in plan] != list(range(1, len(plan) + 1)):
        raise ValueError("plan channels must be 1..N in order")
    if any(not entry.track_keys for entry in plan):
        raise ValueError("every channel needs at least one track")
    placed = [key for entry in plan for key in entry.track_keys]
    if sorted(placed) != sorted(track.key for track in tracks):
        raise ValueError("the plan must place every track exactly once")
