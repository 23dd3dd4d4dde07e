from __future__ import annotations

import pytest

from services.core.errors import ConfigurationError
from services.core.settings import WebhookSettings, load_settings
from tests.support.settings import WEBHOOK_ENV


def test_missing_variables_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RECORDINGS_TABLE", "MERGE_QUEUE_URL", "ZOOM_WEBHOOK_SECRET_ARN"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigurationError) as caught:
        load_settings(WebhookSettings)
    message = str(caught.value)
    for name in ("RECORDINGS_TABLE", "MERGE_QUEUE_URL", "ZOOM_WEBHOOK_SECRET_ARN"):
        assert name in message


def test_values_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in WEBHOOK_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ZOOM_WEBHOOK_MAX_AGE_SECONDS", "60")
    settings = load_settings(WebhookSettings)
    assert settings.recordings_table == "x-recordings"
    assert settings.zoom_webhook_max_age_seconds == 60
    assert settings.zoom_webhook_max_future_skew_seconds == 300


def test_invalid_number_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECORDINGS_TABLE", "x-recordings")
    monkeypatch.setenv("MERGE_QUEUE_URL", "http://q")
    monkeypatch.setenv("ZOOM_WEBHOOK_SECRET_ARN", "arn")
    monkeypatch.setenv("ZOOM_WEBHOOK_MAX_AGE_SECONDS", "soon")
    with pytest.raises(ConfigurationError, match="ZOOM_WEBHOOK_MAX_AGE_SECONDS"):
        load_settings(WebhookSettings)
