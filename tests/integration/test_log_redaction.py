"""Fault scenarios with every log captured, searched for the sandbox's secrets and for signed
query strings: a merge whose download fails with a connection error to a signed URL (in the
Lambda and in the Fargate task, which logs the whole exception chain), malformed merge messages
that carry a `download_token`, and Symbl refusing our credentials.

What is captured is what production writes: the service logger's own output stream (its
registered handler and formatter) and a plain handler on the root logger, as the Lambda runtime
installs one, which sees botocore, urllib3, requests and Flask; everything at DEBUG.
"""

from __future__ import annotations

import io
import json
import logging
import re
import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from sandbox.aws_resources import ProvisionedStack
from sandbox.credentials import SandboxCredentials
from sandbox.synth import SyntheticMeeting
from services.core import aws
from services.core.errors import ConfigurationError
from services.core.intake import accept_recording
from services.core.observability import logger
from services.core.queues import QueueSender
from services.core.recordings import State
from services.core.zoom_models import RecordingCompletedEvent
from services.merger.handler import handle_batch
from services.merger.task import run_task
from services.submitter.pump import run_pump
from tests.support.merger_rig import MergerRig, merger_rig
from tests.support.submitter_rig import submitter_rig, two_channel_flac

# A query parameter that carries a credential or a signature, with a value that is not ours.
SIGNED_QUERY = re.compile(
    r"[?&](?:sig|expires|X-Amz-[A-Za-z-]+|access_token|token|download_token)=(?!<redacted>)",
    re.IGNORECASE,
)


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Everything logged during the test, as production would write it."""
    stream = io.StringIO()
    service = cast(logging.StreamHandler, logger.registered_handler)  # type: ignore[type-arg]
    service_stream = service.setStream(stream)
    service_level = logger.log_level
    logger.setLevel(logging.DEBUG)
    runtime = logging.StreamHandler(stream)
    runtime.setFormatter(logging.Formatter("[%(levelname)s] %(name)s %(message)s"))
    root = logging.getLogger()
    root_level = root.level
    root.addHandler(runtime)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(runtime)
        root.setLevel(root_level)
        logger.setLevel(service_level)
        service.setStream(service_stream)


def sandbox_secrets(credentials: SandboxCredentials) -> list[str]:
    """Every secret value the sandbox provisions, except Zoom's account id: that names the
    account in every webhook and on every recording item, and is no credential by itself."""
    found: list[str] = []
    for value in credentials.secret_values().values():
        try:
            parsed = json.loads(value)
        except ValueError:
            found.append(value)
            continue
        found.extend(str(v) for k, v in parsed.items() if k != "account_id")
    assert len(found) == 6 and all(found)
    return found


def assert_clean(text: str, secrets: list[str]) -> None:
    assert text, "nothing was logged"
    for secret in secrets:
        assert secret not in text, f"a secret is in the logs: …{secret[-4:]}"
    leak = SIGNED_QUERY.search(text)
    assert leak is None, text[max(0, leak.start() - 200) : leak.end() + 40]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def receive_with_unreachable_signed_urls(
    rig: MergerRig, meeting: SyntheticMeeting, nowhere: int
) -> tuple[str, str, list[str]]:
    """The meeting as intake records it, except that each participant file's download URL is
    the signed storage URL Zoom redirects to, on port `nowhere`, where nothing listens (the
    storage host went away). Returns (uuid, download_token, the URLs' signatures)."""
    meeting = replace(meeting, account_id=rig.zoom.account_id)
    rig.zoom.add_meeting(meeting, with_participant_files=True)
    token = rig.zoom.make_download_token(meeting)
    event = rig.zoom.recording_completed(meeting, base_url=rig.zoom_url, download_token=token)
    zoom_port = urlsplit(rig.zoom_url).port
    signatures = []
    for item in event["payload"]["object"]["participant_audio_files"]:
        answer = requests.get(
            item["download_url"],
            headers={"Authorization": f"Bearer {token}"},
            allow_redirects=False,
            timeout=10,
        )
        assert answer.status_code == 302
        signed = answer.headers["Location"]
        signatures.extend(parse_qs(urlsplit(signed).query)["sig"])
        item["download_url"] = signed.replace(f":{zoom_port}/", f":{nowhere}/", 1)
    accept_recording(
        RecordingCompletedEvent.model_validate(event).payload.object,
        download_token=token,
        store=rig.store,
        merge_queue=QueueSender(rig.stack.queue_urls["merge"]),
    )
    return meeting.uuid, token, signatures


def merge_requests(rig: MergerRig) -> dict[str, Any]:
    """The merge queue's messages as Lambda's event source hands them over."""
    received = aws.client("sqs").receive_message(
        QueueUrl=rig.stack.queue_urls["merge"],
        MaxNumberOfMessages=10,
        WaitTimeSeconds=1,
        AttributeNames=["ApproximateReceiveCount"],
    )
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
            }
            for m in received.get("Messages", [])
        ]
    }


@pytest.fixture
def rig(stack: ProvisionedStack, credentials: SandboxCredentials) -> Iterator[MergerRig]:
    with merger_rig(stack, credentials) as r:
        yield r


def test_a_download_cut_off_from_its_signed_url_logs_no_secret(
    rig: MergerRig,
    meeting3: SyntheticMeeting,
    credentials: SandboxCredentials,
    logs: io.StringIO,
) -> None:
    nowhere = closed_port()
    # The storage host is one the merger may fetch from (as Zoom's CDN is); it just answers no.
    allowed = f"{rig.environment()['ZOOM_DOWNLOAD_LOOPBACK_ORIGINS']},127.0.0.1:{nowhere}"
    deps = rig.deps(DOWNLOAD_RETRY_BUDGET_SECONDS=1, ZOOM_DOWNLOAD_LOOPBACK_ORIGINS=allowed)
    # In the Lambda: the queued request carries the webhook's download_token.
    _, inline_token, inline_signatures = receive_with_unreachable_signed_urls(
        rig, replace(meeting3, uuid="redact/inline=="), nowhere
    )
    result = handle_batch(merge_requests(rig), deps)
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] != []
    # In the Fargate task, which logs the whole exception chain.
    task_uuid, task_token, task_signatures = receive_with_unreachable_signed_urls(
        rig, replace(meeting3, uuid="redact/task=="), nowhere
    )
    assert run_task(task_uuid, None, deps) == 2

    text = logs.getvalue()
    secrets = [*sandbox_secrets(credentials), inline_token, task_token]
    assert_clean(text, [*secrets, *inline_signatures, *task_signatures])
    # The failures were logged, useful and redacted: the chain names the storage host and path.
    assert "message will be retried" in text and "merge task failed" in text
    assert "Max retries exceeded with url: /cdn/" in text and "?<redacted>" in text
    assert task_uuid in text and "127.0.0.1" in text
    assert rig.store.require(task_uuid).state == State.MERGING


def test_a_malformed_merge_message_logs_no_token(
    rig: MergerRig,
    meeting3: SyntheticMeeting,
    credentials: SandboxCredentials,
    logs: io.StringIO,
) -> None:
    token = rig.zoom.make_download_token(replace(meeting3, account_id=rig.zoom.account_id))
    bodies = [
        json.dumps({"download_token": token}),  # no meeting_uuid
        json.dumps({"meeting_uuid": 42, "download_token": token}),
        '{"meeting_uuid": "redact/cut==", "download_token": "' + token,  # cut short
    ]
    event = {
        "Records": [
            {"messageId": f"m-{i}", "receiptHandle": f"r-{i}", "body": body}
            for i, body in enumerate(bodies)
        ]
    }
    assert handle_batch(event, rig.deps()) == {"batchItemFailures": []}

    text = logs.getvalue()
    assert_clean(text, [*sandbox_secrets(credentials), token, token.split(".")[-1]])
    for reason in ("meeting_uuid: missing", "meeting_uuid: string_type", "body: json_invalid"):
        assert f"malformed MergeRequest: {reason}" in text


def test_symbl_refusing_our_credentials_logs_no_secret(
    stack: ProvisionedStack,
    credentials: SandboxCredentials,
    logs: io.StringIO,
    tmp_path: Path,
) -> None:
    with submitter_rig(stack, credentials, limit=2) as rig:
        rig.add_merged_meetings(1, two_channel_flac(tmp_path / "two.flac"), prefix="redact")
        rig.symbl.app_secret = "rotated-" + rig.symbl.app_secret[::-1]  # ours is now wrong
        with pytest.raises(ConfigurationError, match="Symbl refused the app id/secret"):
            try:
                run_pump(rig.pump_deps())
            except ConfigurationError:
                logger.exception("pump run failed")  # as the local stack's runner logs it
                raise
        assert_clean(logs.getvalue(), [*sandbox_secrets(credentials), rig.symbl.app_secret])
    assert "Symbl refused the app id/secret (401)" in logs.getvalue()
