"""Backfill's month walk: Zoom lists one month per request, so a range is cut at month ends."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.core.zoom import ZoomApi, month_spans

DAYS = st.dates(min_value=date(2019, 1, 1), max_value=date(2030, 12, 31))


def test_a_range_is_cut_at_each_month_end() -> None:
    assert month_spans(date(2024, 1, 31), date(2024, 3, 1)) == [
        (date(2024, 1, 31), date(2024, 1, 31)),
        (date(2024, 2, 1), date(2024, 2, 29)),
        (date(2024, 3, 1), date(2024, 3, 1)),
    ]
    assert month_spans(date(2025, 12, 15), date(2026, 1, 2)) == [
        (date(2025, 12, 15), date(2025, 12, 31)),
        (date(2026, 1, 1), date(2026, 1, 2)),
    ]
    assert month_spans(date(2026, 5, 7), date(2026, 5, 7)) == [(date(2026, 5, 7),) * 2]
    assert month_spans(date(2026, 5, 8), date(2026, 5, 7)) == []


@given(DAYS, st.integers(min_value=0, max_value=800))
def test_spans_cover_every_day_once_each_within_one_month(start: date, length: int) -> None:
    end = start + timedelta(days=length)
    spans = month_spans(start, end)
    assert spans[0][0] == start and spans[-1][1] == end
    for first, last in spans:
        assert first <= last and (first.year, first.month) == (last.year, last.month)
    for (_, last), (first, _) in pairwise(spans):
        assert first == last + timedelta(days=1)  # no gap, no overlap
        assert first.day == 1


class NoOAuth:
    def token(self, *, force_refresh: bool = False) -> str:
        raise AssertionError("no request may be made")


@pytest.mark.parametrize(
    ("start", "end"),
    [(date(2026, 1, 31), date(2026, 2, 1)), (date(2026, 3, 2), date(2026, 3, 1))],
)
def test_listing_refuses_a_range_zoom_would_cut_short(start: date, end: date) -> None:
    api = ZoomApi("https://api.zoom.us/v2", NoOAuth())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="within one calendar month"):
        next(api.list_user_recordings(start, end))
