"""Authentication (§1): the account's access tokens, minted by `POST /oauth2/token:generate`,
and the tokens a request presents (`Authorization: Bearer` or `x-api-key`)."""

from __future__ import annotations

import math
import secrets
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

import jwt
from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from sandbox.fake_symbl.model import _error

if TYPE_CHECKING:
    from sandbox.fake_symbl.state import FakeSymblState

TOKEN_INVALID_MESSAGE = "Token validation failed for provided token."


class _Tokens:
    """Issued tokens and their expiry; the state calls it under its lock."""

    def __init__(self) -> None:
        self._jwt_secret = secrets.token_hex(32)
        self._expiry: dict[str, float] = {}  # token -> monotonic expiry
        self._current: str | None = None

    def issue(self, subject: str, lifetime: float, reissue_margin: float) -> tuple[str, int]:
        """(token, expiresIn), reusing the current token until it has at most `reissue_margin`
        seconds left."""
        now = time.monotonic()
        token = self._current
        if token is not None and token in self._expiry:
            remaining = self._expiry[token] - now
            if remaining > reissue_margin:
                return token, int(remaining)
        issued_at = int(time.time())
        token = jwt.encode(
            {
                "iss": "fake-symbl",
                "sub": subject,
                "iat": issued_at,
                "exp": issued_at + math.ceil(lifetime),
                "jti": uuid.uuid4().hex,
            },
            self._jwt_secret,
            algorithm="HS256",
        )
        self._expiry = {t: exp for t, exp in self._expiry.items() if exp > now}
        self._expiry[token] = now + lifetime
        self._current = token
        return token, int(lifetime)

    def valid(self, presented: Iterable[str]) -> bool:
        now = time.monotonic()
        return any(self._expiry.get(token, 0.0) > now for token in presented)

    def expire_all(self) -> None:
        self._expiry.clear()
        self._current = None


def _presented_tokens() -> list[str]:
    tokens = []
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        tokens.append(credentials.strip())
    if api_key := request.headers.get("x-api-key", "").strip():
        tokens.append(api_key)
    return tokens


def add_routes(app: Flask, state: FakeSymblState) -> None:
    """`POST /oauth2/token:generate` (§1)."""

    @app.post("/oauth2/token:generate", endpoint="token")
    def token() -> ResponseReturnValue:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or body.get("type") != "application":
            return _error(400, 'Body must be {"type":"application","appId":...,"appSecret":...}.')
        issued = state._issue_token(body.get("appId"), body.get("appSecret"))
        if issued is None:
            return _error(401, TOKEN_INVALID_MESSAGE)
        access_token, expires_in = issued
        return jsonify(accessToken=access_token, expiresIn=expires_in)
