"""Signed, expiring links to a meeting's insights page.

The token is a JWT (HS256) whose subject is the meeting UUID exactly as Zoom sent it, so a link
opens one meeting only; the key lives in Secrets Manager. Callers pass `now`, which keeps expiry
testable and lets the page answer "expired" (410) apart from "invalid" (404): only a token with a
valid signature for this meeting can ever be reported as expired, so a guess learns nothing.
"""

from __future__ import annotations

import hmac

import jwt

from services.core.errors import ConfigurationError, InsightsError

ALGORITHM = "HS256"
AUDIENCE = "insights-page"
# RFC 7518 §3.2: an HS256 key must be at least as long as the hash output, 256 bits.
MIN_SIGNING_KEY_BYTES = 32


class PageLinkError(InsightsError):
    """A page token that does not open this page."""


class PageLinkInvalid(PageLinkError):
    """Malformed, forged, for another meeting or signed with another key."""


class PageLinkExpired(PageLinkError):
    """Genuine and for this meeting, but past its expiry."""


def checked_signing_key(value: str, secret_id: str) -> str:
    """`value`, the link-signing key read from secret `secret_id`, when it is long enough to sign
    with; a shorter key raises ConfigurationError naming the secret (never its value), so that a
    service stops at start instead of handing out links anyone could forge."""
    if len(value.encode()) < MIN_SIGNING_KEY_BYTES:
        raise ConfigurationError(
            f"secret {secret_id}: the link-signing key is shorter than {MIN_SIGNING_KEY_BYTES}"
            " bytes; set a longer random value as terraform/README.md says under Deploy"
        )
    return value


def make_page_token(meeting_uuid: str, key: str, lifetime_s: int, now: float) -> str:
    """A token opening `meeting_uuid`'s page until `now + lifetime_s`."""
    if lifetime_s <= 0:
        raise ValueError("lifetime_s must be positive")
    issued = int(now)
    claims = {"sub": meeting_uuid, "aud": AUDIENCE, "iat": issued, "exp": issued + lifetime_s}
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def read_page_token(token: str, meeting_uuid: str, key: str, now: float) -> None:
    """Accept the token for `meeting_uuid` at `now`, or raise PageLinkInvalid/PageLinkExpired.

    The signature, audience and subject are checked before the expiry, so an expired token is
    reported as such only when it is otherwise genuine.
    """
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            # PyJWT reads the wall clock; times are checked below against the caller's `now`.
            options={
                "require": ["sub", "aud", "exp"],
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.InvalidTokenError as e:
        raise PageLinkInvalid("page token rejected") from e
    subject = claims["sub"]
    if not isinstance(subject, str) or not hmac.compare_digest(
        subject.encode(), meeting_uuid.encode()
    ):
        raise PageLinkInvalid("page token is for another meeting")
    expires = claims["exp"]
    if not isinstance(expires, int | float):
        raise PageLinkInvalid("page token has no usable expiry")
    if now >= expires:
        raise PageLinkExpired("page token expired")
