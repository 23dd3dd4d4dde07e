"""The Speaker Events API (`PUT /v1/conversations/{id}/speakers`, speaker-events reference §1),
and attribution: which user said each message once the events apply.

The body is the one Symbl's own client sends: `{"speakerEvents": [{"type": "started_speaking" |
"stopped_speaking", "user": {"id", "name", "email"}, "offset": {"seconds", "nanos"}}, ...]}`.
The answer is the documented 200 message; the events apply later (`speaker_events_seconds`), so a
client has to read the messages (or members) again until the speakers are there.

Decisions where the reference is silent:
- 404 for an unknown conversation comes before any check of the body; then a malformed body is
  400 with a message: `speakerEvents` must be a non-empty array; each event's `type` one of the
  two; `user.id` a non-empty string, `user.name` and `user.email` strings when present; `offset`
  an object with non-negative integers `seconds` and `nanos` (both required; `nanos` may be 1e9
  or more, as the documentation's own examples send it). Other fields are ignored.
- A conversation whose job has not completed yet accepts events; they apply to its messages as
  they arrive.
- Offsets are seconds on the conversation's clock (for one file: the submitted file's).
- Each user's events, sorted by offset (a stop before a start at the same offset), pair into
  spans: a start opens a span (a second start while open is ignored), a stop closes it (a stop
  with nothing open is ignored), a start without a stop runs to the end. A user's name and email
  are those of the user's first event in the body; a user without a name is named by its id.
- Each message goes to the user whose spans overlap the message's words most (a message without
  word times: its whole extent). A message spanning two users' spans goes to the larger overlap;
  on a tie, to the user who started speaking first. A message no span overlaps keeps the speaker
  the recogniser gave it (none, for a mono file).
- A later PUT replaces the earlier events entirely: attribution starts again from the messages as
  recognised. PUTs apply in arrival order; one superseded before its delay elapsed never applies.
- Members are the users that own messages, with their name and email; a member's id is the
  fake's own (stable per conversation and user id), not the `user.id` sent.
"""

from __future__ import annotations

import bisect
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, g, jsonify, request
from flask.typing import ResponseReturnValue

from sandbox.fake_symbl.model import Segment, _error, _Member, _Message
from sandbox.intervals import union

if TYPE_CHECKING:
    from sandbox.fake_symbl.state import FakeSymblState

STARTED = "started_speaking"
STOPPED = "stopped_speaking"
SPEAKERS_MESSAGE = (
    "Speaker events associated for conversationId: {conversation_id} successfully! The update"
    " should be reflected in all messages and insights along with this conversation"
)
_NANOS = 1_000_000_000


@dataclass(frozen=True)
class SpeakerEventsPut:
    """A `PUT .../speakers` as it arrived, whatever came of it (401s and fault knobs too)."""

    conversation_id: str
    body: Any  # the JSON body as sent; None when it was not JSON
    at: float  # time.monotonic() on arrival
    status: int  # the answer
    ignored: bool = False  # answered 200 but never applied (the `ignore_speaker_events` knob)


@dataclass(frozen=True)
class _User:
    id: str
    name: str | None
    email: str | None


@dataclass(frozen=True)
class _Event:
    type: str
    user: _User
    offset: float  # seconds


@dataclass(frozen=True)
class _Span:
    """A stretch one user was speaking, seconds on the conversation's clock."""

    user: _User
    start: float
    end: float  # math.inf: started and never stopped


class _Malformed(Exception):
    """A body the API refuses with 400."""


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _parse_event(index: int, raw: object) -> tuple[str, dict[str, Any], float]:
    where = f"speakerEvents[{index}]"
    if not isinstance(raw, dict):
        raise _Malformed(f"{where} must be an object.")
    kind = raw.get("type")
    if kind not in (STARTED, STOPPED):
        raise _Malformed(f"{where}.type must be {STARTED} or {STOPPED}.")
    user = raw.get("user")
    if not isinstance(user, dict):
        raise _Malformed(f"{where}.user must be an object.")
    user_id = user.get("id")
    if not isinstance(user_id, str) or not user_id.strip():
        raise _Malformed(f"{where}.user.id must be a non-empty string.")
    for key in ("name", "email"):
        if key in user and not isinstance(user[key], str):
            raise _Malformed(f"{where}.user.{key} must be a string.")
    offset = raw.get("offset")
    if not isinstance(offset, dict):
        raise _Malformed(f"{where}.offset must be an object with seconds and nanos.")
    seconds, nanos = offset.get("seconds"), offset.get("nanos")
    if not _is_count(seconds) or not _is_count(nanos):
        raise _Malformed(f"{where}.offset.seconds and .nanos must be non-negative integers.")
    assert isinstance(seconds, int) and isinstance(nanos, int)  # for the type checker
    return kind, user, seconds + nanos / _NANOS


def parse_speaker_events(body: object) -> list[_Event]:
    """The events of a `PUT .../speakers` body; raises _Malformed with the 400 message."""
    if not isinstance(body, dict):
        raise _Malformed("Request body must be a JSON object.")
    raw_events = body.get("speakerEvents")
    if not isinstance(raw_events, list) or not raw_events:
        raise _Malformed("speakerEvents must be a non-empty array.")
    parsed = [_parse_event(index, raw) for index, raw in enumerate(raw_events)]
    users: dict[str, _User] = {}
    for _, user, _ in parsed:
        users.setdefault(user["id"], _User(user["id"], user.get("name"), user.get("email")))
    return [_Event(kind, users[user["id"]], offset) for kind, user, offset in parsed]


def speaker_spans(events: Iterable[_Event]) -> list[_Span]:
    """Each user's started/stopped events paired into spans, sorted by start."""
    ordered = sorted(events, key=lambda e: (e.offset, e.type == STARTED))
    open_at: dict[_User, float] = {}
    spans: list[_Span] = []
    for event in ordered:
        if event.type == STARTED:
            open_at.setdefault(event.user, event.offset)
        elif event.user in open_at:
            spans.append(_Span(event.user, open_at.pop(event.user), event.offset))
    spans.extend(_Span(user, start, float("inf")) for user, start in open_at.items())
    return sorted(spans, key=lambda s: (s.start, s.end))


def _member_of(conversation_id: str, user: _User) -> _Member:
    member_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{conversation_id}|user|{user.id}"))
    return _Member(member_id, user.name or user.id, user.email, user_id=user.id)


class _Timeline:
    """One user's spans, disjoint and sorted, for quick overlap sums."""

    def __init__(self, spans: Iterable[Segment]) -> None:
        self.spans = union(spans)
        self.starts = [start for start, _ in self.spans]

    def overlap(self, pieces: Iterable[Segment]) -> float:
        seconds = 0.0
        for start, end in pieces:
            index = max(0, bisect.bisect_right(self.starts, start) - 1)
            while index < len(self.spans) and self.spans[index][0] < end:
                span_start, span_end = self.spans[index]
                seconds += max(0.0, min(end, span_end) - max(start, span_start))
                index += 1
        return seconds


def attribute(
    conversation_id: str, messages: Sequence[_Message], spans: Sequence[_Span]
) -> list[_Message]:
    """`messages` (as recognised) with each one's speaker taken from `spans`."""
    by_user: dict[_User, list[Segment]] = {}
    for span in spans:  # sorted by start: users in the order they first spoke
        by_user.setdefault(span.user, []).append((span.start, span.end))
    timelines = {user: _Timeline(user_spans) for user, user_spans in by_user.items()}
    members = {user: _member_of(conversation_id, user) for user in by_user}
    attributed = []
    for message in messages:
        best: _User | None = None
        best_overlap = 0.0
        pieces = message.spans
        for user, timeline in timelines.items():
            overlap = timeline.overlap(pieces)
            if overlap > best_overlap:
                best, best_overlap = user, overlap
        attributed.append(message if best is None else replace(message, member=members[best]))
    return attributed


def add_routes(app: Flask, state: FakeSymblState) -> None:
    """`PUT /v1/conversations/{conversationId}/speakers`, every call recorded."""

    @app.put("/v1/conversations/<cid>/speakers", endpoint="speakers")
    def speakers(cid: str) -> ResponseReturnValue:
        if not state._has_conversation(cid):
            return _error(404, f"Conversation {cid} not found.")
        try:
            events = parse_speaker_events(request.get_json(silent=True))
        except _Malformed as exc:
            return _error(400, str(exc))
        g.speakers_ignored = state._put_speaker_events(cid, events)
        return jsonify(message=SPEAKERS_MESSAGE.format(conversation_id=cid))

    @app.before_request
    def arrival() -> None:
        if request.endpoint == "speakers":
            g.speakers_at = time.monotonic()

    @app.after_request
    def record(response: Response) -> Response:
        if request.endpoint == "speakers":
            state._record_speakers_put(
                SpeakerEventsPut(
                    conversation_id=(request.view_args or {}).get("cid", ""),
                    body=request.get_json(silent=True),
                    at=g.get("speakers_at", time.monotonic()),
                    status=response.status_code,
                    ignored=g.get("speakers_ignored", False),
                )
            )
        return response
