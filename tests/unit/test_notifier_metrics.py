"""What the notifier counts once a provider delivered a meeting's notes."""

from __future__ import annotations

import pytest

from services.core.speech.provider import Insights
from services.notifier import notify
from tests.support.insights_samples import rich_document


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    metrics: dict[str, float] = {}

    def record(name: str, value: float = 1.0, *_: object) -> None:
        metrics[name] = metrics.get(name, 0.0) + value

    monkeypatch.setattr(notify, "record_metric", record)
    return metrics


def test_model_tokens_and_missing_sections_are_counted(recorded: dict[str, float]) -> None:
    document = rich_document().model_copy(update={"sections_missing": ["topics", "questions"]})
    notify._record_insights_metrics(
        Insights(document, model_input_tokens=1200, model_output_tokens=300, model_calls=3)
    )
    assert recorded == {
        "ModelCalls": 3,
        "ModelInputTokens": 1200,
        "ModelOutputTokens": 300,
        "InsightsSectionsMissing": 2,
    }


def test_a_symbl_meeting_counts_what_it_lacked_and_no_model_tokens(
    recorded: dict[str, float],
) -> None:
    document = rich_document().model_copy(update={"summary": [], "summary_missing": "not_ready"})
    notify._record_insights_metrics(Insights(document, speakers_unconfirmed=True))
    assert recorded == {"SummariesMissing": 1, "SpeakersUnconfirmed": 1}
    recorded.clear()
    notify._record_insights_metrics(Insights(rich_document()))
    assert recorded == {}
