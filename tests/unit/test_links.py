"""Signed page links: valid, tampered, expired, for another meeting, signed with another key."""

from __future__ import annotations

import base64
import json

import jwt
import pytest

from services.core.links import (
    PageLinkExpired,
    PageLinkInvalid,
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
