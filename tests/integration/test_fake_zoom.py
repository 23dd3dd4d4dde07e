"""The fake Zoom behaves as zoom-api.md says, including every failure mode it can inject."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import requests
from flask import Flask

from sandbox.fake_zoom import FakeZoomState, FaultKind, create_app, one_month_before, serve
from sandbox.http_server import LoopbackServer
from sandbox.synth import SyntheticMeeting, build_recording_completed, synthesize_meeting

pytestmark = pytest.mark.integration

TIMEOUT = 10
SLASH_UUID = "/Xq3kZbL2TtWmN0pQrS8vA=="
DOUBLE_SLASH_UUID = "aB1cD2eF//gH3iJ4kL5mNo=="
PLUS_UUID = "k7+Lm9Np0Qr+St1Uv2WxYz=="
# Same as test_synth.py's meeting: one generation, cached under the session basetemp, serves both.
MEETING_PARAMS: dict[str, Any] = {"speakers": 3, "duration_s": 40, "seed": 11}


@dataclasses.dataclass(frozen=True)
class Meetings:
    main: SyntheticMeeting
    slash: SyntheticMeeting
    double_slash: SyntheticMeeting
    plus: SyntheticMeeting


@dataclasses.dataclass
class Fake:
    state: FakeZoomState
    url: str
    meetings: Meetings

    def s2s_token(self) -> str:
        response = requests.post(
            f"{self.url}/oauth/token",
            auth=(self.state.client_id, self.state.client_secret),
            data={"grant_type": "account_credentials", "account_id": self.state.account_id},
            timeout=TIMEOUT,
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    def webhook_object(self) -> dict[str, Any]:
        event = build_recording_completed(
            self.meetings.main, base_url=self.url, download_token="unused"
        )
        result: dict[str, Any] = event["payload"]["object"]
        return result

    def participant_url(self, index: int = 0) -> str:
        url: str = self.webhook_object()["participant_audio_files"][index]["download_url"]
        return url

    def api(self, path: str, token: str, **params: Any) -> requests.Response:
        return requests.get(
            f"{self.url}{path}", headers=bearer(token), params=params, timeout=TIMEOUT
        )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def double(uuid: str) -> str:
    return quote(quote(uuid, safe=""), safe="")


def single(uuid: str) -> str:
    return quote(uuid, safe="")


@pytest.fixture(scope="session")
def meetings(tmp_path_factory: pytest.TempPathFactory) -> Meetings:
    workdir = tmp_path_factory.getbasetemp() / "synth"

    def short(uuid: str, day: int) -> SyntheticMeeting:
        return synthesize_meeting(
            speakers=2,
            duration_s=20,
            seed=day,
            workdir=workdir,
            uuid=uuid,
            start_time=datetime(2024, 3, day, 15, 0, tzinfo=UTC),
        )

    return Meetings(
        main=synthesize_meeting(**MEETING_PARAMS, workdir=workdir),
        slash=short(SLASH_UUID, 1),
        double_slash=short(DOUBLE_SLASH_UUID, 15),
        plus=short(PLUS_UUID, 30),
    )


class AppSwitch:
    """A WSGI app that forwards to the current test's fake, so one server serves the session.

    Stopping a LoopbackServer costs ~0.5 s (serve_forever's poll interval); per test, that adds up.
    """

    def __init__(self) -> None:
        self.app: Flask | None = None

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        assert self.app is not None, "no fake plugged in"
        return self.app(environ, start_response)


@pytest.fixture(scope="session")
def switch_server() -> Iterator[tuple[AppSwitch, LoopbackServer]]:
    switch = AppSwitch()
    with LoopbackServer(switch) as server:
        yield switch, server


@pytest.fixture
def fake(meetings: Meetings, switch_server: tuple[AppSwitch, LoopbackServer]) -> Iterator[Fake]:
    switch, server = switch_server
    state = FakeZoomState()
    for field in dataclasses.fields(meetings):
        state.add_meeting(getattr(meetings, field.name))
    switch.app = create_app(state)
    yield Fake(state, server.url, meetings)
    switch.app = None


def test_serve_runs_the_fake_on_loopback(meetings: Meetings) -> None:
    state = FakeZoomState()
    state.add_meeting(meetings.main)
    with serve(state) as server:
        assert server.url.startswith("http://127.0.0.1:")
        response = requests.get(f"{server.url}/rec/webhook_download/nope", timeout=TIMEOUT)
    assert response.status_code == 404
    assert state.count("download", status=404) == 1


# --- OAuth --------------------------------------------------------------------------------------


def test_oauth_issues_an_hour_long_bearer_token(fake: Fake) -> None:
    response = requests.post(
        f"{fake.url}/oauth/token",
        auth=(fake.state.client_id, fake.state.client_secret),
        params={"grant_type": "account_credentials", "account_id": fake.state.account_id},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"]
    assert "cloud_recording:read:list_recording_files:admin" in body["scope"].split()


def test_oauth_refuses_bad_credentials_grant_and_account(fake: Fake) -> None:
    good = {"grant_type": "account_credentials", "account_id": fake.state.account_id}
    url = f"{fake.url}/oauth/token"
    wrong_secret = requests.post(
        url, auth=(fake.state.client_id, "nope"), data=good, timeout=TIMEOUT
    )
    assert wrong_secret.status_code == 401
    assert wrong_secret.json()["error"] == "invalid_client"
    no_auth = requests.post(url, data=good, timeout=TIMEOUT)
    assert no_auth.status_code == 401
    credentials = (fake.state.client_id, fake.state.client_secret)
    wrong_grant = requests.post(
        url, auth=credentials, data={**good, "grant_type": "client_credentials"}, timeout=TIMEOUT
    )
    assert wrong_grant.status_code == 400
    wrong_account = requests.post(
        url, auth=credentials, data={**good, "account_id": "other"}, timeout=TIMEOUT
    )
    assert wrong_account.status_code == 400


# --- downloads ----------------------------------------------------------------------------------


def test_download_token_gets_a_302_to_a_presigned_url_that_serves_the_file(fake: Fake) -> None:
    main = fake.meetings.main
    token = fake.state.make_download_token(main)
    url = fake.participant_url(1)

    redirect = requests.get(url, headers=bearer(token), allow_redirects=False, timeout=TIMEOUT)
    assert redirect.status_code == 302
    location = redirect.headers["Location"]
    assert urlsplit(location).path.startswith("/cdn/")
    assert "sig=" in location and "expires=" in location

    body = requests.get(location, timeout=TIMEOUT)  # no Authorization: the URL is pre-signed
    assert body.status_code == 200
    assert body.headers["Content-Type"] == "audio/mp4"
    assert body.headers["Accept-Ranges"] == "bytes"
    expected = main.participants[1].audio.path.read_bytes()
    assert int(body.headers["Content-Length"]) == len(expected)
    assert body.content == expected
    assert [r.auth for r in fake.state.requests()] == ["download_token", "none"]


def test_s2s_token_downloads_too(fake: Fake) -> None:
    response = requests.get(
        fake.participant_url(), headers=bearer(fake.s2s_token()), timeout=TIMEOUT
    )
    assert response.status_code == 200
    assert response.content == fake.meetings.main.participants[0].audio.path.read_bytes()
    assert fake.state.requests("download")[0].auth == "s2s"


def test_expired_or_foreign_download_token_is_refused(fake: Fake) -> None:
    expired = fake.state.make_download_token(fake.meetings.main, ttl_s=-60)
    response = requests.get(fake.participant_url(), headers=bearer(expired), timeout=TIMEOUT)
    assert response.status_code == 401
    assert response.json()["code"] == 124

    foreign = fake.state.make_download_token(fake.meetings.plus)
    response = requests.get(fake.participant_url(), headers=bearer(foreign), timeout=TIMEOUT)
    assert response.status_code == 401
    assert [r.auth for r in fake.state.requests("download")] == ["expired", "invalid"]


def test_missing_token_and_query_string_token_are_refused(fake: Fake) -> None:
    missing = requests.get(fake.participant_url(), timeout=TIMEOUT)
    assert missing.status_code == 401
    assert missing.json() == {"code": 124, "message": "Invalid access token."}

    token = fake.state.make_download_token(fake.meetings.main)
    query = requests.get(fake.participant_url(), params={"access_token": token}, timeout=TIMEOUT)
    assert query.status_code == 401
    assert query.json()["code"] == 124
    assert fake.state.requests("download")[-1].auth == "query"


def test_expire_all_tokens_invalidates_every_issued_token(fake: Fake) -> None:
    s2s = fake.s2s_token()
    download = fake.state.make_download_token(fake.meetings.main)
    fake.state.expire_all_tokens()
    for token in (s2s, download):
        response = requests.get(fake.participant_url(), headers=bearer(token), timeout=TIMEOUT)
        assert response.status_code == 401
        assert response.json()["message"] == "Access token is expired."
    assert fake.api("/v2/meetings/1/recordings", s2s).status_code == 401


def test_range_requests_resume_with_206(fake: Fake) -> None:
    token = fake.state.make_download_token(fake.meetings.main)
    expected = fake.meetings.main.participants[0].audio.path.read_bytes()
    size = len(expected)

    def fetch(range_header: str) -> requests.Response:
        headers = {**bearer(token), "Range": range_header}
        return requests.get(fake.participant_url(), headers=headers, timeout=TIMEOUT)

    tail = fetch("bytes=1000-")
    assert tail.status_code == 206
    assert tail.headers["Content-Range"] == f"bytes 1000-{size - 1}/{size}"
    assert tail.content == expected[1000:]
    middle = fetch("bytes=10-19")
    assert middle.status_code == 206
    assert middle.content == expected[10:20]
    beyond = fetch(f"bytes={size}-")
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{size}"
    assert [r.range_header for r in fake.state.requests("cdn")] == [
        "bytes=1000-",
        "bytes=10-19",
        f"bytes={size}-",
    ]


def test_cdn_refuses_a_tampered_signature(fake: Fake) -> None:
    token = fake.state.make_download_token(fake.meetings.main)
    location = requests.get(
        fake.participant_url(), headers=bearer(token), allow_redirects=False, timeout=TIMEOUT
    ).headers["Location"]
    tampered = location[:-4] + ("0000" if not location.endswith("0000") else "1111")
    assert requests.get(tampered, timeout=TIMEOUT).status_code == 403


# --- download faults ----------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "status"), [("http_500", 500), ("http_503", 503)])
def test_server_errors_last_for_the_injected_count(
    fake: Fake, kind: FaultKind, status: int
) -> None:
    token = fake.state.make_download_token(fake.meetings.main)
    fault = fake.state.inject(kind, times=2)
    statuses = [
        requests.get(fake.participant_url(), headers=bearer(token), timeout=TIMEOUT).status_code
        for _ in range(3)
    ]
    assert statuses == [status, status, 200]
    assert (fault.hits, fault.remaining) == (2, 0)


def test_429_with_and_without_rate_limit_headers(fake: Fake) -> None:
    token = fake.state.make_download_token(fake.meetings.main)
    fake.state.inject("http_429", retry_after=2, rate_limit_headers=True)
    fake.state.inject("http_429")

    with_headers = requests.get(fake.participant_url(), headers=bearer(token), timeout=TIMEOUT)
    assert with_headers.status_code == 429
    assert with_headers.headers["Retry-After"] == "2"
    assert with_headers.headers["X-RateLimit-Remaining"] == "0"
    assert with_headers.json()["code"] == 429

    bare = requests.get(fake.participant_url(), headers=bearer(token), timeout=TIMEOUT)
    assert bare.status_code == 429
    assert not {"Retry-After", "X-RateLimit-Remaining"} & set(bare.headers)


def test_faults_can_target_one_file(fake: Fake) -> None:
    token = fake.state.make_download_token(fake.meetings.main)
    target = fake.meetings.main.participants[1].audio.file_id
    fake.state.inject("not_found", file_id=target)
    untouched = requests.get(fake.participant_url(0), headers=bearer(token), timeout=TIMEOUT)
    assert untouched.status_code == 200
    missing = requests.get(fake.participant_url(1), headers=bearer(token), timeout=TIMEOUT)
    assert missing.status_code == 404
    assert missing.json()["code"] == 3301
    assert fake.state.count("download", file_id=target, status=404) == 1


def test_auth_failures_disguised_as_200(fake: Fake) -> None:
    token = fake.state.make_download_token(fake.meetings.main)
    fake.state.inject("html_200")
    fake.state.inject("json_124")

    html = requests.get(fake.participant_url(), headers=bearer(token), timeout=TIMEOUT)
    assert html.status_code == 200
    assert html.headers["Content-Type"].startswith("text/html")
    assert "Only the host can download this recording" in html.text

    tiny = requests.get(fake.participant_url(), headers=bearer(token), timeout=TIMEOUT)
    assert tiny.status_code == 200
    assert tiny.headers["Content-Type"] == "application/json"
    assert tiny.json() == {"status": False, "errorCode": 124, "errorMessage": "Forbidden"}


def test_expired_token_fault_refuses_a_valid_token_once(fake: Fake) -> None:
    token = fake.state.make_download_token(fake.meetings.main)
    fake.state.inject("expired_token")
    first = requests.get(fake.participant_url(), headers=bearer(token), timeout=TIMEOUT)
    assert first.status_code == 401
    assert first.json()["code"] == 124
    second = requests.get(fake.participant_url(), headers=bearer(token), timeout=TIMEOUT)
    assert second.status_code == 200


def test_cut_body_breaks_the_connection_mid_download(fake: Fake) -> None:
    token = fake.state.make_download_token(fake.meetings.main)
    fake.state.inject("cut_body", cut_after=5000)
    received = 0
    with requests.get(
        fake.participant_url(), headers=bearer(token), stream=True, timeout=TIMEOUT
    ) as response:
        declared = int(response.headers["Content-Length"])
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            for chunk in response.iter_content(4096):
                received += len(chunk)
    assert received <= 5000 < declared == fake.meetings.main.participants[0].audio.file_size


def test_slow_body_still_delivers_every_byte(fake: Fake) -> None:
    token = fake.state.make_download_token(fake.meetings.main)
    expected = fake.meetings.main.participants[0].audio.path.read_bytes()
    fake.state.inject("slow_body", delay_s=0.05, chunk_size=16 * 1024)
    began = time.monotonic()
    response = requests.get(fake.participant_url(), headers=bearer(token), timeout=TIMEOUT)
    elapsed = time.monotonic() - began
    assert response.content == expected
    chunks = -(-len(expected) // (16 * 1024))
    assert elapsed >= 0.05 * (chunks - 1)


@pytest.mark.parametrize("delta", [-100, 100])
def test_wrong_size_serves_a_consistent_but_wrong_length(fake: Fake, delta: int) -> None:
    token = fake.state.make_download_token(fake.meetings.main)
    size = fake.meetings.main.participants[0].audio.file_size
    fake.state.inject("wrong_size", size_delta=delta)
    response = requests.get(fake.participant_url(), headers=bearer(token), timeout=TIMEOUT)
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == len(response.content) == size + delta


def test_inject_refuses_faults_an_endpoint_cannot_produce(fake: Fake) -> None:
    with pytest.raises(ValueError, match="does not apply"):
        fake.state.inject("cut_body", endpoint="recordings")
    with pytest.raises(ValueError, match="file_id"):
        fake.state.inject("http_500", endpoint="participants", file_id="p-1")


# --- REST endpoints -----------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["slash", "double_slash"])
def test_uuids_with_slashes_must_be_double_encoded(fake: Fake, which: str) -> None:
    meeting: SyntheticMeeting = getattr(fake.meetings, which)
    token = fake.s2s_token()
    for template in ("/v2/meetings/{}/recordings", "/v2/past_meetings/{}/participants"):
        good = fake.api(template.format(double(meeting.uuid)), token)
        assert good.status_code == 200, template
        misread = fake.api(template.format(single(meeting.uuid)), token)
        assert misread.status_code == 404, template
    recording = fake.api(f"/v2/meetings/{double(meeting.uuid)}/recordings", token).json()
    assert recording["uuid"] == meeting.uuid


def test_plain_uuids_work_single_encoded(fake: Fake) -> None:
    uuid = fake.meetings.plus.uuid
    token = fake.s2s_token()
    for encoded in (single(uuid), double(uuid)):
        response = fake.api(f"/v2/meetings/{encoded}/recordings", token)
        assert response.status_code == 200
        assert response.json()["uuid"] == uuid


def test_recordings_response_has_fresh_working_download_urls(fake: Fake) -> None:
    main = fake.meetings.main
    token = fake.s2s_token()
    response = fake.api(
        f"/v2/meetings/{single(main.uuid)}/recordings",
        token,
        include_fields="download_access_token",
        ttl=600,
    )
    assert response.status_code == 200
    body = response.json()
    assert "host_email" not in body
    assert body["total_size"] == fake.webhook_object()["total_size"]
    webhook_urls = {f["download_url"] for f in fake.webhook_object()["participant_audio_files"]}
    fresh = body["participant_audio_files"][0]["download_url"]
    assert fresh not in webhook_urls
    assert urlsplit(fresh).path.startswith("/rec/download/")

    download = requests.get(fresh, headers=bearer(body["download_access_token"]), timeout=TIMEOUT)
    assert download.status_code == 200
    assert download.content == main.participants[0].audio.path.read_bytes()
    assert fake.state.requests("download")[-1].auth == "download_access_token"


def test_recordings_by_meeting_number_return_the_latest_instance(fake: Fake) -> None:
    older = fake.meetings.slash
    newer = dataclasses.replace(fake.meetings.plus, meeting_number=older.meeting_number)
    fake.state.add_meeting(newer)
    body = fake.api(f"/v2/meetings/{older.meeting_number}/recordings", fake.s2s_token()).json()
    assert body["uuid"] == newer.uuid


def test_recordings_errors(fake: Fake) -> None:
    token = fake.s2s_token()
    unknown = fake.api(f"/v2/meetings/{single('nope+nope==')}/recordings", token)
    assert unknown.status_code == 404
    assert unknown.json() == {"code": 3301, "message": "This recording does not exist."}
    download_token = fake.state.make_download_token(fake.meetings.main)
    path = f"/v2/meetings/{single(fake.meetings.main.uuid)}/recordings"
    assert fake.api(path, download_token).status_code == 401


def test_rest_endpoints_take_injected_faults(fake: Fake) -> None:
    token = fake.s2s_token()
    path = f"/v2/meetings/{single(fake.meetings.main.uuid)}/recordings"
    fake.state.inject("http_429", endpoint="recordings", retry_after=1)
    fake.state.inject("http_503", endpoint="oauth")
    limited = fake.api(path, token)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1"
    assert fake.api(path, token).status_code == 200
    with pytest.raises(requests.HTTPError):
        fake.s2s_token()
    assert fake.s2s_token()


def test_participants_paginate_and_include_a_rejoin(fake: Fake) -> None:
    main = fake.meetings.main
    token = fake.s2s_token()
    path = f"/v2/past_meetings/{single(main.uuid)}/participants"
    participants: list[dict[str, Any]] = []
    page_token = ""
    pages = 0
    while True:
        body = fake.api(path, token, page_size=2, next_page_token=page_token).json()
        pages += 1
        participants += body["participants"]
        page_token = body["next_page_token"]
        if not page_token:
            break
    assert body["total_records"] == len(participants) == len(main.participants) + 1
    assert pages == body["page_count"] == 2
    names = [p["name"] for p in participants]
    assert set(names) == set(main.speakers)
    assert len(names) - len(set(names)) == 1
    assert len({p["user_id"] for p in participants}) == len(participants)
    emails = {p["name"]: p["user_email"] for p in participants}
    assert emails == {p.name: p.email or "" for p in main.participants}
    assert "" in emails.values()

    stale = fake.api(path, token, next_page_token="not-a-token")
    assert stale.status_code == 400


def test_participant_emails_can_be_overridden(fake: Fake) -> None:
    main = fake.meetings.main
    name = main.participants[1].name
    fake.state.add_meeting(main, {name: None}, rejoin=False)
    body = fake.api(f"/v2/past_meetings/{single(main.uuid)}/participants", fake.s2s_token()).json()
    assert body["total_records"] == len(main.participants)
    assert {p["name"]: p["user_email"] for p in body["participants"]}[name] == ""


def test_user_recordings_list_by_date_range(fake: Fake) -> None:
    token = fake.s2s_token()
    march = fake.api(
        "/v2/users/me/recordings", token, **{"from": "2024-03-01", "to": "2024-03-15"}
    ).json()
    assert march["from"] == "2024-03-01"
    assert march["total_records"] == 2
    assert [m["uuid"] for m in march["meetings"]] == [DOUBLE_SLASH_UUID, SLASH_UUID]
    assert march["meetings"][0]["recording_files"]

    collected: list[str] = []
    page_token = ""
    while True:
        page = fake.api(
            f"/v2/users/{fake.meetings.plus.host_email}/recordings",
            token,
            page_size=1,
            next_page_token=page_token,
            **{"from": "2024-03-01", "to": "2024-03-31"},
        ).json()
        collected += [m["uuid"] for m in page["meetings"]]
        page_token = page["next_page_token"]
        if not page_token:
            break
    assert collected == [PLUS_UUID, DOUBLE_SLASH_UUID, SLASH_UUID]

    unknown = fake.api("/v2/users/nobody@example.com/recordings", token)
    assert unknown.status_code == 404


def test_user_recordings_answer_for_at_most_one_month_as_zoom_does(fake: Fake) -> None:
    """Asked for more than a month, Zoom answers 200 for the month before `to` and says so in
    `from` (zoom/api#36): the meeting of March 1st falls out of a range starting in January."""
    token = fake.s2s_token()
    wide = fake.api(
        "/v2/users/me/recordings", token, **{"from": "2024-01-01", "to": "2024-03-20"}
    ).json()
    assert (wide["from"], wide["to"]) == ("2024-02-20", "2024-03-20")
    assert [m["uuid"] for m in wide["meetings"]] == [DOUBLE_SLASH_UUID, SLASH_UUID]
    # Exactly one month is answered in full; the previous month may be shorter (leap February).
    month = fake.api(
        "/v2/users/me/recordings", token, **{"from": "2024-02-29", "to": "2024-03-31"}
    ).json()
    assert month["from"] == "2024-02-29"
    assert [m["uuid"] for m in month["meetings"]] == [PLUS_UUID, DOUBLE_SLASH_UUID, SLASH_UUID]
    longer = fake.api(
        "/v2/users/me/recordings", token, **{"from": "2024-02-28", "to": "2024-03-31"}
    ).json()
    assert longer["from"] == "2024-02-29"
    # The log keeps what the client asked for, not what the fake answered.
    assert fake.state.listed_ranges() == [
        ("me", "2024-01-01", "2024-03-20"),
        ("me", "2024-02-29", "2024-03-31"),
        ("me", "2024-02-28", "2024-03-31"),
    ]


@pytest.mark.parametrize(
    ("day", "before"),
    [
        (date(2024, 3, 20), date(2024, 2, 20)),
        (date(2024, 3, 31), date(2024, 2, 29)),
        (date(2023, 3, 31), date(2023, 2, 28)),
        (date(2024, 1, 15), date(2023, 12, 15)),
        (date(2024, 5, 31), date(2024, 4, 30)),
    ],
)
def test_one_month_before_is_the_same_day_or_the_shorter_month_s_last(
    day: date, before: date
) -> None:
    assert one_month_before(day) == before


def test_request_log_counts_and_clears(fake: Fake) -> None:
    fake.s2s_token()
    assert fake.state.count("oauth", status=200) == 1
    fake.state.clear_log()
    assert fake.state.requests() == []


def test_a_file_can_be_processing_for_some_answers_then_completed(fake: Fake) -> None:
    main = fake.meetings.main
    held = main.participants[1].audio
    fake.state.hold_processing(held.file_id, answers=2)

    def listed(body: dict[str, Any]) -> dict[str, Any]:
        entry: dict[str, Any] = next(
            f for f in body["participant_audio_files"] if f["id"] == held.file_id
        )
        return entry

    event = fake.state.recording_completed(main, base_url=fake.url, download_token="unused")
    in_webhook = listed(event["payload"]["object"])
    assert in_webhook["status"] == "processing" and "file_size" not in in_webhook
    others = [f for f in event["payload"]["object"]["participant_audio_files"] if f != in_webhook]
    assert {f["status"] for f in others} == {"completed"}

    token = fake.s2s_token()
    path = f"/v2/meetings/{single(main.uuid)}/recordings"
    answers = [listed(fake.api(path, token).json()) for _ in range(3)]
    assert [a["status"] for a in answers] == ["processing", "processing", "completed"]
    assert "file_size" not in answers[0]
    assert answers[2]["file_size"] == held.file_size
    assert fake.state.file_status(held.file_id) == "completed"


def test_a_file_can_be_processing_for_some_seconds_or_until_finished(fake: Fake) -> None:
    main = fake.meetings.main
    timed, manual = main.participants[0].audio, main.participants[1].audio
    fake.state.hold_processing(timed.file_id, seconds=0.3)
    fake.state.hold_processing(manual.file_id)
    assert fake.state.file_status(timed.file_id) == "processing"
    deadline = time.monotonic() + 5
    while fake.state.file_status(timed.file_id) == "processing":
        assert time.monotonic() < deadline, "the timed hold never ended"
        time.sleep(0.05)
    assert fake.state.file_status(manual.file_id) == "processing"
    fake.state.finish_processing(manual.file_id)
    assert fake.state.file_status(manual.file_id) == "completed"
    with pytest.raises(ValueError, match="answers"):
        fake.state.hold_processing(manual.file_id, answers=0)
