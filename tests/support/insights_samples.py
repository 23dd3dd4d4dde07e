"""Sample insights documents: one with every section (and hostile markup, non-ASCII names),
one with nothing but a transcript. Used by the render, page and browser tests."""

from __future__ import annotations

from datetime import date

from services.core.insights.document import (
    InsightsDocument,
    MeetingInfo,
    Question,
    SpeakerTalkTime,
    Task,
    Topic,
    Utterance,
)

SCRIPT = "<script>alert('x')</script>"
EVIL_NAME = 'Mallory <img src=x onerror="alert(1)">'
PAGE_URL = "https://insights.example.com/meetings/abc%2F%2B%3D%3D?token=t.o.k"
EXPERIENCE = "https://meetinginsights.symbl.ai/meeting/#/eyJzZXNzaW9uSWQiOiIxMjMifQ=="


def rich_document(uuid: str = "Qm9vL3NhbXBsZSs9PQ==/+x") -> InsightsDocument:
    """A meeting with every section filled, hostile markup and non-ASCII names."""
    speakers = ["Zoë Ødegård", "李雷", EVIL_NAME, "Ana Ruiz-Soto"]
    said = [
        "Welcome everyone, thanks for joining the launch review.",
        "Can we ship the launch build on Friday? I will finish the release notes by Thursday.",
        f"{SCRIPT} Great, I'll send the budget summary to 李雷 tomorrow.",
        "Perfect, the launch checklist is ready and the support team is briefed.",
        "We will review the launch metrics next week, and décor for the party is sorted.",
        "Should marketing get the final copy before the press embargo lifts?",
    ]
    transcript = [
        Utterance(speaker=speakers[i % 4], start_seconds=37.0 * i + 2.5, text=said[i % 6])
        for i in range(18)
    ]
    return InsightsDocument(
        generated_at="2026-03-03T14:50:00+00:00",
        conversation_id="6549352073920512",
        meeting=MeetingInfo(
            uuid=uuid,
            meeting_id="81234567890",
            topic=f"Launch review {SCRIPT} — Zoë & 李雷",
            host_email="zoe@example.com",
            start_time="2026-03-03T13:05:00Z",
            timezone="Europe/Oslo",
            duration_seconds=47 * 60,
        ),
        speakers=[
            SpeakerTalkTime(
                name="Zoë Ødegård", email="zoe@example.com", talk_seconds=812.4, talk_percent=46.2
            ),
            SpeakerTalkTime(name="李雷", talk_seconds=540.0, talk_percent=30.7),
            SpeakerTalkTime(name=EVIL_NAME, talk_seconds=301.0, talk_percent=17.1),
            SpeakerTalkTime(name="Ana Ruiz-Soto", talk_seconds=105.0, talk_percent=6.0),
        ],
        summary=[
            "Zoë Ødegård opened the launch review; the build is on track for Friday.",
            f"李雷 will finish the release notes by Thursday. {SCRIPT}",
            "Marketing still needs the final copy before the press embargo lifts.",
        ],
        action_items=[
            Task(text="Finish the release notes", assignee="李雷", due_date=date(2026, 3, 5)),
            Task(
                text=f"Send the budget summary {SCRIPT}",
                assignee=EVIL_NAME,
                due_date=date(2026, 3, 4),
            ),
            Task(text="Review the launch metrics"),
        ],
        follow_ups=[
            Task(text="Share the checklist with support", assignee="Ana Ruiz-Soto"),
        ],
        questions=[
            Question(text="Can we ship the launch build on Friday?", asked_by="李雷"),
            Question(text=f"Is {SCRIPT} escaped?", asked_by=EVIL_NAME),
        ],
        topics=[
            Topic(text=t, score=s)
            for t, s in [
                ("launch", 1.0),
                ("release notes", 0.8),
                ("budget", 0.6),
                ("support", 0.4),
                ("press embargo", 0.3),
            ]
        ],
        transcript=transcript,
        experience_url=EXPERIENCE,
    )


def bare_document(uuid: str = "bare/meeting==") -> InsightsDocument:
    """A meeting where nothing was found: every section must say so gracefully."""
    return InsightsDocument(
        generated_at="2026-03-03T14:50:00+00:00",
        conversation_id="1",
        meeting=MeetingInfo(
            uuid=uuid,
            meeting_id="1",
            topic="Quiet sync",
            start_time="2026-07-01T23:30:00Z",
            timezone="Not/AZone",
            duration_seconds=20,
        ),
    )
