"""What the fake's modules share: the conversation model (members, messages, their words,
transcripts), the speech spans they are measured in, stable ids, ISO times, and the JSON error
answer."""

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
    user_id: str | None = None  # the `user.id` of the speaker events that named this member


@dataclass(frozen=True)
class _Word:
    """A word as recognised: seconds from the conversation start."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class _Message:
    id: str
    text: str
    member: _Member | None  # None: the recogniser could not tell who spoke (mono, no events)
    time_offset: float  # seconds from the conversation start
    duration: float
    phrases: tuple[str, ...]  # action phrases, reported when detectPhrases was set
    words: tuple[_Word, ...] | None = None  # heard words; None: spread over the message's time
    # Measuring only, never rendered nor used to attribute: the scripted line that was heard.
    template_key: str | None = None
    true_speaker: str | None = None

    @property
    def spans(self) -> list[Segment]:
        """The times the message's words occupy (the whole message when words are unknown)."""
        if self.words:
            return [(w.start, w.end) for w in self.words]
        return [(self.time_offset, self.time_offset + self.duration)]


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
        """The members that own messages, in order of first message (unattributed ones aside)."""
        return list(dict.fromkeys(m.member for m in self.messages if m.member is not None))

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
