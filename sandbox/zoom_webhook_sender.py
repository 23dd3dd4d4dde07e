"""Zoom's side of webhook delivery: sign exactly the bytes sent, retry like Zoom does.

Zoom sends compact JSON, signs `v0:<timestamp>:<body>`, counts only 200/204 within 3 s as success
and retries 3 more times at +5, +20 and +60 minutes. `time_scale` compresses that schedule for
tests and the demo (0.001 turns 85 minutes into about 5 s).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from services.webhook.zoom_signature import url_validation_token, zoom_signature

ZOOM_RETRY_DELAYS_SECONDS = (5 * 60, 20 * 60, 60 * 60)
ZOOM_TIMEOUT_SECONDS = 3.0


def compact_json(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class DeliveryResult:
    delivered: bool
    statuses: list[int | str] = field(default_factory=list)

    @property
    def attempts(self) -> int:
        return len(self.statuses)


@dataclass
class ZoomWebhookSender:
    url: str
    secret_token: str
    timeout: float = ZOOM_TIMEOUT_SECONDS
    retry_delays: tuple[float, ...] = ZOOM_RETRY_DELAYS_SECONDS
    time_scale: float = 1.0
    # Zoom does not say whether a retry is re-signed with a new timestamp; default to the harder
    # case for the receiver's freshness window: the first timestamp is kept.
    refresh_timestamp_on_retry: bool = False
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time
    session: requests.Session = field(default_factory=requests.Session)

    def signed_headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        ts = str(int(self.clock()) if timestamp is None else timestamp)
        return {
            "content-type": "application/json; charset=utf-8",
            "x-zm-request-timestamp": ts,
            "x-zm-signature": zoom_signature(self.secret_token, ts, body),
            "user-agent": "Zoom Marketplace/1.0a",
        }

    def deliver(self, event: dict[str, Any]) -> DeliveryResult:
        body = compact_json(event)
        result = DeliveryResult(delivered=False)
        timestamp = int(self.clock())
        delays = (0.0, *self.retry_delays)
        for attempt, delay in enumerate(delays):
            if delay:
                self.sleep(delay * self.time_scale)
            if attempt and self.refresh_timestamp_on_retry:
                timestamp = int(self.clock())
            try:
                response = self.session.post(
                    self.url,
                    data=body,
                    headers=self.signed_headers(body, timestamp),
                    timeout=self.timeout,
                )
                result.statuses.append(response.status_code)
                if response.status_code in (200, 204):
                    result.delivered = True
                    return result
            except requests.Timeout:
                result.statuses.append("timeout")
            except requests.ConnectionError:
                result.statuses.append("connection_error")
        return result

    def validate_endpoint(self) -> bool:
        """Zoom's URL validation: the endpoint must echo plainToken with its HMAC."""
        plain = secrets.token_urlsafe(16)
        event = {
            "payload": {"plainToken": plain},
            "event_ts": int(self.clock() * 1000),
            "event": "endpoint.url_validation",
        }
        body = compact_json(event)
        response = self.session.post(
            self.url, data=body, headers=self.signed_headers(body), timeout=self.timeout
        )
        if response.status_code != 200:
            return False
        answer = response.json()
        return bool(
            answer.get("plainToken") == plain
            and answer.get("encryptedToken") == url_validation_token(self.secret_token, plain)
        )
