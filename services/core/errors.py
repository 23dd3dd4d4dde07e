"""Domain errors. Adapters translate library and AWS errors into these, in one place each."""

from __future__ import annotations


class InsightsError(Exception):
    """Base of every error this system raises on purpose."""


class ConfigurationError(InsightsError):
    """A setting or secret is missing or malformed; retrying will not help."""


class SecretUnavailable(InsightsError):
    """A secret could not be read from Secrets Manager."""


class NotFound(InsightsError):
    """The thing asked for does not exist."""


class AlreadyExists(InsightsError):
    """A create-if-absent found the item already there."""


class StateConflict(InsightsError):
    """A conditional transition found the item in another state (a duplicate or late message)."""

    def __init__(self, meeting_uuid: str, expected: tuple[str, ...], actual: str | None) -> None:
        self.meeting_uuid = meeting_uuid
        self.expected = expected
        self.actual = actual
        super().__init__(f"recording is in state {actual!r}, expected one of {', '.join(expected)}")


class TransientError(InsightsError):
    """A failure worth retrying (throttling, 5xx, a cut connection)."""


class PermanentError(InsightsError):
    """A failure that retrying cannot fix (a 4xx that will not change, bad input)."""


class QueueError(TransientError):
    """A message could not be sent or deleted."""
