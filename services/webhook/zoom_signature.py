"""Zoom webhook authentication: the `x-zm-signature` HMAC and the URL-validation challenge."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

# Zoom sends Unix seconds. Anything else (signs, spaces, underscores and non-ASCII digits that int()
# would accept, or a number too large to compare with a float clock) is refused before any use.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class SignatureRejected(Exception):
    """The request is not provably from Zoom; the reason is safe to return to the caller."""


@dataclass(frozen=True)
class TimestampWindow:
    """How far a signed timestamp may lie in the past (Zoom's retries) and in the future (skew)."""

    max_age_seconds: int
    max_future_skew_seconds: int


def zoom_signature(secret_token: str, timestamp: str, body: bytes) -> str:
    """`v0=` + hex HMAC-SHA256 over `v0:<timestamp>:<raw body>`."""
    message = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret_token.encode(), message, hashlib.sha256).hexdigest()


def verify_zoom_signature(
    *,
    secret_token: str,
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    now: float,
    window: TimestampWindow,
) -> None:
    """Raise SignatureRejected unless the raw body is signed by `secret_token` and fresh."""
    if not timestamp_header or not signature_header:
        raise SignatureRejected("missing x-zm-request-timestamp or x-zm-signature header")
    if not _TIMESTAMP.fullmatch(timestamp_header):
        raise SignatureRejected("x-zm-request-timestamp is not a Unix time in seconds")
    timestamp = int(timestamp_header)
    expected = zoom_signature(secret_token, timestamp_header, body)
    if not hmac.compare_digest(expected.encode(), signature_header.encode()):
        raise SignatureRejected("signature does not match")
    age = now - timestamp
    if age > window.max_age_seconds:
        raise SignatureRejected("request timestamp is too old")
    if -age > window.max_future_skew_seconds:
        raise SignatureRejected("request timestamp is in the future")


def url_validation_token(secret_token: str, plain_token: str) -> str:
    """The `encryptedToken` Zoom expects: hex HMAC-SHA256 of plainToken keyed by the secret."""
    return hmac.new(secret_token.encode(), plain_token.encode(), hashlib.sha256).hexdigest()
