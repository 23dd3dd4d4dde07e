"""In-memory stand-ins for the unit tier (the integration tier uses moto's server instead)."""

from __future__ import annotations

import threading

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
