"""Interval arithmetic on (start, end) seconds, shared by the fake Symbl's analytics and the
benchmarks that measure speech against a script."""

from __future__ import annotations

from collections.abc import Iterable

Interval = tuple[float, float]

__all__ = ["Interval", "complement", "intersection", "total", "union"]


def union(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, non-overlapping intervals covering exactly the input's points (empty ones dropped;
    touching ones joined)."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def total(intervals: Iterable[Interval]) -> float:
    return sum(end - start for start, end in union(intervals))


def intersection(a: Iterable[Interval], b: Iterable[Interval]) -> list[Interval]:
    """The points in both `a` and `b`, as a union."""
    left, right = union(a), union(b)
    out: list[Interval] = []
    i = j = 0
    while i < len(left) and j < len(right):
        start = max(left[i][0], right[j][0])
        end = min(left[i][1], right[j][1])
        if end > start:
            out.append((start, end))
        if left[i][1] < right[j][1]:
            i += 1
        else:
            j += 1
    return out


def complement(intervals: Iterable[Interval], lo: float, hi: float) -> list[Interval]:
    """The points of [lo, hi] outside `intervals`."""
    out: list[Interval] = []
    cursor = lo
    for start, end in union(intervals):
        if start > cursor:
            out.append((cursor, min(start, hi)))
        cursor = max(cursor, end)
        if cursor >= hi:
            break
    if cursor < hi:
        out.append((cursor, hi))
    return [i for i in out if i[1] > i[0]]
