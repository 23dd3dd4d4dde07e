"""The product's Bedrock extraction against the fake Bedrock Runtime over loopback: a transcript
longer than the model's context is split and merged, a truncated answer twice leaves the notes
partial (never an error), and throttling surfaces as a transient error for the queue to retry."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from sandbox.fake_bedrock import FakeBedrockState, serve
from services.core.errors import TransientError
from services.core.speech.bedrock import TranscriptLine, extract_insights

MODEL = "amazon.nova-lite-v1:0"
SPEAKERS = ("Ana Ruiz-Soto", "Bo Chen", "Zoë Ødegård")
SAID = (
    "We will finish the security fixes before Friday.",
    "How many users tried the beta so far?",
    "Marketing wants the release notes one day earlier.",
    "I'll send the pricing proposal to the board tomorrow.",
    "The migration of the billing service is almost done.",
)


def transcript(lines: int) -> list[TranscriptLine]:
    return [
        TranscriptLine(SPEAKERS[i % 3], 7.5 * i, f"{SAID[i % len(SAID)]} (item {i})")
        for i in range(lines)
    ]


@pytest.fixture
def fake() -> Iterator[tuple[FakeBedrockState, Any]]:
    state = FakeBedrockState(context_tokens=5_000)
    server = serve(state)
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}),
    )
    try:
        yield state, client
    finally:
        server.stop()


def extract(client: Any, lines: list[TranscriptLine]) -> Any:
    return extract_insights(
        client,
        lines,
        model_id=MODEL,
        max_output_tokens=2_000,
        context_tokens=5_000,
        meeting_topic="Quarterly planning",
    )


def test_a_transcript_longer_than_the_context_is_split_and_merged(
    fake: tuple[FakeBedrockState, Any],
) -> None:
    state, client = fake
    lines = transcript(300)
    extraction = extract(client, lines)
    calls = state.calls
    assert extraction.parts == len(calls) >= 3
    assert all(c.status == 200 and (c.input_tokens or 0) <= 5_000 for c in calls)
    # Every line went to the model exactly once, in one part or another.
    assert sum(c.transcript_lines for c in calls) == len(lines)
    assert extraction.missing == ()
    assert extraction.action_items and extraction.questions and extraction.summary
    assert len(extraction.summary) <= 8
    assert {t.assignee for t in extraction.action_items} <= set(SPEAKERS)
    assert extraction.input_tokens == sum(c.input_tokens or 0 for c in calls)


def test_an_answer_cut_at_max_tokens_is_asked_again_in_halves(
    fake: tuple[FakeBedrockState, Any],
) -> None:
    state, client = fake
    state.truncate_next(1)
    lines = transcript(8)
    extraction = extract(client, lines)
    assert [c.outcome for c in state.calls] == ["max_tokens", "tool_use", "tool_use"]
    assert [c.transcript_lines for c in state.calls] == [8, 4, 4]
    assert extraction.missing == () and extraction.parts == 2


def test_a_line_whose_answer_is_cut_twice_leaves_sections_missing_not_an_error(
    fake: tuple[FakeBedrockState, Any],
) -> None:
    state, client = fake
    state.truncate_next(2)
    extraction = extract(client, transcript(1))  # one line: nothing left to halve
    assert [c.outcome for c in state.calls] == ["max_tokens", "max_tokens"]
    assert extraction.missing  # listed, so the email says what is missing
    assert extraction.calls == 2


def test_throttling_is_a_transient_error(fake: tuple[FakeBedrockState, Any]) -> None:
    state, client = fake
    state.throttle_next(1)
    with pytest.raises(TransientError):
        extract(client, transcript(8))
    assert [c.outcome for c in state.calls] == ["ThrottlingException"]
    assert extract(client, transcript(8)).missing == ()  # the queue's retry succeeds
