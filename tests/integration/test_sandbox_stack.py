"""The local stack itself: resources shaped as the Terraform declares, Zoom's delivery behaviour."""

from __future__ import annotations

import json
import threading
from typing import Any

from flask import Flask, Response, request

from sandbox.aws_resources import MAX_RECEIVE_COUNT, STAGES, ProvisionedStack, provision
from sandbox.http_server import LoopbackServer
from sandbox.zoom_webhook_sender import ZoomWebhookSender
from services.core import aws
from services.webhook.zoom_signature import zoom_signature


def test_every_queue_has_an_encrypted_dlq_with_redrive(stack: ProvisionedStack) -> None:
    sqs = aws.client("sqs")
    for stage in STAGES:
        attrs = sqs.get_queue_attributes(QueueUrl=stack.queue_urls[stage], AttributeNames=["All"])[
            "Attributes"
        ]
        redrive = json.loads(attrs["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"].endswith(f"{stack.names.prefix}-{stage}-dlq")
        assert int(redrive["maxReceiveCount"]) == MAX_RECEIVE_COUNT
        assert attrs["SqsManagedSseEnabled"] == "true"


def test_table_has_the_indexes_the_code_queries(stack: ProvisionedStack) -> None:
    table = aws.client("dynamodb").describe_table(TableName=stack.names.recordings_table)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "meeting_uuid", "KeyType": "HASH"}]
    assert {i["IndexName"] for i in table["GlobalSecondaryIndexes"]} == {"by-state", "by-job"}


def test_provision_is_idempotent(stack: ProvisionedStack) -> None:
    again = provision(stack.names, {"zoom-webhook-secret-token": "rotated"})
    assert (
        again.secret_arns["zoom-webhook-secret-token"]
        == stack.secret_arns["zoom-webhook-secret-token"]
    )
    assert again.queue_urls == stack.queue_urls
    value = aws.client("secretsmanager").get_secret_value(
        SecretId=again.secret_arns["zoom-webhook-secret-token"]
    )["SecretString"]
    assert value == "rotated"


class FlakyReceiver:
    """Fails the first `failures` deliveries, records what arrived."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.bodies: list[tuple[bytes, dict[str, str]]] = []
        self.lock = threading.Lock()
        self.app = Flask("receiver")
        self.app.add_url_rule("/hook", "hook", self.hook, methods=["POST"])

    def hook(self) -> Response:
        with self.lock:
            self.bodies.append((request.get_data(), dict(request.headers)))
            failing = len(self.bodies) <= self.failures
        return Response(status=500 if failing else 204)


def test_sender_signs_exact_compact_bytes_and_retries_on_the_zoom_schedule() -> None:
    receiver = FlakyReceiver(failures=2)
    slept: list[float] = []
    with LoopbackServer(receiver.app) as server:
        sender = ZoomWebhookSender(
            f"{server.url}/hook", "s3cret", time_scale=0.001, sleep=slept.append
        )
        result = sender.deliver({"event": "x", "payload": {"a": [1, 2], "b": "é"}})
    assert result.delivered
    assert result.statuses == [500, 500, 204]
    assert slept == [0.3, 1.2]  # 5 and 20 minutes, compressed a thousand times
    body, headers = receiver.bodies[-1]
    assert body == '{"event":"x","payload":{"a":[1,2],"b":"é"}}'.encode()
    ts = headers["X-Zm-Request-Timestamp"]
    assert headers["X-Zm-Signature"] == zoom_signature("s3cret", ts, body)
    # Retries keep the first timestamp unless told otherwise.
    assert {h["X-Zm-Request-Timestamp"] for _, h in receiver.bodies} == {ts}


def test_sender_gives_up_after_three_retries() -> None:
    receiver = FlakyReceiver(failures=10)
    with LoopbackServer(receiver.app) as server:
        sender = ZoomWebhookSender(f"{server.url}/hook", "s", sleep=lambda _: None)
        result = sender.deliver({"event": "x"})
    assert not result.delivered
    assert result.attempts == 4


def test_sender_counts_a_slow_answer_as_a_failure() -> None:
    release = threading.Event()
    app = Flask("slow")
    calls: list[int] = []

    @app.post("/hook")
    def hook() -> Any:
        calls.append(1)
        if len(calls) == 1:
            release.wait(2)
        return Response(status=200)

    with LoopbackServer(app) as server:
        sender = ZoomWebhookSender(f"{server.url}/hook", "s", timeout=0.3, sleep=lambda _: None)
        result = sender.deliver({"event": "x"})
        release.set()
    assert result.statuses == ["timeout", 200]
