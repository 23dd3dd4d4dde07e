"""A real browser (headless Chromium, driven by Playwright) reads the insights page, served over
loopback from moto's S3 and DynamoDB with a signed link, and the email's HTML from a file.

It checks what a reader would: every section is there and visible, names in any script survive,
no markup from the meeting runs (no dialog opens), nothing is fetched from elsewhere, and a phone
does not have to scroll sideways. Screenshots land in `.artifacts/screenshots/`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote
from uuid import uuid4

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, sync_playwright

from sandbox.aws_resources import StackNames, provision
from sandbox.credentials import SandboxCredentials
from sandbox.http_server import LoopbackServer
from sandbox.local_aws import LocalAws
from services.core import aws
from services.core.insights.document import InsightsDocument, store_insights
from services.core.insights.render import render_email
from services.core.links import make_page_token
from services.core.recordings import Recording, RecordingStore, State
from services.core.secrets import SecretCache
from services.webhook.insights_page import InsightsPageDeps, insights_blueprint
from tests.support.insights_samples import bare_document, rich_document

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
PAGE_SECTIONS = (
    "summary",
    "action-items",
    "follow-ups",
    "questions",
    "topics",
    "talk-time",
    "transcript",
)
EMAIL_SECTIONS = ("summary", "action-items", "follow-ups", "questions", "topics", "speakers")
RICH_UUID = "Zm9v/YmFy+YmF6==/+"
BARE_UUID = "cXVpZXQ=/c3luYw=="


@dataclass(frozen=True)
class Served:
    base_url: str
    key: str

    def page_url(self, uuid: str) -> str:
        token = make_page_token(uuid, self.key, 3600, time.time())
        return f"{self.base_url}/meetings/{quote(uuid, safe='')}?token={token}"


def _publish(store: RecordingStore, bucket: str, document: InsightsDocument) -> None:
    uuid = document.meeting.uuid
    store.create_if_absent(
        Recording(
            meeting_uuid=uuid,
            meeting_id="1",
            topic=document.meeting.topic,
            start_time=document.meeting.start_time,
        )
    )
    key = store_insights(aws.client("s3"), bucket, document)
    store.transition(uuid, State.RECEIVED, State.NOTIFIED, updates={"insights_key": key})


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    credentials = SandboxCredentials()
    with LocalAws():
        stack = provision(StackNames(f"e2e{uuid4().hex[:8]}"), credentials.secret_values())
        store = RecordingStore(stack.names.recordings_table)
        _publish(store, stack.names.media_bucket, rich_document(RICH_UUID))
        _publish(store, stack.names.media_bucket, bare_document(BARE_UUID))
        secrets = SecretCache()
        deps = InsightsPageDeps(
            store=store,
            s3=aws.client("s3"),
            bucket=stack.names.media_bucket,
            signing_key=lambda: secrets.get_string(stack.secret_arns["link-signing-key"]),
        )
        app = Flask(__name__)
        app.register_blueprint(insights_blueprint(lambda: deps))
        with LoopbackServer(app) as server:
            yield Served(server.url, credentials.link_signing_key)


@pytest.fixture(scope="module")
def browser(running_on_ci: bool) -> Iterator[Browser]:
    """Headless Chromium; without it the tests skip, except on CI, where they fail."""
    if not CHROMIUM.exists():
        absent = f"{CHROMIUM} is absent: `make setup` installs the Debian package 'chromium'"
        if running_on_ci:
            pytest.fail(absent)
        pytest.skip(absent)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def screenshots(artifacts_dir: Path) -> Path:
    folder = artifacts_dir / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def read_like_a_person(browser: Browser, url: str, viewport: str, shot: Path) -> Page:
    """Open `url`, fail on any dialog or foreign request, save a full-page screenshot."""
    context = browser.new_context(viewport=VIEWPORTS[viewport])
    page = context.new_page()
    dialogs: list[str] = []
    requested: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("request", lambda request: requested.append(request.url))
    response = page.goto(url, wait_until="load")
    assert response is not None and response.status == 200
    page.screenshot(path=str(shot), full_page=True)
    assert dialogs == [], "markup from the meeting ran as script"
    origin = url.split("/meetings/")[0] if url.startswith("http") else "file://"
    assert all(u.startswith(origin) for u in requested), requested
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{viewport}: {overflow}px of sideways scrolling"
    return page


@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
def test_insights_page_in_a_browser(
    browser: Browser, served: Served, screenshots: Path, viewport: str
) -> None:
    page = read_like_a_person(
        browser,
        served.page_url(RICH_UUID),
        viewport,
        screenshots / f"insights-page-{viewport}.png",
    )
    for section in PAGE_SECTIONS:
        assert page.locator(f"#{section}").is_visible(), section
    text = page.inner_text("body")
    for expected in (
        "Zoë Ødegård",
        "李雷",
        "<script>alert('x')</script>",
        "Tuesday 3 March 2026",
        "14:05 CET",
        "Assigned to 李雷",
        "13 min 32 s · 46%",
        "10:31",
    ):
        assert expected in text, expected
    bars = page.locator("#talk-time svg rect[fill]")
    assert bars.count() == 4
    widths = [float(bars.nth(i).get_attribute("width")) for i in range(4)]
    assert widths[0] == 100 and widths == sorted(widths, reverse=True)
    assert page.locator("#transcript li").count() == 18
    assert page.get_attribute("html", "lang") == "en"


@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
def test_empty_insights_page_in_a_browser(
    browser: Browser, served: Served, screenshots: Path, viewport: str
) -> None:
    page = read_like_a_person(
        browser,
        served.page_url(BARE_UUID),
        viewport,
        screenshots / f"insights-page-empty-{viewport}.png",
    )
    text = page.inner_text("body")
    for expected in (
        "No questions were asked.",
        "No action items were recorded.",
        "The transcript is empty.",
        "23:30 UTC",
    ):
        assert expected in text, expected


@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
@pytest.mark.parametrize("which", ["rich", "empty"])
def test_email_in_a_browser(
    browser: Browser, served: Served, screenshots: Path, viewport: str, which: str
) -> None:
    document = rich_document(RICH_UUID) if which == "rich" else bare_document(BARE_UUID)
    link = served.page_url(document.meeting.uuid)
    email = render_email(document, link)
    source = screenshots / f"email-{which}.html"
    source.write_text(email.html, encoding="utf-8")
    page = read_like_a_person(
        browser, source.as_uri(), viewport, screenshots / f"email-{which}-{viewport}.png"
    )
    for section in EMAIL_SECTIONS:
        assert page.locator(f"#{section}").is_visible(), section
    assert page.title() == email.subject
    assert page.get_attribute("#insights-link", "href") == link
    text = page.inner_text("body")
    if which == "rich":
        assert "Zoë Ødegård" in text and "李雷" in text and "<script>alert('x')</script>" in text
        assert page.locator("#experience-link").count() == 1
    else:
        assert "No questions were asked." in text and "No action items were recorded." in text
        assert page.locator("#experience-link").count() == 0
