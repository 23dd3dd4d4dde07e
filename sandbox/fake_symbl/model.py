"""What the fake's modules share: the conversation model (members, messages, transcripts), the
speech spans they are measured in, stable ids, ISO times, and the JSON error answer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Response, jsonify

Segment = tuple[float, float]

UNINTELLIGIBLE = "[unintelligible]"


@dataclass(frozen=True)
class _Member:
    id: str
    name: str
    email: str | None


@dataclass(frozen=True)
class _Message:
    id: str
    text: str
    member: _Member
    time_offset: float  # seconds from the conversation start
    duration: float
    phrases: tuple[str, ...]  # action phrases, reported when detectPhrases was set


@dataclass(frozen=True)
class _Transcript:
    """A consistent read-only copy of a conversation, for rendering outside the lock."""

    id: str
    name: str
    start: datetime
    duration: float
    messages: tuple[_Message, ...]
    complete: bool

    @property
    def members(self) -> list[_Member]:
        return list(dict.fromkeys(m.member for m in self.messages))

    @property
    def spoken(self) -> list[_Message]:
        return [m for m in self.messages if m.text != UNINTELLIGIBLE]


class _Rejected(Exception):
    """A submission the real service would refuse with 400."""


def _numeric_id(*parts: str) -> str:
    """A stable 16-digit id (Symbl's message and insight ids are numeric strings)."""
    digest = int(hashlib.sha256("|".join(parts).encode()).hexdigest()[:16], 16)
    return str(10**15 + digest % (9 * 10**15))


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _at(transcript: _Transcript, offset: float) -> str:
    return _iso(transcript.start + timedelta(seconds=offset))


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify(message=message), status
