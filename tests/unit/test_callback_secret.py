"""Callback secrets name their meeting (so the callback reads it by key) and stay unguessable."""

from __future__ import annotations

import pytest

from services.core.transcription_jobs import (
    callback_meeting,
    new_callback_secret,
    secret_digest,
    secret_matches,
)


@pytest.mark.parametrize("uuid", ["4444AAAiAAAAAiAiAiiAii==", "/ajXp112QmuoKj4854875==", "//a+b/c"])
def test_a_secret_names_its_meeting_and_is_new_each_time(uuid: str) -> None:
    first, second = new_callback_secret(uuid), new_callback_secret(uuid)
    assert callback_meeting(first) == callback_meeting(second) == uuid
    assert first != second
    # Safe as one URL path segment, with at least 256 random bits after the key.
    assert "/" not in first and "+" not in first and "=" not in first
    assert len(first.partition(".")[2]) >= 43


@pytest.mark.parametrize(
    "secret", ["", "no-dot", ".only-token", "key-only.", "%%%.token", "a" * 1001]
)
def test_secrets_that_are_not_ours_name_no_meeting(secret: str) -> None:
    assert callback_meeting(secret) is None


def test_only_the_whole_secret_matches_its_digest() -> None:
    secret = new_callback_secret("m/1==")
    digest = secret_digest(secret)
    assert secret_matches(secret, digest)
    assert not secret_matches(secret[:-1], digest)
    assert not secret_matches(new_callback_secret("m/1=="), digest)
    assert not secret_matches(secret, None)
