"""Secrets from Secrets Manager, read by ARN and cached per container."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from services.core import aws
from services.core.errors import ConfigurationError, SecretNotSet, SecretUnavailable
from services.core.observability import logger

# A message that waits for a secret comes back this much later (SQS's longest delay).
SECRET_WAIT_SECONDS = 900

_PERMANENT_CODES = {"ResourceNotFoundException", "AccessDeniedException", "InvalidRequestException"}


class SecretReader(Protocol):
    def get_string(self, secret_id: str) -> str: ...


class SecretCache:
    """Reads secret strings by ARN; each value is kept for `ttl_seconds` (rotation takes effect)."""

    def __init__(
        self,
        ttl_seconds: float = 300.0,
        client_factory: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._client_factory = client_factory or (lambda: aws.client("secretsmanager"))
        self._clock = clock
        self._values: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def get_string(self, secret_id: str) -> str:
        now = self._clock()
        with self._lock:
            hit = self._values.get(secret_id)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        try:
            response = self._client_factory().get_secret_value(SecretId=secret_id)
        except ClientError as e:
            code = aws.error_code(e)
            if code == "ResourceNotFoundException":
                # A declared secret without a version (AWSCURRENT) answers this; so would a wrong
                # ARN, which Terraform's wiring rules out. Either way: the value is not set.
                raise SecretNotSet(secret_id) from e
            if code in _PERMANENT_CODES:
                raise ConfigurationError(f"secret {secret_id} cannot be read: {code}") from e
            raise SecretUnavailable(f"secret {secret_id} unavailable: {code}") from e
        except BotoCoreError as e:
            raise SecretUnavailable(f"secret {secret_id} unavailable: {type(e).__name__}") from e
        value = response.get("SecretString")
        if not value or not str(value).strip():
            raise SecretNotSet(secret_id)
        with self._lock:
            self._values[secret_id] = (now, value)
        return str(value)

    def get_json(self, secret_id: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
        """A secret holding a JSON object; `required` keys must be present and non-empty."""
        raw = self.get_string(secret_id)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ConfigurationError(f"secret {secret_id} is not a JSON object") from e
        if not isinstance(value, dict):
            raise ConfigurationError(f"secret {secret_id} is not a JSON object")
        if not value:  # "{}": a placeholder, not a value
            raise SecretNotSet(secret_id)
        missing = [k for k in required if not value.get(k)]
        if missing:
            raise ConfigurationError(f"secret {secret_id} lacks {', '.join(missing)}")
        return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


def waiting_for_secrets(secrets: SecretReader, secret_ids: Iterable[str]) -> bool:
    """True, after logging one line that names it, when one of `secret_ids` has no value yet.

    Between `terraform apply` and the operator's `put-secret-value` a service checks this before
    it starts work and, while it is true, does nothing: that is the expected state of a new
    stack, not an error worth an alarm. Other read failures (throttling, access denied) raise.
    """
    for secret_id in secret_ids:
        try:
            secrets.get_string(secret_id)
        except SecretNotSet as e:
            logger.warning(str(e), secret=e.secret_id)
            return True
    return False
