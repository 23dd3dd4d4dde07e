"""Which AWS operations each service really performs, recorded during a test session.

`install()` (called once from tests/conftest.py) patches `boto3.session.Session.client`, through
which every client the project creates passes (`services.core.aws.client`, the notifier's SES
client, the sandbox's and the tests' own). On each new client it registers handlers for
`before-parameter-build`, which botocore emits for every API call (before any other handler can
answer the call itself, as sandbox/runner.py does for the pump's asynchronous invoke) and for every
presigned URL (`context["is_presign_request"]`), and for `after-call`/`after-call-error`, which
end each API call. A presigned URL is used by someone else (ffmpeg, Symbl) with the signer's
permissions, so it counts as the signer's action when it is made. A call counts when it ends,
unless AWS answered that its resource does not exist (tests that aim at a missing queue on
purpose): that needs no permission on anything the stack has.

Each call is recorded as the IAM action it needs (`dynamodb:UpdateItem`, `lambda:InvokeFunction`
for Invoke, `s3:PutObject` for a multipart upload's parts, `ses:SendEmail` and `ses:SendRawEmail`
for an SES v2 SendEmail with raw content, `bedrock:InvokeModel` for Bedrock Runtime's Converse...)
and the resource it names, as a logical name without the stack's prefix (`sqs:notify`,
`dynamodb:table/recordings`, `s3:media/insights/...`, `secretsmanager:link-signing-key`,
`transcribe:transcription-job/<prefix>-…`, `bedrock:model/amazon.nova-lite-v1:0`), and
attributed to the service whose code made it: the OUTERMOST frame of the call stack under
`services/<name>/` (outermost, because one service imports another's helpers: the webhook's
insights page reads S3 through `services/core/insights/`). `services/submitter/` is split into
the pump (`pump.py`, the pump handler), the reconciler (`reconciler.py`, the reconciler handler)
and the job-events consumer (`job_events.py`, the job-events handler), as the Terraform gives
each its own function and role. Calls without such a frame (test setup, sandbox provisioning, the
sandbox's stand-ins for AWS triggers, and the fake Transcribe reading media from and writing
transcripts to S3 on its own threads) are counted but not attributed. Work a service hands to a
thread pool (boto3's S3 transfers) keeps the submitting service's attribution.

Not recorded: processes the tests start (the sandbox's Fargate merge task, the integration tier's
pump subprocesses), and anything AWS does for a service without a call in its code (Lambda's SQS
pollers, log delivery, KMS behind SNS, IAM's PassRole check, Transcribe reading the media and
writing the transcript with the caller's rights).
"""

from __future__ import annotations

import re
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "services"

# Services whose calls are attributed; "pump", "reconciler" and "job_events" share
# services/submitter/ (one image, three functions, three roles).
ACTORS = ("webhook", "merger", "pump", "reconciler", "job_events", "notifier", "ops")
_PACKAGES = {"webhook", "merger", "notifier", "ops"}
_SUBMITTER_MODULES = {
    "pump.py": "pump",
    "reconciler.py": "reconciler",
    "job_events.py": "job_events",
}
_SUBMITTER_FUNCTIONS = {
    "pump_handler": "pump",
    "build_pump_deps": "pump",
    "reconciler_handler": "reconciler",
    "build_reconciler_deps": "reconciler",
    "job_events_handler": "job_events",
    "build_job_events_deps": "job_events",
    "handle_job_events": "job_events",
}

# IAM action prefix of a botocore service where it is not the service's name.
_IAM_PREFIX = {"sesv2": "ses", "bedrock-runtime": "bedrock"}
# Operations whose IAM action is not "<prefix>:<operation>".
_IAM_ACTION = {
    ("lambda", "Invoke"): "lambda:InvokeFunction",
    ("lambda", "InvokeAsync"): "lambda:InvokeFunction",
    ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "CreateMultipartUpload"): "s3:PutObject",
    ("s3", "UploadPart"): "s3:PutObject",
    ("s3", "CompleteMultipartUpload"): "s3:PutObject",
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "HeadBucket"): "s3:ListBucket",
    ("s3", "ListParts"): "s3:ListMultipartUploadParts",
    # Converse is authorised as InvokeModel, ConverseStream as InvokeModelWithResponseStream
    # (/work/shared/reference/aws-speech.md §10; a separate bedrock:Converse action is
    # unconfirmed, and the policies grant none).
    ("bedrock-runtime", "Converse"): "bedrock:InvokeModel",
    ("bedrock-runtime", "ConverseStream"): "bedrock:InvokeModelWithResponseStream",
}

LEAST_PRIVILEGE_TEST = "tests/e2e/test_least_privilege.py"
# Error codes meaning "the resource named does not exist".
MISSING_RESOURCE_CODES = frozenset(
    {
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "ResourceNotFoundException",
        "NoSuchBucket",
    }
)
_CONTEXT_KEY = "aws_calls_recorder"


def iam_actions(service: str, operation: str, params: dict[str, Any]) -> tuple[str, ...]:
    """The IAM actions a botocore call needs (usually one)."""
    default = f"{_IAM_PREFIX.get(service, service)}:{operation}"
    action = _IAM_ACTION.get((service, operation), default)
    if (service, operation) == ("sesv2", "SendEmail") and "Raw" in params.get("Content", {}):
        # SES authorizes an API v2 SendEmail with raw MIME content as ses:SendRawEmail too.
        return (action, "ses:SendRawEmail")
    return (action,)


# ---------------------------------------------------------------------------------------------
# Resources, as logical names shared with the Terraform side of the test
# ---------------------------------------------------------------------------------------------


def _unprefixed(name: str) -> str:
    """`<prefix>-recordings` -> `recordings` (the sandbox's and the tests' prefixes hold no '-')."""
    return name.split("-", 1)[1] if "-" in name else name


def _secret(secret_id: str) -> str:
    if ":secret:" in secret_id:  # an ARN: the name, without the 6 characters AWS appends
        secret_id = re.sub(r"-[A-Za-z0-9]{6}$", "", secret_id.split(":secret:", 1)[1])
    return secret_id.split("/", 1)[1] if "/" in secret_id else secret_id


def _transcription_job(name: str) -> str:
    """`<prefix>-<meeting key>-<attempt>` -> `transcribe:transcription-job/<prefix>-…`: the IAM
    statements match our stack's prefix, and one meeting's job is like another's. A name
    without a prefix keeps its own name, and matches no statement."""
    if "-" not in name:
        return f"transcribe:transcription-job/{name}"
    return "transcribe:transcription-job/<prefix>-…"


def _bedrock_model(model_id: str) -> str:
    """A model or inference profile id, or its ARN (`…:foundation-model/<id>`), by its id."""
    return f"bedrock:model/{model_id.rsplit('/', 1)[-1]}"


def resources_of(service: str, operation: str, params: dict[str, Any]) -> tuple[str, ...]:
    """The resources one call names, or () where only the action is checked."""
    if service == "dynamodb" and "TableName" in params:
        table = f"dynamodb:table/{_unprefixed(str(params['TableName']))}"
        index = params.get("IndexName")
        return (f"{table}/index/{index}",) if index else (table,)
    if service == "sqs" and "QueueUrl" in params:
        return (f"sqs:{_unprefixed(str(params['QueueUrl']).rstrip('/').rsplit('/', 1)[-1])}",)
    if service == "s3" and "Bucket" in params:
        bucket = f"s3:{_unprefixed(str(params['Bucket']))}"
        key = params.get("Key")
        if key is None:
            return (bucket,)
        folder, slash, rest = str(key).partition("/")
        if not slash:
            return (f"{bucket}/{key}",)
        # The file's type stays visible (`….flac`, `….segments.json`): a policy may allow one
        # kind of object under a prefix and not another.
        _, dot, extension = rest.rsplit("/", 1)[-1].partition(".")
        return (f"{bucket}/{folder}/…" + (f".{extension}" if dot else ""),)
    if service == "secretsmanager" and "SecretId" in params:
        return (f"secretsmanager:{_secret(str(params['SecretId']))}",)
    if service == "lambda" and "FunctionName" in params:
        return (f"lambda:{_unprefixed(str(params['FunctionName']).rsplit(':', 1)[-1])}",)
    if service == "sns" and "TopicArn" in params:
        return (f"sns:{_unprefixed(str(params['TopicArn']).rsplit(':', 1)[-1])}",)
    if service == "sesv2" and operation == "SendEmail":
        used = ["ses:identity"]
        if params.get("ConfigurationSetName"):
            used.append("ses:configuration-set")
        return tuple(used)
    if service == "ecs" and operation == "RunTask":
        return ("ecs:merge-task-definition",)  # the one task definition the merger starts
    if service == "ecs" and operation == "DescribeTasks":
        return ("ecs:task",)
    if service == "transcribe" and "TranscriptionJobName" in params:
        return (_transcription_job(str(params["TranscriptionJobName"])),)
    if service == "bedrock-runtime" and "modelId" in params:
        return (_bedrock_model(str(params["modelId"])),)
    return ()


# ---------------------------------------------------------------------------------------------
# Attribution
# ---------------------------------------------------------------------------------------------

_inherited = threading.local()


def _actor_of_frame(frame: FrameType) -> str | None:
    path = Path(frame.f_code.co_filename)
    try:
        parts = path.relative_to(SERVICES).parts
    except ValueError:
        return None
    if len(parts) < 2:
        return None
    package = parts[0]
    if package in _PACKAGES:
        return package
    if package == "submitter":
        return _SUBMITTER_MODULES.get(parts[-1]) or _SUBMITTER_FUNCTIONS.get(frame.f_code.co_name)
    return None


def attribute(frame: FrameType | None = None) -> str | None:
    """The service whose code is running: the outermost service frame of this thread's stack,
    else the service that handed this thread its work."""
    stack: list[FrameType] = []
    current: FrameType | None = frame or sys._getframe(1)
    while current is not None:
        stack.append(current)
        current = current.f_back
    for candidate in reversed(stack):
        actor = _actor_of_frame(candidate)
        if actor is not None:
            return actor
    return getattr(_inherited, "actor", None)


# ---------------------------------------------------------------------------------------------
# The record
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    actor: str
    action: str
    resources: tuple[str, ...]
    presigned: bool = False


@dataclass
class Recorder:
    calls: Counter[Call] = field(default_factory=Counter)
    unattributed: Counter[str] = field(default_factory=Counter)
    missing_resource: Counter[Call] = field(default_factory=Counter)
    first_seen_in: dict[tuple[str, str], str] = field(default_factory=dict)
    passed_tests: set[str] = field(default_factory=set)
    current_test: str = ""
    installed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def observe(
        self, service: str, operation: str, params: dict[str, Any], presigned: bool
    ) -> list[Call | str]:
        """The call about to be made as attributed IAM actions (bare actions: no service)."""
        actions = iam_actions(service, operation, params)
        actor = attribute()
        if actor is None:
            return list(actions)
        resources = resources_of(service, operation, params)
        return [Call(actor, action, resources, presigned) for action in actions]

    def record(self, observed: list[Call | str], error_code: str = "") -> None:
        with self._lock:
            for item in observed:
                if isinstance(item, str):
                    self.unattributed[item] += 1
                elif error_code in MISSING_RESOURCE_CODES:
                    self.missing_resource[item] += 1
                else:
                    self.calls[item] += 1
                    self.first_seen_in.setdefault((item.actor, item.action), self.current_test)

    def snapshot(self) -> list[Call]:
        with self._lock:
            return list(self.calls)

    def actions(self, actor: str) -> set[str]:
        return {call.action for call in self.snapshot() if call.actor == actor}

    def calls_of(self, actor: str) -> Iterator[Call]:
        return (call for call in self.snapshot() if call.actor == actor)

    def ran(self, test: str) -> bool:
        """Whether a test whose node id starts with `test` passed in this session."""
        return any(nodeid.startswith(test) for nodeid in self.passed_tests)


RECORDER = Recorder()


def _watch(client: Any) -> None:
    service = client.meta.service_model.service_name

    def before_parameter_build(
        params: dict[str, Any], model: Any, context: dict[str, Any] | None = None, **_: Any
    ) -> None:
        context = context if context is not None else {}
        presigned = bool(context.get("is_presign_request"))
        observed = RECORDER.observe(service, model.name, params, presigned)
        if presigned:
            RECORDER.record(observed)
        else:
            context[_CONTEXT_KEY] = observed

    def after_call(parsed: Any = None, context: dict[str, Any] | None = None, **_: Any) -> None:
        observed = (context or {}).pop(_CONTEXT_KEY, None)
        if observed is not None:
            error = parsed.get("Error", {}) if isinstance(parsed, dict) else {}
            RECORDER.record(observed, str(error.get("Code", "")))

    def after_call_error(context: dict[str, Any] | None = None, **_: Any) -> None:
        observed = (context or {}).pop(_CONTEXT_KEY, None)
        if observed is not None:
            RECORDER.record(observed)

    events = client.meta.events
    events.register("before-parameter-build", before_parameter_build, unique_id="aws-calls-1")
    events.register("after-call", after_call, unique_id="aws-calls-2")
    events.register("after-call-error", after_call_error, unique_id="aws-calls-3")


def install() -> None:
    """Record every AWS call from now on (idempotent)."""
    if RECORDER.installed:
        return
    import boto3.session

    original_client = boto3.session.Session.client

    def client(self: Any, *args: Any, **kwargs: Any) -> Any:
        created = original_client(self, *args, **kwargs)
        _watch(created)
        return created

    original_submit = ThreadPoolExecutor.submit

    def submit(
        self: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Future[Any]:
        actor = attribute()
        if actor is None:
            return original_submit(self, fn, *args, **kwargs)

        def run(*a: Any, **k: Any) -> Any:
            previous = getattr(_inherited, "actor", None)
            _inherited.actor = actor
            try:
                return fn(*a, **k)
            finally:
                _inherited.actor = previous

        return original_submit(self, run, *args, **kwargs)

    boto3.session.Session.client = client  # type: ignore[method-assign]
    ThreadPoolExecutor.submit = submit  # type: ignore[method-assign,assignment]
    RECORDER.installed = True


class RecorderPlugin:
    """Session hooks: the least-privilege check runs last, and knows which tests ran."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        last = [i for i in items if i.nodeid.startswith(LEAST_PRIVILEGE_TEST)]
        if last:
            items[:] = [i for i in items if i not in last] + last

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        RECORDER.current_test = nodeid

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" and report.passed:
            RECORDER.passed_tests.add(report.nodeid)


def pytest_configure(config: pytest.Config) -> None:
    """Install the recorder and its hooks (tests/conftest.py delegates here)."""
    install()
    if not config.pluginmanager.has_plugin("aws-calls-recorder"):
        config.pluginmanager.register(RecorderPlugin(), "aws-calls-recorder")
