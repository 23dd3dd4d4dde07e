"""A fake Zoom (Flask) faithful to the team's Zoom API reference (zoom-api.md), with faults.

It plays S2S OAuth, the download flow (Bearer-only `download_url` -> 302 -> pre-signed `/cdn/` URL
with Range support), the recordings, past-participants and user-recordings REST endpoints with
Zoom's double-encoded UUID rule and one-month listing range, and the failure modes our client must
survive (§5.3, §7). Every request is logged so tests can assert what a client actually sent.

    state = FakeZoomState()
    state.add_meeting(meeting)
    with serve(state) as server:
        event = build_recording_completed(
            meeting, base_url=server.url, download_token=state.make_download_token(meeting)
        )
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import json
import math
import re
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, get_args
from urllib.parse import parse_qs, unquote, urlsplit

import jwt
from flask import Flask, Response, request
from werkzeug.routing import BaseConverter

from sandbox.http_server import LoopbackServer
from sandbox.synth import (
    DEFAULT_ACCOUNT_ID,
    SyntheticFile,
    SyntheticMeeting,
    build_recording_completed,
    build_recording_object,
)

Endpoint = Literal["oauth", "download", "cdn", "recordings", "participants", "user_recordings"]
FaultKind = Literal[
    "http_500",
    "http_503",
    "http_429",
    "slow_body",
    "cut_body",
    "html_200",
    "json_124",
    "expired_token",
    "wrong_size",
    "not_found",
]
AuthKind = Literal[
    "none", "basic", "s2s", "download_token", "download_access_token", "query", "invalid", "expired"
]

DOWNLOAD_TOKEN_ISSUER = "https://event.zoom.us"
DOWNLOAD_TOKEN_AUDIENCE = "https://oauth.zoom.us"
DEFAULT_CLIENT_ID = "sandbox-client-id"
DEFAULT_CLIENT_SECRET = "sandbox-client-secret"
DEFAULT_SCOPE = (
    "cloud_recording:read:list_recording_files:admin "
    "cloud_recording:read:list_user_recordings:admin "
    "meeting:read:list_past_participants:admin"
)
PAGE_TOKEN_TTL_S = 15 * 60
MAX_PAGE_SIZE = 300
MAX_DOWNLOAD_ACCESS_TTL_S = 7 * 24 * 3600
STREAM_CHUNK = 64 * 1024
ONLY_THE_HOST_HTML = (
    "<!DOCTYPE html><html><head><title>Error - Zoom</title></head><body>"
    "<div class='error-message'>Only the host can download this recording.</div></body></html>"
)

# Which fault kinds make sense where. Download faults before the redirect are "auth stage", the
# ones that shape the body are applied by the CDN.
_AUTH_STAGE: frozenset[str] = frozenset(
    {"http_500", "http_503", "http_429", "html_200", "json_124", "expired_token", "not_found"}
)
_BODY_STAGE: frozenset[str] = frozenset({"slow_body", "cut_body", "wrong_size"})
_REST_KINDS: frozenset[str] = frozenset(
    {"http_500", "http_503", "http_429", "expired_token", "not_found"}
)
_FAULTS_BY_ENDPOINT: dict[str, frozenset[str]] = {
    "oauth": frozenset({"http_500", "http_503", "http_429"}),
    "download": _AUTH_STAGE | _BODY_STAGE,
    "recordings": _REST_KINDS,
    "participants": _REST_KINDS,
    "user_recordings": _REST_KINDS,
}
_RATE_LABEL = {
    "oauth": "Light",
    "download": "Light",
    "recordings": "Light",
    "participants": "Medium",
    "user_recordings": "Medium",
}
_NOT_FOUND = {
    "download": (3301, "This recording does not exist."),
    "recordings": (3301, "This recording does not exist."),
    "participants": (3001, "Meeting does not exist."),
    "user_recordings": (1001, "User does not exist."),
}


@dataclass
class Fault:
    """An injected failure; `remaining` counts down per matching request (None: until cleared)."""

    kind: FaultKind
    endpoint: Endpoint
    file_id: str | None
    remaining: int | None
    retry_after: str | None
    rate_limit_headers: bool
    delay_s: float
    chunk_size: int
    cut_after: int
    size_delta: int
    hits: int = 0


@dataclass(frozen=True)
class RequestRecord:
    """One request as the fake saw it (status is known before any body is streamed)."""

    endpoint: Endpoint
    method: str
    path: str  # raw request URI, query included
    auth: AuthKind
    status: int
    file_id: str | None = None
    meeting_uuid: str | None = None
    range_header: str | None = None
    fault: FaultKind | None = None
    at: float = field(default_factory=time.time)


@dataclass
class _Issued:
    kind: Literal["s2s", "download_access_token"]
    expires_at: float
    meeting_uuid: str | None = None


@dataclass
class _Hosted:
    meeting: SyntheticMeeting
    with_participant_files: bool
    participants: list[dict[str, Any]]


@dataclass
class _Processing:
    """A file Zoom lists as `processing`: until `until` (epoch s) and for `answers` more
    recordings-API answers (None: no limit of that kind)."""

    until: float | None
    answers: int | None


@dataclass
class _Page:
    scope: str
    offset: int
    expires_at: float


class FakeZoomState:
    """Everything the fake serves and remembers; safe to use from tests while it serves."""

    def __init__(
        self,
        *,
        account_id: str = DEFAULT_ACCOUNT_ID,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        download_token_key: str | None = None,
        token_lifetime_s: int = 3600,
        cdn_url_ttl_s: int = 600,
        scope: str = DEFAULT_SCOPE,
    ) -> None:
        self.account_id = account_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.download_token_key = download_token_key or secrets.token_urlsafe(48)
        self.token_lifetime_s = token_lifetime_s
        self.cdn_url_ttl_s = cdn_url_ttl_s
        self.scope = scope
        self._cdn_key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._meetings: dict[str, _Hosted] = {}
        self._files: dict[str, tuple[str, SyntheticFile]] = {}  # download key/alias -> file
        self._tokens: dict[str, _Issued] = {}
        self._revoked_jwts: set[str] = set()
        self._issued_jwts: set[str] = set()
        self._pages: dict[str, _Page] = {}
        self._faults: list[Fault] = []
        self._processing: dict[str, _Processing] = {}
        self._log: list[RequestRecord] = []

    # --- meetings -------------------------------------------------------------------------------

    def add_meeting(
        self,
        meeting: SyntheticMeeting,
        participant_emails: Mapping[str, str | None] | None = None,
        *,
        with_participant_files: bool = True,
        rejoin: bool = True,
    ) -> None:
        """Serve `meeting` (again: replace it).

        `participant_emails` overrides, by name, the emails the participants API shows (None or ""
        = no email); `with_participant_files=False` plays an account without per-participant
        audio; `rejoin` lists one participant twice, as after a reconnect.
        """
        if meeting.account_id != self.account_id:
            raise ValueError(f"meeting account {meeting.account_id!r} is not {self.account_id!r}")
        emails = {p.name: p.email for p in meeting.participants}
        emails.update(participant_emails or {})
        hosted = _Hosted(
            meeting=meeting,
            with_participant_files=with_participant_files,
            participants=_participant_entries(meeting, emails, rejoin=rejoin),
        )
        with self._lock:
            self._meetings[meeting.uuid] = hosted
            for item in meeting.files():
                self._files[item.download_key] = (meeting.uuid, item)

    # --- tokens ---------------------------------------------------------------------------------

    def make_download_token(self, meeting: SyntheticMeeting, ttl_s: int = 86400) -> str:
        """The webhook's `download_token` (§1.6): an HS512 JWT for `meeting` only.

        A negative `ttl_s` gives an already expired token.
        """
        claims = {
            "iss": DOWNLOAD_TOKEN_ISSUER,
            "aud": DOWNLOAD_TOKEN_AUDIENCE,
            "accountId": meeting.account_id,
            "userId": meeting.host_id,
            "mid": meeting.uuid,
            "exp": int(time.time()) + ttl_s,
        }
        token = jwt.encode(claims, self.download_token_key, algorithm="HS512")
        with self._lock:
            self._issued_jwts.add(token)
        return token

    def expire_all_tokens(self) -> None:
        """Every token issued so far (S2S, download_access_token, download_token) now gets 401."""
        with self._lock:
            for issued in self._tokens.values():
                issued.expires_at = 0.0
            self._revoked_jwts |= self._issued_jwts

    # --- faults ---------------------------------------------------------------------------------

    def inject(
        self,
        kind: FaultKind,
        *,
        endpoint: Endpoint = "download",
        file_id: str | None = None,
        times: int | None = 1,
        retry_after: int | str | None = None,
        rate_limit_headers: bool = False,
        delay_s: float = 0.05,
        chunk_size: int = 16 * 1024,
        cut_after: int = 1024,
        size_delta: int = -100,
    ) -> Fault:
        """Make the next `times` matching requests fail as `kind` (None: until clear_faults()).

        Faults are consumed in injection order by the next matching request, whatever its
        credentials. Download faults hit `/rec/...` (status-like kinds) or `/cdn/...` (body kinds).
        `file_id` narrows a download fault to one file. `retry_after` (seconds or an HTTP date)
        and `rate_limit_headers` shape 429/503 answers; `delay_s`/`chunk_size` shape slow_body;
        `cut_after` is the byte count cut_body sends; `size_delta` is how many bytes wrong_size
        adds (>0) or drops (<0).
        """
        if kind not in get_args(FaultKind):
            raise ValueError(f"unknown fault kind {kind!r}")
        allowed = _FAULTS_BY_ENDPOINT.get(endpoint)
        if allowed is None or kind not in allowed:
            raise ValueError(f"fault {kind!r} does not apply to endpoint {endpoint!r}")
        if file_id is not None and endpoint != "download":
            raise ValueError("file_id only narrows download faults")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for until cleared)")
        if kind == "wrong_size" and size_delta == 0:
            raise ValueError("wrong_size needs a non-zero size_delta")
        fault = Fault(
            kind=kind,
            endpoint=endpoint,
            file_id=file_id,
            remaining=times,
            retry_after=str(retry_after) if retry_after is not None else None,
            rate_limit_headers=rate_limit_headers,
            delay_s=delay_s,
            chunk_size=chunk_size,
            cut_after=cut_after,
            size_delta=size_delta,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # --- files still processing -----------------------------------------------------------------

    def hold_processing(
        self, file_id: str, *, seconds: float | None = None, answers: int | None = None
    ) -> None:
        """List file `file_id` with status `processing` (and no `file_size` yet) in the webhook
        payloads `recording_completed` builds and in the recordings API, as Zoom does while it
        still renders a file, then `completed` again.

        It stays processing for `seconds` from now, or for the next `answers` recordings-API
        answers that list it, whichever ends first; with neither, until `finish_processing`.
        Downloads of the file are served as usual (Zoom's answer to them is not documented).
        """
        if answers is not None and answers < 1:
            raise ValueError("answers must be at least 1 (or None)")
        until = time.time() + seconds if seconds is not None else None
        with self._lock:
            self._processing[file_id] = _Processing(until=until, answers=answers)

    def finish_processing(self, file_id: str | None = None) -> None:
        """`file_id` (every file when None) is `completed` from now on."""
        with self._lock:
            if file_id is None:
                self._processing.clear()
            else:
                self._processing.pop(file_id, None)

    def file_status(self, file_id: str) -> str:
        """The status Zoom lists for the file now (without using up an API answer)."""
        return "processing" if self._still_processing(file_id, answer=False) else "completed"

    def recording_completed(
        self, meeting: SyntheticMeeting, *, base_url: str, download_token: str, **options: Any
    ) -> dict[str, Any]:
        """`build_recording_completed` with the files held by `hold_processing` as processing."""
        event = build_recording_completed(
            meeting, base_url=base_url, download_token=download_token, **options
        )
        self._apply_processing(event["payload"]["object"], answer=False)
        return event

    def _still_processing(self, file_id: str, *, answer: bool) -> bool:
        with self._lock:
            held = self._processing.get(file_id)
            if held is None:
                return False
            if (held.until is not None and held.until <= time.time()) or held.answers == 0:
                del self._processing[file_id]
                return False
            if answer and held.answers is not None:
                held.answers -= 1
            return True

    def _apply_processing(self, body: dict[str, Any], *, answer: bool) -> None:
        for key in ("participant_audio_files", "recording_files"):
            for entry in body.get(key) or []:
                file_id = entry.get("id")
                if file_id and self._still_processing(file_id, answer=answer):
                    entry["status"] = "processing"
                    entry.pop("file_size", None)

    # --- request log ----------------------------------------------------------------------------

    def requests(
        self, endpoint: Endpoint | None = None, *, file_id: str | None = None
    ) -> list[RequestRecord]:
        with self._lock:
            return [
                record
                for record in self._log
                if (endpoint is None or record.endpoint == endpoint)
                and (file_id is None or record.file_id == file_id)
            ]

    def count(
        self, endpoint: Endpoint, *, file_id: str | None = None, status: int | None = None
    ) -> int:
        return sum(
            1
            for record in self.requests(endpoint, file_id=file_id)
            if status is None or record.status == status
        )

    def listed_ranges(self) -> list[tuple[str, str, str]]:
        """(user, from, to) of every user-recordings request, as the client asked (before the
        one-month limit applied); paging requests included."""
        ranges = []
        for record in self.requests("user_recordings"):
            parts = urlsplit(record.path)
            user = unquote(parts.path.removeprefix("/v2/users/").removesuffix("/recordings"))
            query = parse_qs(parts.query)
            ranges.append((user, query.get("from", [""])[0], query.get("to", [""])[0]))
        return ranges

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    # --- used by the app ------------------------------------------------------------------------

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self._log.append(record)

    def _take_fault(
        self, endpoint: str, kinds: frozenset[str], file_id: str | None = None
    ) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.endpoint != endpoint or fault.kind not in kinds:
                    continue
                if fault.file_id is not None and fault.file_id != file_id:
                    continue
                fault.hits += 1
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    def _issue(
        self, kind: Literal["s2s", "download_access_token"], ttl_s: int, uuid: str | None = None
    ) -> str:
        token = secrets.token_urlsafe(48)
        with self._lock:
            self._tokens[token] = _Issued(kind, time.time() + ttl_s, uuid)
        return token

    def _classify(self, token: str, meeting_uuid: str | None) -> AuthKind:
        """What a Bearer token is, and whether it may fetch files of `meeting_uuid`."""
        with self._lock:
            issued = self._tokens.get(token)
            revoked = token in self._revoked_jwts
        if issued is not None:
            if issued.expires_at <= time.time():
                return "expired"
            if issued.kind == "download_access_token" and issued.meeting_uuid != meeting_uuid:
                return "invalid"
            return issued.kind
        try:
            claims = jwt.decode(
                token,
                self.download_token_key,
                algorithms=["HS512"],
                audience=DOWNLOAD_TOKEN_AUDIENCE,
                issuer=DOWNLOAD_TOKEN_ISSUER,
            )
        except jwt.ExpiredSignatureError:
            return "expired"
        except jwt.InvalidTokenError:
            return "invalid"
        if revoked:
            return "expired"
        if claims.get("accountId") != self.account_id or claims.get("mid") != meeting_uuid:
            return "invalid"
        return "download_token"

    def _resolve_file(self, key: str) -> tuple[str, SyntheticFile] | None:
        with self._lock:
            return self._files.get(key)

    def _alias(self, meeting_uuid: str, item: SyntheticFile) -> str:
        """A fresh download key, as the REST API hands out new URLs on every call."""
        alias = secrets.token_urlsafe(32)
        with self._lock:
            self._files[alias] = (meeting_uuid, item)
        return alias

    def _hosted(self) -> list[_Hosted]:
        with self._lock:
            return list(self._meetings.values())

    def _find(self, uuid: str) -> _Hosted | None:
        with self._lock:
            return self._meetings.get(uuid)

    def _page_start(self, token: str, scope: str) -> int | None:
        with self._lock:
            page = self._pages.get(token)
        if page is None or page.scope != scope or page.expires_at <= time.time():
            return None
        return page.offset

    def _next_page(self, scope: str, offset: int, total: int) -> str:
        if offset >= total:
            return ""
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._pages[token] = _Page(scope, offset, time.time() + PAGE_TOKEN_TTL_S)
        return token

    def _cdn_signature(self, key: str, expires: int) -> str:
        return hmac.new(self._cdn_key, f"{key}:{expires}".encode(), hashlib.sha256).hexdigest()


class _AnyPathConverter(BaseConverter):
    """Matches UUIDs even when decoding left '/' or '//' in them; the raw URI decides (§6)."""

    regex = ".+?"
    part_isolating = False


def create_app(state: FakeZoomState) -> Flask:
    """The fake's Flask app; every handler logs a RequestRecord into `state`."""
    app = Flask(__name__)
    app.url_map.merge_slashes = False
    app.url_map.converters["anypath"] = _AnyPathConverter

    @app.post("/oauth/token")
    def oauth_token() -> Response:
        fault = state._take_fault("oauth", _FAULTS_BY_ENDPOINT["oauth"])
        if fault is not None:
            return _log(state, "oauth", _fault_response(fault, "oauth"), auth="basic", fault=fault)
        credentials = request.authorization
        grant = request.form.get("grant_type") or request.args.get("grant_type")
        account = request.form.get("account_id") or request.args.get("account_id")
        if (
            credentials is None
            or credentials.type != "basic"
            or not hmac.compare_digest(credentials.username or "", state.client_id)
            or not hmac.compare_digest(credentials.password or "", state.client_secret)
        ):
            body = {"reason": "Invalid client_id or client_secret", "error": "invalid_client"}
            return _log(state, "oauth", _json(body, 401), auth="invalid")
        if grant != "account_credentials":
            body = {"reason": "unsupported grant type", "error": "unsupported_grant_type"}
            return _log(state, "oauth", _json(body, 400), auth="basic")
        if account != state.account_id:
            body = {"reason": "Invalid request : Account ID is invalid", "error": "invalid_request"}
            return _log(state, "oauth", _json(body, 400), auth="basic")
        granted: dict[str, Any] = {
            "access_token": state._issue("s2s", state.token_lifetime_s),
            "token_type": "bearer",
            "expires_in": state.token_lifetime_s,
            "scope": state.scope,
            "api_url": request.host_url.rstrip("/"),
        }
        return _log(state, "oauth", _json(granted, 200), auth="basic")

    @app.get("/rec/webhook_download/<key>")
    @app.get("/rec/download/<key>")
    def download(key: str) -> Response:
        resolved = state._resolve_file(key)
        if resolved is None:
            return _log(state, "download", _json_error(404, *_NOT_FOUND["download"]))
        meeting_uuid, item = resolved
        auth = _auth_kind(state, meeting_uuid)
        fault = state._take_fault("download", _AUTH_STAGE, item.file_id)
        if fault is not None:
            response = _fault_response(fault, "download")
        elif auth not in ("s2s", "download_token", "download_access_token"):
            response = _auth_error(auth)
        else:
            expires = int(time.time()) + state.cdn_url_ttl_s
            signature = state._cdn_signature(item.download_key, expires)
            location = (
                f"{request.host_url}cdn/{item.download_key}?expires={expires}&sig={signature}"
            )
            response = Response(status=302, headers={"Location": location})
        return _log(
            state,
            "download",
            response,
            auth=auth,
            fault=fault,
            file_id=item.file_id,
            meeting_uuid=meeting_uuid,
        )

    @app.get("/cdn/<key>")
    def cdn(key: str) -> Response:
        """The pre-signed storage URL: no Authorization needed, only a valid unexpired signature."""
        resolved = state._resolve_file(key)
        auth = _auth_kind(state, resolved[0] if resolved else None)
        expires = request.args.get("expires", "")
        valid = (
            resolved is not None
            and expires.isdigit()
            and int(expires) > time.time()
            and hmac.compare_digest(
                request.args.get("sig", ""), state._cdn_signature(key, int(expires))
            )
        )
        if resolved is None or not valid:
            denied = Response(
                "<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>"
                "<Message>Request has expired or the signature does not match</Message></Error>",
                status=403,
                mimetype="application/xml",
            )
            return _log(state, "cdn", denied, auth=auth)
        meeting_uuid, item = resolved
        fault = state._take_fault("download", _BODY_STAGE, item.file_id)
        response = _file_response(item, request.headers.get("Range"), fault)
        return _log(
            state,
            "cdn",
            response,
            auth=auth,
            fault=fault,
            file_id=item.file_id,
            meeting_uuid=meeting_uuid,
        )

    @app.get("/v2/meetings/<anypath:meeting_id>/recordings")
    def meeting_recordings(meeting_id: str) -> Response:
        denied = _rest_gate(state, "recordings")
        if denied is not None:
            return denied
        ident = _meeting_ident("/v2/meetings/", "/recordings", meeting_id)
        hosted = _lookup_meeting(state, ident)
        if hosted is None:
            response = _json_error(404, *_NOT_FOUND["recordings"])
            return _log(state, "recordings", response, auth="s2s")
        body = _recording_body(state, hosted)
        state._apply_processing(body, answer=True)
        if "download_access_token" in request.args.get("include_fields", "").split(","):
            ttl = request.args.get("ttl", "86400")
            if not ttl.isdigit() or int(ttl) > MAX_DOWNLOAD_ACCESS_TTL_S:
                response = _json_error(400, 300, "Invalid field: ttl.")
                return _log(state, "recordings", response, auth="s2s")
            body["download_access_token"] = state._issue(
                "download_access_token", int(ttl), hosted.meeting.uuid
            )
        response = _json(body, 200)
        return _log(state, "recordings", response, auth="s2s", meeting_uuid=hosted.meeting.uuid)

    @app.get("/v2/past_meetings/<anypath:meeting_uuid>/participants")
    def past_participants(meeting_uuid: str) -> Response:
        denied = _rest_gate(state, "participants")
        if denied is not None:
            return denied
        ident = _meeting_ident("/v2/past_meetings/", "/participants", meeting_uuid)
        hosted = _lookup_meeting(state, ident)
        if hosted is None:
            response = _json_error(404, *_NOT_FOUND["participants"])
            return _log(state, "participants", response, auth="s2s")
        entries = hosted.participants
        page = _paginate(state, f"participants:{hosted.meeting.uuid}", len(entries))
        if isinstance(page, Response):
            return _log(state, "participants", page, auth="s2s")
        start, size, next_token = page
        body = {
            "page_count": math.ceil(len(entries) / size),
            "page_size": size,
            "total_records": len(entries),
            "next_page_token": next_token,
            "participants": entries[start : start + size],
        }
        response = _json(body, 200)
        return _log(state, "participants", response, auth="s2s", meeting_uuid=hosted.meeting.uuid)

    @app.get("/v2/users/<user_id>/recordings")
    def user_recordings(user_id: str) -> Response:
        denied = _rest_gate(state, "user_recordings")
        if denied is not None:
            return denied
        mine = [
            hosted
            for hosted in state._hosted()
            if user_id == "me" or user_id in (hosted.meeting.host_id, hosted.meeting.host_email)
        ]
        if not mine and user_id != "me":
            response = _json_error(404, 1001, f"User does not exist: {user_id}.")
            return _log(state, "user_recordings", response, auth="s2s")
        try:
            until = date.fromisoformat(
                request.args.get("to") or datetime.now(UTC).date().isoformat()
            )
            since = date.fromisoformat(
                request.args.get("from") or (until - timedelta(days=1)).isoformat()
            )
        except ValueError:
            response = _json_error(400, 300, "Invalid date format, expected yyyy-mm-dd.")
            return _log(state, "user_recordings", response, auth="s2s")
        # Zoom lists at most one month per request: asked for more, it answers 200 for the last
        # month only and says so in `from` (zoom/api#36), so a client that does not walk month
        # by month silently misses meetings.
        since = max(since, one_month_before(until))
        matching = sorted(
            (hosted for hosted in mine if since <= hosted.meeting.start_time.date() <= until),
            key=lambda hosted: hosted.meeting.start_time,
            reverse=True,
        )
        page = _paginate(state, f"users:{user_id}:{since}:{until}", len(matching))
        if isinstance(page, Response):
            return _log(state, "user_recordings", page, auth="s2s")
        start, size, next_token = page
        body = {
            "from": since.isoformat(),
            "to": until.isoformat(),
            "page_count": math.ceil(len(matching) / size),
            "page_size": size,
            "total_records": len(matching),
            "next_page_token": next_token,
            "meetings": [
                _recording_body(state, hosted) for hosted in matching[start : start + size]
            ],
        }
        return _log(state, "user_recordings", _json(body, 200), auth="s2s")

    return app


def serve(state: FakeZoomState) -> LoopbackServer:
    """An unstarted loopback server for `state`; use it as a context manager (or .start())."""
    return LoopbackServer(create_app(state))


def one_month_before(day: date) -> date:
    """The same day of the previous month (its last day when that month is shorter)."""
    year, month = (day.year, day.month - 1) if day.month > 1 else (day.year - 1, 12)
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def loopback_origin(url: str) -> str:
    """`host:port` of the fake's URL: what ZOOM_DOWNLOAD_LOOPBACK_ORIGINS must name for the
    merger to download from it over plain http."""
    return urlsplit(url).netloc


# --- helpers ------------------------------------------------------------------------------------


def _json(
    body: Mapping[str, Any], status: int, headers: Mapping[str, str] | None = None
) -> Response:
    """Compact JSON, as Zoom sends it."""
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status=status,
        headers=dict(headers or {}),
        mimetype="application/json",
    )


def _json_error(
    status: int, code: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    return _json({"code": code, "message": message}, status, headers)


def _auth_error(auth: AuthKind) -> Response:
    if auth == "expired":
        return _json_error(401, 124, "Access token is expired.")
    return _json_error(401, 124, "Invalid access token.")


def _auth_kind(state: FakeZoomState, meeting_uuid: str | None) -> AuthKind:
    """Classify the request's credentials; a query-string token is always refused (§4.3)."""
    if "access_token" in request.args:
        return "query"
    header = request.headers.get("Authorization", "")
    if not header:
        return "none"
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return "invalid"
    return state._classify(token.strip(), meeting_uuid)


def _log(
    state: FakeZoomState,
    endpoint: Endpoint,
    response: Response,
    *,
    auth: AuthKind = "none",
    fault: Fault | None = None,
    file_id: str | None = None,
    meeting_uuid: str | None = None,
) -> Response:
    raw = request.environ.get("RAW_URI") or request.full_path
    state._record(
        RequestRecord(
            endpoint=endpoint,
            method=request.method,
            path=str(raw),
            auth=auth,
            status=response.status_code,
            file_id=file_id,
            meeting_uuid=meeting_uuid,
            range_header=request.headers.get("Range"),
            fault=fault.kind if fault is not None else None,
        )
    )
    return response


def _rest_gate(state: FakeZoomState, endpoint: Endpoint) -> Response | None:
    """Injected faults first, then the S2S Bearer check every REST call needs."""
    fault = state._take_fault(endpoint, _REST_KINDS)
    if fault is not None:
        response = _fault_response(fault, endpoint)
        return _log(state, endpoint, response, auth=_auth_kind(state, None), fault=fault)
    auth = _auth_kind(state, None)
    if auth != "s2s":
        return _log(state, endpoint, _auth_error(auth), auth=auth)
    return None


def _fault_response(fault: Fault, endpoint: str) -> Response:
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = fault.retry_after
    if fault.kind == "http_429":
        if fault.rate_limit_headers:
            headers.update(
                {
                    "X-RateLimit-Category": _RATE_LABEL[endpoint],
                    "X-RateLimit-Type": "QPS",
                    "X-RateLimit-Limit": "30",
                    "X-RateLimit-Remaining": "0",
                }
            )
        message = (
            "You have reached the maximum per-second rate limit for this API. Try again later."
        )
        return _json_error(429, 429, message, headers)
    if fault.kind == "http_500":
        return _json_error(500, 500, "Internal server error.", headers)
    if fault.kind == "http_503":
        return _json_error(503, 503, "Service temporarily unavailable.", headers)
    if fault.kind == "html_200":
        return Response(ONLY_THE_HOST_HTML, status=200, mimetype="text/html")
    if fault.kind == "json_124":
        return _json({"status": False, "errorCode": 124, "errorMessage": "Forbidden"}, 200)
    if fault.kind == "expired_token":
        return _auth_error("expired")
    if fault.kind == "not_found":
        return _json_error(404, *_NOT_FOUND[endpoint])
    raise AssertionError(f"{fault.kind} is applied to the body, not as a response")


def _meeting_ident(prefix: str, suffix: str, decoded: str) -> str | None:
    """The meeting id or UUID a Zoom-like server would see, or None where Zoom misreads the path.

    The server decodes the path once; a UUID that then starts with '/' or contains '//' breaks
    routing, which is why such UUIDs must be double-encoded. A second decode yields the UUID.
    """
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if raw is None:
        once = decoded
    else:
        path = urlsplit(str(raw)).path
        if not (path.startswith(prefix) and path.endswith(suffix)):
            return None
        segment = path[len(prefix) : -len(suffix)]
        if "/" in segment:
            return None
        once = unquote(segment)
    if once.startswith("/") or "//" in once:
        return None
    return unquote(once) if "%" in once else once


def _lookup_meeting(state: FakeZoomState, ident: str | None) -> _Hosted | None:
    """By UUID, or by meeting number: then the latest instance, as Zoom does."""
    if not ident:
        return None
    if ident.isdigit():
        instances = [h for h in state._hosted() if h.meeting.meeting_number == int(ident)]
        return max(instances, key=lambda h: h.meeting.start_time, default=None)
    return state._find(ident)


def _recording_body(state: FakeZoomState, hosted: _Hosted) -> dict[str, Any]:
    """§6.1's response: the webhook object with fresh `/rec/download/` URLs and no host_email."""
    meeting = hosted.meeting
    host = request.host_url.rstrip("/")
    body = build_recording_object(
        meeting,
        base_url=host,
        with_participant_files=hosted.with_participant_files,
        download_url=lambda item: f"{host}/rec/download/{state._alias(meeting.uuid, item)}",
    )
    body.pop("host_email", None)
    return body


def _paginate(state: FakeZoomState, scope: str, total: int) -> tuple[int, int, str] | Response:
    """(offset, page_size, next_page_token) for this request, or a 400 for bad paging input."""
    raw_size = request.args.get("page_size", "30")
    if not raw_size.isdigit() or int(raw_size) < 1:
        return _json_error(400, 300, "Invalid field: page_size.")
    size = min(int(raw_size), MAX_PAGE_SIZE)
    token = request.args.get("next_page_token", "")
    start = 0
    if token:
        resumed = state._page_start(token, scope)
        if resumed is None:
            return _json_error(400, 300, "The next page token is invalid or expired.")
        start = resumed
    return start, size, state._next_page(scope, start + size, total)


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _byte_range(header: str | None, size: int) -> tuple[int, int] | Literal[False] | None:
    """The inclusive range asked for; None to serve everything; False if unsatisfiable (416)."""
    match = _RANGE.match(header.strip()) if header else None
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":
        suffix = int(last)
        return (max(0, size - suffix), size - 1) if suffix and size else False
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return None
    if start >= size:
        return False
    return start, end


def _file_response(item: SyntheticFile, range_header: str | None, fault: Fault | None) -> Response:
    """Stream the file from disk, honouring Range and any body-stage fault."""
    size_delta = fault.size_delta if fault is not None and fault.kind == "wrong_size" else 0
    served = max(0, item.file_size + size_delta)
    headers = {"Accept-Ranges": "bytes"}
    wanted = _byte_range(range_header, served)
    if wanted is False:
        headers["Content-Range"] = f"bytes */{served}"
        return Response(status=416, headers=headers)
    status, (start, end) = 200, (0, served - 1)
    if wanted is not None:
        status, (start, end) = 206, wanted
        headers["Content-Range"] = f"bytes {start}-{end}/{served}"
    length = end - start + 1
    headers["Content-Length"] = str(length)
    sent, chunk, delay_s = length, STREAM_CHUNK, 0.0
    if fault is not None and fault.kind == "cut_body":
        sent = min(length, fault.cut_after)
    if fault is not None and fault.kind == "slow_body":
        chunk, delay_s = fault.chunk_size, fault.delay_s
    return Response(
        _stream(item, start, sent, chunk=chunk, delay_s=delay_s),
        status=status,
        headers=headers,
        mimetype=item.content_type,
        direct_passthrough=True,
    )


def _stream(
    item: SyntheticFile, start: int, count: int, *, chunk: int, delay_s: float
) -> Iterator[bytes]:
    """`count` bytes from `start`, read chunk by chunk; zero bytes past the real end (wrong_size).

    Stopping short of Content-Length makes werkzeug close the connection, so the client sees a
    truncated body, exactly like a reset mid-download.
    """
    position, remaining = start, count
    with item.path.open("rb") as handle:
        handle.seek(min(start, item.file_size))
        while remaining > 0:
            if position < item.file_size:
                data = handle.read(min(chunk, remaining, item.file_size - position))
            else:
                data = bytes(min(chunk, remaining))
            if not data:
                return
            if delay_s and position > start:
                time.sleep(delay_s)
            yield data
            position += len(data)
            remaining -= len(data)


def _participant_entries(
    meeting: SyntheticMeeting, emails: Mapping[str, str | None], *, rejoin: bool
) -> list[dict[str, Any]]:
    """§6.2 participant items; guests (no email) get an empty `id`, one speaker reconnects once."""
    domain = meeting.host_email.rpartition("@")[2]
    rejoiner = 1 if len(meeting.participants) > 1 else 0
    entries: list[dict[str, Any]] = []
    for index, participant in enumerate(meeting.participants):
        email = emails.get(participant.name) or ""
        digest = hashlib.sha256(f"{meeting.uuid}|{participant.name}".encode()).digest()
        zoom_id = base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=") if email else ""
        joined = meeting.start_time + timedelta(seconds=participant.join_offset_s)
        left = meeting.start_time + timedelta(seconds=participant.leave_offset_s)
        spans = [(joined, left)]
        if rejoin and index == rejoiner:
            middle = joined + timedelta(
                seconds=(participant.leave_offset_s - participant.join_offset_s) // 2
            )
            spans = [(joined, middle), (middle, left)]
        for begin, end in spans:
            entries.append(
                {
                    "id": zoom_id,
                    "name": participant.name,
                    "user_id": str(16778240 + 1024 * len(entries)),
                    "registrant_id": "",
                    "user_email": email,
                    "join_time": _iso(begin),
                    "leave_time": _iso(end),
                    "duration": int((end - begin).total_seconds()),
                    "failover": False,
                    "status": "in_meeting",
                    "internal_user": bool(email) and email.endswith("@" + domain),
                }
            )
    entries.sort(key=lambda entry: str(entry["join_time"]))
    return entries


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
