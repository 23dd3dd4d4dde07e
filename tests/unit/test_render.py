"""Email and page rendering: escaping of everything a meeting contributes, non-ASCII text, empty
sections, a summary that was not generated (and why), times in the meeting's own time zone, and
links (https only).

The sample documents live in `tests/support/insights_samples.py`."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest

from services.core.insights.document import InsightsDocument, Utterance
from services.core.insights.render import (
    EMPTY,
    SUMMARY_MISSING,
    format_duration,
    format_offset,
    render_email,
    render_page,
    subject_line,
)
from services.core.observability import logger
from tests.support.insights_samples import (
    EVIL_NAME,
    EXPERIENCE,
    PAGE_URL,
    SCRIPT,
    bare_document,
    rich_document,
)


class _Collect(HTMLParser):
    """Element names and script bodies, to prove no markup from the data became markup."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(name for name, _ in attrs)


def parsed(html: str) -> _Collect:
    collector = _Collect()
    collector.feed(html)
    return collector


def test_email_escapes_markup_from_topic_names_and_text() -> None:
    email = render_email(rich_document(), PAGE_URL)
    tree = parsed(email.html)
    assert "script" not in tree.tags and "img" not in tree.tags
    assert "onerror" not in tree.attributes
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in email.html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in email.html
    # Plain text shows the characters as typed: there is no markup to protect there.
    assert SCRIPT in email.text and EVIL_NAME in email.text
    assert "&lt;" not in email.text


def test_page_escapes_markup_from_topic_names_and_text() -> None:
    html = render_page(rich_document())
    tree = parsed(html)
    assert "script" not in tree.tags and "img" not in tree.tags
    assert "onerror" not in tree.attributes
    assert html.count("&lt;script&gt;") >= 4  # topic, summary, transcript, question, task


def test_non_ascii_survives_everywhere() -> None:
    email = render_email(rich_document(), PAGE_URL)
    page = render_page(rich_document())
    for text in ("Zoë Ødegård", "李雷", "décor"):
        assert text in page
    for text in ("Zoë Ødegård", "李雷"):
        assert text in email.html and text in email.text
    assert "李雷" in email.subject


def test_email_has_every_section_the_link_and_the_experience_url() -> None:
    email = render_email(rich_document(), PAGE_URL)
    for section in ("summary", "action-items", "follow-ups", "questions", "topics", "speakers"):
        assert f'id="{section}"' in email.html
    assert f'href="{PAGE_URL}"' in email.html and PAGE_URL in email.text
    assert EXPERIENCE in email.html and EXPERIENCE in email.text
    assert "Finish the release notes" in email.text
    assert "Assigned to 李雷 · Due Thu 5 Mar 2026" in email.text
    assert "Assigned to <strong>李雷</strong> &middot; Due" in email.html
    assert "Zoë Ødegård: 13 min 32 s (46%)" in email.text
    assert "launch, release notes, budget" in email.text
    glance = "3 action items · 1 follow-up · 2 questions · 4 speakers"
    assert glance in email.text.replace("\u00a0", " ")  # no-break spaces keep counts whole


def test_times_are_in_the_meeting_time_zone() -> None:
    email = render_email(rich_document(), PAGE_URL)
    # 13:05 UTC on 3 March is 14:05 in Oslo (CET, UTC+1).
    assert "Tuesday 3 March 2026 · 14:05 CET · 47 min" in email.text
    assert email.subject == (f"Meeting notes: Launch review {SCRIPT} — Zoë & 李雷 (3 Mar 2026)")
    assert "Europe/Oslo" in email.text


def test_unknown_time_zone_falls_back_to_utc() -> None:
    email = render_email(bare_document(), PAGE_URL)
    assert "Wednesday 1 July 2026 · 23:30 UTC · under a minute" in email.text
    assert "Times are in UTC." in email.text


def test_empty_sections_render_gracefully() -> None:
    email = render_email(bare_document(), PAGE_URL)
    page = render_page(bare_document())
    for key, sentence in EMPTY.items():
        assert sentence in page, key
        if key != "transcript":
            assert sentence in email.text, key
            assert sentence in email.html, key
    assert "Symbl" not in email.text  # no experience URL, no mention


@pytest.mark.parametrize("reason", ["too_short", "not_ready", "no_speech"])
def test_a_missing_summary_says_no_summary_was_generated_and_why(reason: str) -> None:
    document = rich_document().model_copy(update={"summary": [], "summary_missing": reason})
    email = render_email(document, PAGE_URL)
    page = render_page(document)
    said = SUMMARY_MISSING[reason]
    assert said.startswith("No summary was generated: ")
    for rendered in (email.text, email.html, page):
        assert said in rendered
        assert EMPTY["summary"] not in rendered
    assert ("too short" in said) == (reason == "too_short")
    assert "Action items, questions and the full transcript." in email.html  # the preheader


def test_documents_stored_before_summary_missing_existed_still_read() -> None:
    stored = rich_document().model_dump(mode="json")
    del stored["summary_missing"]
    stored["summary"] = []
    document = InsightsDocument.model_validate(stored)
    assert document.schema_version == 1 and document.summary_missing is None
    assert EMPTY["summary"] in render_email(document, PAGE_URL).text


def test_page_has_every_section_chart_and_transcript_times() -> None:
    html = render_page(rich_document())
    for section in (
        "summary",
        "action-items",
        "follow-ups",
        "questions",
        "topics",
        "talk-time",
        "transcript",
    ):
        assert f'id="{section}"' in html
    assert html.count("<svg") == 4  # one bar per speaker
    assert 'name="viewport"' in html
    assert "<script" not in html and "http://" not in html.replace(EXPERIENCE, "")
    assert ">00:02<" in html and ">10:31<" in html  # 2.5 s and 17 * 37 + 2.5 s


@pytest.mark.parametrize(
    ("seconds", "with_hours", "expected"),
    [
        (0, False, "00:00"),
        (61.9, False, "01:01"),
        (3599, False, "59:59"),
        (3600, True, "01:00:00"),
        (59, True, "00:00:59"),
        (36000 + 62, True, "10:01:02"),
    ],
)
def test_transcript_offsets(seconds: float, with_hours: bool, expected: str) -> None:
    assert format_offset(seconds, with_hours=with_hours) == expected


def test_long_meetings_use_hours_throughout() -> None:
    document = rich_document()
    long = document.model_copy(
        update={
            "transcript": [
                *document.transcript,
                Utterance(speaker="李雷", start_seconds=3725, text="Last words."),
            ]
        }
    )
    html = render_page(long)
    assert ">00:00:02<" in html and ">01:02:05<" in html


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "unknown length"),
        (20, "under a minute"),
        (45 * 60, "45 min"),
        (3600, "1 h"),
        (3900, "1 h 05 min"),
    ],
)
def test_durations(seconds: int, expected: str) -> None:
    assert format_duration(seconds) == expected


def test_subject_is_one_bounded_line() -> None:
    from datetime import UTC, datetime

    subject = subject_line(
        "Plan\r\nBcc: everyone@example.com " + "x" * 300, datetime(2026, 1, 2, tzinfo=UTC)
    )
    assert "\n" not in subject and "\r" not in subject
    assert len(subject) < 160 and subject.endswith("… (2 Jan 2026)")
    assert re.match(r"^Meeting notes: Plan Bcc", subject)


# ---------------------------------------------------------------------------------------------
# Links: https only
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def warnings() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep(level=logging.WARNING)
    logger.addHandler(keep)
    yield records
    logger.removeHandler(keep)


@pytest.mark.parametrize(
    "link",
    [
        "http://insights.example.com/meetings/abc%2F%2B%3D%3D?token=t.o.k",
        "javascript:alert(document.cookie)",
        "data:text/html,<script>alert(1)</script>",
        "//insights.example.com/meetings/abc",
        " https://insights.example.com/meetings/abc",
    ],
)
def test_a_link_that_is_not_https_is_left_out_and_logged(
    link: str, warnings: list[logging.LogRecord]
) -> None:
    document = rich_document().model_copy(update={"experience_url": link})
    email = render_email(document, link)
    page = render_page(document)
    for rendered in (email.html, email.text, page):
        assert link.strip() not in rendered
    assert 'id="insights-link"' not in email.html and 'id="experience-link"' not in email.html
    assert 'id="experience-link"' not in page and "Symbl" not in email.text
    assert "Full insights and transcript" not in email.text
    assert 'id="summary"' in email.html  # the notes themselves still go out
    left_out = [r.__dict__ for r in warnings if r.getMessage() == "link left out"]
    assert {r["link"] for r in left_out} == {"insights page", "provider summary page"}
    assert all("token" not in str(r) for r in left_out)  # scheme and host only, not the link


def test_https_and_loopback_http_links_are_kept(warnings: list[logging.LogRecord]) -> None:
    local = "http://127.0.0.1:8080/meetings/abc%3D%3D?token=t.o.k"  # the local stack's pages
    email = render_email(rich_document(), local)
    assert f'id="insights-link" href="{local}"' in email.html and local in email.text
    assert f'href="{EXPERIENCE}"' in email.html
    assert warnings == []


def test_missing_sections_are_named_in_the_email_and_the_page() -> None:
    """A provider that could not deliver some sections (the AWS provider after an invalid model
    answer) still sends the notes, and they say which sections are missing."""
    document = rich_document().model_copy(
        update={"action_items": [], "sections_missing": ["action_items", "follow_ups"]}
    )
    email = render_email(document, "https://insights.example.com/meetings/x?token=t")
    page = render_page(document)
    note = "the action items and the follow-ups could not be extracted from the meeting"
    for rendered in (email.html, email.text, page):
        assert note in rendered
        assert "Not available: this section could not be extracted" in rendered
    # Follow-ups that did arrive (from other parts of a split transcript) are still shown.
    assert document.follow_ups and document.follow_ups[0].text in email.text
    complete = render_email(rich_document(), "https://insights.example.com/meetings/x?token=t")
    assert "incomplete" not in complete.html and "incomplete" not in complete.text
