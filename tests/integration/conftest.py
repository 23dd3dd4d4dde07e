"""Integration fixtures: one moto server per session, a freshly provisioned stack per test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from sandbox.aws_resources import ProvisionedStack, StackNames, provision
from sandbox.credentials import SandboxCredentials
from sandbox.local_aws import LocalAws
from sandbox.synth import SyntheticMeeting, synthesize_meeting
from services.core import aws
from tests.conftest import ROOT

# The Zoom reference's test-vector secret, so signatures in tests can be checked by hand.
WEBHOOK_SECRET = "test-webhook-secret"


@pytest.fixture(scope="session")
def local_aws() -> Iterator[LocalAws]:
    with LocalAws() as local:
        yield local


@pytest.fixture
def credentials() -> SandboxCredentials:
    return replace(SandboxCredentials(), zoom_webhook_secret=WEBHOOK_SECRET)


@pytest.fixture
def stack(
    local_aws: LocalAws, unique_prefix: str, credentials: SandboxCredentials
) -> ProvisionedStack:
    aws.reset_clients()
    return provision(StackNames(unique_prefix), credentials.secret_values())


@pytest.fixture(scope="session")
def meeting3() -> SyntheticMeeting:
    """Three speakers, 40 s: the merger tests' meeting, synthesized once and cached."""
    return synthesize_meeting(
        speakers=["Ana Ruiz-Soto", "Bo Chen", "Zoë Ødegård"],
        duration_s=40,
        seed=3,
        workdir=ROOT / ".cache" / "synth",
        topic="Merger test: three speakers",
    )
