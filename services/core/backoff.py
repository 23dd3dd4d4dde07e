"""Retry pacing: exponential backoff with full jitter, bounded by a time budget."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays of `base * 2**n` seconds (capped), each drawn uniformly from [0, delay].

    `budget_seconds` bounds the whole retry sequence: `next_delay` returns None once the next
    wait would end past the budget, so callers stop instead of retrying forever.
    """

    budget_seconds: float
    base: float = 0.5
    cap: float = 20.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0
    _started: float | None = None

    def __post_init__(self) -> None:
        self._started = self.clock()

    @property
    def elapsed(self) -> float:
        assert self._started is not None
        return self.clock() - self._started

    def next_delay(self, at_least: float = 0.0) -> float | None:
        """The next wait (honouring a server's `Retry-After` via `at_least`), or None when spent."""
        ceiling = min(self.cap, self.base * (2**self.attempts))
        delay = max(at_least, self.rng.uniform(0, ceiling))
        if self.elapsed + delay > self.budget_seconds:
            return None
        self.attempts += 1
        return delay

    def wait(self, at_least: float = 0.0) -> bool:
        """Sleep the next delay; False when the budget is spent (nothing slept)."""
        delay = self.next_delay(at_least)
        if delay is None:
            return False
        self.sleep(delay)
        return True
