"""The one redaction every log line passes: realistic texts that carry secrets (a urllib3 error
with a signed URL, pydantic's copy of a merge message, a botocore presigned URL, a header dump),
through the service logger's formatter and through plain `logging` as other libraries use it."""

from __future__ import annotations

import base64
import io
import json
import logging
import secrets
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
import urllib3
from pydantic import ValidationError
from urllib3.connectionpool import HTTPSConnectionPool

from services.core.observability import (
    REDACTED,
    RedactingFormatter,
    logger,
    redact_text,
    redact_value,
    validation_error_summary,
)
from services.core.queues import MergeRequest
from services.core.sqs_consumer import consume_stage_batch
from tests.conftest import ROOT

UUID = "4444AAAiAAAAAiAiAiiAii=="


def _jwt() -> str:
    """A token shaped like Zoom's download_token (header.claims.signature), random each run."""

    def part(payload: bytes) -> str:
        return base64.urlsafe_b64encode(payload).decode().rstrip("=")

    header = part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = part(json.dumps({"aud": "https://oauth.zoom.us", "exp": 1_900_000_000}).encode())
    return f"{header}.{claims}.{secrets.token_urlsafe(32)}"


@pytest.fixture
def token() -> str:
    return _jwt()


def signed_zoom_url(token: str) -> str:
    return f"https://zoom.us/rec/download/Xq7zAbc?access_token={token}&type=m4a"


def connection_error(url: str) -> requests.exceptions.ConnectionError:
    """What requests raises when the connection to `url` cannot be opened (urllib3's text)."""
    parts = urllib3.util.parse_url(url)
    pool = HTTPSConnectionPool(parts.host, 443)
    refused = urllib3.exceptions.NewConnectionError(
        pool, "Failed to establish a new connection: [Errno 111] Connection refused"
    )
    return requests.exceptions.ConnectionError(
        urllib3.exceptions.MaxRetryError(pool, parts.request_uri, reason=refused)
    )


def presigned_s3_url() -> tuple[str, dict[str, str]]:
    """A botocore presigned URL under temporary credentials, and those credentials."""
    creds = {
        "aws_access_key_id": "ASIA" + secrets.token_hex(8).upper(),
        "aws_secret_access_key": secrets.token_urlsafe(30),
        "aws_session_token": "IQoJb3JpZ2luX2Vj" + secrets.token_urlsafe(60),
    }
    # AWS's own endpoint, whatever AWS_ENDPOINT_URL another tier of the same run has set.
    s3 = boto3.client(
        "s3", region_name="eu-west-1", endpoint_url="https://s3.eu-west-1.amazonaws.com", **creds
    )
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "media-bucket", "Key": "merged/m.flac"}, ExpiresIn=600
    )
    return str(url), creds


def _assert_none_in(text: str, *secret_values: str) -> None:
    for value in secret_values:
        assert value not in text, f"a secret survived: {text}"


# ---------------------------------------------------------------------------------------------
# Texts
# ---------------------------------------------------------------------------------------------


def test_urllib3_error_keeps_host_and_path_and_loses_the_signed_query(token: str) -> None:
    text = str(connection_error(signed_zoom_url(token)))
    assert token in text  # what urllib3 writes, before redaction
    redacted = redact_text(text)
    _assert_none_in(redacted, token, "access_token=")
    assert "host='zoom.us'" in redacted
    assert f"url: /rec/download/Xq7zAbc?{REDACTED}" in redacted
    assert "Connection refused" in redacted


def test_pydantic_copy_of_a_merge_message_loses_the_token(token: str) -> None:
    with pytest.raises(ValidationError) as missing:
        MergeRequest.model_validate({"download_token": token})
    with pytest.raises(ValidationError) as cut:
        MergeRequest.model_validate_json(f'{{"meeting_uuid": "{UUID}", "download_token": "{token}')
    for error in (missing.value, cut.value):
        text = str(error)
        assert "input_value=" in text and token[-12:] in text  # pydantic quotes the input
        redacted = redact_text(text)
        _assert_none_in(redacted, token[:20], token[-12:])
        assert f"input_value={REDACTED}" in redacted
    assert "meeting_uuid" in redact_text(str(missing.value))
    assert validation_error_summary(missing.value) == "meeting_uuid: missing"
    assert validation_error_summary(cut.value) == "body: json_invalid"


def test_botocore_presigned_url_keeps_bucket_and_key_only() -> None:
    url, creds = presigned_s3_url()
    redacted = redact_text(f"ffmpeg could not open {url}: Server returned 403 Forbidden")
    _assert_none_in(redacted, *creds.values(), "X-Amz-Signature", "X-Amz-Credential")
    assert url.split("?")[0] + f"?{REDACTED}" in redacted
    assert "403 Forbidden" in redacted


def test_authorization_header_dumps_lose_their_credentials(token: str) -> None:
    basic = base64.b64encode(b"client-id:" + secrets.token_urlsafe(24).encode()).decode()
    app_secret = secrets.token_urlsafe(24)
    dumps = [
        str({"Authorization": f"Bearer {token}", "Host": "api.symbl.ai"}),
        f"Authorization: Basic {basic}\r\nHost: zoom.us",
        json.dumps({"type": "application", "appId": "app-1", "appSecret": app_secret}),
        f"send: b'POST /oauth/token HTTP/1.1\\r\\nAuthorization: Bearer {token}\\r\\n'",
    ]
    for dump in dumps:
        redacted = redact_text(dump)
        _assert_none_in(redacted, token, basic, app_secret)
        assert REDACTED in redacted
    assert "api.symbl.ai" in redact_text(dumps[0]) and "zoom.us" in redact_text(dumps[1])


def test_long_opaque_strings_go_and_ids_stay() -> None:
    opaque = secrets.token_urlsafe(32) + "Aa1"
    job = "3f2a1b4c-1234-4cde-8f00-0123456789ab"
    text = (
        f"meeting {UUID} job {job} conversation 5678901234567890 digest {'ab' * 32} key {opaque}"
        " POST /oauth2/token:generate answered 401"
    )
    redacted = redact_text(text)
    assert opaque not in redacted
    for kept in (UUID, job, "5678901234567890", "ab" * 32, "token:generate answered 401"):
        assert kept in redacted
    assert redact_text(redacted) == redacted


def test_structured_values_are_redacted_and_secret_keys_emptied(token: str) -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:p/link-signing-key-AbCdEf"
    value = redact_value(
        {
            "meeting_uuid": UUID,
            "download_token": token,
            "credential": "download_token",  # names a kind of credential: kept
            "secret": arn,  # names a secret: kept
            "status": 401,
            "nested": [{"headers": {"authorization": f"Bearer {token}"}}, signed_zoom_url(token)],
        }
    )
    assert token not in json.dumps(value)
    assert value["download_token"] == REDACTED
    assert value["credential"] == "download_token" and value["secret"] == arn
    assert value["nested"][0]["headers"]["authorization"] == REDACTED
    assert value["nested"][1] == f"https://zoom.us/rec/download/Xq7zAbc?{REDACTED}"
    assert (value["meeting_uuid"], value["status"]) == (UUID, 401)


# ---------------------------------------------------------------------------------------------
# Log paths
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def service_lines() -> Iterator[io.StringIO]:
    """What the service logger writes, through its own formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    level = logger.log_level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def library_lines() -> Iterator[io.StringIO]:
    """What a plain `logging` handler on the root logger writes (as the Lambda runtime's does)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    # Other tests' libraries (moto, werkzeug) may have quietened these loggers: open them here.
    names = (
        "",
        "urllib3",
        "urllib3.connectionpool",
        "botocore",
        "botocore.endpoint",
        "flask.app",
        "requests",
        "app",
    )
    saved = {
        name: (
            logging.getLogger(name).level,
            logging.getLogger(name).propagate,
            logging.getLogger(name).disabled,
        )
        for name in names
    }
    for name in names:
        library = logging.getLogger(name)
        library.setLevel(logging.DEBUG if name == "" else logging.NOTSET)
        library.propagate, library.disabled = True, False
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)
    for name, (level, propagate, disabled) in saved.items():
        library = logging.getLogger(name)
        library.setLevel(level)
        library.propagate, library.disabled = propagate, disabled


def test_the_service_logger_uses_the_redacting_formatter() -> None:
    assert isinstance(logger.registered_formatter, RedactingFormatter)


def test_service_log_line_with_an_exception_chain_keeps_no_secret(
    service_lines: io.StringIO, token: str
) -> None:
    url, creds = presigned_s3_url()
    try:
        try:
            raise connection_error(signed_zoom_url(token))
        except requests.RequestException as e:
            raise RuntimeError(f"download failed; the copy waits at {url}") from e
    except RuntimeError:
        logger.exception(
            "merge task failed",
            meeting_uuid=UUID,
            request={"headers": {"Authorization": f"Bearer {token}"}, "status": 401},
        )
    line = service_lines.getvalue()
    _assert_none_in(line, token, *creds.values(), "X-Amz-Signature")
    record: dict[str, Any] = json.loads(line)
    assert record["meeting_uuid"] == UUID and record["request"]["status"] == 401
    assert record["request"]["headers"]["Authorization"] == REDACTED
    assert "host='zoom.us'" in record["exception"]  # the chain is there, redacted
    assert "Max retries exceeded with url: /rec/download/Xq7zAbc?" in record["exception"]
    assert record["stack_trace"]["type"] == "RuntimeError"
    assert "merged/m.flac?" in record["stack_trace"]["value"]


def test_library_records_are_redacted_whatever_handler_prints_them(
    library_lines: io.StringIO, token: str
) -> None:
    url, creds = presigned_s3_url()
    pool = logging.getLogger("urllib3.connectionpool")
    pool.debug(
        '%s://%s:%s "%s %s %s" %s %s', "https", "zoom.us", 443, "GET", url, "HTTP/1.1", 403, 0
    )
    try:
        raise connection_error(signed_zoom_url(token))
    except requests.RequestException:
        logging.getLogger("botocore.endpoint").exception("request failed")
    logging.getLogger("flask.app").warning("headers: %r", {"Authorization": f"Bearer {token}"})
    logging.getLogger("requests").warning(connection_error(signed_zoom_url(token)))
    logging.getLogger("app").info({"event": "download", "access_token": token})
    text = library_lines.getvalue()
    _assert_none_in(text, token, *creds.values(), "X-Amz-Signature")
    assert f'"GET {url.split("?")[0]}?' in text  # the path stays, the query goes
    assert "Traceback" in text and "Max retries exceeded with url: /rec/download/" in text


def test_a_malformed_merge_message_is_logged_by_its_fields_only(token: str) -> None:
    captured: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            captured.append(record)

    keep = Keep(level=logging.DEBUG)
    logger.addHandler(keep)
    try:
        result = consume_stage_batch(
            {
                "Records": [
                    {"messageId": "m-1", "receiptHandle": "r-1", "body": body}
                    for body in (
                        json.dumps({"download_token": token}),
                        f'{{"meeting_uuid": "{UUID}", "download_token": "{token}',
                    )
                ]
            },
            MergeRequest,
            lambda request: None,
            lambda uuid, reason: None,
            queue_url="unused",
            max_receive_count=5,
            sqs=None,
        )
    finally:
        logger.removeHandler(keep)
    assert result == {"batchItemFailures": []}  # acknowledged: retrying cannot help
    reasons = [
        r.__dict__["reason"] for r in captured if r.getMessage().startswith("message failed")
    ]
    # The reason as the code wrote it, before any formatter: it never held the input.
    assert reasons == [
        "malformed MergeRequest: meeting_uuid: missing",
        "malformed MergeRequest: body: json_invalid",
    ]


def test_an_uncaught_exception_is_logged_redacted_not_printed_raw(token: str) -> None:
    """A Fargate task or CLI that dies of an exception: the traceback goes through the logger."""
    script = (
        "import services.core.observability\n"
        f"raise RuntimeError('could not fetch {signed_zoom_url(token)}')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    _assert_none_in(done.stdout + done.stderr, token)
    line = json.loads(done.stdout)
    assert line["exception_name"] == "RuntimeError"
    assert line["message"] == f"could not fetch https://zoom.us/rec/download/Xq7zAbc?{REDACTED}"
