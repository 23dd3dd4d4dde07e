"""The merge with real ffmpeg: speech lands on its speaker's channel at its meeting time.

Inputs are AAC M4A files like Zoom's participant audio (real espeak-ng speech at known places in
each file), read both from local paths and over HTTP with Range support, as from S3. Where speech
is is measured the same way on inputs and output (`silencedetect`), so the expected time of a
phrase in the merged file is its time in its own file plus the track's offset.
"""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask, Response, send_from_directory

from sandbox.http_server import LoopbackServer
from services.core.errors import PermanentError, TransientError
from services.merger.ffmpeg_plan import TrackSource
from services.merger.mixdown import (
    MixdownInputError,
    MixdownTransientError,
    measure_speech_seconds,
    merge_tracks,
    mono_mixdown,
    probe,
    redact,
)

pytestmark = pytest.mark.integration

RATE = 16000
TOLERANCE_S = 0.05
TIMEOUT_S = 60.0
SECRET = "X-Amz-Signature=0123456789abcdef"

PHRASES = {
    "hello": "Good morning everyone, thanks for joining.",
    "question": "Can we move the demo to Thursday?",
    "agree": "Sounds good to me.",
    "yes": "Yes.",
}

Interval = tuple[float, float]


@dataclass(frozen=True)
class Track:
    """A generated participant file and where it sits on the meeting timeline."""

    key: str
    path: Path
    offset_s: float
    duration_s: float

    def source(self, url: str | None = None) -> TrackSource:
        return TrackSource(self.key, url or str(self.path), self.offset_s, self.duration_s)


# --- measuring -----------------------------------------------------------------------------


def speech_intervals(path: Path | str, channel: int | None = None) -> list[Interval]:
    """Non-silent spans (seconds) of a file, or of one 0-based channel of it."""
    pan = f"pan=mono|c0=c{channel}," if channel is not None else ""
    stderr = subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-i", str(path)),
            *("-af", f"{pan}silencedetect=noise=-35dB:d=0.3", "-f", "null", "-"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    length = probe(path).duration_s
    edges = [float(value) for value in re.findall(r"silence_(?:start|end): (-?[0-9.]+)", stderr)]
    if len(edges) % 2:  # silence reaching the end is closed at uninit in ffmpeg 5; older: open
        edges.append(length)
    spans: list[Interval] = []
    cursor = 0.0
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        if start - cursor > 0.001:
            spans.append((cursor, start))
        cursor = end
    if length - cursor > 0.001:
        spans.append((cursor, length))
    return spans


def shifted(spans: Sequence[Interval], offset_s: float) -> list[Interval]:
    return [(start + offset_s, end + offset_s) for start, end in spans]


def assert_spans_match(actual: Sequence[Interval], expected: Sequence[Interval]) -> None:
    assert len(actual) == len(expected), (actual, expected)
    for (a_start, a_end), (e_start, e_end) in zip(actual, expected, strict=True):
        assert a_start == pytest.approx(e_start, abs=TOLERANCE_S), (actual, expected)
        assert a_end == pytest.approx(e_end, abs=TOLERANCE_S), (actual, expected)


def overlaps(a: Interval, b: Interval) -> bool:
    return a[0] < b[1] and b[0] < a[1]


# --- making inputs -------------------------------------------------------------------------


def ffmpeg(*args: str) -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
        check=True,
        capture_output=True,
    )


def encode_track(
    path: Path,
    *,
    duration_s: float,
    speech: Sequence[tuple[float, Path]],
    rate: int = 32000,
    right_channel_only: bool = False,
    with_video: bool = False,
) -> Path:
    """Silence of `duration_s` with each clip starting at its time, as AAC (M4A or MP4)."""
    inputs = ["-f", "lavfi", "-t", f"{duration_s}", "-i", f"anullsrc=r={rate}:cl=mono"]
    chains = []
    for index, (at_s, clip) in enumerate(speech, start=1):
        inputs += ["-i", str(clip)]
        chains.append(f"[{index}:a]aresample={rate},adelay={round(at_s * rate)}S[c{index}]")
    labels = "".join(f"[c{i}]" for i in range(1, len(speech) + 1))
    graph = ";".join(
        [*chains, f"[0:a]{labels}amix=inputs={len(speech) + 1}:normalize=0:duration=first[mix]"]
    )
    if right_channel_only:
        graph += ";[mix]pan=stereo|c1=c0[out]"
    else:
        graph += ";[mix]anull[out]"
    video = []
    if with_video:
        inputs += ["-f", "lavfi", "-i", f"testsrc=size=160x120:rate=10:duration={duration_s}"]
        video = ["-map", f"{len(speech) + 1}:v", "-c:v", "mpeg4"]
    ffmpeg(
        *inputs,
        *("-filter_complex", graph, "-map", "[out]", *video),
        *("-c:a", "aac", "-b:a", "48k", "-t", f"{duration_s}", str(path)),
    )
    return path


@dataclass(frozen=True)
class Media:
    root: Path
    meeting: tuple[Track, ...]  # ana, bo, cleo: cleo's file is short and inside the meeting
    stereo: Track  # speech on the right channel only
    tones: tuple[Track, ...]  # eight short overlapping files, one burst each, 0.5 s apart
    crowd: tuple[Track, ...]  # ten files: quiet ones say "Yes.", the others a whole sentence
    quiet_keys: tuple[str, ...]
    mixed_m4a: Path
    mixed_mp4: Path
    html: Path


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    root = tmp_path_factory.mktemp("mixdown-media")
    clips = {}
    for name, text in PHRASES.items():
        clips[name] = root / f"{name}.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(clips[name]), text], check=True)

    # Timeline: ana 0.5-2.9 and 9.3-9.7, cleo 3.65-4.7, bo 5.3-6.95 and 12.2-12.6; bo ends last.
    # Every phrase has at least 0.4 s of silence around it in its own file, so that silencedetect
    # (d=0.3) finds the same edges in the input as in the merged channel.
    meeting = (
        Track("ana", root / "ana.m4a", 0.0, 12.0),
        Track("bo", root / "bo.m4a", 2.5, 10.5),
        Track("cleo", root / "cleo.m4a", 3.25, 2.0),
    )
    speech = {
        "ana": [(0.5, clips["hello"]), (9.3, clips["yes"])],
        "bo": [(2.8, clips["question"]), (9.7, clips["yes"])],
        "cleo": [(0.4, clips["agree"])],
    }
    for track in meeting:
        encode_track(track.path, duration_s=track.duration_s, speech=speech[track.key])

    stereo = Track("stereo", root / "stereo.m4a", 1.5, 4.0)
    encode_track(
        stereo.path,
        duration_s=stereo.duration_s,
        speech=[(1.0, clips["question"])],
        rate=48000,
        right_channel_only=True,
    )

    tone = root / "tone.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=660:duration=0.3:sample_rate=32000", str(tone))
    tones = tuple(Track(f"tone{i}", root / f"tone{i}.m4a", 0.5 * i, 1.1) for i in range(8))
    for track in tones:
        encode_track(track.path, duration_s=track.duration_s, speech=[(0.4, tone)])

    quiet = {1, 4, 8}
    crowd = tuple(Track(f"p{i}", root / f"p{i}.m4a", 0.9 * i, 3.3) for i in range(10))
    for index, track in enumerate(crowd):
        clip = clips["yes"] if index in quiet else clips["hello"]
        encode_track(track.path, duration_s=track.duration_s, speech=[(0.4, clip)])

    mixed_m4a = encode_track(
        root / "mixed.m4a",
        duration_s=6.0,
        speech=[(0.5, clips["hello"]), (3.5, clips["agree"])],
        right_channel_only=True,
    )
    mixed_mp4 = encode_track(
        root / "mixed.mp4", duration_s=5.0, speech=[(1.0, clips["question"])], with_video=True
    )
    html = root / "error.m4a"
    html.write_bytes(b"<!DOCTYPE html><html><body><h1>Sign in to Zoom</h1></body></html>\n" * 20)
    return Media(
        root=root,
        meeting=meeting,
        stereo=stereo,
        tones=tones,
        crowd=crowd,
        quiet_keys=tuple(crowd[i].key for i in sorted(quiet)),
        mixed_m4a=mixed_m4a,
        mixed_mp4=mixed_mp4,
        html=html,
    )


STALL_S = 10.0


@pytest.fixture(scope="session")
def server(media: Media) -> Iterator[LoopbackServer]:
    """S3 stand-in: files with Range support, a missing file, and a body that never comes."""
    app = Flask("media")

    @app.get("/media/<path:name>")
    def serve(name: str) -> Response:
        return send_from_directory(media.root, name, conditional=True)

    @app.get("/stall/<path:name>")
    def stall(name: str) -> Response:
        def body() -> Iterator[bytes]:
            time.sleep(STALL_S)
            yield b""

        return Response(body(), mimetype="audio/mp4", headers={"Content-Length": "100000"})

    with LoopbackServer(app) as running:
        yield running


@pytest.fixture
def url_of(server: LoopbackServer) -> Callable[[Path], str]:
    """A presigned-looking URL for a generated file (the query string must never leak)."""
    return lambda path: f"{server.url}/media/{path.name}?{SECRET}"


# --- the meeting ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["http", "local"])
def test_each_speaker_is_on_their_own_channel_at_their_meeting_time(
    media: Media, url_of: Callable[[Path], str], tmp_path: Path, transport: str
) -> None:
    sources = [
        track.source(url_of(track.path) if transport == "http" else None) for track in media.meeting
    ]
    output = tmp_path / "merged.flac"

    outcome = merge_tracks(
        sources, max_channels=8, sample_rate=RATE, output_path=output, timeout_s=TIMEOUT_S
    )

    assert outcome.channels == 3
    assert [entry.track_keys for entry in outcome.plan] == [("ana",), ("bo",), ("cleo",)]
    assert outcome.duration_s == pytest.approx(13.0, abs=TOLERANCE_S)  # bo's end, not ana's
    assert outcome.output_bytes == output.stat().st_size
    assert outcome.elapsed_s > 0
    result = probe(output)
    assert (result.codec, result.channels, result.sample_rate) == ("flac", 3, RATE)
    assert result.duration_s == pytest.approx(13.0, abs=TOLERANCE_S)

    by_channel = [speech_intervals(output, channel) for channel in range(3)]
    for channel, track in enumerate(media.meeting):
        expected = shifted(speech_intervals(track.path), track.offset_s)
        assert_spans_match(by_channel[channel], expected)
        for other, spans in enumerate(by_channel):
            if other != channel:
                assert not any(overlaps(a, b) for a in spans for b in expected), (channel, other)


def test_naive_amerge_would_have_cut_the_meeting_at_the_short_track(
    media: Media, tmp_path: Path
) -> None:
    """The regression the padding prevents: without it the meeting ends when cleo leaves."""
    output = tmp_path / "naive.flac"
    inputs = [arg for track in media.meeting for arg in ("-i", str(track.path))]
    delays = ";".join(
        f"[{i}:a]adelay={round(track.offset_s * 1000)}:all=1[d{i}]"
        for i, track in enumerate(media.meeting)
    )
    ffmpeg(
        *inputs,
        *("-filter_complex", f"{delays};[d0][d1][d2]amerge=inputs=3[out]", "-map", "[out]"),
        *("-c:a", "flac", str(output)),
    )
    assert probe(output).duration_s == pytest.approx(5.25, abs=TOLERANCE_S)  # cleo's end


@pytest.mark.parametrize("count", range(1, 9))
def test_channel_k_carries_track_k_for_every_channel_count(
    media: Media, tmp_path: Path, count: int
) -> None:
    tracks = media.tones[:count]
    output = tmp_path / "tones.flac"

    outcome = merge_tracks(
        [track.source() for track in tracks],
        max_channels=8,
        sample_rate=RATE,
        output_path=output,
        timeout_s=TIMEOUT_S,
    )

    assert outcome.channels == probe(output).channels == count
    assert outcome.duration_s == pytest.approx(0.5 * (count - 1) + 1.1, abs=TOLERANCE_S)
    for channel, track in enumerate(tracks):
        expected = shifted(speech_intervals(track.path), track.offset_s)
        assert_spans_match(speech_intervals(output, channel), expected)


def test_ten_speakers_in_eight_channels_put_the_quiet_ones_together(
    media: Media, url_of: Callable[[Path], str], tmp_path: Path
) -> None:
    output = tmp_path / "crowd.flac"

    outcome = merge_tracks(
        [track.source(url_of(track.path)) for track in media.crowd],
        max_channels=8,
        sample_rate=RATE,
        output_path=output,
        timeout_s=TIMEOUT_S,
    )

    assert outcome.channels == probe(output).channels == 8
    talkers = [track for track in media.crowd if track.key not in media.quiet_keys]
    assert [entry.track_keys for entry in outcome.plan[:7]] == [(t.key,) for t in talkers]
    assert outcome.plan[7].track_keys == media.quiet_keys
    for channel, track in enumerate(talkers):
        expected = shifted(speech_intervals(track.path), track.offset_s)
        assert_spans_match(speech_intervals(output, channel), expected)
    quiet = [track for track in media.crowd if track.key in media.quiet_keys]
    shared = [span for t in quiet for span in shifted(speech_intervals(t.path), t.offset_s)]
    assert_spans_match(speech_intervals(output, 7), shared)


def test_a_stereo_input_is_downmixed_not_cut_to_its_left_channel(
    media: Media, tmp_path: Path
) -> None:
    output = tmp_path / "stereo.flac"
    cleo = media.meeting[2]
    sources = [TrackSource(cleo.key, str(cleo.path), 0.0, cleo.duration_s), media.stereo.source()]

    merge_tracks(sources, max_channels=8, sample_rate=RATE, output_path=output, timeout_s=TIMEOUT_S)

    right = speech_intervals(media.stereo.path, channel=1)
    assert right and not speech_intervals(media.stereo.path, channel=0)
    assert_spans_match(speech_intervals(output, 1), shifted(right, media.stereo.offset_s))


# --- failures ------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["http", "local"])
def test_html_instead_of_audio_is_a_permanent_error_without_the_signature(
    media: Media, url_of: Callable[[Path], str], tmp_path: Path, transport: str
) -> None:
    bad = media.html
    url = url_of(bad) if transport == "http" else str(bad)
    sources = [media.meeting[0].source(), TrackSource("bad", url, 1.0, 5.0)]
    output = tmp_path / "merged.flac"

    with pytest.raises(MixdownInputError) as caught:
        merge_tracks(
            sources, max_channels=8, sample_rate=RATE, output_path=output, timeout_s=TIMEOUT_S
        )

    assert isinstance(caught.value, PermanentError)
    message = str(caught.value)
    assert "Invalid data found when processing input" in message
    assert "error.m4a" in message  # which input, without its signature
    assert SECRET not in message
    assert not output.exists()


def test_a_missing_file_is_a_permanent_error(server: LoopbackServer, tmp_path: Path) -> None:
    url = f"{server.url}/media/nowhere.m4a?{SECRET}"
    with pytest.raises(MixdownInputError, match="404") as caught:
        mono_mixdown(url, sample_rate=RATE, output_path=tmp_path / "o.flac", timeout_s=TIMEOUT_S)
    assert SECRET not in str(caught.value)


def test_a_missing_local_file_is_a_permanent_error(tmp_path: Path) -> None:
    with pytest.raises(MixdownInputError, match="No such file or directory"):
        mono_mixdown(
            str(tmp_path / "gone.m4a"),
            sample_rate=RATE,
            output_path=tmp_path / "o.flac",
            timeout_s=TIMEOUT_S,
        )


def test_redact_keeps_the_path_and_drops_the_signature() -> None:
    line = (
        "[https @ 0x1] https://b.s3.amazonaws.com/raw/a%2Fb.m4a?X-Amz-Credential=AK&"
        "X-Amz-Signature=ff: Server returned 403 Forbidden (access denied)"
    )
    assert redact(line) == (
        "[https @ 0x1] https://b.s3.amazonaws.com/raw/a%2Fb.m4a?…: "
        "Server returned 403 Forbidden (access denied)"
    )


def test_a_stalled_download_times_out_as_a_transient_error(
    server: LoopbackServer, tmp_path: Path
) -> None:
    url = f"{server.url}/stall/slow.m4a?{SECRET}"
    started = time.monotonic()
    with pytest.raises(MixdownTransientError, match="did not finish within 2 s") as caught:
        mono_mixdown(url, sample_rate=RATE, output_path=tmp_path / "o.flac", timeout_s=2.0)
    assert isinstance(caught.value, TransientError)
    assert time.monotonic() - started < STALL_S


# --- mono fallback and speech measurement --------------------------------------------------


def test_mono_fallback_from_a_stereo_m4a(media: Media, tmp_path: Path) -> None:
    output = tmp_path / "mono.flac"

    outcome = mono_mixdown(
        str(media.mixed_m4a), sample_rate=RATE, output_path=output, timeout_s=TIMEOUT_S
    )

    assert outcome.plan == ()
    assert (outcome.channels, outcome.sample_rate) == (1, RATE)
    assert outcome.duration_s == pytest.approx(6.0, abs=TOLERANCE_S)
    assert probe(output).codec == "flac"
    assert_spans_match(speech_intervals(output), speech_intervals(media.mixed_m4a, channel=1))


def test_mono_fallback_from_an_mp4_with_video_over_http(
    media: Media, url_of: Callable[[Path], str], tmp_path: Path
) -> None:
    output = tmp_path / "mono.flac"

    outcome = mono_mixdown(
        url_of(media.mixed_mp4), sample_rate=RATE, output_path=output, timeout_s=TIMEOUT_S
    )

    streams = subprocess.run(
        [
            *("ffprobe", "-v", "error", "-of", "csv=p=0"),
            *("-show_entries", "stream=codec_type", str(output)),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert streams == ["audio"]
    assert outcome.channels == 1
    assert outcome.duration_s == pytest.approx(5.0, abs=TOLERANCE_S)
    assert_spans_match(speech_intervals(output), speech_intervals(media.mixed_mp4))


def test_speech_seconds_is_the_length_of_the_non_silent_spans(
    media: Media, url_of: Callable[[Path], str]
) -> None:
    ana = media.meeting[0]
    expected = sum(end - start for start, end in speech_intervals(ana.path))

    measured = measure_speech_seconds(url_of(ana.path), timeout_s=TIMEOUT_S)

    assert measured == pytest.approx(expected, abs=TOLERANCE_S)
    assert 2.0 < measured < 4.0


# --- what an input may reach -----------------------------------------------------------------


class ConnectionCounter:
    """A TCP listener on loopback that counts the connections made to it and closes them."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.05)
        self.port = int(self._socket.getsockname()[1])
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()


def test_a_reference_inside_an_input_to_another_protocol_is_refused(tmp_path: Path) -> None:
    """An input that is really an HLS playlist pointing elsewhere (here over https, where ffmpeg's
    own defaults would connect) cannot make ffmpeg open anything but the input's protocol."""
    counter = ConnectionCounter()
    playlist = (
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n"
        f"https://127.0.0.1:{counter.port}/segment.ts\n#EXT-X-ENDLIST\n"
    )
    app = Flask("playlist")

    @app.get("/media/<path:name>")
    def serve(name: str) -> Response:
        return Response(playlist, mimetype="audio/mp4")

    output = tmp_path / "o.flac"
    try:
        with LoopbackServer(app) as server, pytest.raises(MixdownInputError) as caught:
            mono_mixdown(
                f"{server.url}/media/crafted.m4a?{SECRET}",
                sample_rate=RATE,
                output_path=output,
                timeout_s=TIMEOUT_S,
            )
    finally:
        counter.close()
    assert counter.accepted == 0
    assert "not on whitelist" in str(caught.value)
    assert not output.exists()
