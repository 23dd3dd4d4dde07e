"""Symbl's Conversation API answers turned into our insights document.

Only this module knows Symbl's JSON (reference §7); what leaves it is an `InsightsDocument`.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from services.core.errors import NotFound, PermanentError
from services.core.insights.document import (
    InsightsDocument,
    Question,
    SpeakerTalkTime,
    SummaryMissing,
    Task,
    Topic,
    Utterance,
    mapped_speakers,
    mapped_transcript,
    meeting_info,
)
from services.core.observability import logger
from services.core.recordings import Recording
from services.core.speech.provider import NotReady
from services.core.speech.segment_map import SegmentMap, TimedWord
from services.core.speech.symbl import SymblClient

EXPERIENCE_NAME = "verbose-text-summary"
# Symbl writes no summary for a conversation under about 50 words or with fewer than 3
# sentences (Symbl API reference, §7).
SUMMARY_MIN_WORDS = 50
SUMMARY_MIN_SENTENCES = 3
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")


# ---------------------------------------------------------------------------------------------
# Fetching
# ---------------------------------------------------------------------------------------------


def _list(body: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = body.get(key)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _text(value: Any) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def _name(person: Any) -> str | None:
    """The display name of a `from`/`assignee` object, which may be `{}`."""
    if isinstance(person, dict):
        return _text(person.get("name")) or None
    return None


def _parse_time(stamp: Any) -> datetime | None:
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _due_date(item: dict[str, Any]) -> date | None:
    """`dueBy` when Symbl gives one, else the first date entity it recognised."""
    due = _parse_time(item.get("dueBy"))
    if due is not None:
        return due.date()
    for entity in _list(item, "entities"):
        if entity.get("type") == "date" and isinstance(entity.get("value"), str):
            try:
                return date.fromisoformat(entity["value"][:10])
            except ValueError:
                continue
    return None


def _tasks(body: dict[str, Any], key: str) -> list[Task]:
    tasks = []
    for item in _list(body, key):
        text = _text(item.get("text"))
        if not text:
            continue
        assignee = item.get("assignee")
        email = assignee.get("email") if isinstance(assignee, dict) else None
        tasks.append(
            Task(
                text=text,
                assignee=_name(assignee),
                assignee_email=email if isinstance(email, str) and email else None,
                due_date=_due_date(item),
            )
        )
    return tasks


def _questions(body: dict[str, Any]) -> list[Question]:
    return [
        Question(text=_text(q.get("text")), asked_by=_name(q.get("from")))
        for q in _list(body, "questions")
        if _text(q.get("text"))
    ]


def _topics(body: dict[str, Any]) -> list[Topic]:
    topics = [
        Topic(text=_text(t.get("text")), score=float(t.get("score") or 0.0))
        for t in _list(body, "topics")
        if _text(t.get("text"))
    ]
    return sorted(topics, key=lambda t: t.score, reverse=True)


def _transcript(body: dict[str, Any], started: datetime | None) -> list[Utterance]:
    lines = []
    for message in _list(body, "messages"):
        offset = message.get("timeOffset")
        if not isinstance(offset, int | float):
            # Older responses carry only wall-clock times.
            at = _parse_time(message.get("startTime"))
            offset = (at - started).total_seconds() if at and started else 0.0
        lines.append(
            Utterance(
                speaker=_name(message.get("from")) or "Unknown speaker",
                start_seconds=round(max(0.0, float(offset)), 3),
                text=_text(message.get("text")),
            )
        )
    return sorted(lines, key=lambda line: line.start_seconds)


def _words_of(message: dict[str, Any]) -> list[TimedWord]:
    """A message's words with their times in the submitted file; a message without word times
    is one block spanning the message."""
    words = []
    for word in _list(message, "words"):
        text = _text(word.get("word") or word.get("text"))
        start, length = word.get("timeOffset"), word.get("duration")
        if text and isinstance(start, int | float) and isinstance(length, int | float):
            words.append(TimedWord(text=text, start=float(start), end=float(start + length)))
    if words:
        return words
    start, length = message.get("timeOffset"), message.get("duration")
    text = _text(message.get("text"))
    if not text or not isinstance(start, int | float):
        return []
    end = float(start) + (float(length) if isinstance(length, int | float) else 0.0)
    return [TimedWord(text=text, start=float(start), end=end)]


def _speakers(analytics: dict[str, Any], members: dict[str, Any]) -> list[SpeakerTalkTime]:
    """Talk time per member from analytics, with emails from the member list."""
    emails = {
        _text(m.get("name")): m.get("email")
        for m in _list(members, "members")
        if isinstance(m.get("email"), str)
    }
    speakers = []
    for member in _list(analytics, "members"):
        name = _name(member) or "Unknown speaker"
        talk = member.get("talkTime")
        talk = talk if isinstance(talk, dict) else {}
        speakers.append(
            SpeakerTalkTime(
                name=name,
                email=emails.get(name),
                talk_seconds=float(talk.get("seconds") or 0.0),
                talk_percent=float(talk.get("percentage") or 0.0),
            )
        )
    known = {s.name for s in speakers}
    speakers.extend(
        SpeakerTalkTime(name=name, email=email)
        for name, email in emails.items()
        if name not in known
    )
    return sorted(speakers, key=lambda s: s.talk_seconds, reverse=True)


def _duration_seconds(recording: Recording, conversation: dict[str, Any]) -> int:
    """Zoom's duration when it reported one, else the analysed conversation's span."""
    if recording.duration_minutes > 0:
        return recording.duration_minutes * 60
    start = _parse_time(conversation.get("startTime"))
    end = _parse_time(conversation.get("endTime"))
    if start and end and end > start:
        return round((end - start).total_seconds())
    return round(recording.merged_seconds or 0)


def _fetch(speech: SymblClient, conversation_id: str, part: str) -> dict[str, Any]:
    try:
        return speech.conversation(conversation_id, part)
    except NotFound as e:
        # Only completed conversations reach the notifier: a 404 here will not heal.
        raise PermanentError(f"conversation {conversation_id} {part or 'itself'} is gone") from e


def _experience_url(speech: SymblClient, conversation_id: str, lifetime_seconds: int) -> str | None:
    """The provider's hosted summary page, when it offers one; a refusal costs only the link."""
    try:
        return speech.create_experience(
            conversation_id, EXPERIENCE_NAME, expires_in_seconds=lifetime_seconds
        )
    except PermanentError as e:
        logger.warning("no experience page", reason=str(e))
        return None


def fetch_summary(speech: SymblClient, conversation_id: str) -> list[str]:
    """The summary's lines; empty while there is none.

    Symbl answers 404 until the summary is written; for a conversation too short to summarise
    it writes none, and answers either 404 or an empty list (undocumented): both read as empty.
    """
    try:
        body = speech.conversation(conversation_id, "summary")
    except NotReady:
        return []
    return [_text(s.get("text")) for s in _list(body, "summary") if _text(s.get("text"))]


def too_short_to_summarise(messages: dict[str, Any]) -> bool:
    """Whether a transcript (`/messages`) is under Symbl's summary threshold."""
    texts = [_text(m.get("text")) for m in _list(messages, "messages")]
    words = sum(len(text.split()) for text in texts)
    sentences = sum(len([s for s in _SENTENCE_BREAK.split(text) if s]) for text in texts)
    return words < SUMMARY_MIN_WORDS or sentences < SUMMARY_MIN_SENTENCES


def conversation_too_short(speech: SymblClient, conversation_id: str) -> bool:
    return too_short_to_summarise(_fetch(speech, conversation_id, "messages"))


def gather_insights(
    recording: Recording,
    speech: SymblClient,
    *,
    now: datetime,
    summary: list[str],
    link_lifetime_seconds: int,
    summary_missing: SummaryMissing | None = None,
    segment_map: SegmentMap | None = None,
) -> InsightsDocument:
    """Everything the email and the page show, in one document.

    The summary is read beforehand (`fetch_summary`), since the caller decides whether to wait
    for it; `summary_missing` says why there is none, when there is none. The provider's summary
    page expires after `link_lifetime_seconds`, the lifetime of the insights link. With a
    compact file's `segment_map`, speakers, talk time and transcript times come from the map.
    """
    conversation_id = recording.conversation_id
    if not conversation_id:
        raise PermanentError("transcribed meeting has no conversation id")
    conversation = _fetch(speech, conversation_id, "")
    parts = {
        part: _fetch(speech, conversation_id, part)
        for part in (
            "messages",
            "topics",
            "questions",
            "action-items",
            "follow-ups",
            "analytics",
            "members",
        )
    }
    compact = segment_map if segment_map is not None and segment_map.layout == "compact" else None
    return InsightsDocument(
        generated_at=now.astimezone(UTC).isoformat(timespec="seconds"),
        conversation_id=conversation_id,
        meeting=meeting_info(recording, _duration_seconds(recording, conversation)),
        speakers=mapped_speakers(compact)
        if compact
        else _speakers(parts["analytics"], parts["members"]),
        summary=summary,
        action_items=_tasks(parts["action-items"], "actionItems"),
        follow_ups=_tasks(parts["follow-ups"], "followUps"),
        questions=_questions(parts["questions"]),
        topics=_topics(parts["topics"]),
        transcript=mapped_transcript(
            compact, (w for m in _list(parts["messages"], "messages") for w in _words_of(m))
        )
        if compact
        else _transcript(parts["messages"], _parse_time(conversation.get("startTime"))),
        experience_url=_experience_url(speech, conversation_id, link_lifetime_seconds),
        summary_missing=None if summary else summary_missing,
    )
