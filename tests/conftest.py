"""Test tiers: the folder decides the marker. The unit tier may not open network connections.

Skips: a skipped test is a test that did not run. With CI=true the run fails on any skip whose
reason is not in ALLOWED_SKIPS, and prints the skips it allowed and why; elsewhere it ends with a
loud list of what was skipped.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / ".artifacts"

# Keep test output free of EMF blobs and make logs quiet unless a test asks.
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


# Skips CI accepts: a skip whose reason starts with the key, allowed for the reason given.
ALLOWED_SKIPS: dict[str, str] = {
    "LocalStack tier:": (
        "LocalStack needs Docker and an account token, which CI does not have; "
        "`make test-localstack` runs the e2e tier against a LocalStack where one answers"
    ),
}


def on_ci() -> bool:
    """CI=true (or 1, yes), as CI services and .ci/run set it."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not item.path.is_relative_to(ROOT / "tests"):
            continue
        tier = item.path.relative_to(ROOT / "tests").parts[0]
        if tier in ("unit", "integration", "e2e"):
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(autouse=True)
def _no_network_in_unit_tier(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if request.node.get_closest_marker("unit") is None:
        return

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("unit tests may not open network connections")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="session")
def running_on_ci() -> bool:
    """Whether this run is CI's, where a test that cannot run must fail instead of skipping."""
    return on_ci()


@pytest.fixture
def unique_prefix() -> str:
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def artifacts_dir() -> Iterator[Path]:
    ARTIFACTS.mkdir(exist_ok=True)
    yield ARTIFACTS


def pytest_configure(config: pytest.Config) -> None:
    """Record every AWS call the services make (tests/e2e/test_least_privilege.py checks them),
    and hold the run's skips to the policy above."""
    from tests.support import aws_calls

    aws_calls.pytest_configure(config)
    if not config.pluginmanager.has_plugin("skip-policy"):
        config.pluginmanager.register(SkipPolicy(enforced=on_ci()), "skip-policy")


@dataclass(frozen=True)
class Skip:
    nodeid: str
    reason: str

    @property
    def allowed_because(self) -> str | None:
        for prefix, why in ALLOWED_SKIPS.items():
            if self.reason.startswith(prefix):
                return why
        return None


def skip_of(report: pytest.TestReport | pytest.CollectReport) -> Skip | None:
    """The skip a report records (at collection, setup or call), if any; an xfail is none."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return None
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return Skip(report.nodeid, reason.removeprefix("Skipped: "))


class SkipPolicy:
    """Collects every skip; when enforced, a refused skip turns a passing run into a failure."""

    def __init__(self, *, enforced: bool) -> None:
        self.enforced = enforced
        self.skips: list[Skip] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record(report)

    def _record(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        skip = skip_of(report)
        if skip is not None:
            self.skips.append(skip)

    @property
    def refused(self) -> list[Skip]:
        return [skip for skip in self.skips if skip.allowed_because is None]

    @property
    def allowed(self) -> list[Skip]:
        return [skip for skip in self.skips if skip.allowed_because is not None]

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.enforced and self.refused and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        write = terminalreporter.write_line
        if self.allowed:
            terminalreporter.write_sep("=", f"{len(self.allowed)} skipped, allowed", yellow=True)
            for skip in self.allowed:
                write(f"allowed: {skip.nodeid}: {skip.reason}")
                write(f"  why: {skip.allowed_because}")
        if not self.refused:
            return
        count = f"{len(self.refused)} skipped test{'' if len(self.refused) == 1 else 's'}"
        if self.enforced:
            title = f"CI=true: the run FAILS on {count}"
        else:
            title = f"WARNING: {count}; with CI=true the run fails"
        terminalreporter.write_sep("=", title, red=True, bold=True)
        for skip in self.refused:
            write(f"skipped: {skip.nodeid}: {skip.reason}", red=True)
        write(
            "A skipped test did not run: provide what it needs, or (for a tier CI cannot run) "
            "add its reason to ALLOWED_SKIPS in tests/conftest.py with why."
        )
