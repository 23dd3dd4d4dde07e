"""The compact layout's plan (services/merger/compact.py): pure, in samples at 16 kHz."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.core.settings import MergerSettings
from services.core.speech.segment_map import MapSpeaker
from services.merger.compact import (
    CompactPlan,
    CompactTrack,
    LayoutParams,
    Piece,
    plan_compact,
)

RATE = 16000
PARAMS = LayoutParams(pad_before_s=0.15, pad_after_s=0.1, gap_s=0.1, join_pause_s=0.35)
ANA = MapSpeaker(id="u-ana", name="Ana", email="ana@example.com")
BO = MapSpeaker(id="u-bo", name="Bo")
CY = MapSpeaker(id="u-cy", name="Cy")


def track(
    key: str,
    speaker: MapSpeaker,
    runs: list[tuple[float, float]],
    *,
    offset_s: float = 0.0,
    seconds: float = 60.0,
) -> CompactTrack:
    return CompactTrack(key, speaker.id, offset_s, round(seconds * RATE), tuple(runs))


def spans(plan: CompactPlan) -> list[tuple[str, float, float, float]]:
    """(speaker, timeline start, timeline end, output start) per segment."""
    return [
        (s.speaker, s.timeline_start, s.timeline_end, s.output_start)
        for s in plan.segment_map.segments
    ]


def assert_adds_up(plan: CompactPlan) -> None:
    b = plan.segment_map.breakdown
    assert b.speech + b.overlap + b.padding + b.gaps == pytest.approx(
        plan.segment_map.duration_seconds, abs=1e-9
    )


def test_compact_padding_widens_each_run_and_is_clipped_to_the_track() -> None:
    plan = plan_compact(
        [track("a", ANA, [(0.05, 1.0), (5.0, 5.95)], offset_s=2.0, seconds=6.0)], [ANA], PARAMS
    )
    first, second = plan.segment_map.segments
    # 0.05 - 0.15 is before the track's first sample: the padding stops there
    assert (first.timeline_start, first.length) == (pytest.approx(2.0), pytest.approx(1.1))
    # 5.95 + 0.1 is after its last sample
    assert second.timeline_start == pytest.approx(2.0 + 4.85)
    assert second.timeline_end == pytest.approx(2.0 + 6.0)
    assert first.talk_seconds == pytest.approx(0.95)
    assert second.output_start == pytest.approx(first.output_end + 0.1)


def test_compact_runs_of_one_speaker_closer_than_the_join_pause_are_one_stretch() -> None:
    # padded: (0.85, 2.1) and (2.25, 3.1): 0.15 s apart, joined with the pause kept
    joined = plan_compact([track("a", ANA, [(1.0, 2.0), (2.4, 3.0)])], [ANA], PARAMS)
    (segment,) = joined.segment_map.segments
    assert (segment.timeline_start, segment.length) == (pytest.approx(0.85), pytest.approx(2.25))
    assert segment.talk_seconds == pytest.approx(1.6)
    assert joined.segment_map.breakdown.padding == pytest.approx(2.25 - 1.6)
    # padded: (0.85, 2.1) and (2.55, 3.1): 0.45 s apart, two stretches
    apart = plan_compact([track("a", ANA, [(1.0, 2.0), (2.7, 3.0)])], [ANA], PARAMS)
    assert len(apart.segment_map.segments) == 2
    assert apart.segment_map.breakdown.gaps == pytest.approx(0.1)


def test_compact_runs_of_two_speakers_are_never_joined_however_close() -> None:
    plan = plan_compact(
        [track("a", ANA, [(1.0, 2.0)]), track("b", BO, [(2.05, 3.0)])], [ANA, BO], PARAMS
    )
    assert [s[0] for s in spans(plan)] == ["u-ana", "u-bo"]


def test_compact_two_tracks_of_one_speaker_join_and_copy_each_from_its_own_file() -> None:
    # Ana left at 9.95 s and rejoined at 10.0 s: her last and first runs are one stretch.
    plan = plan_compact(
        [
            track("first", ANA, [(8.0, 9.8)], seconds=9.95),
            track("again", ANA, [(0.1, 1.0)], offset_s=10.0, seconds=5.0),
        ],
        [ANA],
        PARAMS,
    )
    (planned,) = plan.segments
    assert planned.timeline == (round(7.85 * RATE), round(11.1 * RATE))
    assert planned.pieces == (
        Piece("first", round(7.85 * RATE), round(2.1 * RATE)),  # to the end of the first file
        Piece(None, 0, round(0.05 * RATE)),  # between the files: silence
        Piece("again", 0, round(1.1 * RATE)),
    )
    assert planned.segment.talk_seconds == pytest.approx(1.8 + 0.9)
    assert len(plan.segment_map.speakers) == 1


def test_compact_overlapping_speech_is_serialised_both_kept_later_copy_is_overlap() -> None:
    plan = plan_compact(
        [track("a", ANA, [(1.0, 3.0)]), track("b", BO, [(2.0, 2.5)])], [ANA, BO], PARAMS
    )
    ana, bo = plan.segment_map.segments
    assert (ana.speaker, bo.speaker) == ("u-ana", "u-bo")
    assert ana.timeline_start == pytest.approx(0.85) and bo.timeline_start == pytest.approx(1.85)
    assert bo.output_start == pytest.approx(ana.output_end + 0.1)  # after Ana's, not dropped
    assert (ana.talk_seconds, bo.talk_seconds) == (pytest.approx(2.0), pytest.approx(0.5))
    breakdown = plan.segment_map.breakdown
    assert breakdown.speech == pytest.approx(2.0)
    assert breakdown.overlap == pytest.approx(0.5)  # Bo's copy, placed second
    assert breakdown.padding == pytest.approx((2.25 - 2.0) + (0.75 - 0.5))
    assert breakdown.gaps == pytest.approx(0.1)
    assert_adds_up(plan)


def test_compact_overlap_counts_each_instant_once() -> None:
    # Bo (2.0-2.5) and Cy (2.2-2.9) talk over Ana (1.0-3.0): Cy's 0.7 s overlap Ana's speech,
    # and 0.3 s of them Bo's too; they are one serialised copy, counted once.
    plan = plan_compact(
        [
            track("a", ANA, [(1.0, 3.0)]),
            track("b", BO, [(2.0, 2.5)]),
            track("c", CY, [(2.2, 2.9)]),
            track("a2", ANA, [(10.0, 11.0)], offset_s=0.0),
        ],
        [ANA, BO, CY],
        PARAMS,
    )
    assert [s.speaker for s in plan.segment_map.segments] == ["u-ana", "u-bo", "u-cy", "u-ana"]
    assert plan.segment_map.breakdown.overlap == pytest.approx(0.5 + 0.7)
    assert plan.segment_map.breakdown.speech == pytest.approx(2.0 + 1.0)
    assert_adds_up(plan)


def test_compact_stretches_starting_together_follow_the_speaker_order() -> None:
    plan = plan_compact(
        [track("b", BO, [(1.0, 2.0)]), track("a", ANA, [(1.0, 1.5)])], [ANA, BO], PARAMS
    )
    assert [s[0] for s in spans(plan)] == ["u-ana", "u-bo"]


def test_compact_segments_start_at_the_padded_run_on_the_meeting_timeline() -> None:
    plan = plan_compact(
        [
            track("a", ANA, [(1.0, 2.0), (20.0, 21.0)], offset_s=3.5),
            track("b", BO, [(0.5, 1.5)], offset_s=0.0),
        ],
        [ANA, BO],
        PARAMS,
    )
    starts = [round(s.to_timeline(s.output_start), 6) for s in plan.segment_map.segments]
    assert starts == [0.35, 4.35, 23.35]
    for planned in plan.segments:
        segment = planned.segment
        assert segment.output_start * RATE == planned.output[0]  # exact samples
        assert segment.timeline_start * RATE == pytest.approx(planned.timeline[0], abs=1e-6)


def test_compact_no_speech_gives_an_empty_plan() -> None:
    plan = plan_compact([track("a", ANA, []), track("b", BO, [])], [ANA, BO], PARAMS)
    assert plan.segments == () and plan.total_samples == 0
    assert plan.segment_map.talk_seconds() == {"u-ana": 0.0, "u-bo": 0.0}


def test_compact_a_track_of_an_unlisted_speaker_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown speakers"):
        plan_compact([track("a", ANA, [(1.0, 2.0)])], [BO], PARAMS)


# --- properties -------------------------------------------------------------------------------

run_lists = st.lists(
    st.tuples(st.floats(0, 30), st.floats(0.01, 4)).map(lambda r: (r[0], r[0] + r[1])),
    max_size=6,
)
tracks_strategy = st.lists(
    st.tuples(st.sampled_from([ANA, BO, CY]), st.floats(0, 20), st.floats(1, 35), run_lists),
    min_size=1,
    max_size=5,
)


@settings(max_examples=200, deadline=None)
@given(tracks_strategy)
def test_compact_plan_properties(raw: list[tuple[MapSpeaker, float, float, list]]) -> None:
    tracks = [
        track(f"t{i}", speaker, sorted(runs), offset_s=offset, seconds=seconds)
        for i, (speaker, offset, seconds, runs) in enumerate(raw)
    ]
    plan = plan_compact(tracks, [ANA, BO, CY], PARAMS)
    segments = plan.segment_map.segments
    # sorted, not overlapping, the gap between neighbours, exact samples
    for before, after in zip(plan.segments, plan.segments[1:], strict=False):
        assert after.output[0] - before.output[1] == plan.gap_samples
    assert plan.total_samples == (plan.segments[-1].output[1] if segments else 0)
    assert_adds_up(plan)
    b = plan.segment_map.breakdown
    assert min(b.speech, b.overlap, b.padding, b.gaps) >= 0
    starts = [(p.timeline[0]) for p in plan.segments]
    assert starts == sorted(starts)
    by_key = {t.key: t for t in tracks}
    for planned in plan.segments:
        length = planned.output[1] - planned.output[0]
        assert sum(piece.samples for piece in planned.pieces) == length
        assert planned.timeline[1] - planned.timeline[0] == length
        for piece in planned.pieces:
            if piece.track is not None:
                assert by_key[piece.track].speaker == planned.segment.speaker
                assert (
                    piece.start >= 0 and piece.start + piece.samples <= by_key[piece.track].samples
                )
        assert planned.segment.talk_seconds <= planned.segment.length + 1e-9
    # every run's speech is inside a segment of its speaker (nothing dropped)
    for t in tracks:
        for start, end in t.runs:
            lo = round(t.offset_s * RATE) + int(start * RATE)
            hi = round(t.offset_s * RATE) + min(t.samples, int(end * RATE))
            if hi <= lo + 1:
                continue
            assert any(
                p.segment.speaker == t.speaker and p.timeline[0] <= lo and hi <= p.timeline[1]
                for p in plan.segments
            ), (t, start, end)


# --- the defaults -----------------------------------------------------------------------------


def default_layout(**changes: float) -> LayoutParams:
    fields = MergerSettings.model_fields
    values = {
        "pad_before_s": fields["compact_pad_before_seconds"].default,
        "pad_after_s": fields["compact_pad_after_seconds"].default,
        "gap_s": fields["compact_gap_seconds"].default,
        "join_pause_s": fields["compact_join_pause_seconds"].default,
    }
    return LayoutParams(**{**values, **changes})


def test_compact_default_gap_is_a_real_silence_between_stretches() -> None:
    params = default_layout()
    assert params.gap_s >= 0.05
    plan = plan_compact(
        [track("a", ANA, [(1.0, 2.0)]), track("b", BO, [(2.0, 3.0)])], [ANA, BO], params
    )
    first, second = plan.segments
    assert second.output[0] - first.output[1] == plan.gap_samples >= round(0.05 * RATE)
    assert plan.segments[1].pieces[0].track == "b"  # the gap is no piece of any track


@pytest.mark.parametrize("pause", [round(0.01 * step, 2) for step in range(0, 80)])
def test_compact_default_join_never_costs_more_than_a_split(pause: float) -> None:
    """Two runs of one speaker `pause` apart: joined (the pause kept) or split (the gap inserted),
    the default makes the file no longer than never joining would."""
    runs = [(1.0, 2.0), (2.0 + pause, 3.0 + pause)]
    params = default_layout()
    default = plan_compact([track("a", ANA, runs)], [ANA], params)
    never = plan_compact([track("a", ANA, runs)], [ANA], default_layout(join_pause_s=0.0))
    assert default.total_samples <= never.total_samples
    assert_adds_up(default)
