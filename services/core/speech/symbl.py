"""Symbl's HTTP API: a thin client (the provider adapter is `symbl_provider`).

Symbl's availability is unconfirmed (see the Symbl API reference), so the base URL is a
setting. Facts relied on: tokens from `POST /oauth2/token:generate` with `expiresIn` seconds;
`POST /v1/process/audio/url` answers 201 `{conversationId, jobId}` or 429 when the account's
concurrent-job ceiling is reached (no Retry-After); `GET /v1/job/{id}` gives
`scheduled|in_progress|completed|failed`; `/summary` answers 404 until the job is complete.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter

from services.core.backoff import Backoff
from services.core.errors import (
    ConfigurationError,
    NotFound,
    PermanentError,
    TransientError,
)
from services.core.secrets import SecretCache
from services.core.settings import SpeechSettings
from services.core.speech.provider import (
    ConcurrencyLimitReached,
    JobStatus,
    NotReady,
    OutcomeUnknown,
    Speaker,
    SubmittedJob,
)

TOKEN_RENEW_MARGIN_SECONDS = 300


@dataclass(frozen=True)
class AudioSubmission:
    url: str
    name: str
    webhook_url: str
    channels: tuple[Speaker, ...] = ()  # one per channel, in channel order
    diarization_speakers: int | None = None
    language_code: str = "en-US"
    # Without channels: diarize (the mixed-audio fallback), or neither (a compact file, whose
    # speakers are given afterwards by speaker events).
    diarize: bool = True

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "url": self.url,
            "name": self.name,
            "webhookUrl": self.webhook_url,
            "languageCode": self.language_code,
            "mode": "default",
        }
        if self.channels:
            body["enableSeparateRecognitionPerChannel"] = True
            body["channelMetadata"] = [
                {
                    "channel": index,
                    "speaker": {k: v for k, v in (("name", s.name), ("email", s.email)) if v},
                }
                for index, s in enumerate(self.channels, start=1)
            ]
        elif self.diarize:
            body["enableSpeakerDiarization"] = True
            if self.diarization_speakers:
                body["diarizationSpeakerCount"] = self.diarization_speakers
        return body


@dataclass(frozen=True)
class SymblCredentials:
    app_id: str
    app_secret: str


def load_symbl_credentials(secret: dict[str, Any]) -> SymblCredentials:
    try:
        return SymblCredentials(str(secret["app_id"]), str(secret["app_secret"]))
    except KeyError as e:
        raise ConfigurationError(f"Symbl secret lacks {e.args[0]}") from e


def symbl_client(settings: SpeechSettings, secrets: SecretCache) -> SymblClient:
    """The client every service builds: base URL from settings, credentials read (and cached)
    from Secrets Manager when the first token is needed."""
    return SymblClient(
        settings.symbl_api_base_url,
        lambda: load_symbl_credentials(
            secrets.get_json(settings.symbl_credentials_secret_arn, ("app_id", "app_secret"))
        ),
        retry_budget_seconds=settings.symbl_retry_budget_seconds,
        timeout=settings.symbl_timeout_seconds,
    )


class SymblClient:
    """Thin HTTP client for Symbl's async, job and conversation APIs."""

    def __init__(
        self,
        base_url: str,
        credentials: Callable[[], SymblCredentials],
        *,
        session: requests.Session | None = None,
        retry_budget_seconds: float = 30.0,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = credentials
        self._session = session or _pooled_session()
        self._budget = retry_budget_seconds
        self._timeout = timeout
        self._clock = clock
        self._sleep = sleep
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()

    def _access_token(self, *, force: bool = False) -> str:
        with self._lock:
            if (
                not force
                and self._token
                and self._expires_at - self._clock() > TOKEN_RENEW_MARGIN_SECONDS
            ):
                return self._token
            creds = self._credentials()
            response = self._send(
                "POST",
                "/oauth2/token:generate",
                json={"type": "application", "appId": creds.app_id, "appSecret": creds.app_secret},
                authenticated=False,
            )
            if response.status_code == 401:
                raise ConfigurationError("Symbl refused the app id/secret (401)")
            if response.status_code != 200:
                raise TransientError(f"Symbl token:generate answered {response.status_code}")
            body = response.json()
            self._token = str(body["accessToken"])
            self._expires_at = self._clock() + float(body.get("expiresIn", 86400))
            return self._token

    def _send(
        self,
        method: str,
        path: str,
        *,
        authenticated: bool = True,
        idempotent: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        """One request with retries for connection errors and 5xx; other statuses returned.

        A request that is not idempotent (a job submission) is retried only when it provably
        never reached Symbl (the connection could not be opened). A read timeout, a cut
        connection or a 500/502/504 after it was sent leaves its outcome unknown: Symbl may have
        created the job. That raises `OutcomeUnknown` instead of sending it again.
        """
        backoff = Backoff(budget_seconds=self._budget, sleep=self._sleep)
        renewed = False
        while True:
            headers = {}
            if authenticated:
                headers["Authorization"] = f"Bearer {self._access_token(force=False)}"
            try:
                response = self._session.request(
                    method,
                    f"{self.base_url}{path}",
                    headers=headers,
                    timeout=self._timeout,
                    **kwargs,
                )
            except requests.RequestException as e:
                if not idempotent and not never_sent(e):
                    raise OutcomeUnknown(
                        f"Symbl {method} {path}: no answer ({type(e).__name__})"
                    ) from e
                if backoff.wait():
                    continue
                raise TransientError(f"Symbl unreachable: {type(e).__name__}") from e
            if response.status_code in (500, 502, 503, 504):
                # 503 says the service would not take the request at all, so even a submission
                # may be sent again; after a 500, 502 or 504 the job may exist.
                if not idempotent and response.status_code != 503:
                    raise OutcomeUnknown(f"Symbl {method} {path} answered {response.status_code}")
                if backoff.wait():
                    continue
                raise TransientError(f"Symbl {method} {path} answered {response.status_code}")
            if response.status_code == 401 and authenticated and not renewed:
                renewed = True
                self._access_token(force=True)
                continue
            return response

    @staticmethod
    def _fail(response: requests.Response, what: str) -> None:
        status = response.status_code
        message = _message(response)
        if status == 429:
            raise ConcurrencyLimitReached(f"{what}: {message}")
        if status == 404:
            raise NotFound(f"{what}: {message}")
        if status == 401:
            raise ConfigurationError(f"{what}: Symbl rejected our token twice ({message})")
        raise PermanentError(f"{what}: Symbl answered {status} ({message})")

    def submit_audio_url(self, submission: AudioSubmission) -> SubmittedJob:
        response = self._send(
            "POST", "/v1/process/audio/url", json=submission.body(), idempotent=False
        )
        if response.status_code not in (200, 201, 202):
            self._fail(response, "submit")
        body = response.json()
        return SubmittedJob(conversation_id=str(body["conversationId"]), job_id=str(body["jobId"]))

    def job_status(self, job_id: str) -> JobStatus:
        response = self._send("GET", f"/v1/job/{job_id}")
        if response.status_code != 200:
            self._fail(response, f"job {job_id}")
        try:
            return JobStatus(response.json()["status"])
        except (KeyError, ValueError) as e:
            raise TransientError(f"job {job_id}: unexpected status body") from e

    def conversation(self, conversation_id: str, part: str) -> dict[str, Any]:
        """`GET /v1/conversations/{id}/{part}` (part '' for the conversation itself)."""
        path = f"/v1/conversations/{conversation_id}" + (f"/{part}" if part else "")
        # Messages come with their words' times: a compact file's words are attributed and
        # timed one by one through its segment map.
        params = {"verbose": "true"} if part == "messages" else None
        response = self._send("GET", path, params=params)
        if response.status_code == 404 and part == "summary":
            raise NotReady("summary not ready yet")
        if response.status_code != 200:
            self._fail(response, f"conversation {part or 'get'}")
        body = response.json()
        return body if isinstance(body, dict) else {"items": body}

    def refresh_summary(self, conversation_id: str) -> bool:
        """`POST /v1/conversations/{id}/summary?refresh=true`: (re)generate the summary.

        A conversation processed without `enableSummary` gets one only this way; `GET
        .../summary` answers 404 until it is written. Repeating it only writes it again (the old
        one is deleted), so a retried request is harmless. Returns whether Symbl took the
        request; False when it refused it (400/404/405/501: not complete, or no such feature),
        in which case whatever summary exists can still be read.
        """
        response = self._send(
            "POST", f"/v1/conversations/{conversation_id}/summary", params={"refresh": "true"}
        )
        if response.status_code in (200, 201, 202, 204):
            return True
        if response.status_code in (400, 404, 405, 501):
            return False
        self._fail(response, "summary refresh")
        return False  # not reached: _fail raises

    def put_speaker_events(self, conversation_id: str, events: list[dict[str, Any]]) -> None:
        """`PUT /v1/conversations/{id}/speakers`: who spoke when, on the submitted file's clock.

        A PUT replaces the conversation's speaker events, so repeating it is harmless. Symbl
        documents no job or status for it: whether its 200 comes before the messages carry the
        speakers is unconfirmed, so the caller checks the messages afterwards.
        """
        response = self._send(
            "PUT", f"/v1/conversations/{conversation_id}/speakers", json={"speakerEvents": events}
        )
        if response.status_code not in (200, 201, 202, 204):
            self._fail(response, "speaker events")

    def create_experience(
        self, conversation_id: str, name: str, *, expires_in_seconds: int
    ) -> str | None:
        """A hosted summary page's URL, or None when the service does not offer one.

        The page is read-only and its URL expires after `expires_in_seconds` (Symbl's
        `summaryURLExpiresIn`, where 0 would mean never): whoever holds the email can open it
        exactly as long as the signed insights link next to it, not forever.
        """
        if expires_in_seconds <= 0:
            raise ValueError("expires_in_seconds must be positive (0 means never to Symbl)")
        response = self._send(
            "POST",
            f"/v1/conversations/{conversation_id}/experiences",
            json={"name": name, "summaryURLExpiresIn": expires_in_seconds, "readOnly": True},
        )
        if response.status_code in (404, 405, 501):
            return None
        if response.status_code not in (200, 201):
            self._fail(response, "experience")
        url = response.json().get("url")
        return str(url) if url else None


def never_sent(error: requests.RequestException) -> bool:
    """True when the request provably never reached the server: the connection could not be
    opened (refused, unresolvable, connect timeout). Anything later may have been received."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(error, requests.exceptions.ConnectionError):
        reason = error.args[0] if error.args else None
        inner = getattr(reason, "reason", reason)
        return isinstance(inner, urllib3.exceptions.NewConnectionError)  # unresolvable too
    return False


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict):
        return str(body.get("message", ""))[:300]
    return ""


def _pooled_session() -> requests.Session:
    """A session keeping enough connections for a pump's concurrent submissions (20)."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_maxsize=32)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
