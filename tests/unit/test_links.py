"""Signed page links: valid, tampered, expired, for another meeting, signed with another key; and
the signing key's minimum length."""

from __future__ import annotations

import base64
import json

import jwt
import pytest

from sandbox.credentials import SandboxCredentials
from services.core.errors import ConfigurationError
from services.core.links import (
    PageLinkExpired,
    PageLinkInvalid,
    checked_signing_key,
    make_page_token,
    read_page_token,
)

KEY = "k" * 48
UUID = "aB3+/cD==/x+"
NOW = 1_800_000_000.0
DAY = 86_400


def test_valid_token_opens_its_meeting_until_it_expires() -> None:
    token = make_page_token(UUID, KEY, 30 * DAY, NOW)
    read_page_token(token, UUID, KEY, NOW)
    read_page_token(token, UUID, KEY, NOW + 30 * DAY - 1)
    with pytest.raises(PageLinkExpired):
        read_page_token(token, UUID, KEY, NOW + 30 * DAY)


def test_token_for_another_meeting_is_invalid_not_expired() -> None:
    token = make_page_token(UUID, KEY, DAY, NOW)
    for other in ("aB3+/cD==/x", "aB3 /cD==/x+", UUID.upper(), ""):
        with pytest.raises(PageLinkInvalid):
            read_page_token(token, other, KEY, NOW)
    with pytest.raises(PageLinkInvalid):  # expired too, but a foreign token reveals nothing
        read_page_token(token, "another", KEY, NOW + 2 * DAY)


def test_tampered_payload_or_signature_is_invalid() -> None:
    token = make_page_token(UUID, KEY, DAY, NOW)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["exp"] += 365 * DAY
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    for bad in (f"{header}.{forged}.{signature}", f"{header}.{payload}.{flipped}", "x", ""):
        with pytest.raises(PageLinkInvalid):
            read_page_token(bad, UUID, KEY, NOW)


def test_other_key_and_unsigned_tokens_are_invalid() -> None:
    with pytest.raises(PageLinkInvalid):
        read_page_token(make_page_token(UUID, "z" * 48, DAY, NOW), UUID, KEY, NOW)
    unsigned = jwt.encode(
        {"sub": UUID, "aud": "insights-page", "exp": int(NOW) + DAY}, key="", algorithm="none"
    )
    with pytest.raises(PageLinkInvalid):
        read_page_token(unsigned, UUID, KEY, NOW)


def test_expired_genuine_token_is_reported_as_expired() -> None:
    token = make_page_token(UUID, KEY, 60, NOW)
    with pytest.raises(PageLinkExpired):
        read_page_token(token, UUID, KEY, NOW + 3600)


def test_lifetime_must_be_positive() -> None:
    with pytest.raises(ValueError, match="lifetime"):
        make_page_token(UUID, KEY, 0, NOW)


KEY_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:p/link-signing-key-AbCdEf"


@pytest.mark.parametrize("short", ["x" * 31, "é" * 15 + "x", ""])
def test_a_signing_key_under_32_bytes_is_refused_naming_the_secret(short: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        checked_signing_key(short, KEY_ARN)
    message = str(refused.value)
    assert KEY_ARN in message and "32 bytes" in message
    if short:
        assert short not in message


@pytest.mark.parametrize("key", ["x" * 32, "é" * 16, KEY])
def test_a_signing_key_of_32_bytes_or_more_is_used_as_it_is(key: str) -> None:
    assert checked_signing_key(key, KEY_ARN) == key


def test_the_sandbox_link_key_is_long_enough() -> None:
    key = SandboxCredentials().link_signing_key
    assert checked_signing_key(key, "sandbox") == key
