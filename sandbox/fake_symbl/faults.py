"""The fault knobs: what a test can make the fake do wrong (5xx and 429 answers, lost submit
answers, dropped, doubled, delayed or reordered webhooks, failed jobs, speaker events accepted
but never applied), armed for a number of uses or until cleared."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Literal

ENDPOINTS: frozenset[str] = frozenset(
    {
        "token",
        "submit",
        "append",
        "job",
        "conversation",
        "messages",
        "topics",
        "questions",
        "action_items",
        "follow_ups",
        "summary",
        "summary_refresh",
        "analytics",
        "members",
        "speakers",
        "experiences",
        "meeting_page",
        "meeting_data",
    }
)
"""Endpoint names accepted by `FakeSymblState.http_5xx(endpoint=...)`."""


@dataclass
class _Fault:
    """One armed fault knob; `remaining` None means it fires until `clear_faults()`."""

    remaining: int | None
    status: int = 500
    seconds: float = 0.0
    probability: float = 1.0
    pattern: re.Pattern[str] | None = None
    mode: str = "status"

    def fire(self) -> bool:
        if self.remaining is None:
            return True
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True


def _check_count(count: int | None) -> int | None:
    if count is not None and count < 1:
        raise ValueError(f"count must be at least 1 (or None for unlimited), got {count}")
    return count


class _FaultKnobs:
    """The fault knobs of `FakeSymblState` (its base class): each arms a `_Fault` that the HTTP
    layer or the job engine fires, under the state's lock."""

    _cond: threading.Condition  # the state's lock

    def __init__(self) -> None:
        self._faults: dict[str, _Fault] = {}
        self._http_faults: dict[str | None, _Fault] = {}

    def http_5xx(
        self, *, status: int = 500, endpoint: str | None = None, count: int | None = None
    ) -> None:
        """Answer `status` on `endpoint` (a name from ENDPOINTS; None: every endpoint) before
        any other processing, for the next `count` requests (None: until cleared)."""
        if not 500 <= status <= 599:
            raise ValueError(f"status must be 5xx, got {status}")
        if endpoint is not None and endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {sorted(ENDPOINTS)}")
        with self._cond:
            self._http_faults[endpoint] = _Fault(_check_count(count), status=status)

    def http_429(self, *, count: int | None = None) -> None:
        """Refuse the next `count` submits with the documented 429 body whatever the load, as
        when another client on the same account holds the slots."""
        self._arm("http_429", _Fault(_check_count(count)))

    def lose_submit_answers(
        self,
        *,
        count: int | None = None,
        status: int = 504,
        mode: Literal["status", "close", "hang"] = "status",
        seconds: float = 0.0,
    ) -> None:
        """Accept each of the next `count` submits (the job runs, is counted, bills and calls
        back) and then lose its answer: answer `status` (mode "status"), close the connection
        without an answer ("close"), or wait `seconds` first, past the client's read timeout,
        then answer `status` ("hang"). The submission is recorded with `answer_lost`."""
        if not 500 <= status <= 599:
            raise ValueError(f"status must be 5xx, got {status}")
        if mode not in ("status", "close", "hang"):
            raise ValueError(f"mode must be status, close or hang, got {mode!r}")
        if seconds < 0:
            raise ValueError(f"seconds must not be negative, got {seconds}")
        self._arm(
            "lose_submit_answers",
            _Fault(_check_count(count), status=status, seconds=seconds, mode=mode),
        )

    def drop_webhooks(self, *, count: int | None = None, probability: float = 1.0) -> None:
        """Silently skip webhook deliveries, each with `probability` (drawn from `seed`), up to
        `count` drops."""
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {probability}")
        self._arm("drop_webhooks", _Fault(_check_count(count), probability=probability))

    def duplicate_webhooks(self, *, count: int | None = None) -> None:
        """Send each of the next `count` webhook deliveries twice."""
        self._arm("duplicate_webhooks", _Fault(_check_count(count)))

    def delay_webhooks(self, seconds: float, *, count: int | None = None) -> None:
        """Hold each of the next `count` webhook deliveries for `seconds` before sending."""
        if seconds < 0:
            raise ValueError(f"seconds must not be negative, got {seconds}")
        self._arm("delay_webhooks", _Fault(_check_count(count), seconds=seconds))

    def reorder_webhooks(self, *, count: int | None = None) -> None:
        """For the next `count` accepted jobs, deliver `in_progress` after the terminal status."""
        self._arm("reorder_webhooks", _Fault(_check_count(count)))

    def webhook_uses_id(self, *, count: int | None = None) -> None:
        """Send `{"id", "status"}` (the GET /v1/job shape, §4 alias) instead of `{"jobId", ...}`
        for the next `count` deliveries."""
        self._arm("webhook_uses_id", _Fault(_check_count(count)))

    def fail_jobs(self, *, count: int | None = None, name_pattern: str | None = None) -> None:
        """End the next `count` accepted jobs (only those whose conversation name matches the
        regular expression `name_pattern`, if given) `failed`, after `in_progress`."""
        pattern = re.compile(name_pattern) if name_pattern is not None else None
        self._arm("fail_jobs", _Fault(_check_count(count), pattern=pattern))

    def ignore_speaker_events(self, *, count: int | None = None) -> None:
        """Answer each of the next `count` `PUT .../speakers` with the documented 200 but never
        apply its events (recorded with `ignored`), so a client's bounded check that the
        speakers arrived runs out."""
        self._arm("ignore_speaker_events", _Fault(_check_count(count)))

    def clear_faults(self) -> None:
        """Disarm every fault knob."""
        with self._cond:
            self._faults.clear()
            self._http_faults.clear()

    # -- used by the HTTP layer and the job engine -------------------------------------------

    def _arm(self, name: str, fault: _Fault) -> None:
        with self._cond:
            self._faults[name] = fault

    def _fire(self, name: str) -> _Fault | None:
        """The armed fault `name` if it fires now (consuming one use), else None."""
        fault = self._faults.get(name)
        return fault if fault is not None and fault.fire() else None

    def _take_http_fault(self, endpoint: str | None) -> int | None:
        with self._cond:
            for key in (endpoint, None):
                fault = self._http_faults.get(key)
                if fault is not None and fault.fire():
                    return fault.status
            return None

    def _take_forced_429(self) -> bool:
        with self._cond:
            return self._fire("http_429") is not None
