"""A new stack before the operator sets its secrets: services log one line and do nothing.

Between `terraform apply` and `put-secret-value` every secret exists without a value. The
every-minute reconciler and any pump run must then neither raise (a Lambda error alarms) nor
touch the work waiting for them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from sandbox.aws_resources import ProvisionedStack
from services.core import aws
from services.core.errors import SecretNotSet
from services.core.observability import logger
from services.core.queues import QueueSender, SubmitRequest
from services.core.secrets import SecretCache, waiting_for_secrets
from services.core.settings import cached_settings
from services.submitter import handler
from tests.support.apigw import FakeLambdaContext


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def at(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= level]


@pytest.fixture
def lines() -> Iterator[Lines]:
    captured = Lines()
    logger.addHandler(captured)
    yield captured
    logger.removeHandler(captured)


@pytest.fixture
def unset_symbl_secret(
    stack: ProvisionedStack, monkeypatch: pytest.MonkeyPatch, unique_prefix: str
) -> Iterator[str]:
    """The stack's environment, with Symbl's credentials in a secret that has no value yet."""
    arn = aws.client("secretsmanager").create_secret(Name=f"{unique_prefix}/symbl-unset")["ARN"]
    environment = {
        **stack.service_environment(),
        "SYMBL_CREDENTIALS_SECRET_ARN": arn,
        "CALLBACK_BASE_URL": "https://api.example.com",
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(handler, "_secrets", SecretCache())
    monkeypatch.setattr(handler, "_pump", None)
    monkeypatch.setattr(handler, "_reconciler", None)
    cached_settings.cache_clear()
    yield arn
    cached_settings.cache_clear()


def test_a_secret_without_a_value_is_not_set_and_a_set_one_is(
    stack: ProvisionedStack, unique_prefix: str, lines: Lines
) -> None:
    secrets = aws.client("secretsmanager")
    empty = secrets.create_secret(Name=f"{unique_prefix}/empty")["ARN"]
    placeholder = secrets.create_secret(Name=f"{unique_prefix}/placeholder", SecretString="{}")[
        "ARN"
    ]
    cache = SecretCache()
    with pytest.raises(SecretNotSet) as raised:
        cache.get_string(empty)
    assert raised.value.secret_id == empty
    with pytest.raises(SecretNotSet):
        cache.get_json(placeholder)
    assert waiting_for_secrets(cache, [stack.secret_arns["symbl-credentials"], empty])
    assert not waiting_for_secrets(cache, [stack.secret_arns["symbl-credentials"]])
    warned = lines.at(logging.WARNING)
    assert len(warned) == 1 and empty in warned[0] and "no value yet" in warned[0]


def test_reconciler_and_pump_do_nothing_and_raise_nothing_while_symbl_s_secret_is_unset(
    stack: ProvisionedStack, unset_symbl_secret: str, lines: Lines
) -> None:
    QueueSender(stack.queue_urls["submit"]).send(SubmitRequest(meeting_uuid="waiting=="))

    assert handler.reconciler_handler({}, FakeLambdaContext()) == {"skipped": "secret not set"}
    assert handler.pump_handler({"reason": "test"}, FakeLambdaContext()) == {
        "skipped": "secret not set"
    }

    warned = lines.at(logging.WARNING)
    assert len(warned) == 2, warned
    assert all(unset_symbl_secret in line and "no value yet" in line for line in warned)
    assert not lines.at(logging.ERROR)
    # The submit request was not received: it waits, untouched, for the secret.
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=stack.queue_urls["submit"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert attributes == {
        "ApproximateNumberOfMessages": "1",
        "ApproximateNumberOfMessagesNotVisible": "0",
    }


def test_merger_puts_its_batch_back_unspent_while_zoom_s_secret_is_unset(
    stack: ProvisionedStack, monkeypatch: pytest.MonkeyPatch, unique_prefix: str, lines: Lines
) -> None:
    from services.merger import handler as merger

    arn = aws.client("secretsmanager").create_secret(Name=f"{unique_prefix}/zoom-unset")["ARN"]
    for key, value in {**stack.service_environment(), "ZOOM_S2S_SECRET_ARN": arn}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(merger, "_secrets", SecretCache())
    monkeypatch.setattr(merger, "_deps", None)
    cached_settings.cache_clear()
    body = '{"meeting_uuid": "waiting=="}'
    event = {"Records": [{"messageId": "m-1", "receiptHandle": "r-1", "body": body}]}

    try:
        assert merger.lambda_handler(event, FakeLambdaContext()) == {"batchItemFailures": []}
    finally:
        cached_settings.cache_clear()

    # Acknowledged, and back as a delayed copy: the wait spends none of its receives.
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=stack.queue_urls["merge"], AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"
    warned = lines.at(logging.WARNING)
    assert len(warned) == 1 and arn in warned[0]
    assert not lines.at(logging.ERROR)


def test_notifier_puts_its_batch_back_unspent_while_the_link_key_is_unset(
    stack: ProvisionedStack, monkeypatch: pytest.MonkeyPatch, unique_prefix: str, lines: Lines
) -> None:
    from services.notifier import handler as notifier

    arn = aws.client("secretsmanager").create_secret(Name=f"{unique_prefix}/key-unset")["ARN"]
    environment = {
        **stack.service_environment(),
        "LINK_SIGNING_KEY_SECRET_ARN": arn,
        "SES_SENDER": "notes@example.com",
        "INSIGHTS_PAGE_BASE_URL": "https://api.example.com",
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(notifier, "_secrets", SecretCache())
    monkeypatch.setattr(notifier, "_deps", None)
    cached_settings.cache_clear()
    body = '{"meeting_uuid": "waiting=="}'
    event = {"Records": [{"messageId": "m-1", "receiptHandle": "r-1", "body": body}]}

    try:
        assert notifier.lambda_handler(event, FakeLambdaContext()) == {"batchItemFailures": []}
    finally:
        cached_settings.cache_clear()

    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=stack.queue_urls["notify"], AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"
    warned = lines.at(logging.WARNING)
    assert len(warned) == 1 and arn in warned[0]
    assert not lines.at(logging.ERROR)
