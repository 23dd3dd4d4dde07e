"""Channel planning and the ffmpeg command lines of the merge (pure: nothing is run)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.merger.ffmpeg_plan import (
    CHANNEL_LAYOUTS,
    ChannelPlan,
    TrackSource,
    build_merge_command,
    build_mono_command,
    build_probe_command,
    build_speech_command,
    plan_channels,
    timeline_seconds,
)

RATE = 16000


def track(key: str, offset_s: float = 0.0, duration_s: float = 60.0, url: str = "") -> TrackSource:
    return TrackSource(key, url or f"/media/{key}.m4a", offset_s, duration_s)


def keys(plan: list[ChannelPlan]) -> list[tuple[str, ...]]:
    return [entry.track_keys for entry in plan]


def filter_graph(argv: list[str]) -> str:
    return argv[argv.index("-filter_complex") + 1]


def chain_from(graph: str, label: str) -> list[str]:
    """The filters (with arguments) a stream passes through, up to the first multi-input one."""
    segments = [
        re.fullmatch(r"((?:\[[^]]+\])+)([^[]+)(\[[^]]+\])", part) for part in graph.split(";")
    ]
    by_input = {m.group(1): (m.group(2), m.group(3)) for m in segments if m}
    chain = []
    while f"[{label}]" in by_input:
        name, output = by_input[f"[{label}]"]
        chain.append(name)
        label = output.strip("[]")
    return chain


def options_before(argv: list[str], source: str) -> list[str]:
    """The options between the previous input (or the program) and `-i source`."""
    end = argv.index(source) - 1
    start = max((i + 2 for i in range(end) if argv[i] == "-i"), default=1)
    return argv[start:end]


# --- plan_channels -------------------------------------------------------------------------


def test_one_channel_per_track_in_order_while_they_fit() -> None:
    tracks = [track(k) for k in "cab"]
    plan = plan_channels(tracks, max_channels=8)
    assert plan == [ChannelPlan(1, ("c",)), ChannelPlan(2, ("a",)), ChannelPlan(3, ("b",))]


def test_exactly_max_channels_tracks_share_nothing() -> None:
    tracks = [track(f"t{i}") for i in range(8)]
    assert keys(plan_channels(tracks, max_channels=8)) == [(f"t{i}",) for i in range(8)]


def test_twelve_tracks_keep_seven_talkers_and_share_the_five_quietest() -> None:
    speech = {f"t{i:02d}": s for i, s in enumerate([5, 80, 3, 60, 70, 1, 90, 2, 40, 50, 4, 30])}
    tracks = [track(key) for key in speech]
    plan = plan_channels(tracks, max_channels=8, speech_seconds=speech)

    assert [entry.channel for entry in plan] == list(range(1, 9))
    # The seven with the most speech, in their original relative order.
    assert keys(plan)[:7] == [("t01",), ("t03",), ("t04",), ("t06",), ("t08",), ("t09",), ("t11",)]
    assert plan[7].track_keys == ("t00", "t02", "t05", "t07", "t10")


def test_durations_stand_in_for_speech_when_it_was_not_measured() -> None:
    tracks = [track("a", duration_s=10), track("b", duration_s=30), track("c", duration_s=20)]
    plan = plan_channels(tracks, max_channels=2)
    assert keys(plan) == [("b",), ("a", "c")]


def test_ties_go_to_the_earlier_track() -> None:
    tracks = [track(k) for k in "abcde"]
    speech = dict.fromkeys("abcde", 10.0)
    assert keys(plan_channels(tracks, max_channels=3, speech_seconds=speech)) == [
        ("a",),
        ("b",),
        ("c", "d", "e"),
    ]


def test_one_channel_holds_everyone_when_the_limit_is_one() -> None:
    tracks = [track(k) for k in "abc"]
    assert keys(plan_channels(tracks, max_channels=1)) == [("a", "b", "c")]


def test_a_dropped_track_does_not_move_kept_speakers() -> None:
    """The caller removes a failed track; the plan of the rest is what it would be without it."""
    speech = {"a": 50.0, "b": 1.0, "c": 40.0, "d": 30.0}
    every = [track(k) for k in "abcd"]
    without_b = [t for t in every if t.key != "b"]
    assert keys(plan_channels(without_b, max_channels=3, speech_seconds=speech)) == [
        ("a",),
        ("c",),
        ("d",),
    ]


@given(
    speech=st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=20),
    max_channels=st.integers(min_value=1, max_value=8),
)
def test_every_track_is_placed_once_and_talkers_outrank_sharers(
    speech: list[int], max_channels: int
) -> None:
    tracks = [track(f"k{i}") for i in range(len(speech))]
    by_key = {t.key: float(s) for t, s in zip(tracks, speech, strict=True)}
    plan = plan_channels(tracks, max_channels=max_channels, speech_seconds=by_key)

    placed = [key for entry in plan for key in entry.track_keys]
    assert sorted(placed) == sorted(by_key)
    assert [entry.channel for entry in plan] == list(range(1, len(plan) + 1))
    assert len(plan) == min(len(tracks), max_channels)
    if len(tracks) > max_channels:
        own = [entry.track_keys[0] for entry in plan[:-1]]
        assert all(by_key[k] >= by_key[s] for k in own for s in plan[-1].track_keys)
        assert own == [t.key for t in tracks if t.key in own]  # original order


def test_speech_must_cover_every_track() -> None:
    tracks = [track(k) for k in "abc"]
    with pytest.raises(ValueError, match="no value for: c"):
        plan_channels(tracks, max_channels=2, speech_seconds={"a": 1.0, "b": 2.0})


@pytest.mark.parametrize("max_channels", [0, 9])
def test_max_channels_must_fit_flac(max_channels: int) -> None:
    with pytest.raises(ValueError, match="max_channels"):
        plan_channels([track("a")], max_channels=max_channels)


def test_duplicate_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate track keys: a"):
        plan_channels([track("a"), track("a", 5.0)], max_channels=2)


def test_negative_offsets_are_refused() -> None:
    with pytest.raises(ValueError, match="offset_s"):
        track("a", offset_s=-0.5)


# --- timeline_seconds ----------------------------------------------------------------------


def test_timeline_is_the_latest_end_not_the_longest_track() -> None:
    tracks = [track("a", 0.0, 100.0), track("b", 30.0, 90.0), track("c", 5.0, 2.0)]
    assert timeline_seconds(tracks) == pytest.approx(120.0)


def test_timeline_needs_tracks() -> None:
    with pytest.raises(ValueError):
        timeline_seconds([])


# --- build_merge_command -------------------------------------------------------------------

TRACKS = [
    track("host", 0.0, 100.0, "https://bucket.s3.amazonaws.com/raw/host.m4a?X-Amz-Signature=abc"),
    track("guest", 12.5, 20.0, "/tmp/guest.m4a"),
    track("late", 30.25, 69.75, "http://127.0.0.1:9000/raw/late.m4a"),
]


def merge_argv(
    tracks: list[TrackSource] = TRACKS,
    plan: list[ChannelPlan] | None = None,
    total_seconds: float | None = None,
) -> list[str]:
    return build_merge_command(
        tracks,
        plan or plan_channels(tracks, max_channels=8),
        sample_rate=RATE,
        output_path="/tmp/out.flac",
        total_seconds=total_seconds,
    )


def test_every_track_is_batched_resampled_downmixed_delayed_and_padded() -> None:
    graph = filter_graph(merge_argv())
    total = 100 * RATE
    head = ["asetnsamples=n=8192:p=0", f"aresample={RATE}", "aformat=channel_layouts=mono"]
    tail = [f"apad=whole_len={total}", f"atrim=end_sample={total}"]
    assert chain_from(graph, "0:a:0") == [*head, *tail]
    # Offsets in samples at the output rate: 12.5 s and 30.25 s; none for the track at 0.
    assert chain_from(graph, "1:a:0") == [*head, "adelay=all=1:delays=200000S", *tail]
    assert chain_from(graph, "2:a:0") == [*head, "adelay=all=1:delays=484000S", *tail]


def test_channels_are_joined_with_an_explicit_map() -> None:
    graph = filter_graph(merge_argv())
    assert "join=channel_layout=3.0:inputs=3:map=0.0-FL|1.0-FR|2.0-FC" in graph
    assert "amix" not in graph


def test_flac_output_options() -> None:
    argv = merge_argv()
    assert argv[0] == "ffmpeg"
    for option, value in (("-f", "flac"), ("-acodec", "flac"), ("-sample_fmt", "s16")):
        assert argv[argv.index(option) + 1] == value
    assert argv[argv.index("-ar") + 1] == str(RATE)
    assert {"-nostdin", "-hide_banner", "-y"} <= set(argv)
    assert argv[argv.index("-loglevel") + 1] == "error"
    assert "/tmp/out.flac" in argv


def test_http_options_only_for_urls() -> None:
    argv = merge_argv()
    for source in (TRACKS[0].url, TRACKS[2].url):
        options = options_before(argv, source)
        for name in ("-reconnect", "-reconnect_streamed", "-reconnect_delay_max", "-rw_timeout"):
            assert name in options, (source, name)
    assert options_before(argv, TRACKS[1].url) == ["-protocol_whitelist", "file"]


def whitelist_of(argv: list[str], source: str) -> str:
    options = options_before(argv, source)
    assert options.count("-protocol_whitelist") == 1, options
    return options[options.index("-protocol_whitelist") + 1]


def test_every_input_opens_only_the_protocols_its_kind_of_source_needs() -> None:
    # Presigned S3 URLs: https over tls and tcp; the local stack's http S3; a local file.
    expected = {
        TRACKS[0].url: "https,tls,tcp",
        TRACKS[1].url: "file",
        TRACKS[2].url: "http,tcp",
    }
    argv = merge_argv()
    assert {url: whitelist_of(argv, url) for url in expected} == expected
    for url, whitelist in expected.items():
        mono = build_mono_command(url, sample_rate=RATE, output_path="/tmp/mono.flac")
        assert whitelist_of(mono, url) == whitelist
        assert whitelist_of(build_speech_command(url), url) == whitelist
        assert whitelist_of(build_probe_command(url), url) == whitelist


def test_shared_channel_sums_its_tracks_without_normalising() -> None:
    plan = [ChannelPlan(1, ("host",)), ChannelPlan(2, ("guest", "late"))]
    graph = filter_graph(merge_argv(plan=plan))
    assert graph.count("amix=duration=longest:inputs=2:normalize=0") == 1
    assert "join=channel_layout=stereo:inputs=2:map=0.0-FL|1.0-FR" in graph


def test_a_single_channel_needs_no_join() -> None:
    graph = filter_graph(merge_argv(tracks=[TRACKS[1]]))
    assert "join" not in graph
    assert "apad=whole_len=520000" in graph  # 12.5 + 20 s


@pytest.mark.parametrize("count", range(1, 9))
def test_every_channel_count_has_a_layout_that_lists_each_channel(count: int) -> None:
    layout, names = CHANNEL_LAYOUTS[count]
    assert len(names) == len(set(names)) == count
    tracks = [track(f"t{i}", i * 1.0, 2.0) for i in range(count)]
    graph = filter_graph(merge_argv(tracks=tracks))
    if count > 1:
        mapping = "|".join(f"{i}.0-{name}" for i, name in enumerate(names))
        assert f"channel_layout={layout}:inputs={count}:map={mapping}" in graph


def test_total_seconds_may_extend_but_never_cut_the_meeting() -> None:
    assert "apad=whole_len=1760000" in filter_graph(merge_argv(total_seconds=110.0))
    with pytest.raises(ValueError, match="cut off"):
        merge_argv(total_seconds=99.0)


def test_a_plan_that_misses_a_track_is_refused() -> None:
    with pytest.raises(ValueError, match="exactly once"):
        merge_argv(plan=[ChannelPlan(1, ("host",)), ChannelPlan(2, ("guest",))])


def test_two_tracks_reading_one_url_are_refused() -> None:
    tracks = [track("a", url="/media/same.m4a"), track("b", 5.0, url="/media/same.m4a")]
    with pytest.raises(ValueError, match="own url"):
        merge_argv(tracks=tracks)


def test_a_plan_with_gaps_in_channels_is_refused() -> None:
    plan = [ChannelPlan(1, ("host",)), ChannelPlan(3, ("guest", "late"))]
    with pytest.raises(ValueError, match=r"1\.\.N"):
        merge_argv(plan=plan)


# --- the other commands --------------------------------------------------------------------


def test_mono_fallback_reads_only_the_first_audio_stream() -> None:
    url = "https://bucket.s3.amazonaws.com/raw/meeting.mp4?X-Amz-Signature=abc"
    argv = build_mono_command(url, sample_rate=RATE, output_path="/tmp/mono.flac")
    assert "-reconnect" in options_before(argv, url)
    assert chain_from(filter_graph(argv), "0:a:0") == [
        "asetnsamples=n=8192:p=0",
        "aresample=16000",
        "aformat=channel_layouts=mono",
    ]
    assert "-vn" in argv
    assert argv[argv.index("-f") + 1] == "flac"


def test_speech_command_logs_silences_and_progress() -> None:
    argv = build_speech_command("/media/a.m4a")
    assert "silencedetect=d=0.3:noise=-35dB" in filter_graph(argv)
    assert argv[argv.index("-progress") + 1] == "pipe:2"
    assert argv[argv.index("-loglevel") + 1] == "info"
    assert argv[argv.index("-f") + 1] == "null"


def test_probe_command_adds_network_options_only_for_urls() -> None:
    assert "-reconnect" not in build_probe_command("/tmp/out.flac")
    argv = build_probe_command("https://example.com/a.m4a?sig=1")
    assert "-reconnect" in argv
    assert "-thread_queue_size" not in argv  # an ffmpeg option, not a protocol option
    assert argv[-2:] == ["-i", "https://example.com/a.m4a?sig=1"]
