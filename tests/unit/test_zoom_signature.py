from __future__ import annotations

import pytest

from services.webhook.zoom_signature import (
    SignatureRejected,
    TimestampWindow,
    url_validation_token,
    verify_zoom_signature,
    zoom_signature,
)

SECRET = "test-webhook-secret"
VECTOR_BODY = (
    b'{"event":"recording.completed","event_ts":1701461193266,"payload":{"account_id":"acc"}}'
)
VECTOR_TS = "1701461193"
VECTOR_SIG = "v0=46495c54b9b636054f866c2429f6396c20a1793d5f0d2fcac7683922078b902d"
WINDOW = TimestampWindow(max_age_seconds=90 * 60, max_future_skew_seconds=300)


def verify(
    body: bytes = VECTOR_BODY,
    ts: str | None = VECTOR_TS,
    sig: str | None = VECTOR_SIG,
    now: float = 1701461193,
    secret: str = SECRET,
) -> None:
    verify_zoom_signature(
        secret_token=secret,
        timestamp_header=ts,
        signature_header=sig,
        body=body,
        now=now,
        window=WINDOW,
    )


def test_url_validation_vector() -> None:
    assert (
        url_validation_token(SECRET, "qgg8vlvZRS6UYooatFL8Aw")
        == "0ded0bb0878ac48b6a98f75c065a2bfeea9b3bf7c4d77f3dcb1ba9f41304f9a4"
    )


def test_event_signature_vector() -> None:
    assert zoom_signature(SECRET, VECTOR_TS, VECTOR_BODY) == VECTOR_SIG
    verify()


def test_tampered_body_is_rejected() -> None:
    with pytest.raises(SignatureRejected, match="does not match"):
        verify(body=VECTOR_BODY.replace(b"acc", b"acd"))


def test_whitespace_change_is_rejected_because_the_raw_bytes_are_signed() -> None:
    with pytest.raises(SignatureRejected):
        verify(body=VECTOR_BODY.replace(b",", b", "))


def test_wrong_secret_is_rejected() -> None:
    with pytest.raises(SignatureRejected):
        verify(secret="another-secret")


@pytest.mark.parametrize(
    ("ts", "sig"), [(None, VECTOR_SIG), (VECTOR_TS, None), ("", ""), (None, None)]
)
def test_missing_headers_are_rejected(ts: str | None, sig: str | None) -> None:
    with pytest.raises(SignatureRejected, match="missing"):
        verify(ts=ts, sig=sig)


def test_non_numeric_timestamp_is_rejected() -> None:
    with pytest.raises(SignatureRejected, match="Unix time"):
        verify(ts="yesterday")


def test_timestamp_signed_but_altered_is_rejected() -> None:
    with pytest.raises(SignatureRejected, match="does not match"):
        verify(ts=str(int(VECTOR_TS) + 1), now=int(VECTOR_TS) + 1)


def test_zoom_retry_85_minutes_later_with_original_timestamp_passes() -> None:
    verify(now=int(VECTOR_TS) + 85 * 60)


def test_stale_timestamp_is_rejected() -> None:
    with pytest.raises(SignatureRejected, match="too old"):
        verify(now=int(VECTOR_TS) + 90 * 60 + 1)


def test_future_timestamp_within_skew_passes_and_beyond_is_rejected() -> None:
    verify(now=int(VECTOR_TS) - 300)
    with pytest.raises(SignatureRejected, match="future"):
        verify(now=int(VECTOR_TS) - 301)


def test_signature_with_non_ascii_garbage_is_rejected_not_crashing() -> None:
    with pytest.raises(SignatureRejected):
        verify(sig="v0=ñññ")


@pytest.mark.parametrize(
    "ts",
    [
        "+1701461193",  # int() takes a sign,
        " 1701461193",  # surrounding spaces,
        "1_701_461_193",  # underscores
        "١٧٠١٤٦١١٩٣",  # and any script's digits
        "9" * 400,  # and numbers no float clock can be compared with
        "1701461193.0",
        "0x6572ba49",
    ],
)
def test_only_unix_seconds_in_ascii_digits_are_a_timestamp(ts: str) -> None:
    # Signed correctly over the header as sent, so only the timestamp's form can refuse it.
    with pytest.raises(SignatureRejected, match="Unix time"):
        verify(ts=ts, sig=zoom_signature(SECRET, ts, VECTOR_BODY), now=1701461193.25)
