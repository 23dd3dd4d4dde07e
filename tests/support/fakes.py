"""In-memory stand-ins for the unit tier (the integration tier uses moto's server instead)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from services.core.errors import StateConflict
from services.core.queues import StageMessage
from services.core.recordings import Recording, State


class MemoryRecordings:
    def __init__(self) -> None:
        self.items: dict[str, Recording] = {}
        self.writes = 0
        self._lock = threading.Lock()

    def create_if_absent(self, recording: Recording) -> bool:
        with self._lock:
            if recording.meeting_uuid in self.items:
                return False
            self.items[recording.meeting_uuid] = recording
            self.writes += 1
            return True

    def delete_if_state(self, meeting_uuid: str, state: State) -> bool:
        with self._lock:
            item = self.items.get(meeting_uuid)
            if item is None or item.state != state:
                return False
            del self.items[meeting_uuid]
            self.writes += 1
            return True

    def get(self, meeting_uuid: str) -> Recording | None:
        return self.items.get(meeting_uuid)

    def require(self, meeting_uuid: str) -> Recording:
        return self.items[meeting_uuid]

    def transition(
        self,
        meeting_uuid: str,
        expected: State | Iterable[State],
        new: State,
        *,
        updates: Mapping[str, Any] | None = None,
        only_if: Mapping[str, str] | None = None,
    ) -> Recording:
        """The store's conditional transition: refused (StateConflict) unless the item is in
        one of the `expected` states and its `only_if` fields hold those values."""
        states = (expected,) if isinstance(expected, State) else tuple(expected)
        with self._lock:
            item = self.items.get(meeting_uuid)
            if (
                item is None
                or item.state not in states
                or any(getattr(item, field) != value for field, value in (only_if or {}).items())
            ):
                raise StateConflict(
                    meeting_uuid,
                    tuple(s.value for s in states),
                    item.state.value if item else None,
                )
            self.items[meeting_uuid] = item.model_copy(update={**(updates or {}), "state": new})
            self.writes += 1
            return self.items[meeting_uuid]

    def fail(
        self,
        meeting_uuid: str,
        expected: State | Iterable[State],
        *,
        stage: str,
        reason: str,
        only_if: Mapping[str, str] | None = None,
    ) -> Recording:
        updates = {"failed_stage": stage, "failure_reason": reason}
        return self.transition(
            meeting_uuid, expected, State.FAILED, updates=updates, only_if=only_if
        )


class MemorySlots:
    """The slot pool as the job-settling code uses it: every released job kept."""

    def __init__(self) -> None:
        self.released: list[str] = []

    def release_job(self, job_id: str) -> bool:
        self.released.append(job_id)
        return True


class MemoryQueue:
    def __init__(self) -> None:
        self.messages: list[StageMessage] = []

    def send(self, message: StageMessage, *, delay_seconds: int = 0) -> str:
        self.messages.append(message)
        return f"m-{len(self.messages)}"


class StaticSecrets:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get_string(self, secret_id: str) -> str:
        return self.values[secret_id]
