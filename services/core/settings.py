"""Validated settings, read once per process from the environment.

Environment variables carry names, ARNs and URLs only; secret values live in Secrets Manager.
A missing or malformed variable fails at start with a message that names it.
"""

from __future__ import annotations

from functools import cache
from typing import Any, TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.core.errors import ConfigurationError


class CoreSettings(BaseSettings):
    """What every service needs: where the state lives and how to log."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    recordings_table: str = Field(min_length=3, description="DynamoDB table of recordings")
    record_retention_days: int = Field(default=90, ge=1, le=3650)
    log_level: str = "INFO"


class WebhookSettings(CoreSettings):
    """The HTTP entry: Zoom webhook intake."""

    merge_queue_url: str = Field(min_length=1)
    zoom_webhook_secret_arn: str = Field(min_length=1)
    # Zoom retries at +5, +25 and +85 minutes and may keep the first timestamp, so the window
    # must cover 90 minutes into the past; a little future skew absorbs clock drift.
    zoom_webhook_max_age_seconds: int = Field(default=90 * 60, ge=1)
    zoom_webhook_max_future_skew_seconds: int = Field(default=5 * 60, ge=0)
    secret_cache_seconds: int = Field(default=300, ge=0)


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings(cls: type[SettingsT], **overrides: Any) -> SettingsT:
    """Build settings from the environment, naming every missing or invalid variable."""
    try:
        return cls(**overrides)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            name = ".".join(str(p) for p in err["loc"]).upper()
            problems.append(f"{name}: {err['msg']}")
        raise ConfigurationError(
            f"invalid configuration for {cls.__name__}: " + "; ".join(problems)
        ) from e


@cache
def cached_settings(cls: type[SettingsT]) -> SettingsT:
    """Settings read once per container; tests call `cached_settings.cache_clear()`."""
    return load_settings(cls)
