"""Integration fixtures: one moto server per session, a freshly provisioned stack per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.aws_resources import ProvisionedStack, StackNames, provision
from sandbox.local_aws import LocalAws
from services.core import aws

WEBHOOK_SECRET = "test-webhook-secret"


@pytest.fixture(scope="session")
def local_aws() -> Iterator[LocalAws]:
    with LocalAws() as local:
        yield local


@pytest.fixture
def stack(local_aws: LocalAws, unique_prefix: str) -> ProvisionedStack:
    aws.reset_clients()
    return provision(StackNames(unique_prefix), {"zoom-webhook-secret-token": WEBHOOK_SECRET})
