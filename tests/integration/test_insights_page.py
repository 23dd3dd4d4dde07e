"""The insights page blueprint against moto's DynamoDB, S3 and Secrets Manager: signed links,
generic error pages, and the rendered page for UUIDs with '/', '+' and '='."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.exceptions import NotFound

from sandbox.aws_resources import ProvisionedStack
from sandbox.credentials import SandboxCredentials
from sandbox.http_server import LoopbackServer
from services.core import aws
from services.core.insights.document import store_insights
from services.core.links import make_page_token
from services.core.recordings import Recording, RecordingStore, State
from services.core.secrets import SecretCache
from services.webhook.insights_page import InsightsPageDeps, insights_blueprint
from tests.support.insights_samples import bare_document, rich_document

DAY = 86_400
UUID = "Qm9v/L3Nh+bXBsZS==/+x"
OTHER = "T3RoZXI+/bWVldGluZw=="


@dataclass
class Page:
    stack: ProvisionedStack
    key: str
    client: FlaskClient
    clock: list[float]

    def token(self, uuid: str = UUID, *, key: str | None = None, lifetime: int = 30 * DAY) -> str:
        return make_page_token(uuid, key or self.key, lifetime, self.clock[0])

    def get(self, uuid: str = UUID, token: str | None = None) -> tuple[int, str]:
        query = "" if token == "" else f"?token={token or self.token(uuid)}"
        response = self.client.get(f"/meetings/{quote(uuid, safe='')}{query}")
        return response.status_code, response.get_data(as_text=True)


def add_meeting(store: RecordingStore, uuid: str, insights_key: str | None) -> None:
    store.create_if_absent(
        Recording(meeting_uuid=uuid, meeting_id="1", topic="t", start_time="2026-03-03T13:05:00Z")
    )
    store.transition(uuid, State.RECEIVED, State.NOTIFIED, updates={"insights_key": insights_key})


def page_app(stack: ProvisionedStack, clock: Callable[[], float]) -> Flask:
    secrets = SecretCache()
    deps = InsightsPageDeps(
        store=RecordingStore(stack.names.recordings_table),
        s3=aws.client("s3"),
        bucket=stack.names.media_bucket,
        signing_key=lambda: secrets.get_string(stack.secret_arns["link-signing-key"]),
        clock=clock,
    )
    app = Flask(__name__)
    app.register_blueprint(insights_blueprint(lambda: deps))
    return app


@pytest.fixture
def page(stack: ProvisionedStack, credentials: SandboxCredentials) -> Page:
    s3 = aws.client("s3")
    store = RecordingStore(stack.names.recordings_table)
    bucket = stack.names.media_bucket
    add_meeting(store, UUID, store_insights(s3, bucket, rich_document(UUID)))
    add_meeting(store, OTHER, store_insights(s3, bucket, bare_document(OTHER)))
    clock = [time.time()]
    app = page_app(stack, lambda: clock[0])
    return Page(stack, credentials.link_signing_key, app.test_client(), clock)


def test_valid_link_shows_every_section(page: Page) -> None:
    response = page.client.get(f"/meetings/{quote(UUID, safe='')}?token={page.token()}")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    html = response.get_data(as_text=True)
    for section in (
        "summary",
        "action-items",
        "follow-ups",
        "questions",
        "topics",
        "talk-time",
        "transcript",
    ):
        assert re.search(f'<section class="card[^"]*" id="{section}"', html), section
    assert "<svg" in html and "Zoë Ødegård" in html and "李雷" in html
    assert "<script" not in html and "&lt;script&gt;" in html
    status, bare = page.get(OTHER)
    assert status == 200 and "No questions were asked." in bare


def test_link_works_over_http_with_the_encoded_uuid(page: Page, stack: ProvisionedStack) -> None:
    with LoopbackServer(page_app(stack, time.time)) as server:
        url = f"{server.url}/meetings/{quote(UUID, safe='')}?token={page.token()}"
        response = requests.get(url, timeout=10)
    assert response.status_code == 200 and "Launch review" in response.text


def test_wrong_token_is_404(page: Page) -> None:
    generic = page.get(UUID, "not-a-token")
    assert generic[0] == 404
    assert page.get(UUID, page.token(key="another key of a decent length" * 2)) == generic
    assert page.get(UUID, "") == generic
    assert UUID not in generic[1] and "token" not in generic[1].lower()


def test_expired_link_is_410(page: Page) -> None:
    token = page.token(lifetime=60)
    page.clock[0] += 61
    status, body = page.get(UUID, token)
    assert status == 410 and "expired" in body and UUID not in body


def test_tampered_uuid_is_404(page: Page) -> None:
    token = page.token(UUID)
    assert page.get(OTHER, token)[0] == 404
    assert page.get(UUID[:-1], token)[0] == 404
    assert page.get(UUID.replace("+", " "), token)[0] == 404


def test_unknown_meeting_and_meeting_without_insights_are_404(
    page: Page, stack: ProvisionedStack
) -> None:
    generic = page.get(UUID, "x")
    assert page.get("never/seen==") == generic
    store = RecordingStore(stack.names.recordings_table)
    add_meeting(store, "no/insights+yet", None)
    assert page.get("no/insights+yet") == generic
    add_meeting(store, "lost/document", "insights/missing.json")
    assert page.get("lost/document") == generic


def test_own_failures_show_a_generic_page(stack: ProvisionedStack) -> None:
    def broken_key() -> str:
        raise RuntimeError("secret store down")

    deps = InsightsPageDeps(
        store=RecordingStore(stack.names.recordings_table),
        s3=aws.client("s3"),
        bucket=stack.names.media_bucket,
        signing_key=broken_key,
    )
    app = Flask(__name__)
    app.register_blueprint(insights_blueprint(lambda: deps))
    response = app.test_client().get(f"/meetings/{quote(UUID, safe='')}?token=abc")
    assert response.status_code == 503 and response.mimetype == "text/html"
    assert "secret" not in response.get_data(as_text=True)


def test_page_not_configured_is_a_plain_404() -> None:
    def not_configured() -> InsightsPageDeps:
        raise NotFound()

    app = Flask(__name__)
    app.register_blueprint(insights_blueprint(not_configured))
    response = app.test_client().get("/meetings/abc?token=x")
    assert response.status_code == 404 and response.mimetype == "text/html"
