"""Secrets from Secrets Manager, read by ARN and cached per container."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from services.core import aws
from services.core.errors import ConfigurationError, SecretUnavailable

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
            if code in _PERMANENT_CODES:
                raise ConfigurationError(f"secret {secret_id} cannot be read: {code}") from e
            raise SecretUnavailable(f"secret {secret_id} unavailable: {code}") from e
        except BotoCoreError as e:
            raise SecretUnavailable(f"secret {secret_id} unavailable: {type(e).__name__}") from e
        value = response.get("SecretString")
        if not value:
            raise ConfigurationError(f"secret {secret_id} has no string value")
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
        missing = [k for k in required if not value.get(k)]
        if missing:
            raise ConfigurationError(f"secret {secret_id} lacks {', '.join(missing)}")
        return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
