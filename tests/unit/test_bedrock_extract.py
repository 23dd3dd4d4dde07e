"""The Bedrock insights extractor against a scripted client: the request it sends (forced tool,
plain schema, transcript between markers), how answers map into the document's models, the one
retry and the salvage, planning within the token budget, splitting on a too-long refusal, how
AWS errors become domain errors, and the token and call totals."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from services.core.errors import ConfigurationError, PermanentError, TransientError
from services.core.insights.document import Question, Task, Topic
from services.core.speech import bedrock
from services.core.speech.bedrock import (
    PLANNING_MARGIN,
    TOOL_NAME,
    ToolInput,
    TranscriptLine,
    estimate_tokens,
    extract_insights,
)

MODEL = "amazon.nova-lite-v1:0"
BIG = {"context_tokens": 300_000, "max_output_tokens": 4_096}

Step = dict[str, Any] | Exception | Callable[[dict[str, Any]], dict[str, Any]]


class ScriptedBedrock:
    """Records every converse call's arguments and plays the scripted answers in order; a
    callable step answers from the request, an exception step is raised."""

    def __init__(self, *script: Step, repeat_last: bool = False) -> None:
        self.script = list(script)
        self.repeat_last = repeat_last
        self.requests: list[dict[str, Any]] = []

    def converse(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(copy.deepcopy(kwargs))
        step = self.script[0] if self.repeat_last and len(self.script) == 1 else self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        if callable(step):
            return step(kwargs)
        return step

    def user_texts(self) -> list[str]:
        return [r["messages"][0]["content"][0]["text"] for r in self.requests]


def answer(
    tool_input: dict[str, Any] | None,
    *,
    stop: str = "tool_use",
    tokens: tuple[int, int] = (100, 20),
) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"text": "Here you are."}]
    if tool_input is not None:
        content.append({"toolUse": {"toolUseId": "t1", "name": TOOL_NAME, "input": tool_input}})
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": {
            "inputTokens": tokens[0],
            "outputTokens": tokens[1],
            "totalTokens": sum(tokens),
        },
        "metrics": {"latencyMs": 5},
    }


def aws_error(code: str, message: str, status: int) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "Converse",
    )


def valid_input(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "summary": ["The team agreed to ship the beta.", "Marketing starts next week."],
        "topics": [{"text": "Beta launch", "score": 0.4}, {"text": "Pricing", "score": 0.9}],
        "questions": [{"text": "Who owns QA?", "asked_by": "Bob Li"}],
        "action_items": [
            {"text": "Prepare the release notes", "assignee": "Ana Díaz", "due_date": "2024-05-10"},
            {"text": "Book the venue", "assignee": None, "due_date": "next Friday"},
        ],
        "follow_ups": [{"text": "Revisit pricing", "assignee": "Bob Li", "due_date": None}],
    }
    body.update(overrides)
    return body


LINES = [
    TranscriptLine("Ana Díaz", 0.0, "Welcome everyone."),
    TranscriptLine("Bob Li", 65.4, "Who owns QA?\nI can ask around."),
    TranscriptLine("Ana Díaz", 3725.0, "Let's ship the beta."),
]


def run(client: ScriptedBedrock, lines: list[TranscriptLine] = LINES, **kwargs: Any) -> Any:
    options: dict[str, Any] = {"model_id": MODEL, "meeting_topic": "Weekly sync", **BIG}
    options.update(kwargs)
    return extract_insights(client, lines, **options)


def transcript_of(user_text: str) -> list[str]:
    """The lines between the contract's marker lines."""
    lines = user_text.split("\n")
    return lines[lines.index("<transcript>") + 1 : lines.index("</transcript>")]


def estimated_input(request: dict[str, Any]) -> int:
    """What the fake Bedrock would count for a request (ceil(chars/4) of each text it gets)."""
    return (
        estimate_tokens(request["system"][0]["text"])
        + estimate_tokens(request["messages"][0]["content"][0]["text"])
        + estimate_tokens(json.dumps(request["toolConfig"]))
    )


def _walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


# ---------------------------------------------------------------------------------------------
# The request
# ---------------------------------------------------------------------------------------------


def test_request_forces_the_tool_sends_a_plain_schema_and_the_transcript_between_markers() -> None:
    client = ScriptedBedrock(answer(valid_input()))
    run(client, meeting_date=date(2024, 5, 3))

    (request,) = client.requests
    assert request["modelId"] == MODEL
    assert request["inferenceConfig"] == {"maxTokens": 4_096, "temperature": 0}
    tool_config = request["toolConfig"]
    assert tool_config["toolChoice"] == {"tool": {"name": TOOL_NAME}}
    (tool,) = tool_config["tools"]
    schema = tool["toolSpec"]["inputSchema"]["json"]
    assert tool["toolSpec"]["name"] == TOOL_NAME
    # Plain: nothing to resolve, every key required, no others allowed, at every level.
    assert not [n for n in _walk(schema) if isinstance(n, dict) and ({"$ref", "$defs"} & set(n))]
    assert schema["required"] == ["summary", "topics", "questions", "action_items", "follow_ups"]
    objects = [n for n in _walk(schema) if isinstance(n, dict) and n.get("type") == "object"]
    assert len(objects) == 5
    assert all(o["additionalProperties"] is False for o in objects)
    assert all(o["required"] == list(o["properties"]) for o in objects)
    assert schema["properties"]["action_items"]["items"]["properties"]["assignee"]["type"] == [
        "string",
        "null",
    ]

    assert "only by calling record_insights" in request["system"][0]["text"]
    user = request["messages"][0]["content"][0]["text"]
    assert "Weekly sync" in user
    assert "Meeting date: 2024-05-03" in user
    assert "part 1 of 1" in user
    # One line per utterance, offset from the meeting's start, newlines inside a text flattened.
    assert transcript_of(user) == [
        "[00:00:00] Ana Díaz: Welcome everyone.",
        "[00:01:05] Bob Li: Who owns QA? I can ask around.",
        "[01:02:05] Ana Díaz: Let's ship the beta.",
    ]


def test_the_sent_schema_and_the_validation_agree() -> None:
    """An answer the schema allows validates; one with an extra key or a wrong type does not."""
    ToolInput.model_validate(valid_input())
    with pytest.raises(ValueError, match="extra_forbidden"):
        ToolInput.model_validate(valid_input(mood="cheerful"))
    with pytest.raises(ValueError, match="float_type"):
        ToolInput.model_validate(valid_input(topics=[{"text": "Pricing", "score": "high"}]))


# ---------------------------------------------------------------------------------------------
# Answers
# ---------------------------------------------------------------------------------------------


def test_a_valid_answer_maps_into_the_documents_models() -> None:
    client = ScriptedBedrock(answer(valid_input(), tokens=(1234, 321)))
    extraction = run(client)

    assert extraction.summary == [
        "The team agreed to ship the beta.",
        "Marketing starts next week.",
    ]
    assert extraction.topics == [
        Topic(text="Pricing", score=0.9),
        Topic(text="Beta launch", score=0.4),
    ]
    assert extraction.questions == [Question(text="Who owns QA?", asked_by="Bob Li")]
    assert extraction.action_items == [
        Task(text="Prepare the release notes", assignee="Ana Díaz", due_date=date(2024, 5, 10)),
        # A due date that is not YYYY-MM-DD loses its date, never the item.
        Task(text="Book the venue", assignee=None, due_date=None),
    ]
    assert extraction.follow_ups == [Task(text="Revisit pricing", assignee="Bob Li")]
    assert extraction.missing == ()
    assert (extraction.calls, extraction.parts) == (1, 1)
    assert (extraction.input_tokens, extraction.output_tokens) == (1234, 321)


def test_a_malformed_answer_is_retried_once_then_its_valid_sections_are_kept() -> None:
    first = valid_input(topics=[{"text": "Pricing", "score": "high"}])
    second = valid_input(action_items="none")
    del second["questions"]
    client = ScriptedBedrock(answer(first), answer(second))

    extraction = run(client)

    assert len(client.requests) == 2
    first_text, retry_text = client.user_texts()
    assert "did not match the record_insights schema" in retry_text
    assert "did not match" not in first_text
    assert transcript_of(retry_text) == transcript_of(first_text)
    # Sections from the last answer that validate are used; the others are reported.
    assert extraction.missing == ("questions", "action_items")
    assert extraction.questions == []
    assert extraction.action_items == []
    assert extraction.topics[0] == Topic(text="Pricing", score=0.9)
    assert extraction.follow_ups == [Task(text="Revisit pricing", assignee="Bob Li")]
    assert len(extraction.summary) == 2
    assert extraction.calls == 2


def test_an_answer_without_the_tool_is_retried_and_a_second_one_leaves_everything_missing() -> None:
    client = ScriptedBedrock(answer(None, stop="end_turn"), answer(None, stop="end_turn"))
    extraction = run(client)
    assert len(client.requests) == 2
    assert extraction.missing == ("summary", "topics", "questions", "action_items", "follow_ups")
    assert (extraction.summary, extraction.topics, extraction.action_items) == ([], [], [])


def test_a_truncated_answer_is_retried_asking_for_brevity() -> None:
    """A part of one line cannot be halved (a longer part is: see the integration tier's
    test_bedrock_against_fake.py): its truncated answer is asked again, briefer."""
    partial = {"summary": ["The team agreed to ship the beta."], "topics": []}
    client = ScriptedBedrock(
        answer(partial, stop="max_tokens", tokens=(500, 4096)),
        answer(valid_input(), tokens=(520, 900)),
    )
    extraction = run(client, LINES[:1])

    first_text, retry_text = client.user_texts()
    assert "cut off at the output limit" in retry_text
    assert "shorter summary" in retry_text and "fewer items" in retry_text
    assert "cut off" not in first_text
    assert extraction.missing == ()
    assert len(extraction.action_items) == 2
    assert (extraction.input_tokens, extraction.output_tokens, extraction.calls) == (1020, 4996, 2)


def test_a_valid_input_with_a_truncation_stop_reason_is_not_accepted_first_time() -> None:
    client = ScriptedBedrock(answer(valid_input(), stop="max_tokens"), answer(valid_input()))
    run(client, LINES[:1])
    assert len(client.requests) == 2


# ---------------------------------------------------------------------------------------------
# Planning and splitting
# ---------------------------------------------------------------------------------------------


def _long_meeting(count: int) -> list[TranscriptLine]:
    speakers = ["Ana Díaz", "Bob Li", "Chen Wei"]
    return [
        TranscriptLine(speakers[i % 3], i * 7.0, f"Line {i:03d} says " + "words and more " * 8)
        for i in range(count)
    ]


def line_number(line: str) -> str:
    match = re.search(r"Line (\d+)", line)
    assert match is not None
    return match[1]


def _answer_per_part(request: dict[str, Any]) -> dict[str, Any]:
    """Summarises a part by its line numbers; every part repeats one topic and one question."""
    numbers = [
        re.search(r"Line (\d+)", line)[1]
        for line in transcript_of(  # type: ignore[index]
            request["messages"][0]["content"][0]["text"]
        )
    ]
    return answer(
        {
            "summary": [f"Lines {numbers[0]} to {numbers[-1]}.", "More.", "Even more."],
            "topics": [
                {
                    "text": "Roadmap" if numbers[0] == "000" else "ROADMAP",
                    "score": 0.2 + len(numbers) / 1000,
                },
                {"text": f"Topic {numbers[0]}", "score": 0.5},
            ],
            "questions": [{"text": "Are we on track?", "asked_by": "Bob Li"}],
            "action_items": [
                {"text": f"Follow line {n}", "assignee": "Chen Wei", "due_date": None}
                for n in numbers[:2]
            ],
            "follow_ups": [],
        },
        tokens=(estimated_input(request), 50),
    )


def test_a_long_transcript_is_sent_in_parts_within_the_budget_and_merged() -> None:
    lines = _long_meeting(200)
    client = ScriptedBedrock(_answer_per_part, repeat_last=True)
    limits = {"context_tokens": 6_000, "max_output_tokens": 1_000}

    extraction = run(client, lines, **limits)

    parts = len(client.requests)
    assert parts >= 3
    budget = (limits["context_tokens"] - limits["max_output_tokens"]) * (1 - PLANNING_MARGIN)
    assert all(estimated_input(r) <= budget for r in client.requests)
    sent = [transcript_of(text) for text in client.user_texts()]
    # Every line exactly once, in order, never cut: consecutive whole lines per part.
    assert [line for part in sent for line in part] == [bedrock._render_line(x) for x in lines]
    assert [f"part {i} of {parts}" in text for i, text in enumerate(client.user_texts(), 1)] == [
        True
    ] * parts
    # Parts are even: the smallest is at least half the largest.
    assert min(map(len, sent)) * 2 >= max(map(len, sent))

    assert (extraction.parts, extraction.calls) == (parts, parts)
    assert extraction.input_tokens == sum(estimated_input(r) for r in client.requests)
    assert extraction.output_tokens == 50 * parts
    # Merged: at most 8 summary lines, in part order, each part's first line kept.
    assert len(extraction.summary) == 8
    firsts = [s for s in extraction.summary if s.startswith("Lines ")]
    assert firsts == [f"Lines {line_number(p[0])} to {line_number(p[-1])}." for p in sent]
    # Topics merged case-insensitively keeping the highest score, highest first, at most 10.
    roadmap = [t for t in extraction.topics if t.text.casefold() == "roadmap"]
    assert len(roadmap) == 1
    assert roadmap[0].score == max(0.2 + len(p) / 1000 for p in sent)
    assert [t.score for t in extraction.topics] == sorted(
        (t.score for t in extraction.topics), reverse=True
    )
    assert len(extraction.topics) == min(10, parts + 1)
    assert extraction.questions == [Question(text="Are we on track?", asked_by="Bob Li")]
    assert len(extraction.action_items) == 2 * parts


def test_a_line_longer_than_a_part_is_truncated_with_an_ellipsis() -> None:
    client = ScriptedBedrock(answer(valid_input()), repeat_last=True)
    huge = TranscriptLine("Ana Díaz", 10.0, "blah " * 20_000)
    run(client, [LINES[0], huge, LINES[2]], context_tokens=6_000, max_output_tokens=1_000)

    sent = [line for text in client.user_texts() for line in transcript_of(text)]
    assert len(sent) == 3
    assert sent[1].startswith("[00:00:10] Ana Díaz: blah") and sent[1].endswith("…")
    assert all(estimated_input(r) <= 5_000 * 0.9 for r in client.requests)


def test_a_part_refused_as_too_long_is_halved_and_sent_again() -> None:
    lines = _long_meeting(10)
    too_long = aws_error("ValidationException", "Input is too long for requested model.", 400)
    client = ScriptedBedrock(too_long, _answer_per_part, _answer_per_part)

    extraction = run(client, lines)

    assert len(client.requests) == 3
    whole, first, second = (transcript_of(t) for t in client.user_texts())
    assert len(whole) == 10 and first + second == whole
    assert len(first) == 5
    assert "part 1 of 2" in client.user_texts()[1] and "part 2 of 2" in client.user_texts()[2]
    assert (extraction.parts, extraction.calls) == (2, 2)
    assert len(extraction.action_items) == 4


def test_halving_is_bounded() -> None:
    too_long = aws_error("ValidationException", "Input is too long for requested model.", 400)
    client = ScriptedBedrock(too_long, repeat_last=True)
    with pytest.raises(PermanentError, match="too long even after 4 halving"):
        run(client, _long_meeting(64))
    # The whole, then the first half of each halving: 32, 16, 8, 4 lines.
    assert [len(transcript_of(t)) for t in client.user_texts()] == [64, 32, 16, 8, 4]


def test_a_context_too_small_for_the_prompt_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="BEDROCK_CONTEXT_TOKENS"):
        run(ScriptedBedrock(), context_tokens=2_000, max_output_tokens=1_000)


def test_an_empty_transcript_calls_nothing() -> None:
    client = ScriptedBedrock()
    extraction = run(client, [TranscriptLine("Ana Díaz", 1.0, "  ")])
    assert client.requests == []
    assert (extraction.parts, extraction.calls, extraction.missing) == (0, 0, ())


@pytest.mark.parametrize(
    ("counts", "quotas"),
    [
        ([3, 2], [3, 2]),
        ([6, 2, 6], [3, 2, 3]),
        ([6, 0, 1, 6], [4, 0, 1, 3]),
        # More parts than lines: one line each from parts spread over the whole meeting.
        ([1] * 12, [1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1]),
    ],
)
def test_summary_lines_are_shared_in_proportion(counts: list[int], quotas: list[int]) -> None:
    assert bedrock._summary_quotas(counts) == quotas
    assert sum(quotas) <= 8


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error"),
    [
        aws_error(
            "ThrottlingException", "Too many requests, please wait before trying again.", 429
        ),
        aws_error("ModelNotReadyException", "not ready", 429),
        aws_error("ServiceUnavailableException", "unavailable", 503),
        aws_error("InternalServerException", "oops", 500),
        aws_error("ModelTimeoutException", "slow", 408),
        ReadTimeoutError(endpoint_url="https://bedrock-runtime.us-east-1.amazonaws.com"),
    ],
    ids=lambda e: (
        type(e).__name__ if not isinstance(e, ClientError) else e.response["Error"]["Code"]
    ),
)
def test_throttling_and_outages_are_transient(error: Exception) -> None:
    client = ScriptedBedrock(answer(valid_input(), tokens=(7, 3)), error)
    with pytest.raises(TransientError):
        run(client, _long_meeting(200), context_tokens=6_000, max_output_tokens=1_000)
    assert len(client.requests) == 2  # the second part's call raised


@pytest.mark.parametrize(
    ("code", "status"), [("AccessDeniedException", 403), ("ResourceNotFoundException", 404)]
)
def test_a_denied_or_unknown_model_is_a_configuration_error_naming_it(
    code: str, status: int
) -> None:
    client = ScriptedBedrock(aws_error(code, "You don't have access to the model.", status))
    with pytest.raises(ConfigurationError, match=re.escape(MODEL)) as raised:
        run(client)
    assert "Model access" in str(raised.value)
    if code == "AccessDeniedException":
        assert "bedrock:InvokeModel" in str(raised.value)


def test_another_validation_error_is_permanent() -> None:
    client = ScriptedBedrock(aws_error("ValidationException", "Malformed input request.", 400))
    with pytest.raises(PermanentError, match="Malformed input request"):
        run(client)
    assert len(client.requests) == 1


def test_a_refused_temperature_is_dropped() -> None:
    refusal = aws_error("ValidationException", "temperature is not supported by this model", 400)
    client = ScriptedBedrock(refusal, answer(valid_input()))
    extraction = run(client)
    assert [r["inferenceConfig"] for r in client.requests] == [
        {"maxTokens": 4_096, "temperature": 0},
        {"maxTokens": 4_096},
    ]
    assert extraction.calls == 1
