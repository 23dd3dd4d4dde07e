"""Insights: deterministic rules over a conversation's messages, in the §7 shapes (action
phrases, sentiment, topics, questions, action items, follow-ups, the summary, analytics).

Decisions where the reference is silent:
- Optional keys (`email`, `dueBy`) are omitted when unknown; insight `from.userId` is the email,
  or the member id when there is none.
- A message nobody is known to have said (a mono file before speaker events) gives its insights
  an empty `from` and `assignee`, a summary line without a name, and talk time that counts in the
  conversation's metrics but under no member.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from datetime import date, timedelta
from typing import Any, Literal

from sandbox.fake_symbl.model import _Member, _Message, _numeric_id, _Transcript
from sandbox.intervals import intersection, total, union

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DATE_WORDS = re.compile(r"\b(today|tomorrow|next week|" + "|".join(_WEEKDAYS) + r")\b", re.I)
_COMMITMENT = re.compile(
    r"\b(i will|i'll|we will|we'll|let's|let us|i am going to|i'm going to|we are going to"
    r"|we're going to|by (?:end of (?:the )?(?:day|week)|today|tomorrow|"
    + "|".join(_WEEKDAYS)
    + r")|next week)\b",
    re.I,
)
_FOLLOW_UP = re.compile(
    r"\b(follow(?:ing)?[- ]up|send|share|get back to|circle back|reach out)\b", re.I
)
_HEDGES = re.compile(r"\b(maybe|might|could|should|probably|perhaps|try to)\b", re.I)


def _words_of(text: str) -> frozenset[str]:
    """A word list written as text (reads better than one quoted word per line)."""
    return frozenset(text.split())


_POSITIVE = _words_of("good great excellent happy thanks thank agree love nice glad perfect")
_NEGATIVE = _words_of("bad problem issue delay delayed risk blocked worried sorry fail")
_STOPWORDS = _words_of(
    """about above after again against also because been before being below between both cannot
    could does doing down during each even every from further have having here hers herself
    himself into itself just last least like more most much must myself next once only other
    ought ours ourselves over same shall should some still such than that their theirs them
    themselves then there these they this those through under until very want well were what
    when where which while whom will with would your yours yourself yourselves okay yeah right
    really think know going make sure thing things week today tomorrow"""
) | frozenset(_WEEKDAYS)


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def _normalise(text: str) -> str:
    return text.replace("\u2019", "'")


def _action_phrases(text: str) -> tuple[str, ...]:
    phrases = []
    for sentence in _sentences(_normalise(text)):
        match = _COMMITMENT.search(sentence)
        if match and not sentence.endswith("?"):
            phrase = sentence[match.end() :].strip(" ,.!")
            phrases.append(phrase or sentence.strip(" .!"))
    return tuple(phrases)


def _sentiment(text: str) -> dict[str, Any]:
    words = re.findall(r"[a-z']+", text.lower())
    positive = sum(w in _POSITIVE for w in words)
    negative = sum(w in _NEGATIVE for w in words)
    score = round((positive - negative) / max(1, positive + negative), 3)
    suggested = "positive" if score > 0.3 else "negative" if score < -0.3 else "neutral"
    return {"polarity": {"score": score}, "suggested": suggested}


def _insight_from(member: _Member | None) -> dict[str, str]:
    if member is None:
        return {}
    return {"id": member.id, "name": member.name, "userId": member.email or member.id}


def _person(member: _Member | None) -> dict[str, str]:
    if member is None:
        return {}
    return {"name": member.name} | ({"email": member.email} if member.email else {})


def _due_date(sentence: str, start: date) -> tuple[re.Match[str], date] | None:
    match = _DATE_WORDS.search(sentence)
    if match is None:
        return None
    word = match[1].lower()
    if word == "today":
        return match, start
    if word == "tomorrow":
        return match, start + timedelta(days=1)
    if word == "next week":
        return match, start + timedelta(days=7 - start.weekday())
    days_ahead = (_WEEKDAYS.index(word) - start.weekday()) % 7 or 7
    return match, start + timedelta(days=days_ahead)


def _task(
    kind: Literal["action_item", "follow_up"],
    sentence: str,
    message: _Message,
    transcript: _Transcript,
) -> dict[str, Any]:
    entities: list[dict[str, Any]] = [
        {
            "type": "person",
            "text": m.name,
            "offset": sentence.find(m.name),
            "value": {"name": m.name},
        }
        for m in transcript.members
        if m != message.member and m.name in sentence
    ]
    due = _due_date(sentence, transcript.start.date())
    if due is not None:
        match, day = due
        entities.append(
            {"type": "date", "text": match[0], "offset": match.start(), "value": day.isoformat()}
        )
    item: dict[str, Any] = {
        "id": _numeric_id(transcript.id, kind, message.id, sentence),
        "text": sentence,
        "type": kind,
        "score": 0.9 if kind == "action_item" else 0.85,
        "messageIds": [message.id],
        "entities": entities,
    }
    if kind == "action_item":
        item["phrases"] = [{"type": "action_phrase", "text": p} for p in _action_phrases(sentence)]
    item["from"] = _insight_from(message.member)
    if kind == "action_item":
        item["definitive"] = _HEDGES.search(sentence) is None
    item["assignee"] = _person(message.member)
    if due is not None:
        item["dueBy"] = f"{due[1].isoformat()}T00:00:00.000Z"
    return item


def _tasks(transcript: _Transcript) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(action items, follow-ups): statements with a commitment, follow-up wording wins."""
    actions: list[dict[str, Any]] = []
    follow_ups: list[dict[str, Any]] = []
    for message in transcript.spoken:
        for sentence in _sentences(_normalise(message.text)):
            if sentence.endswith("?"):
                continue
            if _FOLLOW_UP.search(sentence):
                follow_ups.append(_task("follow_up", sentence, message, transcript))
            elif _COMMITMENT.search(sentence):
                actions.append(_task("action_item", sentence, message, transcript))
    return actions, follow_ups


def _questions(transcript: _Transcript) -> list[dict[str, Any]]:
    return [
        {
            "id": _numeric_id(transcript.id, "question", message.id, sentence),
            "text": sentence,
            "type": "question",
            "score": 0.95,
            "messageIds": [message.id],
            "from": _insight_from(message.member),
        }
        for message in transcript.spoken
        for sentence in _sentences(message.text)
        if sentence.endswith("?")
    ]


def _topics(transcript: _Transcript, *, sentiment: bool) -> list[dict[str, Any]]:
    """The five most frequent non-stopword terms."""
    counts: Counter[str] = Counter()
    mentions: dict[str, list[_Message]] = {}
    for message in transcript.spoken:
        for term in re.findall(r"[a-z][a-z'-]{3,}", _normalise(message.text).lower()):
            if term in _STOPWORDS or "'" in term:
                continue
            counts[term] += 1
            found = mentions.setdefault(term, [])
            if message not in found:
                found.append(message)
    top = counts.most_common(5)  # ties keep first-appearance order
    topics = []
    for term, count in top:
        topic: dict[str, Any] = {
            "id": _numeric_id(transcript.id, "topic", term),
            "text": term,
            "type": "topic",
            "score": round(count / top[0][1], 3),
            "messageIds": [m.id for m in mentions[term]],
        }
        if sentiment:
            topic["sentiment"] = _sentiment(" ".join(m.text for m in mentions[term]))
        topic["parentRefs"] = []
        topics.append(topic)
    return topics


def _summary(transcript: _Transcript) -> list[dict[str, Any]]:
    """Each speaker's first sentence, then the action items (names only where known)."""
    items = []
    seen: set[_Member | None] = set()
    for message in transcript.spoken:
        if message.member in seen:
            continue
        seen.add(message.member)
        said = f"{message.member.name}: " if message.member is not None else ""
        items.append((said + message.text, [message.id]))
    actions, _ = _tasks(transcript)
    for action in actions:
        name = action["assignee"].get("name")
        whose = f" for {name}" if name else ""
        items.append((f"Action item{whose}: {action['text']}", action["messageIds"]))
    return [
        {
            "id": _numeric_id(transcript.id, "summary", text),
            "text": text,
            "messageRefs": [{"id": i} for i in refs],
        }
        for text, refs in items
    ]


def _analytics(transcript: _Transcript) -> dict[str, Any]:
    """Talk/silence/overlap from true speech times; talk and listen shares of total talk."""
    members = transcript.members
    talk = {
        m: union(
            (x.time_offset, x.time_offset + x.duration)
            for x in transcript.messages
            if x.member == m
        )
        for m in members
    }
    words = {
        m: sum(len(x.text.split()) for x in transcript.spoken if x.member == m) for m in members
    }
    total_talk = total((x.time_offset, x.time_offset + x.duration) for x in transcript.messages)
    overlap_spans = [
        span
        for a, b in itertools.combinations(members, 2)
        for span in intersection(talk[a], talk[b])
    ]
    duration = transcript.duration

    def metric(kind: str, seconds: float) -> dict[str, Any]:
        percent = 100 * seconds / duration if duration else 0.0
        return {"type": kind, "percent": round(percent, 3), "seconds": round(seconds, 3)}

    def share(seconds: float) -> dict[str, float]:
        percent = 100 * seconds / total_talk if total_talk else 0.0
        return {"percentage": round(percent, 3), "seconds": round(seconds, 3)}

    def member_json(member: _Member) -> dict[str, Any]:
        own = total(talk[member])
        others = [m for m in members if m != member]
        with_others = intersection(talk[member], union(s for m in others for s in talk[m]))
        overlapping = []
        for other in others:
            seconds = total(intersection(talk[member], talk[other]))
            if seconds > 0:
                overlapping.append(
                    _insight_from(other)
                    | {"percent": round(100 * seconds / own, 3), "seconds": round(seconds, 3)}
                )
        return _insight_from(member) | {
            "pace": {"wpm": round(words[member] * 60 / own) if own else 0},
            "talkTime": share(own),
            "listenTime": share(total_talk - own),
            "overlap": {
                "overlapDuration": round(total(with_others), 3),
                "overlappingMembers": overlapping,
            },
        }

    return {
        "metrics": [
            metric("total_silence", max(0.0, duration - total_talk)),
            metric("total_talk_time", total_talk),
            metric("total_overlap", total(overlap_spans)),
        ],
        "members": [member_json(m) for m in members],
    }
