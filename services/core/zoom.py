"""Zoom: Server-to-Server OAuth, the two REST endpoints the pipeline reads, and file downloads
that stream to S3.

Facts relied on (Zoom API reference): tokens go in `Authorization: Bearer` only; the webhook's
`download_token` is a JWT valid about 24 h; S2S tokens last 1 h with no refresh token; a failed
download can come back as HTTP 200 with an HTML page or a tiny JSON body; UUIDs that start with
'/' or contain '//' must be double-encoded in paths.
"""

from __future__ import annotations

import base64
import calendar
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import jwt
import requests
from pydantic import BaseModel, ConfigDict

from services.core.backoff import Backoff
from services.core.errors import ConfigurationError, NotFound, PermanentError, TransientError
from services.core.observability import MetricUnit, logger, record_metric
from services.core.s3_stream import MultipartWriter
from services.core.secrets import SecretCache
from services.core.settings import ZOOM_DOWNLOAD_DOMAINS, ZoomApiSettings
from services.core.zoom_models import RecordingObject

TOKEN_RENEW_MARGIN_SECONDS = 60
MAX_PAGE_SIZE = 300  # the most records Zoom returns per page
# Small reads: a cut connection loses at most one chunk, the rest resumes with Range.
DOWNLOAD_CHUNK_BYTES = 32 * 1024
# Zoom answers a download with one 302 to its CDN; a few more hops are tolerated.
MAX_DOWNLOAD_REDIRECTS = 5
_NOT_AUDIO_TYPES = ("text/", "application/json", "application/xml", "application/problem")
# A host in ASCII DNS form. Anything else (Unicode look-alikes, percent signs, IP-v6 literals,
# underscores) is refused rather than normalised, so no two parsers can disagree about it.
_DNS_HOST = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)*")
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")


class ZoomAuthError(PermanentError):
    """Zoom refused our credentials (a configuration problem, not a transient one)."""


class DownloadUrlRefused(PermanentError):
    """A download URL outside the allowed Zoom hosts: no request is made to it, no token sent."""


class DownloadRejected(Exception):
    """A download attempt produced something other than the file (auth page, wrong size…)."""

    def __init__(self, reason: str, *, auth: bool = False, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.auth = auth
        self.permanent = permanent


@dataclass(frozen=True)
class ZoomCredentials:
    account_id: str
    client_id: str
    client_secret: str


@dataclass(frozen=True)
class DownloadUrlPolicy:
    """Where Zoom's tokens may go: https to `domains` (each and its subdomains), and plain http
    to exact loopback `host:port` origins (the local stack's fake Zoom only)."""

    domains: tuple[str, ...] = tuple(ZOOM_DOWNLOAD_DOMAINS.split(","))
    loopback_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        domains = tuple(domain.strip(".").lower() for domain in self.domains)
        origins = tuple(origin.lower() for origin in self.loopback_origins)
        object.__setattr__(self, "domains", domains)
        object.__setattr__(self, "loopback_origins", origins)


def download_url_refusal(url: str, policy: DownloadUrlPolicy) -> str | None:
    """Why `url` may not be fetched with a Zoom token, or None when it may.

    Allowed: https, no user information, the default port, and a host that is a listed domain
    or ends with "." + one (label boundaries: `zoom.us.evil.com` and `evilzoom.us` are not
    Zoom's); or http to exactly one of the listed loopback origins. The reason names the host
    at most, never the path or query string (which carry signatures).
    """
    if _CONTROL_OR_SPACE.search(url):
        return "the URL holds spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "the URL cannot be parsed"
    if "@" in parts.netloc:
        return "the URL carries user information"
    host = (parts.hostname or "").removesuffix(".")
    if not _DNS_HOST.fullmatch(host):
        return "the URL's host is not a plain DNS name"
    scheme = parts.scheme.lower()
    if scheme == "http" and port is not None and f"{host}:{port}" in policy.loopback_origins:
        return None
    if scheme != "https":
        return f"{scheme or 'a URL without a scheme'} is not https (host {host})"
    if port not in (None, 443):
        return f"port {port} is not https's (host {host})"
    if any(host == domain or host.endswith("." + domain) for domain in policy.domains):
        return None
    return f"host {host} is not a Zoom download host"


def encode_meeting_uuid(uuid: str) -> str:
    """Path form of a meeting UUID: double-encoded when it starts with '/' or contains '//'."""
    once = quote(uuid, safe="")
    if uuid.startswith("/") or "//" in uuid:
        return quote(once, safe="")
    return once


def jwt_expiry(token: str) -> float | None:
    """`exp` of a JWT read without verifying it (we are not its audience; Zoom verifies it)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, int | float) else None


def _retry_after_seconds(response: requests.Response) -> float:
    value = response.headers.get("Retry-After")
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return 0.0


class ZoomOAuth:
    """Server-to-Server OAuth tokens, cached in-process and renewed with < 60 s left."""

    def __init__(
        self,
        oauth_url: str,
        credentials: Callable[[], ZoomCredentials],
        *,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float = 10.0,
    ) -> None:
        self.oauth_url = oauth_url
        self._credentials = credentials
        self._session = session or requests.Session()
        self._clock = clock
        self._timeout = timeout
        self._token: str | None = None
        self._expires_at = 0.0

    def token(self, *, force_refresh: bool = False) -> str:
        if (
            not force_refresh
            and self._token
            and self._expires_at - self._clock() > TOKEN_RENEW_MARGIN_SECONDS
        ):
            return self._token
        creds = self._credentials()
        basic = base64.b64encode(f"{creds.client_id}:{creds.client_secret}".encode()).decode()
        backoff = Backoff(budget_seconds=30)
        while True:
            try:
                response = self._session.post(
                    self.oauth_url,
                    data={"grant_type": "account_credentials", "account_id": creds.account_id},
                    headers={"Authorization": f"Basic {basic}"},
                    timeout=self._timeout,
                )
            except requests.RequestException as e:
                if backoff.wait():
                    continue
                raise TransientError(f"Zoom OAuth unreachable: {type(e).__name__}") from e
            if response.status_code == 200:
                break
            if response.status_code in (429,) or response.status_code >= 500:
                if backoff.wait(_retry_after_seconds(response)):
                    continue
                raise TransientError(f"Zoom OAuth answered {response.status_code}")
            raise ZoomAuthError(
                f"Zoom OAuth refused the Server-to-Server credentials ({response.status_code});"
                " check the app's client id/secret and account id"
            )
        body = response.json()
        self._token = str(body["access_token"])
        self._expires_at = self._clock() + float(body.get("expires_in", 3600))
        return self._token

    def invalidate(self) -> None:
        self._token = None


class Participant(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    user_id: str | None = None
    name: str = ""
    user_email: str | None = None


class ZoomApi:
    """The REST endpoints under `/v2`, authenticated with S2S tokens."""

    def __init__(
        self,
        base_url: str,
        oauth: ZoomOAuth,
        *,
        session: requests.Session | None = None,
        retry_budget_seconds: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 15.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.oauth = oauth
        self._session = session or requests.Session()
        self._budget = retry_budget_seconds
        self._sleep = sleep
        self._timeout = timeout

    def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        backoff = Backoff(budget_seconds=self._budget, sleep=self._sleep)
        renewed = False
        while True:
            token = self.oauth.token()
            try:
                response = self._session.get(
                    f"{self.base_url}{path}",
                    params=params,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=self._timeout,
                )
            except requests.RequestException as e:
                if backoff.wait():
                    continue
                raise TransientError(f"Zoom API unreachable: {type(e).__name__}") from e
            status = response.status_code
            if status == 200:
                return dict(response.json())
            if status == 401 and not renewed:
                renewed = True
                self.oauth.invalidate()
                continue
            if status == 404:
                raise NotFound(f"Zoom has no such resource ({_zoom_message(response)})")
            if status == 429 or status >= 500:
                if backoff.wait(_retry_after_seconds(response)):
                    continue
                raise TransientError(f"Zoom API answered {status} ({_zoom_message(response)})")
            raise PermanentError(f"Zoom API answered {status} ({_zoom_message(response)})")

    def get_recordings(
        self, meeting_uuid: str, *, download_access_token_ttl: int | None = None
    ) -> tuple[RecordingObject, str | None]:
        """The meeting's recording files with fresh download URLs (and a download token)."""
        params: dict[str, Any] = {}
        if download_access_token_ttl:
            params = {"include_fields": "download_access_token", "ttl": download_access_token_ttl}
        body = self._get(f"/meetings/{encode_meeting_uuid(meeting_uuid)}/recordings", params)
        token = body.get("download_access_token")
        return RecordingObject.model_validate(body), (str(token) if token else None)

    def list_participants(self, meeting_uuid: str) -> list[Participant]:
        """Every participant of a past meeting, all pages, rejoins de-duplicated."""
        path = f"/past_meetings/{encode_meeting_uuid(meeting_uuid)}/participants"
        seen: dict[str, Participant] = {}
        next_token = ""
        while True:
            params: dict[str, Any] = {"page_size": 300}
            if next_token:
                params["next_page_token"] = next_token
            body = self._get(path, params)
            for raw in body.get("participants", []):
                participant = Participant.model_validate(raw)
                identity = participant.user_id or participant.id or participant.name
                known = seen.get(identity)
                if known is None or (not known.user_email and participant.user_email):
                    seen[identity] = participant
            next_token = str(body.get("next_page_token") or "")
            if not next_token:
                return list(seen.values())

    def list_user_recordings(
        self, start: date, end: date, *, user_id: str = "me", page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[RecordingObject]:
        """Meetings with cloud recordings between two dates (inclusive) within one calendar
        month, all pages. Zoom lists at most a month per request and, asked for more, silently
        answers for the last month only; `month_spans` cuts a longer range."""
        if start > end or (start.year, start.month) != (end.year, end.month):
            raise ValueError(f"{start}..{end} is not a range within one calendar month")
        next_token = ""
        while True:
            params: dict[str, Any] = {
                "from": start.isoformat(),
                "to": end.isoformat(),
                "page_size": page_size,
            }
            if next_token:
                params["next_page_token"] = next_token
            body = self._get(f"/users/{quote(user_id, safe='')}/recordings", params)
            answered = str(body.get("from") or start.isoformat())
            if answered != start.isoformat():
                raise PermanentError(
                    f"Zoom listed recordings from {answered}, not from {start}: meetings before"
                    " would be missed"
                )
            for raw in body.get("meetings", []):
                yield RecordingObject.model_validate(raw)
            next_token = str(body.get("next_page_token") or "")
            if not next_token:
                return


def month_spans(start: date, end: date) -> list[tuple[date, date]]:
    """`start`..`end` (inclusive) cut at calendar-month boundaries: each span lies within one
    month, and consecutive spans neither overlap nor leave a day out."""
    spans = []
    first = start
    while first <= end:
        month_end = first.replace(day=calendar.monthrange(first.year, first.month)[1])
        last = min(month_end, end)
        spans.append((first, last))
        first = last + timedelta(days=1)
    return spans


def _zoom_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict):
        return str(body.get("message") or body.get("errorMessage") or body.get("code") or "")
    return ""


@dataclass(frozen=True)
class DownloadSpec:
    file_id: str
    download_url: str
    file_size: int | None
    file_type: str  # M4A, MP4...


@dataclass
class DownloadResult:
    bytes: int
    attempts: int
    credential: str  # which credential succeeded: download_token, oauth, download_access_token
    resumed: int = 0


@dataclass
class _Progress:
    writer: MultipartWriter
    received: int = 0
    resumed: int = 0
    checked_head: bool = False
    resume_url: str | None = None


class ZoomDownloader:
    """Streams a recording file into S3, resuming cut connections and trying the next
    credential when Zoom's answer is not the file.

    Credentials, in order: the webhook's `download_token` (skipped when its `exp` has passed),
    an S2S OAuth token, a renewed S2S token, and finally a fresh download URL from the recordings
    API. A body that is HTML or JSON, has a non-media content type, lacks the MP4 `ftyp` box, or
    whose size differs from `file_size` is never stored as audio.

    A token is only ever sent to a URL `url_policy` allows (Zoom's hosts over https): a file
    whose URL is elsewhere is refused before any request (`DownloadUrlRefused`). Redirects are
    followed here, not by requests, so every hop that would carry the token is checked too, and
    the token never follows a redirect to another origin (Zoom's CDN URL is pre-signed).
    """

    def __init__(
        self,
        oauth: ZoomOAuth,
        api: ZoomApi,
        s3: Any,
        *,
        url_policy: DownloadUrlPolicy | None = None,
        session: requests.Session | None = None,
        retry_budget_seconds: float = 300.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 30.0,
    ) -> None:
        self.oauth = oauth
        self.api = api
        self.s3 = s3
        self.url_policy = url_policy or DownloadUrlPolicy()
        self._session = session or requests.Session()
        self._budget = retry_budget_seconds
        self._clock = clock
        self._sleep = sleep
        self._timeout = timeout

    def _routes(
        self, spec: DownloadSpec, download_token: str | None, meeting_uuid: str
    ) -> Iterator[tuple[str, str, Callable[[], str]]]:
        """(url, credential name, token) to try in turn; later ones cost more API calls."""
        if download_token:
            exp = jwt_expiry(download_token)
            if exp is None or exp > self._clock() + 30:
                yield spec.download_url, "download_token", lambda: download_token
            else:
                logger.info("download_token expired; using OAuth", file_id=spec.file_id)
        yield spec.download_url, "oauth", self.oauth.token
        yield spec.download_url, "oauth_renewed", lambda: self.oauth.token(force_refresh=True)
        url, access_token = self._fresh_download(meeting_uuid, spec.file_id)
        if access_token:
            yield url, "download_access_token", lambda: access_token
        yield url, "oauth_fresh_url", self.oauth.token

    def download_to_s3(
        self,
        spec: DownloadSpec,
        *,
        bucket: str,
        key: str,
        download_token: str | None,
        meeting_uuid: str,
    ) -> DownloadResult:
        """Stream `spec` to s3://bucket/key. Raises PermanentError or TransientError on failure
        (`DownloadUrlRefused` for a URL outside the allowed hosts, before any request)."""
        self._require_allowed(spec.download_url, spec.file_id)
        backoff = Backoff(budget_seconds=self._budget, sleep=self._sleep)
        attempts = 0
        last_reason = "no credential was accepted"
        for url, name, get_token in self._routes(spec, download_token, meeting_uuid):
            writer = MultipartWriter(
                self.s3, bucket, key, content_type=_content_type(spec.file_type)
            )
            progress = _Progress(writer=writer)
            try:
                while True:
                    attempts += 1
                    try:
                        self._attempt(url, get_token(), spec, progress)
                    except DownloadRejected as e:
                        last_reason = e.reason
                        if e.auth and progress.resume_url:
                            # The CDN link expired mid-file: ask Zoom again, keep what we have.
                            progress.resume_url = None
                        elif e.auth or e.permanent:
                            raise
                        if not backoff.wait():
                            raise TransientError(
                                f"file {spec.file_id}: {e.reason} (retry budget spent)"
                            ) from e
                        continue
                    size = writer.complete()
                    return DownloadResult(
                        bytes=size, attempts=attempts, credential=name, resumed=progress.resumed
                    )
            except DownloadRejected as e:
                writer.abort()
                if e.permanent:
                    raise PermanentError(f"file {spec.file_id}: {e.reason}") from e
                logger.info(
                    "download credential refused",
                    file_id=spec.file_id,
                    credential=name,
                    reason=e.reason,
                )
            except BaseException:
                writer.abort()
                raise
        raise PermanentError(f"file {spec.file_id}: {last_reason}")

    def _fresh_download(self, meeting_uuid: str, file_id: str) -> tuple[str, str | None]:
        try:
            recording, access_token = self.api.get_recordings(
                meeting_uuid, download_access_token_ttl=3600
            )
        except NotFound as e:
            raise PermanentError(f"file {file_id}: the recording no longer exists") from e
        urls = {f.id: f.download_url for f in recording.participant_audio_files}
        urls.update({f.id: f.download_url for f in recording.recording_files if f.id})
        url = urls.get(file_id)
        if url:
            return url, access_token
        raise PermanentError(f"file {file_id} is no longer listed in the meeting's recordings")

    def _require_allowed(self, url: str, file_id: str) -> None:
        """Refuse (and record) a URL no Zoom token may go to."""
        reason = download_url_refusal(url, self.url_policy)
        if reason is None:
            return
        logger.warning("download URL refused", file_id=file_id, reason=reason)
        record_metric("DownloadUrlsRefused", 1, MetricUnit.Count)
        raise DownloadUrlRefused(f"file {file_id}: download URL refused: {reason}")

    def _get(self, url: str, headers: dict[str, str], file_id: str) -> requests.Response:
        """GET `url`, following redirects by hand: a hop that would carry the token must be
        allowed, and the token is dropped on a redirect to another origin (what requests'
        `rebuild_auth` does, made explicit so the check cannot be skipped)."""
        target = url
        for _ in range(MAX_DOWNLOAD_REDIRECTS + 1):
            if "Authorization" in headers:
                self._require_allowed(target, file_id)
            try:
                response = self._session.get(
                    target,
                    headers=headers,
                    stream=True,
                    timeout=self._timeout,
                    allow_redirects=False,
                )
            except requests.RequestException as e:
                raise DownloadRejected(f"connection failed ({type(e).__name__})") from e
            if not response.is_redirect:
                return response
            location = urljoin(target, response.headers["Location"])
            response.close()
            if _origin(location) != _origin(target):
                headers = {k: v for k, v in headers.items() if k != "Authorization"}
            target = location
        raise DownloadRejected(f"more than {MAX_DOWNLOAD_REDIRECTS} redirects")

    def _attempt(self, url: str, token: str, spec: DownloadSpec, progress: _Progress) -> None:
        """One download (redirects included); appends to the writer. Raises DownloadRejected on
        any problem."""
        headers = {"Authorization": f"Bearer {token}"}
        target = url
        if progress.received and progress.resume_url:
            target = progress.resume_url
            headers = {"Range": f"bytes={progress.received}-"}
        elif progress.received:
            headers["Range"] = f"bytes={progress.received}-"
        response = self._get(target, headers, spec.file_id)
        with response:
            self._check_response(response, spec, progress)
            if progress.received and response.status_code == 206:
                progress.resumed += 1
            elif progress.received and response.status_code == 200:
                # The server ignored Range: skip what we already have.
                self._skip(response, progress.received)
            if response.url != url and not progress.resume_url:
                progress.resume_url = response.url
            try:
                for chunk in response.iter_content(chunk_size=DOWNLOAD_CHUNK_BYTES):
                    if not chunk:
                        continue
                    if not progress.checked_head:
                        _check_head(chunk, spec)
                        progress.checked_head = True
                    progress.writer.write(chunk)
                    progress.received += len(chunk)
                    if spec.file_size is not None and progress.received > spec.file_size:
                        raise DownloadRejected(
                            f"body is larger than file_size {spec.file_size}", permanent=True
                        )
            except requests.RequestException as e:
                raise DownloadRejected(
                    f"connection cut after {progress.received} bytes ({type(e).__name__})"
                ) from e
        if spec.file_size is not None and progress.received != spec.file_size:
            if _body_complete(response, progress):
                raise DownloadRejected(
                    f"got {progress.received} bytes, file_size says {spec.file_size}",
                    permanent=True,
                )
            raise DownloadRejected(f"body ended early at {progress.received} bytes")

    @staticmethod
    def _skip(response: requests.Response, count: int) -> None:
        remaining = count
        for chunk in response.iter_content(chunk_size=min(DOWNLOAD_CHUNK_BYTES, count)):
            remaining -= len(chunk)
            if remaining <= 0:
                break
        if remaining < 0:
            raise DownloadRejected("server ignored Range and the overlap could not be aligned")

    @staticmethod
    def _check_response(
        response: requests.Response, spec: DownloadSpec, progress: _Progress
    ) -> None:
        status = response.status_code
        if status in (401, 403):
            raise DownloadRejected(f"HTTP {status}: token refused", auth=True)
        if status == 404:
            raise DownloadRejected("HTTP 404: the file was deleted", permanent=True)
        if status == 416:
            raise DownloadRejected("HTTP 416: range not satisfiable")
        if status >= 400:
            raise DownloadRejected(f"HTTP {status}")
        content_type = response.headers.get("Content-Type", "").lower()
        if content_type.startswith(_NOT_AUDIO_TYPES):
            raise DownloadRejected(
                f"HTTP {status} with {content_type.split(';')[0]} instead of media "
                "(Zoom's sign of a refused token)",
                auth=True,
            )


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port made explicit."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or ""), port or {"http": 80, "https": 443}.get(scheme)


def _check_head(chunk: bytes, spec: DownloadSpec) -> None:
    stripped = chunk.lstrip()[:1]
    if stripped in (b"<", b"{"):
        raise DownloadRejected("body is HTML or JSON, not media", auth=True)
    if spec.file_type in ("M4A", "MP4") and b"ftyp" not in chunk[:64]:
        raise DownloadRejected("body has no MP4 'ftyp' box: not an M4A/MP4 file", permanent=True)


def _body_complete(response: requests.Response, progress: _Progress) -> bool:
    """True when the server said it sent everything (so a size mismatch is not a cut)."""
    length = response.headers.get("Content-Length")
    if length is None:
        return True
    expected_total = int(length)
    if response.status_code == 206:
        content_range = response.headers.get("Content-Range", "")
        total = content_range.rpartition("/")[2]
        return total.isdigit() and int(total) == progress.received
    return expected_total == progress.received


def _content_type(file_type: str) -> str:
    return {"M4A": "audio/mp4", "MP4": "video/mp4"}.get(file_type, "application/octet-stream")


def zoom_oauth(settings: ZoomApiSettings, secrets: SecretCache) -> ZoomOAuth:
    """S2S OAuth with the credentials read (and cached) from Secrets Manager on first use."""
    return ZoomOAuth(
        settings.zoom_oauth_url,
        lambda: load_credentials(
            secrets.get_json(
                settings.zoom_s2s_secret_arn, ("account_id", "client_id", "client_secret")
            )
        ),
    )


def load_credentials(secret: dict[str, Any]) -> ZoomCredentials:
    try:
        return ZoomCredentials(
            account_id=str(secret["account_id"]),
            client_id=str(secret["client_id"]),
            client_secret=str(secret["client_secret"]),
        )
    except KeyError as e:
        raise ConfigurationError(f"Zoom S2S secret lacks {e.args[0]}") from e
