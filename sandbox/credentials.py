"""Credentials of the local stack: fresh random values per run, shared by the fakes (which
check them) and Secrets Manager (where the services read them). Nothing real, nothing fixed."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field


def _token() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class SandboxCredentials:
    zoom_webhook_secret: str = field(default_factory=_token)
    zoom_account_id: str = field(default_factory=lambda: "acct-" + secrets.token_hex(6))
    zoom_client_id: str = field(default_factory=_token)
    zoom_client_secret: str = field(default_factory=_token)
    symbl_app_id: str = field(default_factory=_token)
    symbl_app_secret: str = field(default_factory=_token)
    link_signing_key: str = field(default_factory=lambda: secrets.token_urlsafe(48))

    def secret_values(self) -> dict[str, str]:
        """Values for `provision`, keyed as `SECRET_NAMES`."""
        return {
            "zoom-webhook-secret-token": self.zoom_webhook_secret,
            "zoom-s2s-credentials": json.dumps(
                {
                    "account_id": self.zoom_account_id,
                    "client_id": self.zoom_client_id,
                    "client_secret": self.zoom_client_secret,
                }
            ),
            "symbl-credentials": json.dumps(
                {"app_id": self.symbl_app_id, "app_secret": self.symbl_app_secret}
            ),
            "link-signing-key": self.link_signing_key,
        }
