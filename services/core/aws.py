"""boto3 clients, created on first use and never at import time.

boto3 honours `AWS_ENDPOINT_URL` (and per-service `AWS_ENDPOINT_URL_<SERVICE>`) natively, so the
same code talks to AWS, moto's server or LocalStack. Clients are cached per process because
building one costs milliseconds on a cold start; tests that move the endpoint call `reset_clients`.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

_lock = threading.Lock()
_clients: dict[str, Any] = {}

_CONFIG = Config(
    retries={"max_attempts": 5, "mode": "standard"},
    connect_timeout=5,
    read_timeout=30,
    max_pool_connections=32,  # the pump submits from up to 20 threads at once
)


def client(service: str) -> Any:
    """A shared boto3 client for `service` in the configured region."""
    cached = _clients.get(service)
    if cached is not None:
        return cached
    with _lock:
        cached = _clients.get(service)
        if cached is None:
            cached = boto3.session.Session().client(service, config=_CONFIG)  # type: ignore[call-overload]
            _clients[service] = cached
        return cached


def reset_clients() -> None:
    """Forget cached clients (after the endpoint or credentials changed)."""
    with _lock:
        _clients.clear()


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError, or '' for anything else."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def refused_item(exc: BaseException) -> dict[str, Any]:
    """The item a conditional DynamoDB write found when it was refused (the write asked for
    `ReturnValuesOnConditionCheckFailure="ALL_OLD"`); empty when there was none."""
    response = getattr(exc, "response", None)
    item = response.get("Item") if isinstance(response, dict) else None
    return dict(item) if isinstance(item, dict) else {}
