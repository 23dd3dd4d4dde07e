"""A local Amazon Bedrock Runtime (the Converse API with one forced tool) for development and
tests.

Why: real Bedrock is out of reach from the sandbox and moto does not mock `converse` (reference
§12). The AWS provider's insights step has to be proven against something that answers like
the service: restJson1 `POST /model/{modelId}/converse`, the documented errors (status,
`x-amzn-ErrorType`, `{"message"}`), token usage, context window, and the ways a model answer goes
wrong (truncated at maxTokens, a tool input that breaks the schema). boto3 reaches it through
`AWS_ENDPOINT_URL_BEDROCK_RUNTIME` (or `endpoint_url`). Facts: ../shared/reference/aws-speech.md
§8-§10, and the contract between our caller (services/core/speech/bedrock.py) and this fake,
restated here: one user text holding the transcript between marker lines, a forced tool whose
input has summary, topics, questions, action_items and follow_ups.

The model is deterministic rules (the fake Symbl's insights rules, `sandbox.fake_symbl.insights`)
over the transcript lines between the `<transcript>` / `</transcript>` marker lines of the user
text (`[HH:MM:SS] Speaker Name: text`): a commitment is an action item assigned to its speaker
(due date from a date word), follow-up wording makes it a follow-up, a sentence ending in "?" is
a question asked by its speaker, the most frequent content words are topics, and the summary is
each speaker's first line then the action items, at most 6 entries.

Decisions where the contract and reference are silent:
- Tokens: ceil(characters / 4) of everything received as text, summed before rounding: every
  system block's text, every message's text blocks, and each tool's `toolSpec` as
  `json.dumps(toolSpec)` (Python's default separators). Output tokens: ceil(len(json.dumps(tool
  input)) / 4). Input beyond `context_tokens` is a ValidationException; maxTokens is not checked
  against the window (the contract only bounds the input).
- An unknown model (when `models` is given) answers ResourceNotFoundException (404): the
  identifier names no model this account can reach, a permanent configuration error, unlike
  AccessDeniedException, which real Bedrock also sends while a first-use subscription is still
  being set up (§10) and a caller may wait out. `unknown_model_code` switches to
  AccessDeniedException.
- Due dates count from the first `YYYY-MM-DD` in the user text outside the transcript (the
  meeting's date, when the caller gives it), else `meeting_date`, else today (UTC).
- Fault knobs fire in the order throttle, not ready, unavailable, before the request is read.
- Truncation (maxTokens too small, or the `truncate_next` knob): the answer stops at maxTokens
  (`outputTokens` = maxTokens, stopReason "max_tokens"); the tool input loses its last key, then
  trailing items and keys until it fits; if nothing fits, the content is only a text block with
  the start of the JSON. A required key is always missing, so a caller cannot take it for whole.
- Without a tool in the request the answer is the JSON as text, stopReason "end_turn". With
  `toolChoice` `auto` or `any` the first tool is used, as a forced one would be.
- Requests are authorised by a SigV4 header scoped to this region and service `bedrock`, or a
  bearer token (Bedrock API keys); nothing is verified beyond that.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from flask import Flask, Response, request
from flask.typing import ResponseReturnValue

from sandbox.fake_symbl.insights import _questions, _summary, _tasks, _topics
from sandbox.fake_symbl.model import _Member, _Message, _numeric_id, _Transcript
from sandbox.fake_transcribe.app import credential_scope_error
from sandbox.http_server import LoopbackServer

TRANSCRIPT_START = "<transcript>"
TRANSCRIPT_END = "</transcript>"
TOO_LONG_MESSAGE = "Input is too long for requested model."
THROTTLING_MESSAGE = "Too many requests, please wait before trying again."
NOT_READY_MESSAGE = "Model is not ready to serve inference requests. Try your request again later."
UNAVAILABLE_MESSAGE = "Service is temporarily unavailable. Try your request again later."
MAX_SUMMARY_SENTENCES = 6
_DEFAULT_MAX_TOKENS = 5000  # Nova's output limit (§9), used when inferenceConfig has none
_LINE = re.compile(r"\[(\d{2}):([0-5]\d):([0-5]\d)\] (.+?): (.*)")
_PART = re.compile(r"\bpart (\d+) of (\d+)\b", re.IGNORECASE)
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_KEYS = ("summary", "topics", "questions", "action_items", "follow_ups")

ErrorCode = Literal[
    "ThrottlingException",
    "ValidationException",
    "AccessDeniedException",
    "ResourceNotFoundException",
    "ModelNotReadyException",
    "ServiceUnavailableException",
    "InternalServerException",
]
_STATUS: dict[str, int] = {
    "ThrottlingException": 429,
    "ValidationException": 400,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ModelNotReadyException": 429,
    "ServiceUnavailableException": 503,
    "InternalServerException": 500,
}


class ConverseError(Exception):
    """An error answer: its code (x-amzn-ErrorType), HTTP status and message."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status if status is not None else _STATUS.get(code, 400)


@dataclass(frozen=True)
class TranscriptLine:
    """One `[HH:MM:SS] Speaker: text` line between the markers."""

    offset: int  # seconds from the meeting's start
    speaker: str
    text: str


@dataclass(frozen=True)
class ParsedTranscript:
    lines: tuple[TranscriptLine, ...]
    unparsed: int  # non-empty lines between the markers that are not in the line format
    part: tuple[int, int] | None  # "part i of n" in the user text


@dataclass(frozen=True)
class ConverseCall:
    """One Converse request as the fake saw it and what it answered: lets tests see what the
    caller sent (model, maxTokens, tool choice, transcript lines) and what it cost."""

    model_id: str
    max_tokens: int | None
    temperature: float | None
    tool_choice: dict[str, Any] | None
    tool_names: tuple[str, ...]
    input_tokens: int | None  # None: refused before counting
    output_tokens: int
    outcome: str  # the stopReason, or the error code
    status: int
    transcript_lines: int
    unparsed_lines: int
    part: tuple[int, int] | None
    tool_input: dict[str, Any] | None  # what the answer's toolUse carried


@dataclass
class _Knobs:
    throttle: int = 0
    not_ready: int = 0
    unavailable: int = 0
    truncate: int = 0
    malformed: int = 0

    def take(self, name: str) -> bool:
        left = int(getattr(self, name))
        if left <= 0:
            return False
        setattr(self, name, left - 1)
        return True


# ---------------------------------------------------------------------------------------------
# Tokens and the transcript
# ---------------------------------------------------------------------------------------------


def _texts(blocks: object) -> list[str]:
    if not isinstance(blocks, list):
        return []
    return [b["text"] for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str)]


def count_input_tokens(body: dict[str, Any]) -> int:
    """ceil(characters / 4) over the system texts, the messages' texts and the tool specs."""
    characters = sum(len(text) for text in _texts(body.get("system")))
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            characters += sum(len(text) for text in _texts(message.get("content")))
    tool_config = body.get("toolConfig")
    tools = tool_config.get("tools") if isinstance(tool_config, dict) else None
    for tool in tools if isinstance(tools, list) else []:
        if isinstance(tool, dict) and "toolSpec" in tool:
            characters += len(json.dumps(tool["toolSpec"]))
    return math.ceil(characters / 4)


def output_tokens(tool_input: object) -> int:
    return math.ceil(len(json.dumps(tool_input)) / 4)


def parse_transcript(user_text: str) -> ParsedTranscript:
    """The lines between every `<transcript>` / `</transcript>` pair of marker lines."""
    lines: list[TranscriptLine] = []
    unparsed = 0
    inside = False
    for raw in user_text.splitlines():
        marker = raw.strip()
        if marker == TRANSCRIPT_START:
            inside = True
        elif marker == TRANSCRIPT_END:
            inside = False
        elif inside and marker:
            found = _LINE.fullmatch(raw.strip())
            if found is None:
                unparsed += 1
                continue
            hours, minutes, secs, speaker, text = found.groups()
            offset = int(hours) * 3600 + int(minutes) * 60 + int(secs)
            lines.append(TranscriptLine(offset, speaker, text))
    part = _PART.search(user_text)
    return ParsedTranscript(
        tuple(lines), unparsed, (int(part[1]), int(part[2])) if part is not None else None
    )


def _outside_transcript(user_text: str) -> str:
    kept, inside = [], False
    for raw in user_text.splitlines():
        marker = raw.strip()
        if marker in (TRANSCRIPT_START, TRANSCRIPT_END):
            inside = marker == TRANSCRIPT_START
        elif not inside:
            kept.append(raw)
    return "\n".join(kept)


def meeting_day(user_text: str, default: date | None) -> date:
    """The first valid ISO date outside the transcript, else `default`, else today (UTC)."""
    for found in _ISO_DATE.finditer(_outside_transcript(user_text)):
        try:
            return date(int(found[1]), int(found[2]), int(found[3]))
        except ValueError:
            continue
    return default or datetime.now(UTC).date()


# ---------------------------------------------------------------------------------------------
# The "model": the fake Symbl's insight rules over the lines
# ---------------------------------------------------------------------------------------------


def _as_transcript(lines: Sequence[TranscriptLine], day: date) -> _Transcript:
    messages = tuple(
        _Message(
            id=_numeric_id("bedrock-line", str(index), line.speaker, line.text),
            text=line.text,
            member=_Member(id=line.speaker, name=line.speaker, email=None),
            time_offset=float(line.offset),
            duration=0.0,
            phrases=(),
        )
        for index, line in enumerate(lines)
    )
    return _Transcript(
        id="bedrock",
        name="",
        start=datetime(day.year, day.month, day.day, tzinfo=UTC),
        duration=float(lines[-1].offset) if lines else 0.0,
        messages=messages,
        complete=True,
    )


def _task_json(item: dict[str, Any]) -> dict[str, Any]:
    due = item.get("dueBy")
    return {
        "text": item["text"],
        "assignee": item["assignee"].get("name"),
        "due_date": due[:10] if isinstance(due, str) else None,
    }


def extract_insights(lines: Sequence[TranscriptLine], day: date) -> dict[str, Any]:
    """The tool input (every key of the contract's schema) for these lines."""
    transcript = _as_transcript(lines, day)
    actions, follow_ups = _tasks(transcript)
    summary = [item["text"] for item in _summary(transcript)][:MAX_SUMMARY_SENTENCES]
    return {
        "summary": summary or ["Nothing was said in this part of the meeting."],
        "topics": [
            {"text": t["text"], "score": t["score"]} for t in _topics(transcript, sentiment=False)
        ],
        "questions": [
            {"text": q["text"], "asked_by": q["from"].get("name")} for q in _questions(transcript)
        ],
        "action_items": [_task_json(a) for a in actions],
        "follow_ups": [_task_json(f) for f in follow_ups],
    }


def truncate(tool_input: dict[str, Any], max_tokens: int) -> dict[str, Any] | str:
    """What a model stopped at `max_tokens` got out: the input without its last key, then
    without trailing items and keys until it fits; a JSON prefix (text) if nothing fits."""
    cut: dict[str, Any] = {key: list(value) for key, value in tool_input.items()}
    if cut:
        cut.pop(next(reversed(cut)))
    while cut and output_tokens(cut) > max_tokens:
        last = next(reversed(cut))
        if cut[last]:
            cut[last].pop()
        else:
            cut.pop(last)
    if cut:
        return cut
    return json.dumps(tool_input)[: max(0, max_tokens * 4)]


def malformed(tool_input: dict[str, Any]) -> dict[str, Any]:
    """The input breaking the schema: `summary` missing, `action_items` a string."""
    broken = {key: value for key, value in tool_input.items() if key != "summary"}
    broken["action_items"] = "; ".join(a["text"] for a in tool_input.get("action_items", []))
    return broken


# ---------------------------------------------------------------------------------------------
# Request validation
# ---------------------------------------------------------------------------------------------


def _validation(message: str) -> ConverseError:
    return ConverseError("ValidationException", message)


def _check_messages(body: dict[str, Any]) -> str:
    """The text of the last user message; ValidationException for a malformed conversation."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _validation("The messages field is required and must not be empty.")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise _validation(f"messages.{index}.role must be user or assistant.")
        content = message.get("content")
        if not isinstance(content, list) or not content:
            raise _validation(f"messages.{index}.content must be a non-empty list.")
    if messages[0]["role"] != "user":
        raise _validation(
            "A conversation must start with a user message. Try again with a conversation that "
            "starts with a user message."
        )
    system = body.get("system")
    if system is not None and not isinstance(system, list):
        raise _validation("system must be a list of content blocks.")
    users = [m for m in messages if m["role"] == "user"]
    return "\n".join(_texts(users[-1]["content"]))


def _check_inference(body: dict[str, Any]) -> tuple[int, float | None]:
    config = body.get("inferenceConfig") or {}
    if not isinstance(config, dict):
        raise _validation("inferenceConfig must be an object.")
    max_tokens = config.get("maxTokens", _DEFAULT_MAX_TOKENS)
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise _validation("inferenceConfig.maxTokens must be an integer greater than 0.")
    temperature = config.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not 0 <= temperature <= 1
    ):
        raise _validation("inferenceConfig.temperature must be between 0 and 1.")
    return max_tokens, temperature


def _check_tools(body: dict[str, Any]) -> tuple[tuple[str, ...], dict[str, Any] | None, str | None]:
    """(tool names, toolChoice, the tool to answer with); ValidationException when a tool or the
    choice is malformed or the choice names no defined tool."""
    config = body.get("toolConfig")
    if config is None:
        return (), None, None
    tools = config.get("tools") if isinstance(config, dict) else None
    if not isinstance(tools, list) or not tools:
        raise _validation("toolConfig.tools must list at least one tool.")
    names: list[str] = []
    for index, tool in enumerate(tools):
        spec = tool.get("toolSpec") if isinstance(tool, dict) else None
        name = spec.get("name") if isinstance(spec, dict) else None
        if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
            raise _validation(f"toolConfig.tools.{index}.toolSpec.name must match [a-zA-Z0-9_-]+.")
        schema = spec.get("inputSchema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict) or not isinstance(schema.get("json"), dict):
            raise _validation(f"toolConfig.tools.{index}.toolSpec.inputSchema.json is required.")
        if name in names:
            raise _validation(f"The tool name {name} is used more than once.")
        names.append(name)
    choice = config.get("toolChoice")
    if choice is None:
        return tuple(names), None, names[0]
    if not isinstance(choice, dict) or len(choice) != 1:
        raise _validation("toolConfig.toolChoice must be exactly one of auto, any or tool.")
    kind, value = next(iter(choice.items()))
    if kind in ("auto", "any"):
        return tuple(names), choice, names[0]
    chosen = value.get("name") if kind == "tool" and isinstance(value, dict) else None
    if chosen not in names:
        raise _validation(
            f"toolConfig.toolChoice.tool.name {chosen!r} is not one of the tools defined "
            "in toolConfig.tools."
        )
    return tuple(names), choice, chosen


# ---------------------------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------------------------


@dataclass
class _Request:
    """What one call carried, as far as it was read before an answer was decided."""

    model_id: str
    max_tokens: int | None = None
    temperature: float | None = None
    tool_choice: dict[str, Any] | None = None
    tool_names: tuple[str, ...] = ()
    input_tokens: int | None = None
    parsed: ParsedTranscript = field(default_factory=lambda: ParsedTranscript((), 0, None))


class FakeBedrockState:
    """The fake's configuration, knobs and records; thread-safe."""

    def __init__(
        self,
        *,
        context_tokens: int = 300_000,
        models: frozenset[str] | None = None,
        region: str = "us-east-1",
        meeting_date: date | None = None,
    ) -> None:
        self.context_tokens = context_tokens
        """Input tokens beyond this are refused ("Input is too long for requested model.")."""
        self.models = models
        """Model ids (or ARNs) this account can invoke; None: any."""
        self.region = region
        self.meeting_date = meeting_date
        self.unknown_model: Literal["ResourceNotFoundException", "AccessDeniedException"] = (
            "ResourceNotFoundException"
        )
        self._lock = threading.Lock()
        self._knobs = _Knobs()
        self._calls: list[ConverseCall] = []

    # -- knobs -------------------------------------------------------------------------------

    def throttle_next(self, n: int) -> None:
        """Answer the next `n` calls ThrottlingException (429)."""
        self._arm("throttle", n)

    def not_ready_next(self, n: int) -> None:
        """Answer the next `n` calls ModelNotReadyException (429)."""
        self._arm("not_ready", n)

    def unavailable_next(self, n: int) -> None:
        """Answer the next `n` calls ServiceUnavailableException (503)."""
        self._arm("unavailable", n)

    def truncate_next(self, n: int) -> None:
        """Stop the next `n` answers at maxTokens whatever their size (stopReason max_tokens)."""
        self._arm("truncate", n)

    def malformed_next(self, n: int) -> None:
        """Make the next `n` tool inputs break the schema (summary missing, action_items a
        string) with stopReason tool_use."""
        self._arm("malformed", n)

    def unknown_model_code(
        self, code: Literal["ResourceNotFoundException", "AccessDeniedException"]
    ) -> None:
        """How a model outside `models` is refused."""
        if code not in ("ResourceNotFoundException", "AccessDeniedException"):
            raise ValueError(f"unsupported code {code}")
        with self._lock:
            self.unknown_model = code

    def _arm(self, name: str, n: int) -> None:
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        with self._lock:
            setattr(self._knobs, name, getattr(self._knobs, name) + n)

    # -- observation -------------------------------------------------------------------------

    @property
    def calls(self) -> list[ConverseCall]:
        """Every Converse call in arrival order, answered or refused."""
        with self._lock:
            return list(self._calls)

    def tokens(self) -> tuple[int, int]:
        """(input, output) tokens of every answered call: what the account was billed."""
        answered = [c for c in self.calls if c.status == 200]
        return (
            sum(c.input_tokens or 0 for c in answered),
            sum(c.output_tokens for c in answered),
        )

    # -- the API -----------------------------------------------------------------------------

    def converse(self, model_id: str, body: object) -> dict[str, Any]:
        """Answer one Converse call (or raise ConverseError); every call is recorded."""
        started = time.monotonic()
        seen = _Request(model_id)
        try:
            answer, tool_input = self._answer(model_id, body, seen)
        except ConverseError as exc:
            self._record(seen, 0, exc.code, exc.status, None)
            raise
        answer["metrics"] = {"latencyMs": max(1, round((time.monotonic() - started) * 1000))}
        usage = answer["usage"]
        self._record(seen, usage["outputTokens"], answer["stopReason"], 200, tool_input)
        return answer

    def _answer(
        self, model_id: str, body: object, seen: _Request
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        with self._lock:
            if self._knobs.take("throttle"):
                raise ConverseError("ThrottlingException", THROTTLING_MESSAGE)
            if self._knobs.take("not_ready"):
                raise ConverseError("ModelNotReadyException", NOT_READY_MESSAGE)
            if self._knobs.take("unavailable"):
                raise ConverseError("ServiceUnavailableException", UNAVAILABLE_MESSAGE)
            if self.models is not None and model_id not in self.models:
                raise ConverseError(self.unknown_model, _unknown_model_message(self.unknown_model))
        if not isinstance(body, dict):
            raise _validation("The request body must be a JSON object.")
        user_text = _check_messages(body)
        seen.parsed = parse_transcript(user_text)
        seen.max_tokens, seen.temperature = _check_inference(body)
        seen.tool_names, seen.tool_choice, tool = _check_tools(body)
        seen.input_tokens = count_input_tokens(body)
        if seen.input_tokens > self.context_tokens:
            raise _validation(TOO_LONG_MESSAGE)
        insights = extract_insights(seen.parsed.lines, meeting_day(user_text, self.meeting_date))
        with self._lock:
            forced_truncation = self._knobs.take("truncate")
            broken = self._knobs.take("malformed")
        return _response(
            insights, tool, seen.max_tokens, seen.input_tokens, forced_truncation, broken
        )

    def _record(
        self,
        seen: _Request,
        output: int,
        outcome: str,
        status: int,
        tool_input: dict[str, Any] | None,
    ) -> None:
        with self._lock:
            self._calls.append(
                ConverseCall(
                    model_id=seen.model_id,
                    max_tokens=seen.max_tokens,
                    temperature=seen.temperature,
                    tool_choice=seen.tool_choice,
                    tool_names=seen.tool_names,
                    input_tokens=seen.input_tokens,
                    output_tokens=output,
                    outcome=outcome,
                    status=status,
                    transcript_lines=len(seen.parsed.lines),
                    unparsed_lines=seen.parsed.unparsed,
                    part=seen.parsed.part,
                    tool_input=tool_input,
                )
            )


def _unknown_model_message(code: str) -> str:
    if code == "AccessDeniedException":
        return "You don't have access to the model with the specified model ID."
    return "The provided model identifier is invalid or the model cannot be found."


def _response(
    insights: dict[str, Any],
    tool: str | None,
    max_tokens: int,
    input_tokens: int,
    forced_truncation: bool,
    broken: bool,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The Converse answer and the tool input it carries (None: text only)."""
    full: dict[str, Any] = malformed(insights) if broken else insights
    tool_input: dict[str, Any] | None = None
    if not forced_truncation and output_tokens(full) <= max_tokens:
        spent = output_tokens(full)
        stop = "tool_use" if tool is not None else "end_turn"
        tool_input = full if tool is not None else None
        text = json.dumps(full)
    else:
        spent, stop = max_tokens, "max_tokens"
        cut = truncate(insights, max_tokens) if tool is not None else json.dumps(insights)
        tool_input = cut if isinstance(cut, dict) else None
        text = cut[: max_tokens * 4] if isinstance(cut, str) else ""
    if tool is not None and tool_input is not None:
        tool_use = {"toolUseId": f"tooluse_{uuid.uuid4().hex[:22]}", "name": tool}
        content: list[dict[str, Any]] = [{"toolUse": tool_use | {"input": tool_input}}]
    else:
        content = [{"text": text}]
    answer = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": {
            "inputTokens": input_tokens,
            "outputTokens": spent,
            "totalTokens": input_tokens + spent,
        },
    }
    return answer, tool_input


# ---------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------


def _error(error: ConverseError) -> Response:
    response = Response(
        json.dumps({"message": error.message}), status=error.status, mimetype="application/json"
    )
    response.headers["x-amzn-ErrorType"] = f"{error.code}:http://internal.amazon.com/coral/"
    response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
    return response


def _authorised(state: FakeBedrockState) -> ConverseError | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer ") and header[7:].strip():
        return None
    refused = credential_scope_error(header, state.region, "bedrock")
    if refused is None:
        return None
    return ConverseError("AccessDeniedException", refused.message, 403)


def create_app(state: FakeBedrockState) -> Flask:
    """The Flask app serving `state` (the model id may hold "/" and ":", URL-encoded)."""
    app = Flask(__name__, static_folder=None)

    @app.post("/model/<path:model_id>/converse", endpoint="converse")
    def converse(model_id: str) -> ResponseReturnValue:
        refused = _authorised(state)
        if refused is not None:
            return _error(refused)
        try:
            body = json.loads(request.get_data() or b"{}")
        except ValueError:
            return _error(_validation("The request body is not valid JSON."))
        try:
            answer = state.converse(model_id, body)
        except ConverseError as exc:
            return _error(exc)
        response = Response(json.dumps(answer), mimetype="application/json")
        response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
        return response

    @app.route("/<path:other>", methods=["GET", "POST", "PUT", "DELETE"], endpoint="other")
    def other(other: str) -> ResponseReturnValue:
        return _error(
            ConverseError(
                "UnknownOperationException",
                f"The fake Bedrock serves Converse only, not /{other}.",
                404,
            )
        )

    return app


def serve(state: FakeBedrockState) -> LoopbackServer:
    """Serve `state` on a free loopback port; the server is already started, call `.stop()`."""
    return LoopbackServer(create_app(state)).start()
