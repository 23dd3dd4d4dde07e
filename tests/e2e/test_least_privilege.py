"""Least privilege, verified: each service's IAM policy in terraform/ against the AWS calls it
really made during this test session.

tests/support/aws_calls.py records every AWS call of the session (installed from
tests/conftest.py) and attributes it to the service whose code made it. This module runs last in
the session (the recorder's plugin moves it there), so it sees the integration tier's calls too
when both tiers run together (`make test`), and everything the e2e tier did, on both speech
providers (tests/e2e/test_pipeline.py on Symbl, tests/e2e/test_provider_aws.py on Amazon
Transcribe + Bedrock). It also runs a small pipeline of its own, so that it never depends on what
else ran (see `pipeline`): on Symbl, one short meeting merged inline whose Symbl callbacks are
lost (the reconciler settles its job), and one long meeting handed to the Fargate task, with the
reconciler's merge deadline short enough that it asks ECS about the running task; then, on the
AWS provider, two short meetings, one of whose Transcribe completion events is lost (the
reconciler asks about that job) while the other's reaches the job-events consumer.

Each role's statements are the UNION of what is attached with either provider: the module call's
`policy_documents` (always attached) and its `extra_policy_documents`, which terraform/functions.tf
attaches only with speech_provider "aws" (local.aws_speech_policy_documents in terraform/iam.tf,
parsed from the HCL like the others, never copied here). The session exercised both providers, so
the union is what its calls are held to; the statements only "aws" attaches are in addition
checked one by one (`test_every_aws_speech_statement_is_used`), since an action-level check
cannot tell, say, the notifier's transcript read from its segment-map read.

Then, for every Lambda role (and the merge task's role):
- every recorded call is allowed: an action and resource of one of the role's statements
  (`aws_iam_policy_document` data sources, parsed with python-hcl2; actions match with
  wildcards; resources are compared as logical names, see RESOURCE_PATTERNS; conditions are not
  evaluated);
- every action the role allows was recorded, or is in EXCEPTIONS with its reason.

What is not recorded (see tests/support/aws_calls.py): the Fargate merge task is a subprocess of
the sandbox, so the task role is checked against the merger's own recorded calls (the task runs
the same merge code the Lambda runs inline); the integration tier's pump subprocesses likewise.
Transcribe reads the merged audio and writes the transcript (through S3, with SSE-KMS) with the
pump's rights, but in the sandbox the fake Transcribe does so on its own threads with no service
frame: those are EXCEPTIONS of the pump's (its s3:GetObject on merged/ is recorded all the same,
by the presigned URL the Symbl path makes).
The operator CLI (`ops`) has no role in the Terraform (operators use their own credentials): its
calls are only listed. Resource policies (the transcript key's policy in terraform/speech.tf, the
queue and bucket policies) are not a role's, and are not checked here.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import hcl2
import pytest
import requests
from hcl2.utils import SerializationOptions

from sandbox.runner import LocalStack, StackOptions
from sandbox.synth import SyntheticMeeting
from services.core.links import make_page_token
from services.core.recordings import State
from tests.conftest import ROOT
from tests.support.aws_calls import RECORDER, Call
from tests.support.pipeline import deliver, synthetic_meeting, wait_terminal

TERRAFORM = ROOT / "terraform"
MODULES = TERRAFORM / "modules"

# Lambda function (module call in terraform/functions.tf) -> the recorded service it runs.
FUNCTIONS = {
    "webhook": "webhook",
    "merger": "merger",
    "pump": "pump",
    "reconciler": "reconciler",
    "notifier": "notifier",
    "job_events": "job_events",
}
TASK_ROLE = "merger_task"  # module call in terraform/merger_task.tf
# The merge task runs the merger's merge code, not its queue consumer or its dispatch.
NOT_IN_TASK = {"ecs:RunTask", "iam:PassRole", "sqs:ChangeMessageVisibility"}


@dataclass(frozen=True)
class PolicyException:
    """An action a role allows although this session may not have recorded it.

    Without `exercised_by`, the action is never made through boto3 by the service's code in any
    test, and must stay unrecorded (if it shows up, the exception is stale: remove it). With
    `exercised_by`, the named test makes it: when that test passed in this session the action
    must have been recorded; when it did not run, the action is excused.
    """

    role: str
    action: str
    reason: str
    exercised_by: str | None = None
    # A path taken only when a race goes one way (a job ending before the pump records it):
    # allowed whether or not this session happened to record it.
    timing_dependent: bool = False


def _every(roles: tuple[str, ...], action: str, reason: str) -> list[PolicyException]:
    return [PolicyException(role, action, reason) for role in roles]


LAMBDAS = tuple(FUNCTIONS)
_LOGS = (
    "Lambda's runtime writes the function's own log group with the role; the code makes no "
    "CloudWatch Logs call"
)
_EVENT_SOURCE = (
    "the SQS event source mapping receives and deletes with the function's role (sandbox/runner.py "
    "plays it with pollers that are not service code)"
)
_NUDGE = (
    "the pump nudge (services/core/pump.py LambdaPumpNudger): the sandbox and the test rigs give "
    "this service an in-process nudger, so its invoke never reaches boto3 in tests (the webhook's "
    "does, and is recorded)"
)
_HEAD_404 = (
    "S3 evaluates it so that a HEAD of a participant file not downloaded yet answers 404, not "
    "403; the code never lists"
)

_TABLE_KEY = (
    "DynamoDB decrypts the tables' key (the stack's KMS key) with the caller's permissions "
    "(kms:ViaService dynamodb); the code makes no KMS call"
)

_TRANSCRIBE_USES_PUMP_RIGHTS = (
    "speech_provider aws: Transcribe writes the transcript to transcripts/ and has S3 encrypt it "
    "with the transcript key (terraform/speech.tf), with the rights of the caller of "
    "StartTranscriptionJob, the pump; the code makes no such call, and the sandbox's fake "
    "Transcribe writes on its own threads, which the recorder attributes to no service"
)

EXCEPTIONS: list[PolicyException] = [
    *_every(("webhook", "merger", "pump", "job_events", TASK_ROLE), "kms:Decrypt", _TABLE_KEY),
    *_every(LAMBDAS, "logs:CreateLogStream", _LOGS),
    *_every(LAMBDAS, "logs:PutLogEvents", _LOGS),
    *_every(("merger", "notifier", "job_events"), "sqs:ReceiveMessage", _EVENT_SOURCE),
    *_every(("merger", "notifier", "job_events"), "sqs:DeleteMessage", _EVENT_SOURCE),
    *_every(("merger", "notifier", "job_events"), "sqs:GetQueueAttributes", _EVENT_SOURCE),
    *_every(
        ("merger", "pump", "reconciler", "job_events", TASK_ROLE), "lambda:InvokeFunction", _NUDGE
    ),
    PolicyException(
        "notifier",
        "kms:Decrypt",
        f"{_TABLE_KEY}; and (speech_provider aws) S3 decrypts the transcripts, encrypted with the "
        "transcript key, with the notifier's permissions when it reads them (kms:ViaService s3)",
    ),
    *[
        PolicyException("pump", action, _TRANSCRIBE_USES_PUMP_RIGHTS)
        for action in ("s3:PutObject", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey")
    ],
    PolicyException(
        "job_events",
        "sqs:ChangeMessageVisibility",
        "an event that cannot be settled now is hidden for a backoff (services/core/"
        "sqs_consumer.py): only tests/unit/test_job_events.py takes that path, with a stand-in "
        "SQS client (a late or repeated event for a job already deleted is acknowledged, not "
        "retried)",
    ),
    *_every(("merger", TASK_ROLE), "s3:ListBucket", _HEAD_404),
    PolicyException(
        "merger",
        "iam:PassRole",
        "ecs:RunTask passes the task's two roles; IAM checks PassRole on the RunTask request, "
        "there is no call of its own",
    ),
    PolicyException(
        "reconciler",
        "kms:GenerateDataKey",
        "SNS encrypts the failure notices the reconciler publishes to the KMS-encrypted alerts "
        "topic with the publisher's permissions",
    ),
    PolicyException(
        "reconciler",
        "kms:Decrypt",
        "SNS encrypts the failure notices the reconciler publishes to the KMS-encrypted alerts "
        "topic with the publisher's permissions; and DynamoDB decrypts the tables' key with the "
        "role's permissions",
    ),
    PolicyException(
        "pump",
        "sqs:SendMessage",
        "settling a job that ended before the pump recorded it (notify, or submit again): "
        "services/submitter/pump.py _settle_if_already_done, taken only when Symbl is that quick",
        timing_dependent=True,
    ),
    # Paths only the integration tier exercises (error and retry paths).
    PolicyException(
        "webhook",
        "dynamodb:DeleteItem",
        "intake compensation when the merge request cannot be queued",
        "tests/integration/test_webhook_intake.py::test_queue_failure_leaves_no_stranded_item",
    ),
    PolicyException(
        "merger",
        "sqs:ChangeMessageVisibility",
        "a merge that failed transiently is hidden for a backoff (services/core/sqs_consumer.py)",
        "tests/integration/test_merger.py::test_handler_retries_transient_failures_then_gives_up",
    ),
    *[
        PolicyException(
            role,
            "s3:AbortMultipartUpload",
            "a participant download that fails for good abandons its multipart upload",
            "tests/integration/test_merger.py::test_recoverable_download_faults",
        )
        for role in ("merger", TASK_ROLE)
    ],
    *[
        PolicyException(
            role,
            "s3:DeleteObject",
            "a merge run that lost its lease to a newer run deletes the merged file it wrote "
            "(services/merger/merge.py _discard): the pipelines' merges keep their leases",
            "tests/integration/test_merge_reliability.py::"
            "test_a_run_that_lost_its_lease_does_not_record_its_result",
        )
        for role in ("merger", TASK_ROLE)
    ],
    PolicyException(
        "pump",
        "dynamodb:GetItem",
        "the slot pool's back-off after a 429 (or Transcribe's LimitExceededException) reads the "
        "slots item (services/core/slots.py back_off): no provider refuses a job in the pipelines",
        "tests/integration/test_submitter_reliability.py::"
        "test_a_429_only_waits_it_spends_no_delivery_and_no_attempt",
    ),
    PolicyException(
        "notifier",
        "sqs:ChangeMessageVisibility",
        "a notification that failed transiently is hidden for a backoff",
        "tests/integration/test_notifier.py::test_crash_between_send_and_state_update",
    ),
    PolicyException(
        "reconciler",
        "ecs:DescribeTasks",
        "whether a Fargate merge whose lease ran out still runs: a merge in the sandbox finishes "
        "under its lease, so the pipelines never ask",
    ),
    PolicyException(
        "reconciler",
        "sns:Publish",
        "failure notices to the operators (services/core/failures.py, the reconciler's sweep): "
        "no meeting fails in the e2e pipelines",
        "tests/integration/test_failure_notices.py::test_stuck_meeting_given_up_is_announced_once",
    ),
    PolicyException(
        "notifier",
        "sqs:SendMessage",
        "a summary Symbl has not finished is looked at again through a delayed notify request",
        "tests/integration/test_notifier.py::test_summary_waited_for_then_the_email_goes_without_it",
    ),
]


# ---------------------------------------------------------------------------------------------
# The Terraform side: each role's statements, resources as logical names
# ---------------------------------------------------------------------------------------------

_OPTIONS = SerializationOptions(
    strip_string_quotes=True, explicit_blocks=False, with_comments=False
)


@cache
def _blocks(path: Path) -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {}
    for tf in sorted(path.glob("*.tf")):
        doc = hcl2.loads(tf.read_text(encoding="utf-8"), serialization_options=_OPTIONS)
        for kind, blocks in doc.items():
            merged.setdefault(kind, []).extend(blocks)
    return merged


def _policy_documents(path: Path) -> dict[str, dict[str, Any]]:
    found = {}
    for block in _blocks(path).get("data", []):
        for name, body in block.get("aws_iam_policy_document", {}).items():
            found[name] = body
    return found


def _locals(path: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in _blocks(path).get("locals", []):
        merged.update(block)
    return merged


def _module_calls() -> dict[str, dict[str, Any]]:
    return {
        name: body for block in _blocks(TERRAFORM).get("module", []) for name, body in block.items()
    }


def _media_prefix(key: str) -> str:
    return str(_locals(TERRAFORM)["media_prefixes"][key])


def _variable_default(name: str) -> Any:
    for block in _blocks(TERRAFORM).get("variable", []):
        if name in block:
            return block[name]["default"]
    raise AssertionError(f"terraform/variables.tf declares no variable {name}")


_NAME_PREFIX = "${var.name_prefix}-"


def _queue(module: str) -> str:
    """A queue module call's queue, by the name it gives the queue without the stack's prefix
    (module.job_events_queue names `<prefix>-job-events`)."""
    name = str(_module_calls()[module]["name"])
    assert name.startswith(_NAME_PREFIX), f"module.{module}: a queue name without the prefix"
    return f"sqs:{name.removeprefix(_NAME_PREFIX)}"


def _expanded_locals(text: str) -> str:
    """`${local.x}` replaced by x's string value until none is left, `${var.name_prefix}` by
    `<prefix>` (the recorder's stand-in for the stack's prefix in names it cannot shorten)."""
    strings = {k: v for k, v in _locals(TERRAFORM).items() if isinstance(v, str)}
    while True:
        expanded = re.sub(r"\$\{local\.(\w+)\}", lambda m: strings.get(m[1], m[0]), text)
        if expanded == text:
            return expanded.replace("${var.name_prefix}", "<prefix>")
        text = expanded


def _transcription_jobs() -> str:
    """`local.transcribe_job_arn` (terraform/speech.tf) as `transcribe:transcription-job/<name>`,
    the name pattern spelled out from the locals it is built of."""
    arn = _expanded_locals("${local.transcribe_job_arn}")
    match = re.fullmatch(r"arn:[^:]+:transcribe:[^:]+:[^:]+:transcription-job/(.+)", arn)
    assert match, f"local.transcribe_job_arn is no transcription job ARN: {arn!r}"
    return f"transcribe:transcription-job/{match[1]}"


_BEDROCK_MODEL_ARN = (
    r"arn:\$\{local\.partition\}:bedrock:[^:]+:[^:]*:(?:foundation-model|inference-profile)/"
    r"\$\{var\.bedrock_model_id\}"
)


def _bedrock_model() -> str:
    """`local.bedrock_model_arns` as `bedrock:model/<id>`: whichever kind of id it is (a
    foundation model, or a cross-Region inference profile, which also grants the model behind
    it), the list names var.bedrock_model_id, and the sandbox's notifier uses the default id
    (services/core/settings.py), which must be the variable's default. Which ARNs each kind
    needs is tests/integration/test_terraform_contract.py's business."""
    chosen = re.fullmatch(
        r"\$\{local\.(\w+)\[local\.\w+\]\}", str(_locals(TERRAFORM)["bedrock_model_arns"])
    )
    assert chosen, "local.bedrock_model_arns: expected local.<arns by kind>[local.<kind>]"
    for kind, arns in _locals(TERRAFORM)[chosen[1]].items():
        assert any(re.fullmatch(_BEDROCK_MODEL_ARN, arn) for arn in arns), (
            f"local.{chosen[1]}.{kind} names no ARN of var.bedrock_model_id: {arns}"
        )
    return f"bedrock:model/{_variable_default('bedrock_model_id')}"


# Terraform resource expression -> the logical name tests/support/aws_calls.py records.
RESOURCE_PATTERNS: list[tuple[str, Callable[[re.Match[str]], str]]] = [
    (r"\$\{aws_dynamodb_table\.(\w+)\.arn\}", lambda m: f"dynamodb:table/{m[1]}"),
    (r"\$\{aws_dynamodb_table\.(\w+)\.arn\}/index/\*", lambda m: f"dynamodb:table/{m[1]}/index/*"),
    (r"\$\{module\.(\w+_queue)\.arn\}", lambda m: _queue(m[1])),
    (r"\$\{aws_s3_bucket\.(\w+)\.arn\}", lambda m: f"s3:{m[1]}"),
    (r"\$\{local\.media_object_arn\.(\w+)\}", lambda m: f"s3:media/{_media_prefix(m[1])}*"),
    (
        r"\$\{local\.media_object_arn\.(\w+)\}(\.[\w.-]+)",
        lambda m: f"s3:media/{_media_prefix(m[1])}*{m[2]}",
    ),
    (r'\$\{local\.secret_arns\["([\w-]+)"\]\}', lambda m: f"secretsmanager:{m[1]}"),
    (r"\$\{(?:module\.pump\.function_arn|local\.pump_function_arn)\}", lambda m: "lambda:pump"),
    (r"\$\{aws_sns_topic\.(\w+)\.arn\}", lambda m: f"sns:{m[1]}"),
    (r"\$\{aws_sesv2_email_identity\.\w+\.arn\}", lambda m: "ses:identity"),
    (r"\$\{aws_sesv2_configuration_set\.\w+\.arn\}", lambda m: "ses:configuration-set"),
    (
        r"\$\{module\.merger_task\.task_definition_arn_without_revision\}:\*",
        lambda m: "ecs:merge-task-definition",
    ),
    (r"arn:\$\{[^}]+\}:ecs:.*:task/\$\{aws_ecs_cluster\.this\.name\}/\*", lambda m: "ecs:task"),
    (r"\$\{module\.merger_task\.(\w+)_role_arn\}", lambda m: f"iam:role/merger-task-{m[1]}"),
    (r"\$\{aws_kms_key\.(\w+)\.arn\}", lambda m: f"kms:{m[1]}"),
    (r"\$\{aws_cloudwatch_log_group\.this\.arn\}:\*", lambda m: "logs:own-log-group"),
    (r"\$\{local\.transcribe_job_arn\}", lambda m: _transcription_jobs()),
    (r"\$\{local\.bedrock_model_arns\}", lambda m: _bedrock_model()),
    (r"\*", lambda m: "*"),
]


def logical_resource(expression: str) -> str:
    for pattern, name in RESOURCE_PATTERNS:
        match = re.fullmatch(pattern, expression)
        if match:
            return name(match)
    raise AssertionError(
        f"no logical name for the IAM resource {expression!r}: add it to RESOURCE_PATTERNS"
    )


@dataclass(frozen=True)
class Statement:
    document: str
    sid: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    # The speech provider the statement is attached with only ("" for always).
    only_with: str = ""

    def allows(self, action: str, resource: str | None) -> bool:
        if not any(fnmatchcase(action, allowed) for allowed in self.actions):
            return False
        return resource is None or any(fnmatchcase(resource, r) for r in self.resources)


def _resource_expressions(value: Any, substitutions: dict[str, str]) -> list[str]:
    if isinstance(value, str):
        whole = re.fullmatch(r"\$\{local\.(\w+)\}", value)
        if whole and isinstance(_locals(TERRAFORM).get(whole[1]), list):
            return _resource_expressions(_locals(TERRAFORM)[whole[1]], substitutions)
        for placeholder, replacement in substitutions.items():
            value = value.replace(placeholder, replacement)
        return [value]
    return [item for element in value for item in _resource_expressions(element, substitutions)]


def statements_of(
    document: str,
    body: dict[str, Any],
    substitutions: dict[str, str] | None = None,
    only_with: str = "",
) -> list[Statement]:
    found = []
    for statement in body.get("statement", []):
        assert statement.get("effect", "Allow") == "Allow", f"{document}: only Allow is modelled"
        expressions = _resource_expressions(statement["resources"], substitutions or {})
        found.append(
            Statement(
                document=document,
                sid=str(statement.get("sid", "")),
                actions=tuple(statement["actions"]),
                resources=tuple(logical_resource(e) for e in expressions),
                only_with=only_with,
            )
        )
    return found


def _document_reference(value: str) -> str:
    match = re.fullmatch(r"\$\{data\.aws_iam_policy_document\.(\w+)\.json\}", value)
    assert match, f"policy documents must be data.aws_iam_policy_document.<name>.json: {value!r}"
    return match[1]


AWS_SPEECH = "aws"
_AWS_SPEECH_ONLY = re.compile(
    r"\$\{local\.aws_speech \? local\.aws_speech_policy_documents\.(\w+) : \{\}\}"
)


def _aws_speech_documents(role: str, expression: str) -> dict[str, str]:
    """A module call's `extra_policy_documents`: its entry of local.aws_speech_policy_documents,
    attached only when local.aws_speech, which must mean speech_provider "aws"."""
    match = _AWS_SPEECH_ONLY.fullmatch(expression)
    assert match, (
        f"module.{role}.extra_policy_documents: expected "
        f"local.aws_speech ? local.aws_speech_policy_documents.<role> : {{}}, got {expression!r}"
    )
    assert match[1] == role, f"module.{role} takes the aws speech documents of {match[1]}"
    condition = _locals(TERRAFORM)["aws_speech"]
    assert condition == f'${{var.speech_provider == "{AWS_SPEECH}"}}', (
        f"local.aws_speech is {condition!r}: the documents it guards are no longer the aws ones"
    )
    return dict(_locals(TERRAFORM)["aws_speech_policy_documents"][match[1]])


@cache
def role_statements() -> dict[str, tuple[Statement, ...]]:
    """Every Lambda role's statements and the merge task role's, by module call name: with a
    Lambda's, those only speech_provider "aws" attaches (marked `only_with`)."""
    root_documents = _policy_documents(TERRAFORM)
    lambda_documents = _policy_documents(MODULES / "lambda_service")
    roles: dict[str, tuple[Statement, ...]] = {}
    attached_aws_speech: set[str] = set()
    for name, call in _module_calls().items():
        if call.get("source") == "./modules/lambda_service":
            found = []
            for capability, reference in call["policy_documents"].items():
                document = _document_reference(reference)
                found += statements_of(capability, root_documents[document])
            if call.get("extra_policy_documents") is not None:
                extra = _aws_speech_documents(name, str(call["extra_policy_documents"]))
                for capability, reference in extra.items():
                    document = _document_reference(reference)
                    found += statements_of(
                        capability, root_documents[document], only_with=AWS_SPEECH
                    )
                attached_aws_speech |= {
                    _document_reference(reference) for reference in extra.values()
                }
            # The module's own documents (modules/lambda_service/main.tf own_policy_documents).
            found += statements_of("write-logs", lambda_documents["write_logs"])
            if call.get("sqs_event_source") is not None:
                queue = call["sqs_event_source"]["queue_arn"]
                found += statements_of(
                    "consume-queue",
                    lambda_documents["consume_queue"],
                    {"${var.sqs_event_source.queue_arn}": queue},
                )
            if call.get("tracing_mode") == "Active":
                found += statements_of("write-traces", lambda_documents["write_traces"])
            roles[name] = tuple(found)
        elif call.get("source") == "./modules/fargate_task":
            found = []
            for capability, reference in call["task_policy_documents"].items():
                found += statements_of(capability, root_documents[_document_reference(reference)])
            roles[name] = tuple(found)
    # A document of local.aws_speech_policy_documents that no module call attaches would leave
    # a role without what it needs, and unchecked here.
    every_aws_speech = {
        _document_reference(reference)
        for documents in _locals(TERRAFORM)["aws_speech_policy_documents"].values()
        for reference in documents.values()
    }
    assert every_aws_speech == attached_aws_speech, (
        f"local.aws_speech_policy_documents not attached: {every_aws_speech - attached_aws_speech}"
    )
    return roles


def allowed_actions(role: str) -> set[str]:
    return {action for statement in role_statements()[role] for action in statement.actions}


def forbidden(role: str, call: Call) -> list[str]:
    """What of one recorded call the role does not allow (empty: all of it is allowed)."""
    statements = role_statements()[role]
    targets: tuple[str | None, ...] = call.resources or (None,)
    return [
        f"{call.action} on {target or '(any resource)'}"
        for target in targets
        if not any(s.allows(call.action, target) for s in statements)
    ]


# ---------------------------------------------------------------------------------------------
# A pipeline of our own: on Symbl, a short meeting inline and a long one through the Fargate
# task; on the AWS provider, two short meetings, one of whose completion events is lost
# ---------------------------------------------------------------------------------------------

NAMES = ["Ana Ruiz-Soto", "Bo Chen"]
INLINE_MAX_SECONDS = 60  # the 40-s meeting (1 min) merges inline, the 70-s one (2 min) does not
AWS_MEETING_SECONDS = 20  # the shortest synthetic meeting (sandbox/synth.py MIN_DURATION_S)


def _meeting(stack: LocalStack, seed: int, duration_s: int, topic: str) -> SyntheticMeeting:
    return synthetic_meeting(
        stack,
        speakers=NAMES,
        duration_s=duration_s,
        seed=seed,
        topic=topic,
        start_time=datetime(2026, 11, 3, 9, 0, tzinfo=UTC) + timedelta(hours=seed % 24),
    )


class _Stack(LocalStack):
    """The local stack with two reconciler deadlines of our own (all others stay at a minute)."""

    def _environment(self, api_url: str) -> dict[str, str]:
        return {
            **super()._environment(api_url),
            "MERGE_STUCK_SECONDS": str(MERGE_STUCK_SECONDS),
            "SUBMITTED_CHECK_SECONDS": str(SUBMITTED_CHECK_SECONDS),
        }


MERGE_STUCK_SECONDS = 8  # the task's slow download keeps the long meeting MERGING about 16 s
SUBMITTED_CHECK_SECONDS = 5  # a callback or event comes about 1 s after submitting, unless lost


def _symbl_meetings(workdir: Path) -> None:
    """Both merge paths, the Symbl callback, and the reconciler's repairs.

    - The short meeting merges inline; Symbl's callbacks for it are dropped, so the reconciler
      asks Symbl about its job after SUBMITTED_CHECK_SECONDS and settles it.
    - The long meeting goes to the Fargate task, whose first download is slow: the reconciler
      finds it MERGING past MERGE_STUCK_SECONDS and asks ECS whether the task still runs
      (ecs:DescribeTasks). (moto moves a task one state towards STOPPED on every describe, so
      after a few passes the reconciler restarts the merge; the meeting ends NOTIFIED either
      way.) Its job is settled by the callback.
    - The host opens the insights page.
    """
    options = StackOptions(
        symbl_limit=2,
        inline_merge_max_seconds=INLINE_MAX_SECONDS,
        reconcile_every_seconds=1.0,
        workdir=workdir,
    )
    with _Stack(options) as stack:
        short = _meeting(stack, seed=901, duration_s=40, topic="Least privilege inline")
        long = _meeting(stack, seed=902, duration_s=70, topic="Least privilege task")
        assert short.duration_minutes * 60 <= INLINE_MAX_SECONDS < long.duration_minutes * 60
        slow = long.participants[0].audio
        stack.zoom.inject(
            "slow_body",
            file_id=slow.file_id,
            chunk_size=max(4096, slow.file_size // 40),
            delay_s=0.4,  # about 16 s for the whole file
        )
        # The short meeting's job is the first (the long one waits for its task): both of its
        # webhooks (in_progress, completed) are lost.
        stack.symbl.drop_webhooks(count=2)
        for meeting in (short, long):
            deliver(stack, meeting)
        states = wait_terminal(stack, [short.uuid, long.uuid], 240)
        assert states == {short.uuid: State.NOTIFIED, long.uuid: State.NOTIFIED}, states
        assert stack.task_runs >= 1, "the long meeting did not go to the Fargate task"
        # The insights page, as the host opens it (a link minted like the notifier's, so that
        # this does not depend on the email's format or on reading the endpoint's sent mail).
        token = make_page_token(short.uuid, stack.credentials.link_signing_key, 3600, time.time())
        page = f"{stack.api.url}/meetings/{quote(short.uuid, safe='')}?token={token}"
        assert requests.get(page, timeout=10).status_code == 200


def _aws_meetings(workdir: Path) -> None:
    """The AWS provider's calls: the pump starts each job and asks its status
    (StartTranscriptionJob, GetTranscriptionJob); the first job to end loses its completion
    event, so the reconciler asks about it after SUBMITTED_CHECK_SECONDS (GetTranscriptionJob),
    while the other's event reaches the job-events consumer, which confirms it
    (GetTranscriptionJob); the notifier reads each transcript from transcripts/, asks Bedrock
    (Converse, authorised as bedrock:InvokeModel) and deletes the job. Two meetings, because a
    job has one event: lost, or delivered. Both run at once (two Transcribe slots)."""
    options = StackOptions(
        speech_provider="aws",
        transcribe_limit=2,
        inline_merge_max_seconds=INLINE_MAX_SECONDS,
        reconcile_every_seconds=1.0,
        workdir=workdir,
    )
    with _Stack(options) as stack:
        assert stack.transcribe is not None and stack.bedrock is not None
        batch = [
            _meeting(stack, seed=903 + i, duration_s=AWS_MEETING_SECONDS, topic=f"LP aws {i}")
            for i in range(2)
        ]
        stack.transcribe.lose_events(1)
        for meeting in batch:
            deliver(stack, meeting)
        states = wait_terminal(stack, [m.uuid for m in batch], 120)
        assert states == {m.uuid: State.NOTIFIED for m in batch}, states
        assert (len(stack.transcribe.events_lost), len(stack.transcribe.events_sent)) == (1, 1)
        assert len(stack.transcribe.deleted) == 2 and len(stack.bedrock.calls) == 2


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Both speech providers' paths, recorded like any other test (one stack after the other:
    the provider is a setting of the whole stack)."""
    workdir = tmp_path_factory.mktemp("least-privilege")
    _symbl_meetings(workdir / "symbl")
    _aws_meetings(workdir / "aws")
    yield


# ---------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------


def recorded_for(role: str) -> list[Call]:
    if role == TASK_ROLE:
        return [c for c in RECORDER.calls_of("merger") if c.action not in NOT_IN_TASK]
    return list(RECORDER.calls_of(FUNCTIONS[role]))


def roles() -> list[str]:
    return [*FUNCTIONS, TASK_ROLE]


def exception_for(role: str, action: str) -> PolicyException | None:
    matching = [e for e in EXCEPTIONS if e.role == role and e.action == action]
    return matching[0] if matching else None


def summary() -> dict[str, Any]:
    by_actor: dict[str, dict[str, list[str]]] = {}
    for call in RECORDER.snapshot():
        entry = by_actor.setdefault(call.actor, {}).setdefault(call.action, [])
        label = ", ".join(call.resources) + (" (presigned URL)" if call.presigned else "")
        if label and label not in entry:
            entry.append(label)
    return {
        "recorded": {a: dict(sorted(v.items())) for a, v in sorted(by_actor.items())},
        "unattributed_calls": sum(RECORDER.unattributed.values()),
        "tests_passed_before_this_check": len(RECORDER.passed_tests),
    }


def test_every_service_made_calls(pipeline: None, artifacts_dir: Path) -> None:
    """The recorder saw each service at work; otherwise the checks below prove nothing."""
    (artifacts_dir / "least_privilege.json").write_text(
        json.dumps(summary(), indent=1, ensure_ascii=False), encoding="utf-8"
    )
    silent = [actor for actor in FUNCTIONS.values() if not RECORDER.actions(actor)]
    assert not silent, f"no AWS call recorded for {silent}: is the recorder installed?"


@pytest.mark.parametrize("role", roles())
def test_every_recorded_call_is_allowed(pipeline: None, role: str) -> None:
    problems = []
    for call in recorded_for(role):
        for what in forbidden(role, call):
            first = RECORDER.first_seen_in.get((call.actor, call.action), "?")
            problems.append(f"{what} (first recorded in {first})")
    assert not problems, f"{role} makes calls terraform/iam.tf does not allow:\n  " + "\n  ".join(
        sorted(problems)
    )


@pytest.mark.parametrize("role", roles())
def test_every_allowed_action_is_performed_or_a_listed_exception(pipeline: None, role: str) -> None:
    performed = {call.action for call in recorded_for(role)}
    problems = []
    excused = []
    for action in sorted(allowed_actions(role)):
        if any(fnmatchcase(done, action) for done in performed):
            continue
        exception = exception_for(role, action)
        if exception is None:
            problems.append(f"{action}: allowed but never performed, and not in EXCEPTIONS")
        elif exception.exercised_by and RECORDER.ran(exception.exercised_by):
            problems.append(
                f"{action}: {exception.exercised_by} passed in this session but the action was "
                "not recorded; the path has moved: update EXCEPTIONS or the policy"
            )
        else:
            excused.append(f"{action}: {exception.reason}")
    assert not problems, f"{role}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("role", roles())
def test_exceptions_are_current(pipeline: None, role: str) -> None:
    """Each exception names an action the role allows, and those never made through boto3 by
    the service's code were indeed not recorded."""
    performed = {call.action for call in recorded_for(role)}
    problems = []
    for exception in (e for e in EXCEPTIONS if e.role == role):
        if exception.action not in allowed_actions(role):
            problems.append(f"{exception.action}: not allowed by the policy any more: remove it")
        elif (
            exception.exercised_by is None
            and not exception.timing_dependent
            and exception.action in performed
        ):
            problems.append(f"{exception.action}: was recorded after all: remove the exception")
    assert not problems, f"{role} EXCEPTIONS:\n  " + "\n  ".join(problems)


def test_every_aws_speech_statement_is_used(pipeline: None) -> None:
    """Each action of each statement only speech_provider "aws" attaches was recorded on a
    resource of that statement (or is in EXCEPTIONS): the action-level check above would let a
    statement on transcripts/ pass on a read of merged/, or one on the model on a call to
    another. One test over every role: the roles are known only once the Terraform is parsed,
    which collection must not depend on."""
    problems = []
    for role in roles():
        calls = recorded_for(role)
        for statement in (s for s in role_statements()[role] if s.only_with):
            for action in statement.actions:
                if exception_for(role, action) is not None:
                    continue
                if not any(
                    fnmatchcase(call.action, action)
                    and any(statement.allows(call.action, r) for r in call.resources or (None,))
                    for call in calls
                ):
                    problems.append(
                        f"{role} {statement.document}/{statement.sid}: {action} on "
                        f"{', '.join(statement.resources)} never recorded"
                    )
    assert not problems, "\n  ".join(["aws speech statements unused:", *problems])
