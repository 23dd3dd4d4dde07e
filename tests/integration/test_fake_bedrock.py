"""The fake Bedrock Runtime (Converse with one forced tool) through a real boto3 client.

Requests follow the contract between our caller and the fake: a system text, one user text
holding the transcript between marker lines, a `record_insights` tool with the insights schema
and a forced tool choice. The fake must answer in the shape botocore parses, count tokens as
ceil(characters / 4), refuse what the service refuses, and go wrong when told to.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import jsonschema
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from sandbox.fake_bedrock import (
    THROTTLING_MESSAGE,
    TOO_LONG_MESSAGE,
    FakeBedrockState,
    create_app,
)
from sandbox.http_server import LoopbackServer
from tests.integration.test_fake_symbl import SwitchableApp

pytestmark = pytest.mark.integration

MODEL = "amazon.nova-lite-v1:0"
PROFILE_ARN = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-lite-v1:0"
SYSTEM = "You extract meeting insights. Answer only by calling record_insights."
_TASK = {
    "type": "object",
    "properties": {
        "text": {"type": "string"},
        "assignee": {"type": ["string", "null"]},
        "due_date": {"type": ["string", "null"], "pattern": r"^\d{4}-\d{2}-\d{2}$"},
    },
    "required": ["text", "assignee", "due_date"],
    "additionalProperties": False,
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "summary": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 6},
        "topics": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "text": {"type": "string"},
                    "score": {"type": "number", "minimum": 0, "maximum": 1},
                },
                "required": ["text", "score"],
                "additionalProperties": False,
            },
        },
        "questions": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "text": {"type": "string"},
                    "asked_by": {"type": ["string", "null"]},
                },
                "required": ["text", "asked_by"],
                "additionalProperties": False,
            },
        },
        "action_items": {"type": "array", "items": _TASK},
        "follow_ups": {"type": "array", "items": _TASK},
    },
    "required": ["summary", "topics", "questions", "action_items", "follow_ups"],
    "additionalProperties": False,
}
TOOL_SPEC = {
    "name": "record_insights",
    "description": "Record the meeting's insights.",
    "inputSchema": {"json": SCHEMA},
}
LINES = (
    "[00:00:05] Ana Ruiz-Soto: Can we ship the release next week?",
    "[00:00:12] Bo Chen: I will update the budget by Friday.",
    "[00:01:03] Zoë Ødegård: The security review found two minor issues in the release.",
    "[00:01:20] Ana Ruiz-Soto: I will send the meeting notes tomorrow.",
)
MEETING_DATE = "2024-05-06"  # a Monday


def user_text(lines: tuple[str, ...] = LINES, part: str = "part 1 of 2") -> str:
    body = "\n".join(lines)
    return (
        f"Meeting: Release planning, held on {MEETING_DATE}. This is {part} of the transcript.\n"
        f"<transcript>\n{body}\n</transcript>\nCall record_insights."
    )


def request(text: str | None = None, max_tokens: int = 2000, **overrides: Any) -> dict[str, Any]:
    """A Converse request as the contract writes it."""
    return {
        "modelId": MODEL,
        "system": [{"text": SYSTEM}],
        "messages": [{"role": "user", "content": [{"text": text or user_text()}]}],
        "inferenceConfig": {"maxTokens": max_tokens, "temperature": 0},
        "toolConfig": {
            "tools": [{"toolSpec": TOOL_SPEC}],
            "toolChoice": {"tool": {"name": "record_insights"}},
        },
    } | overrides


def expected_input_tokens(text: str | None = None) -> int:
    characters = len(SYSTEM) + len(text or user_text()) + len(json.dumps(TOOL_SPEC))
    return math.ceil(characters / 4)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[SwitchableApp, str]]:
    switch = SwitchableApp()
    with LoopbackServer(switch) as running:
        yield switch, running.url


@dataclass
class Fake:
    state: FakeBedrockState
    url: str
    client: Any  # boto3 bedrock-runtime client

    def use(self, state: FakeBedrockState, switch: SwitchableApp) -> FakeBedrockState:
        self.state = state
        switch.app = create_app(state)
        return state

    def refused(self, body: dict[str, Any]) -> ClientError:
        with pytest.raises(ClientError) as raised:
            self.client.converse(**body)
        return raised.value


def _client(url: str | None = None) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}),  # see each first answer
    )


@pytest.fixture
def fake(server: tuple[SwitchableApp, str]) -> Iterator[Fake]:
    switch, url = server
    state = FakeBedrockState()
    switch.app = create_app(state)
    try:
        yield Fake(state, url, _client(url))
    finally:
        switch.app = None


def _tool_input(answer: dict[str, Any]) -> dict[str, Any]:
    [block] = answer["output"]["message"]["content"]
    tool_input: dict[str, Any] = block["toolUse"]["input"]
    return tool_input


# ---------------------------------------------------------------------------------------------
# Answers
# ---------------------------------------------------------------------------------------------


def test_a_forced_tool_call_answers_the_insights_botocore_parses(fake: Fake) -> None:
    answer = fake.client.converse(**request())

    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert answer["stopReason"] == "tool_use"
    message = answer["output"]["message"]
    assert message["role"] == "assistant"
    [block] = message["content"]
    assert block["toolUse"]["name"] == "record_insights" and block["toolUse"]["toolUseId"]
    insights = block["toolUse"]["input"]
    jsonschema.validate(insights, SCHEMA)
    assert insights["questions"] == [
        {"text": "Can we ship the release next week?", "asked_by": "Ana Ruiz-Soto"}
    ]
    assert insights["action_items"] == [
        {
            "text": "I will update the budget by Friday.",
            "assignee": "Bo Chen",
            "due_date": "2024-05-10",
        }
    ]
    assert insights["follow_ups"] == [
        {
            "text": "I will send the meeting notes tomorrow.",
            "assignee": "Ana Ruiz-Soto",
            "due_date": "2024-05-07",
        }
    ]
    assert insights["topics"][0] == {"text": "release", "score": 1.0}
    assert any("Zoë Ødegård" in sentence for sentence in insights["summary"])

    usage = answer["usage"]
    assert usage["inputTokens"] == expected_input_tokens()
    assert usage["outputTokens"] == math.ceil(len(json.dumps(insights)) / 4)
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    assert isinstance(answer["metrics"]["latencyMs"], int)

    [call] = fake.state.calls
    assert (call.model_id, call.max_tokens, call.temperature, call.status) == (MODEL, 2000, 0, 200)
    assert call.tool_choice == {"tool": {"name": "record_insights"}}
    assert (call.transcript_lines, call.unparsed_lines, call.part) == (4, 0, (1, 2))
    assert (call.input_tokens, call.output_tokens, call.outcome) == (
        usage["inputTokens"],
        usage["outputTokens"],
        "tool_use",
    )
    assert fake.state.tokens() == (usage["inputTokens"], usage["outputTokens"])


def test_only_lines_between_the_markers_count_and_bad_lines_are_recorded(fake: Fake) -> None:
    text = "[00:00:01] Mallory: I will delete everything by Friday.\n" + user_text(
        (*LINES[:2], "Bo Chen said something without a time"), part="part 2 of 2"
    )
    insights = _tool_input(fake.client.converse(**request(text)))

    assert [a["assignee"] for a in insights["action_items"]] == ["Bo Chen"]
    [call] = fake.state.calls
    assert (call.transcript_lines, call.unparsed_lines, call.part) == (2, 1, (2, 2))


def test_an_inference_profile_arn_reaches_the_model_it_names(
    server: tuple[SwitchableApp, str], fake: Fake
) -> None:
    fake.use(FakeBedrockState(models=frozenset({PROFILE_ARN})), server[0])
    answer = fake.client.converse(**request(modelId=PROFILE_ARN))
    assert answer["stopReason"] == "tool_use"

    error = fake.refused(request(modelId="us.amazon.nova-pro-v1:0"))
    assert error.response["Error"]["Code"] == "ResourceNotFoundException"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert [c.model_id for c in fake.state.calls] == [PROFILE_ARN, "us.amazon.nova-pro-v1:0"]


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("knob", "code", "status"),
    [
        ("throttle_next", "ThrottlingException", 429),
        ("not_ready_next", "ModelNotReadyException", 429),
        ("unavailable_next", "ServiceUnavailableException", 503),
    ],
)
def test_fault_knobs_surface_as_client_errors_once(
    fake: Fake, knob: str, code: str, status: int
) -> None:
    getattr(fake.state, knob)(1)
    error = fake.refused(request())

    assert error.response["Error"]["Code"] == code
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == status
    if code == "ThrottlingException":
        assert error.response["Error"]["Message"] == THROTTLING_MESSAGE
    assert fake.client.converse(**request())["stopReason"] == "tool_use"
    assert [(c.outcome, c.status) for c in fake.state.calls] == [(code, status), ("tool_use", 200)]


def test_input_beyond_the_context_window_is_a_validation_error(
    server: tuple[SwitchableApp, str], fake: Fake
) -> None:
    tokens = expected_input_tokens()
    fake.use(FakeBedrockState(context_tokens=tokens), server[0])
    assert fake.client.converse(**request())["usage"]["inputTokens"] == tokens

    fake.use(FakeBedrockState(context_tokens=tokens - 1), server[0])
    error = fake.refused(request())
    assert error.response["Error"] == {
        "Code": "ValidationException",
        "Message": TOO_LONG_MESSAGE,
    }
    [call] = fake.state.calls
    assert (call.outcome, call.input_tokens, call.output_tokens) == (
        "ValidationException",
        tokens,
        0,
    )


def test_a_tool_choice_naming_no_defined_tool_is_a_validation_error(fake: Fake) -> None:
    body = request()
    body["toolConfig"]["toolChoice"] = {"tool": {"name": "record_everything"}}
    error = fake.refused(body)
    assert error.response["Error"]["Code"] == "ValidationException"
    assert "record_everything" in error.response["Error"]["Message"]


def test_raw_requests_need_credentials_and_a_positive_max_tokens(fake: Fake) -> None:
    """What botocore would stop client-side, sent by hand."""
    url = f"{fake.url}/model/{MODEL.replace(':', '%3A')}/converse"
    body = request(max_tokens=0)
    body.pop("modelId")
    unsigned = requests.post(url, json=body, timeout=5)
    assert unsigned.status_code == 403
    assert unsigned.headers["x-amzn-ErrorType"].startswith("AccessDeniedException")

    scope = "Credential=testing/20240506/us-east-1/bedrock/aws4_request"
    signed = {"Authorization": f"AWS4-HMAC-SHA256 {scope}, SignedHeaders=host, Signature=00"}
    zero = requests.post(url, json=body, headers=signed, timeout=5)
    assert zero.status_code == 400
    assert zero.headers["x-amzn-ErrorType"].startswith("ValidationException")
    assert "maxTokens" in zero.json()["message"]


# ---------------------------------------------------------------------------------------------
# Answers that go wrong
# ---------------------------------------------------------------------------------------------


def test_an_answer_over_max_tokens_is_truncated_with_a_required_key_missing(fake: Fake) -> None:
    full = _tool_input(fake.client.converse(**request()))
    budget = math.ceil(len(json.dumps(full)) / 4) - 1

    answer = fake.client.converse(**request(max_tokens=budget))
    assert answer["stopReason"] == "max_tokens"
    assert answer["usage"]["outputTokens"] == budget
    cut = _tool_input(answer)
    assert "follow_ups" not in cut
    assert {key: full[key] for key in cut} == cut
    assert math.ceil(len(json.dumps(cut)) / 4) <= budget

    tiny = fake.client.converse(**request(max_tokens=1))
    assert tiny["stopReason"] == "max_tokens"
    [block] = tiny["output"]["message"]["content"]
    assert set(block) == {"text"}


def test_truncate_next_stops_an_answer_that_would_fit(fake: Fake) -> None:
    fake.state.truncate_next(1)
    answer = fake.client.converse(**request(max_tokens=4000))
    assert (answer["stopReason"], answer["usage"]["outputTokens"]) == ("max_tokens", 4000)
    assert "follow_ups" not in _tool_input(answer)
    assert fake.client.converse(**request())["stopReason"] == "tool_use"


def test_malformed_next_breaks_the_schema_under_a_tool_use_stop(fake: Fake) -> None:
    fake.state.malformed_next(1)
    answer = fake.client.converse(**request())

    assert answer["stopReason"] == "tool_use"
    broken = _tool_input(answer)
    assert "summary" not in broken
    assert isinstance(broken["action_items"], str)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)
    jsonschema.validate(_tool_input(fake.client.converse(**request())), SCHEMA)


# ---------------------------------------------------------------------------------------------
# Endpoint routing
# ---------------------------------------------------------------------------------------------


def test_a_client_without_endpoint_url_reaches_the_fake_through_the_env(
    fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", fake.url)
    answer = _client().converse(**request())  # no endpoint_url
    assert answer["stopReason"] == "tool_use"
    assert len(fake.state.calls) == 1
