"""One place that builds the logger and the metrics (JSON logs, CloudWatch EMF).

Logs are key/value: `logger.info("merged", meeting_uuid=..., seconds=...)`. The meeting UUID is the
correlation id through every stage (`logger.append_keys(meeting_uuid=...)`).
"""

from __future__ import annotations

import os
import re

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

METRICS_NAMESPACE_DEFAULT = "ZoomSymblInsights"

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "zoom-symbl-insights"))
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", METRICS_NAMESPACE_DEFAULT)
)

__all__ = ["MetricUnit", "logger", "mask_email", "metrics", "record_metric"]


def _metrics_disabled() -> bool:
    return os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() in ("1", "true", "yes")


def record_metric(name: str, value: float = 1.0, unit: MetricUnit = MetricUnit.Count) -> None:
    """Add an EMF metric value, unless metrics are disabled (tests, benchmarks).

    Powertools' own switch is not consulted when it flushes a full batch of 100 values, so the
    check lives here, in the one function every service records metrics through.
    """
    if not _metrics_disabled():
        metrics.add_metric(name=name, unit=unit, value=value)


_EMAIL = re.compile(r"^([^@]{0,2})[^@]*(@.*)$")


def mask_email(address: str | None) -> str | None:
    """`alice@example.com` → `al***@example.com`: enough to recognise, not enough to harvest."""
    if not address:
        return address
    match = _EMAIL.match(address)
    if match is None:
        return "***"
    return f"{match.group(1)}***{match.group(2)}"
