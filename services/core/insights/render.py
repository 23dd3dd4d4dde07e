"""Rendering of the summary email (HTML and text) and of the insights page, with Jinja2.

Everything a meeting contributes (topic, names, transcript) is untrusted: HTML templates are
autoescaped, and the plain-text template is not (it has no markup to protect, and escaping would
show `&lt;` to the reader). Every link passes `safe_link` (https only) before a template sees it.
Times are shown in the meeting's own time zone, because that is the clock the participants met
by; an unknown zone falls back to UTC and says so.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.core.insights.document import InsightsDocument, Task
from services.core.observability import logger

TEMPLATES = Path(__file__).resolve().parent / "templates"
TOP_TOPICS = 8
SUBJECT_TOPIC_CHARS = 120
# Bar colours, distinguishable and at least 3:1 against white (WCAG non-text contrast).
PALETTE = ("#2563eb", "#c026d3", "#059669", "#d97706", "#7c3aed", "#0891b2", "#dc2626", "#4d7c0f")

EMPTY = {
    "summary": "No summary is available for this meeting.",
    "action_items": "No action items were recorded.",
    "follow_ups": "No follow-ups were recorded.",
    "questions": "No questions were asked.",
    "topics": "No topics were detected.",
    "speakers": "No speech was detected.",
    "transcript": "The transcript is empty.",
}
# What the summary section says when the notes went out without one, by `summary_missing`.
SUMMARY_MISSING = {
    "too_short": (
        "No summary was generated: the conversation was too short to summarise (a summary"
        " needs about 50 words in at least 3 sentences)."
    ),
    "not_ready": "No summary was generated: none was ready when these notes were sent.",
    "no_speech": "No summary was generated: no words were recognised in the recording.",
}

# How the notes name a section the provider could not deliver (`sections_missing`).
SECTION_NAMES = {
    "summary": "the summary",
    "topics": "the topics",
    "questions": "the questions",
    "action_items": "the action items",
    "follow_ups": "the follow-ups",
}
SECTION_MISSING = "Not available: this section could not be extracted from the meeting."


def missing_note(document: InsightsDocument) -> str | None:
    """One sentence naming the sections the provider did not deliver, or None."""
    missing = [SECTION_NAMES[s] for s in document.sections_missing if s in SECTION_NAMES]
    if not missing:
        return None
    listed = missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + " and " + missing[-1]
    return (
        f"These notes are incomplete: {listed} could not be extracted from the meeting, so "
        "what is shown there may be partial or empty."
    )


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")


# ---------------------------------------------------------------------------------------------
# Links
# ---------------------------------------------------------------------------------------------


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def safe_link(url: str | None, what: str) -> str | None:
    """`url` when it may be put in an email or a page, else None (logged, saying why).

    Only https to a named host passes: the insights link carries its token and the provider's
    page is the meeting's content, neither of which may cross the network in clear; any other
    scheme (`http:`, `javascript:`, `data:`) or a relative link is left out. One exception: http to
    a loopback address, which never leaves the reader's machine (the local stack serves its
    pages that way). The log names the scheme and host only, never the link with its token.
    """
    if not url:
        return None
    try:
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.hostname or ""
    except ValueError:  # e.g. an unclosed IPv6 bracket
        scheme, host = "", ""
    if _SPACE_OR_CONTROL.search(url):
        problem = "it holds spaces or control characters"
    elif (scheme == "https" and host) or (scheme == "http" and _loopback(host)):
        return url
    else:
        problem = "it is not https to a named host"
    logger.warning("link left out", link=what, reason=problem, scheme=scheme, host=host)
    return None


# ---------------------------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------------------------


def meeting_zone(name: str | None) -> tzinfo:
    """The meeting's time zone, or UTC when Zoom gave none or one this system does not know."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def parse_start(stamp: str) -> datetime:
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_long_date(moment: datetime) -> str:
    """`Tuesday 3 March 2026` (no locale needed, no zero padding)."""
    return f"{moment:%A} {moment.day} {moment:%B %Y}"


def format_short_date(moment: datetime) -> str:
    return f"{moment.day} {moment:%b %Y}"


def format_clock(moment: datetime) -> str:
    """`14:05 CET`; the abbreviation tells a reader in another zone which clock this is."""
    return f"{moment:%H:%M} {moment.tzname() or 'UTC'}"


def format_duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if seconds <= 0:
        return "unknown length"
    if minutes < 1:
        return "under a minute"
    hours, minutes = divmod(minutes, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"


def format_talk_time(seconds: float) -> str:
    whole = round(seconds)
    minutes, secs = divmod(whole, 60)
    if not minutes:
        return f"{secs} s"
    return f"{minutes} min {secs:02d} s"


def format_offset(seconds: float, *, with_hours: bool) -> str:
    """A transcript timestamp: `mm:ss`, or `hh:mm:ss` throughout a meeting of an hour or more."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if with_hours:
        return f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{hours * 60 + minutes:02d}:{secs:02d}"


def format_due(day: date) -> str:
    return f"{day:%a} {day.day} {day:%b %Y}"


def _count(n: int, singular: str, plural: str) -> str:
    """`3 action items`, kept on one line (no-break spaces) when the line wraps."""
    return f"{n} {singular if n == 1 else plural}".replace(" ", "\u00a0")


def at_a_glance(document: InsightsDocument) -> str:
    """`3 action items · 1 follow-up · 2 questions · 4 speakers`: what is in here, at a glance."""
    return " · ".join(
        (
            _count(len(document.action_items), "action item", "action items"),
            _count(len(document.follow_ups), "follow-up", "follow-ups"),
            _count(len(document.questions), "question", "questions"),
            _count(len(document.speakers), "speaker", "speakers"),
        )
    )


def subject_line(topic: str, start: datetime) -> str:
    """`Meeting notes: <topic> (<date>)`, one line whatever the topic holds."""
    clean = _CONTROL.sub(" ", topic).strip() or "Untitled meeting"
    if len(clean) > SUBJECT_TOPIC_CHARS:
        clean = clean[: SUBJECT_TOPIC_CHARS - 1].rstrip() + "…"
    return f"Meeting notes: {clean} ({format_short_date(start)})"


# ---------------------------------------------------------------------------------------------
# What the templates see
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeakerView:
    name: str
    talk: str
    percent: int
    bar: float  # 0-100, the share of the longest talker's time (the chart's scale)
    color: str


@dataclass(frozen=True)
class TaskView:
    text: str
    assignee: str | None
    due: str | None
    due_iso: str | None


@dataclass(frozen=True)
class QuestionView:
    text: str
    asked_by: str | None


@dataclass(frozen=True)
class LineView:
    speaker: str
    at: str
    seconds: int
    text: str
    color: str


@dataclass(frozen=True)
class MeetingView:
    topic: str
    subject: str
    date: str
    time: str
    zone: str
    duration: str
    glance: str
    speakers: list[SpeakerView]
    summary: list[str]
    action_items: list[TaskView]
    follow_ups: list[TaskView]
    questions: list[QuestionView]
    topics: list[str]
    transcript: list[LineView]
    page_url: str | None
    experience_url: str | None
    preheader: str
    empty: dict[str, str]
    missing: str | None = None  # which sections could not be extracted, when some could not


def _tasks(tasks: list[Task]) -> list[TaskView]:
    return [
        TaskView(
            text=t.text,
            assignee=t.assignee,
            due=format_due(t.due_date) if t.due_date else None,
            due_iso=t.due_date.isoformat() if t.due_date else None,
        )
        for t in tasks
    ]


def _speakers(document: InsightsDocument, colors: dict[str, str]) -> list[SpeakerView]:
    longest = max((s.talk_seconds for s in document.speakers), default=0.0)
    return [
        SpeakerView(
            name=s.name,
            talk=format_talk_time(s.talk_seconds),
            percent=round(s.talk_percent),
            bar=round(100 * s.talk_seconds / longest, 1) if longest else 0.0,
            color=colors[s.name],
        )
        for s in document.speakers
    ]


def _colors(document: InsightsDocument) -> dict[str, str]:
    """One colour per speaker, the same in the chart and the transcript."""
    names = [s.name for s in document.speakers] + [u.speaker for u in document.transcript]
    unique = list(dict.fromkeys(names))
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(unique)}


def build_view(document: InsightsDocument, *, page_url: str | None = None) -> MeetingView:
    meeting = document.meeting
    zone = meeting_zone(meeting.timezone)
    start = parse_start(meeting.start_time).astimezone(zone)
    colors = _colors(document)
    with_hours = any(u.start_seconds >= 3600 for u in document.transcript)
    summary = document.summary
    empty = EMPTY
    if not summary and document.summary_missing:
        empty = {**EMPTY, "summary": SUMMARY_MISSING[document.summary_missing]}
    empty = {**empty, **dict.fromkeys(document.sections_missing, SECTION_MISSING)}
    return MeetingView(
        topic=meeting.topic.strip() or "Untitled meeting",
        subject=subject_line(meeting.topic, start),
        date=format_long_date(start),
        time=format_clock(start),
        zone=meeting.timezone if meeting.timezone and zone is not UTC else "UTC",
        duration=format_duration(meeting.duration_seconds),
        glance=at_a_glance(document),
        speakers=_speakers(document, colors),
        summary=summary,
        action_items=_tasks(document.action_items),
        follow_ups=_tasks(document.follow_ups),
        questions=[QuestionView(q.text, q.asked_by) for q in document.questions],
        topics=[t.text for t in document.topics[:TOP_TOPICS]],
        transcript=[
            LineView(
                speaker=u.speaker,
                at=format_offset(u.start_seconds, with_hours=with_hours),
                seconds=int(u.start_seconds),
                text=u.text,
                color=colors[u.speaker],
            )
            for u in document.transcript
        ],
        page_url=safe_link(page_url, "insights page"),
        experience_url=safe_link(document.experience_url, "provider summary page"),
        preheader=summary[0] if summary else "Action items, questions and the full transcript.",
        empty=empty,
        missing=missing_note(document),
    )


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


@cache
def environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(
            enabled_extensions=("html.j2",), disabled_extensions=("txt.j2",), default=True
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_email(document: InsightsDocument, page_url: str) -> RenderedEmail:
    view = build_view(document, page_url=page_url)
    env = environment()
    return RenderedEmail(
        subject=view.subject,
        html=env.get_template("email.html.j2").render(m=view),
        text=env.get_template("email.txt.j2").render(m=view),
    )


def render_page(document: InsightsDocument) -> str:
    return environment().get_template("page.html.j2").render(m=build_view(document))
