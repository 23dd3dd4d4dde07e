"""Sandbox-only readouts, not part of Symbl's API: what the account was billed, and the truth
about a conversation recognised by content (who really said each word heard, and who it is
attributed to now). The demo, the e2e tier and the benchmarks read them; the pipeline never does.

Decisions where the reference is silent:
- A job bills its file's probed duration times its channel count (reference §6: 120 s x 3
  channels = 360 s), once it completes; a job that fails bills nothing.
- The readouts answer without a token and are never touched by the fault knobs: an instrument,
  not the service under test. Times are seconds on the conversation's clock (for one file: the
  submitted file's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

from sandbox.fake_symbl.model import _error, _Message

if TYPE_CHECKING:
    from sandbox.fake_symbl.state import FakeSymblState

SANDBOX_ENDPOINTS: frozenset[str] = frozenset({"sandbox_billing", "sandbox_truth"})


@dataclass(frozen=True)
class Billing:
    """What one conversation's completed jobs were billed."""

    conversation_id: str
    name: str
    jobs: int  # completed jobs
    audio_seconds: float  # their files' durations
    billed_seconds: float  # duration x channels, summed


@dataclass(frozen=True)
class HeardLine:
    """A scripted line the recogniser found in the file (possibly with no word heard)."""

    template_key: str
    true_speaker: str
    start: float
    end: float
    words_heard: int


@dataclass(frozen=True)
class TruthWord:
    """A word heard, who really said it, and who its message is attributed to now."""

    text: str
    start: float
    end: float
    template_key: str
    true_speaker: str
    attributed_name: str | None  # None: unattributed
    attributed_email: str | None
    attributed_user_id: str | None  # the speaker events' `user.id`, when they named it

    @property
    def correct(self) -> bool:
        return self.attributed_name == self.true_speaker


@dataclass(frozen=True)
class ConversationTruth:
    conversation_id: str
    name: str
    words: tuple[TruthWord, ...]
    heard: tuple[HeardLine, ...]

    @property
    def template_keys(self) -> list[str]:
        """The keys of the templates found, sorted, each once."""
        return sorted({line.template_key for line in self.heard})


def truth_words(messages: list[_Message]) -> tuple[TruthWord, ...]:
    """Every word of the messages recognised by content, in message order."""
    words = []
    for message in messages:
        if message.words is None or message.template_key is None:
            continue
        member = message.member
        for word in message.words:
            words.append(
                TruthWord(
                    text=word.text,
                    start=word.start,
                    end=word.end,
                    template_key=message.template_key,
                    true_speaker=message.true_speaker or "",
                    attributed_name=member.name if member is not None else None,
                    attributed_email=member.email if member is not None else None,
                    attributed_user_id=member.user_id if member is not None else None,
                )
            )
    return tuple(words)


def _billing_json(billing: Billing) -> dict[str, Any]:
    return {
        "conversationId": billing.conversation_id,
        "name": billing.name,
        "jobs": billing.jobs,
        "audioSeconds": round(billing.audio_seconds, 3),
        "billedSeconds": round(billing.billed_seconds, 3),
    }


def _truth_json(truth: ConversationTruth) -> dict[str, Any]:
    return {
        "conversationId": truth.conversation_id,
        "name": truth.name,
        "templates": truth.template_keys,
        "heard": [
            {
                "templateKey": line.template_key,
                "trueSpeaker": line.true_speaker,
                "start": line.start,
                "end": line.end,
                "wordsHeard": line.words_heard,
            }
            for line in truth.heard
        ],
        "words": [
            {
                "text": word.text,
                "start": word.start,
                "end": word.end,
                "templateKey": word.template_key,
                "trueSpeaker": word.true_speaker,
                "attributedSpeaker": word.attributed_name,
                "attributedEmail": word.attributed_email,
                "attributedUserId": word.attributed_user_id,
            }
            for word in truth.words
        ],
    }


def add_routes(app: Flask, state: FakeSymblState) -> None:
    """`GET /_sandbox/billing` and `GET /_sandbox/conversations/{id}/truth`."""

    @app.get("/_sandbox/billing", endpoint="sandbox_billing")
    def billing() -> ResponseReturnValue:
        conversations = state.billing()
        return jsonify(
            conversations=[_billing_json(b) for b in conversations],
            totalBilledSeconds=round(sum(b.billed_seconds for b in conversations), 3),
        )

    @app.get("/_sandbox/conversations/<cid>/truth", endpoint="sandbox_truth")
    def truth(cid: str) -> ResponseReturnValue:
        found = state.truth(cid)
        if found is None:
            return _error(404, f"Conversation {cid} not found.")
        return jsonify(_truth_json(found))
