"""One place that builds the logger and the metrics (JSON logs, CloudWatch EMF), and the one
redaction every log line passes through.

Logs are key/value: `logger.info("merged", meeting_uuid=..., seconds=...)`. The meeting UUID is the
correlation id through every stage (`logger.append_keys(meeting_uuid=...)`).

Redaction: exception chains carry what libraries put in them (urllib3 writes the request's URL,
query string included, into its errors; pydantic copies the input it refused), so secrets can
reach a log line that never named one. Every line is therefore redacted where it is written:
- the service logger's formatter (`RedactingFormatter`) redacts the message, every key's value
  (nested ones too), the formatted exception and the stack before they are serialised;
- every other `logging` record (botocore, urllib3, requests, Flask, a root handler the Lambda
  runtime installs) is redacted when it is created (`_RedactingRecordFactory`): its message with
  its arguments, its exception text and its stack;
- an uncaught exception (a Fargate task, the ops CLI) is logged through the service logger
  instead of Python's raw traceback on stderr.
What stays: scheme, host and path of URLs, meeting UUIDs, ids, status codes, error names.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ValidationError

METRICS_NAMESPACE_DEFAULT = "ZoomSymblInsights"
REDACTED = "<redacted>"

__all__ = [
    "REDACTED",
    "MetricUnit",
    "RedactingFormatter",
    "logger",
    "mask_email",
    "metrics",
    "record_metric",
    "redact_text",
    "redact_value",
    "validation_error_summary",
]

# ---------------------------------------------------------------------------------------------
# Redaction
# ---------------------------------------------------------------------------------------------

# A name that says its value is secret: `download_token`, `X-Amz-Signature`, `appSecret`,
# `Authorization`, `client_secret`, `api_key`, `SecretString`...
_SECRET_NAME = re.compile(
    r"token|secret|passw(?:or)?d|signature|credential|authori[sz]ation|api[_-]?key"
    r"|private[_-]?key|cookie",
    re.IGNORECASE,
)
# pydantic's `input_value=...` (a copy of the refused input) up to its `, input_type=...]`, or to
# the end of the line when that is missing; a repr never holds a raw newline.
_INPUT_VALUE = re.compile(
    r"input_value=(?:.*?(?=, input_type=\w+\](?:\\n|\s|$))|.*$)", re.MULTILINE
)
# A query string with at least one `name=value`, after a URL or a bare path (urllib3 writes
# `... with url: /rec/download/x?access_token=...`): the query goes, scheme/host/path stay.
_QUERY = re.compile(r"(?<=[\w/.~%-])\?(?=[^\s\"'<>#\\]*=)[^\s\"'<>#\\]+")
_AUTH_SCHEME = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{16,}", re.IGNORECASE)
# `name=value`, `name: value`, `"name": "value"`, `'name': b'value'` and JSON escaped inside JSON
# (`\"name\": \"value\"`) whose name looks secret. An unquoted name followed by `:` needs a space
# after it (`Authorization: Bearer ...`), so that `token:generate` in a path is left alone.
_PAIR = re.compile(
    r"(?P<key>(?P<q>\\*[\"']?)(?P<name>[A-Za-z0-9_.-]*(?:"
    + _SECRET_NAME.pattern
    + r")[A-Za-z0-9_.-]*)(?P=q))(?P<sep>\s*=\s*|\s*:\s*)"
    r"(?P<value>b?(?P<vq>\\+)\"(?:(?!(?P=vq)\").)*(?P=vq)\""
    r"|b?\"(?:[^\"\\]|\\\\\"|\\.)*\"|b?'(?:[^'\\]|\\.)*'"
    r"|(?:(?:Bearer|Basic)\s+)?[^\s,;&\"'}\])]+)",
    re.IGNORECASE,
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
# A long run of token characters: checked by `_opaque` before it is redacted.
_RUN = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{32,}={0,2}(?![A-Za-z0-9_=-])")
_HEX_ID = re.compile(r"[0-9a-fA-F-]+")
_ARN = re.compile(r"arn:aws[a-z-]*:")
_LABEL = re.compile(r"[a-z]+(?:_[a-z]+)*")


def _pair(match: re.Match[str]) -> str:
    if ":" in match["sep"] and not match["q"] and not match["sep"].endswith((" ", "\t")):
        return match[0]  # `token:generate`, `secretsmanager:...`: a path or an ARN, not a pair
    value = match["value"]
    quote = next((c for c in value.lstrip("b\\") if c in "\"'"), "")
    if quote:
        escapes = match["vq"] or ""
        return f"{match['key']}{match['sep']}{escapes}{quote}{REDACTED}{escapes}{quote}"
    return f"{match['key']}{match['sep']}{REDACTED}"


def _opaque(match: re.Match[str]) -> str:
    """Long random-looking runs (keys, tokens) go; UUIDs, hex digests and names stay."""
    run = match[0]
    if _HEX_ID.fullmatch(run):
        return run
    upper = any(c.isupper() for c in run)
    lower = any(c.islower() for c in run)
    digit = any(c.isdigit() for c in run)
    return REDACTED if upper and (lower or digit) else run


def redact_text(text: str) -> str:
    """`text` without secrets: query strings, Bearer/Basic credentials, values of secret-named
    pairs, pydantic input copies, JWTs and long opaque tokens. Idempotent."""
    text = _INPUT_VALUE.sub(f"input_value={REDACTED}", text)
    text = _QUERY.sub(f"?{REDACTED}", text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m[1]} {REDACTED}", text)
    text = _PAIR.sub(_pair, text)
    text = _JWT.sub(REDACTED, text)
    return _RUN.sub(_opaque, text)


def _kept_under_secret_name(value: object) -> bool:
    """A structured key named like a secret keeps a value that cannot be one: a number or a flag,
    an ARN (which names a secret), or a lowercase label such as `download_token` (which names a
    kind of credential). Our secrets are random strings, never a lowercase word."""
    if value is None or isinstance(value, bool | int | float):
        return True
    if isinstance(value, str):
        return bool(_ARN.match(value) or (len(value) <= 32 and _LABEL.fullmatch(value)))
    return False


def redact_value(value: Any) -> Any:
    """A log value with every string redacted; values under secret-named keys go entirely."""
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {
            key: (
                REDACTED
                if _SECRET_NAME.search(str(key)) and not _kept_under_secret_name(item)
                else redact_value(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(item) for item in value]
    return redact_text(str(value))  # exceptions, dates, enums: as JSON would show them


def validation_error_summary(error: ValidationError) -> str:
    """Where and how a model refused its input (`download_url: missing; body: json_invalid`),
    never the input itself: pydantic's own text quotes it."""
    parts = [
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['type']}"
        for e in error.errors(include_url=False, include_input=False, include_context=False)[:10]
    ]
    return "; ".join(parts)


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter, redacting everything it is about to write."""

    def serialize(self, log: Mapping[str, Any]) -> str:
        return super().serialize(redact_value(log))

    def formatException(self, ei: Any) -> str:
        return redact_text(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return redact_text(super().formatStack(stack_info))


class _RedactingRecordFactory:
    """Redacts every `logging` record as it is created, whichever logger or handler it is for."""

    def __init__(self, create: Any) -> None:
        self._create = create

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = self._create(*args, **kwargs)
        if isinstance(record.msg, Mapping) and not record.args:
            record.msg = redact_value(record.msg)  # a structured message stays structured
        else:
            try:
                text = record.getMessage()  # an exception logged as the message, too
            except (TypeError, ValueError):
                text = f"{record.msg} (arguments that do not fit the message dropped)"
            record.msg, record.args = redact_text(text), None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact_text(_format_exception(record.exc_info))
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return record


def _format_exception(
    exc_info: tuple[type[BaseException], BaseException, TracebackType | None]
    | tuple[None, None, None],
) -> str:
    return "".join(traceback.format_exception(*exc_info)).rstrip("\n")


def _redact_every_record() -> None:
    current = logging.getLogRecordFactory()
    if not isinstance(current, _RedactingRecordFactory):
        logging.setLogRecordFactory(_RedactingRecordFactory(current))


# ---------------------------------------------------------------------------------------------
# The logger and the metrics
# ---------------------------------------------------------------------------------------------

_redact_every_record()
logger = Logger(
    service=os.environ.get("POWERTOOLS_SERVICE_NAME", "zoom-symbl-insights"),
    logger_formatter=RedactingFormatter(),
    log_uncaught_exceptions=True,
)
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", METRICS_NAMESPACE_DEFAULT)
)


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
