"""The cost bench's arithmetic and verdicts (bench/cost.py): what each design bills for a meeting,
per meeting hour and against the seed design, and which ratios are judged."""

from __future__ import annotations

import math

import pytest

from bench import cost
from bench._targets import report
from sandbox.registry import ScriptLine


def usage(
    *,
    speakers: int = 4,
    meeting_s: float = 3600.0,
    multichannel_s: float = 3600.0,
    compact_s: float = 1800.4,
    input_tokens: int = 1_000_000,
    output_tokens: int = 100_000,
) -> cost.MeetingUsage:
    return cost.MeetingUsage(
        speakers=speakers,
        minutes=60,
        meeting_s=meeting_s,
        multichannel_s=multichannel_s,
        multichannel_channels=speakers,
        compact_s=compact_s,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        bedrock_calls=1,
    )


def by_design(rows: list[cost.DesignCost]) -> dict[str, cost.DesignCost]:
    return {row.design: row for row in rows}


def test_each_design_bills_as_its_provider_does() -> None:
    rows = cost.costs(usage(), cost.Prices())
    assert [row.design for row in rows] == list(cost.DESIGNS)
    found = by_design(rows)

    seed = found[cost.SEED]  # Symbl: duration x channels
    assert seed.billed_audio_min == pytest.approx(240.0)
    assert seed.per_meeting == pytest.approx(240 * 0.027)
    assert (seed.input_tokens, seed.output_tokens, seed.vs_seed) == (0, 0, 1.0)

    symbl = found[cost.SYMBL_COMPACT]  # the compact file, once, no tokens
    assert symbl.billed_audio_min == pytest.approx(1800.4 / 60)
    assert symbl.per_meeting == pytest.approx(1800.4 / 60 * 0.027)
    assert (symbl.input_tokens, symbl.output_tokens) == (0, 0)

    aws = found[cost.AWS_COMPACT]  # whole seconds of Transcribe, plus the Bedrock tokens
    assert aws.billed_audio_min == pytest.approx(1801 / 60)
    assert aws.per_meeting == pytest.approx(1801 / 60 * 0.024 + 0.06 + 0.1 * 0.24)
    assert (aws.input_tokens, aws.output_tokens) == (1_000_000, 100_000)
    assert aws.vs_seed == pytest.approx(aws.per_meeting / seed.per_meeting)
    # A 30-minute file is far above the (UNCONFIRMED) 15 s minimum.
    assert found[cost.AWS_COMPACT_MINIMUM].per_meeting == pytest.approx(aws.per_meeting)


def test_the_transcribe_minimum_applies_to_a_short_file_only_in_its_row() -> None:
    found = by_design(cost.costs(usage(compact_s=10.2), cost.Prices()))
    assert found[cost.AWS_COMPACT].billed_audio_min == pytest.approx(11 / 60)
    assert found[cost.AWS_COMPACT_MINIMUM].billed_audio_min == pytest.approx(15 / 60)


def test_cost_per_hour_is_per_hour_of_the_meeting_span() -> None:
    found = by_design(cost.costs(usage(meeting_s=1800.0, multichannel_s=1800.0), cost.Prices()))
    for row in found.values():
        assert row.per_hour == pytest.approx(2 * row.per_meeting)
    assert found[cost.SEED].per_hour == pytest.approx(120 * 0.027 * 2)


def test_prices_come_from_the_command_line_when_given() -> None:
    assert cost.prices_from(cost.parse_args([])) == cost.Prices(0.027, 0.024, 0.06, 0.24)
    prices = cost.prices_from(
        cost.parse_args(
            [
                "--symbl-per-min",
                "0.054",
                "--transcribe-per-min",
                "0.012",
                "--bedrock-input-per-m",
                "1",
                "--bedrock-output-per-m",
                "2",
            ]
        )
    )
    assert prices == cost.Prices(0.054, 0.012, 1.0, 2.0)
    found = by_design(cost.costs(usage(), prices))
    assert found[cost.SEED].per_meeting == pytest.approx(240 * 0.054)
    assert found[cost.AWS_COMPACT].per_meeting == pytest.approx(1801 / 60 * 0.012 + 1 + 0.2)


def test_a_seed_that_costs_nothing_makes_every_ratio_infinite() -> None:
    found = by_design(cost.costs(usage(), cost.Prices(symbl_per_min=0.0)))
    assert math.isinf(found[cost.AWS_COMPACT].vs_seed)


def test_the_four_speaker_ratios_are_judged_against_one_third() -> None:
    cheap = cost.costs(usage(compact_s=1800.0), cost.Prices())  # about 1/8 of the seed
    assert all(t.met and t.judged for t in cost.targets(cheap))
    assert report(cost.targets(cheap), write=lambda line: None) == 0
    # A compact file 1.5 x the meeting costs more than 1/3 of 4 channels.
    dear = cost.costs(usage(compact_s=5400.0), cost.Prices())
    found = {t.claim: t for t in cost.targets(dear)}
    claim = "4 spk x 60 min: Symbl compact <= 1/3 of the seed per meeting hour"
    assert found[claim].judged and not found[claim].met
    assert report(list(found.values()), write=lambda line: None) == 1


def test_eight_speaker_rows_are_shown_but_never_fail_the_run() -> None:
    rows = cost.costs(usage(), cost.Prices()) + cost.costs(
        usage(speakers=8, multichannel_s=100.0, compact_s=5400.0), cost.Prices()
    )
    eight = [t for t in cost.targets(rows) if t.claim.startswith("8 spk")]
    assert len(eight) == 3 and not any(t.judged or t.met for t in eight)
    assert report(cost.targets(rows), write=lambda line: None) == 0


def test_a_run_without_a_four_speaker_meeting_fails() -> None:
    rows = cost.costs(usage(speakers=8), cost.Prices())
    assert report(cost.targets(rows), write=lambda line: None) == 1


def test_the_transcript_is_every_scripted_line() -> None:
    lines = [
        ScriptLine(speaker="Ada Lovelace", text="Shall we start?", start=1.5, end=2.5),
        ScriptLine(speaker="Alan Turing", text="yeah", start=2.0, end=2.3, kind="backchannel"),
    ]
    transcript = cost.transcript_of(lines)
    assert [(t.speaker, t.start_seconds, t.text) for t in transcript] == [
        ("Ada Lovelace", 1.5, "Shall we start?"),
        ("Alan Turing", 2.0, "yeah"),
    ]
