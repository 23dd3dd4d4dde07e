"""Domain errors. Adapters translate library and AWS errors into these, in one place each."""

from __future__ import annotations


class InsightsError(Exception):
    """Base of every error this system raises on purpose."""


class ConfigurationError(InsightsError):
    """A setting or secret is missing or malformed; retrying will not help."""


class SecretNotSet(ConfigurationError):
    """A secret Terraform declared has no value yet (the operator sets it after `apply`).

    Services that meet it log one line naming the secret and do nothing: between `terraform
    apply` and `put-secret-value` that is the expected state, not an error worth an alarm.
    """

    def __init__(self, secret_id: str) -> None:
        self.secret_id = secret_id
        super().__init__(
            f"secret {secret_id} has no value yet: set it as terraform/README.md says under "
            "Deploy; until then this service does nothing"
        )


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
