"""Zoom's tokens go only to Zoom's hosts over https: the URL check, its settings, and the
downloader refusing a file before any request (no sockets: the session is a stand-in)."""

from __future__ import annotations

from typing import Any

import pytest

from services.core import zoom
from services.core.errors import ConfigurationError, PermanentError
from services.core.settings import MergerSettings, settings_from
from services.core.zoom import (
    DownloadSpec,
    DownloadUrlPolicy,
    DownloadUrlRefused,
    ZoomDownloader,
    download_url_refusal,
)
from services.merger.merge import download_url_policy
from tests.support.settings import MERGER_ENV

ZOOM = DownloadUrlPolicy()
SANDBOX = DownloadUrlPolicy(loopback_origins=("127.0.0.1:8123",))


@pytest.mark.parametrize(
    "url",
    [
        "https://zoom.us/rec/download/abc?x=1",
        "https://us02web.zoom.us/rec/webhook_download/abc",
        "https://ssrweb.zoom.us/cmr/replay/a.m4a?Signature=s",
        "https://zoom.com/rec/download/abc",
        "https://a.b.zoomgov.com/rec/download/abc",
        "https://ZOOM.US/rec/download/abc",
        "HTTPS://Us02Web.Zoom.Us/rec/download/abc",
        "https://zoom.us./rec/download/abc",
        "https://zoom.us:443/rec/download/abc",
    ],
)
def test_zoom_s_https_hosts_and_subdomains_are_allowed(url: str) -> None:
    assert download_url_refusal(url, ZOOM) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://zoom.us/rec/download/abc", "http is not https"),
        ("ftp://zoom.us/rec/download/abc", "ftp is not https"),
        ("file:///etc/passwd", "not a plain DNS name"),
        ("//zoom.us/rec/download/abc", "without a scheme"),
        ("zoom.us/rec/download/abc", "not a plain DNS name"),
        ("", "not a plain DNS name"),
        ("https://zoom.us.evil.com/rec", "host zoom.us.evil.com is not a Zoom download host"),
        ("https://evilzoom.us/rec", "host evilzoom.us is not a Zoom download host"),
        ("https://zoom.usa/rec", "host zoom.usa is not a Zoom download host"),
        ("https://us.zoom/rec", "host us.zoom is not a Zoom download host"),
        ("https://zoom.example/rec/webhook_download/p-1", "not a Zoom download host"),
        ("https://user@zoom.us/rec", "user information"),
        ("https://user:pw@zoom.us/rec", "user information"),
        ("https://zoom.us@evil.com/rec", "user information"),
        ("https://evil.com\\@zoom.us/rec", "user information"),
        ("https://evil.com\\.zoom.us/rec", "not a plain DNS name"),
        ("https://evil.com%2ezoom.us/rec", "not a plain DNS name"),
        ("https://zoom.us\n.evil.com/rec", "spaces or control characters"),
        ("https://zoom.us .evil.com/rec", "spaces or control characters"),
        # Unicode look-alikes and full-width letters are refused, not normalised.
        ("https://\uff5a\uff4f\uff4f\uff4d.us/rec", "not a plain DNS name"),
        ("https://z\u043e\u043em.us/rec", "not a plain DNS name"),
        ("https://xn--zom-8cd.us/rec", "not a Zoom download host"),
        ("https://zoom.us:8443/rec", "port 8443 is not https's"),
        ("https://zoom.us:99999/rec", "cannot be parsed"),
        ("https://[::1]/rec", "not a plain DNS name"),
        ("https://127.0.0.1/rec", "not a Zoom download host"),
        ("https://zoom.us../rec", "not a plain DNS name"),
    ],
)
def test_everything_else_is_refused_with_the_host_at_most(url: str, reason: str) -> None:
    refusal = download_url_refusal(url, ZOOM)
    assert refusal is not None and reason in refusal
    assert "/rec" not in refusal and "passwd" not in refusal


def test_plain_http_only_to_the_exact_loopback_origins_listed() -> None:
    assert download_url_refusal("http://127.0.0.1:8123/rec/download/k?x=1", SANDBOX) is None
    for url in (
        "http://127.0.0.1:8124/rec/download/k",  # another port
        "http://localhost:8123/rec/download/k",  # another host name for it
        "http://127.0.0.1/rec/download/k",  # no port
        "https://127.0.0.1:8123/rec/download/k",  # listed for http only
        "http://10.0.0.1:8123/rec/download/k",
    ):
        assert download_url_refusal(url, SANDBOX) is not None, url
    # Listing the fake does not open anything else, and production lists nothing.
    assert download_url_refusal("http://zoom.us/rec", SANDBOX) is not None
    assert download_url_refusal("http://127.0.0.1:8123/rec", ZOOM) is not None


def merger_settings(**extra: str) -> MergerSettings:
    return settings_from(MergerSettings, {**MERGER_ENV, **extra})


def test_settings_default_to_zoom_s_domains_and_no_http() -> None:
    policy = download_url_policy(merger_settings())
    assert policy.domains == ("zoom.us", "zoom.com", "zoomgov.com")
    assert policy.loopback_origins == ()


def test_settings_take_domains_and_loopback_origins() -> None:
    settings = merger_settings(
        ZOOM_DOWNLOAD_DOMAINS=" Zoom.US , zoomgov.com",
        ZOOM_DOWNLOAD_LOOPBACK_ORIGINS="127.0.0.1:8123,localhost:9000",
    )
    policy = download_url_policy(settings)
    assert policy.domains == ("zoom.us", "zoomgov.com")
    assert policy.loopback_origins == ("127.0.0.1:8123", "localhost:9000")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ZOOM_DOWNLOAD_DOMAINS", ""),
        ("ZOOM_DOWNLOAD_DOMAINS", "us"),  # a whole top-level domain
        ("ZOOM_DOWNLOAD_DOMAINS", "*.zoom.us"),
        ("ZOOM_DOWNLOAD_DOMAINS", "https://zoom.us"),
        ("ZOOM_DOWNLOAD_LOOPBACK_ORIGINS", "zoom.us:80"),
        ("ZOOM_DOWNLOAD_LOOPBACK_ORIGINS", "10.0.0.5:8080"),
        ("ZOOM_DOWNLOAD_LOOPBACK_ORIGINS", "127.0.0.1"),
        ("ZOOM_DOWNLOAD_LOOPBACK_ORIGINS", "127.0.0.1:0"),
        ("ZOOM_DOWNLOAD_LOOPBACK_ORIGINS", "*"),
    ],
)
def test_settings_refuse_wide_or_malformed_entries_by_name(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        merger_settings(**{name: value})


# --- the downloader ------------------------------------------------------------------------


class NoRequests:
    """Fails the test on any use: a refused URL must cause no request, token or upload."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        def called(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            raise AssertionError(f"{name} was called")

        return called


@pytest.mark.parametrize(
    "url",
    [
        "http://zoom.us/rec/webhook_download/p-1?sig=secret-query",
        "https://attacker.example/rec/webhook_download/p-1?sig=secret-query",
    ],
)
def test_a_refused_url_costs_no_request_no_token_and_no_upload(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics: list[str] = []
    monkeypatch.setattr(zoom, "record_metric", lambda name, *_a, **_k: metrics.append(name))
    session, oauth, api, s3 = NoRequests(), NoRequests(), NoRequests(), NoRequests()
    downloader = ZoomDownloader(oauth, api, s3, session=session)  # type: ignore[arg-type]
    with pytest.raises(DownloadUrlRefused) as caught:
        downloader.download_to_s3(
            DownloadSpec("p-1", url, 100, "M4A"),
            bucket="b",
            key="raw/k.m4a",
            download_token="webhook.download.token",
            meeting_uuid="m==",
        )
    assert isinstance(caught.value, PermanentError)  # the merge leaves the file out for good
    assert session.calls == oauth.calls == api.calls == s3.calls == []
    assert metrics == ["DownloadUrlsRefused"]
    assert "secret-query" not in str(caught.value) and "/rec/" not in str(caught.value)
