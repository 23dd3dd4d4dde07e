"""The Terraform against the code: names, shapes and environments must agree.

Parses terraform/ with python-hcl2 (no provider, no AWS, no network) and compares it with what the
code and the sandbox declare: the recordings table schema, queue names and timeouts, each
service's settings class, the Lambda handlers, the speech provider's job names, variables and
IAM. Without `terraform validate` (providers cannot be downloaded here) it also checks what
validate would: module arguments, references, descriptions.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path
from typing import Any, get_args

import hcl2
import pytest
from hcl2.utils import SerializationOptions
from pydantic_settings import BaseSettings

from sandbox import aws_resources
from sandbox.aws_resources import (
    MAX_RECEIVE_COUNT,
    QUEUE_VISIBILITY_SECONDS,
    RECORDINGS_TABLE_SCHEMA,
    SECRET_NAMES,
    STAGES,
    StackNames,
)
from services.core import settings as settings_module
from services.core.recordings import TTL_ATTRIBUTE

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"
MODULES = TERRAFORM / "modules"
MODULE_FILES = ("main.tf", "variables.tf", "outputs.tf", "versions.tf")
PREFIX = "contract"
NAMES = StackNames(PREFIX)

LAMBDA_MODULE_SOURCE = "./modules/lambda_service"
QUEUE_MODULE_SOURCE = "./modules/queue"
TASK_MODULE_SOURCE = "./modules/fargate_task"

# Queues besides the pipeline's stages: Transcribe's job events (EventBridge rule -> queue).
# The sandbox may list it among its STAGES or not; either way the Terraform declares it.
EVENT_QUEUES = ("job-events",)
ALL_QUEUES = tuple(dict.fromkeys((*STAGES, *EVENT_QUEUES)))

# Which function consumes each queue (merge, notify and job-events through an SQS trigger; the
# pump receives from the submit queue itself).
QUEUE_CONSUMERS = {
    "merge": "merger",
    "submit": "pump",
    "notify": "notifier",
    "job-events": "job_events",
}
TRIGGERED_BY_QUEUE = {
    "merger": "merge_queue",
    "notifier": "notify_queue",
    "job_events": "job_events_queue",
}

EXPECTED_HANDLERS = {
    "webhook": "services.webhook.handler.lambda_handler",
    "merger": "services.merger.handler.lambda_handler",
    "pump": "services.submitter.handler.pump_handler",
    "reconciler": "services.submitter.handler.reconciler_handler",
    "notifier": "services.notifier.handler.lambda_handler",
    "job_events": "services.submitter.handler.job_events_handler",
}

# Terraform unit (module call in terraform/) -> the settings class its environment must match.
# Every class must exist: a missing one is a defect, not a pending test.
SETTINGS_OF_UNIT = {
    "webhook": "WebhookSettings",
    "merger": "MergerSettings",
    "merger_task": "MergerSettings",
    "pump": "SubmitterSettings",
    "reconciler": "ReconcilerSettings",
    "notifier": "NotifierSettings",
    "job_events": "JobEventsSettings",
}
# Read by the logging library (Powertools), not by a settings class; set on every unit.
POWERTOOLS_VARIABLES = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"}

SECRETS = (
    "zoom-webhook-secret-token",
    "zoom-s2s-credentials",
    "symbl-credentials",
    "link-signing-key",
)

# ---------------------------------------------------------------------------------------------
# Parsing and a small evaluator for literal values, var.* and local.*
# ---------------------------------------------------------------------------------------------

_OPTIONS = SerializationOptions(
    strip_string_quotes=True, explicit_blocks=False, with_comments=False
)
_WHOLE_EXPRESSION = re.compile(r"^\$\{([^{}]*)\}$")
_INTERPOLATION = re.compile(r"\$\{([^{}]*)\}")
_REFERENCE = re.compile(r"^(var|local)\.([A-Za-z_][\w-]*)((?:\.[A-Za-z_][\w-]*)*)$")


class Unresolved(Exception):
    """An expression this evaluator does not compute (a resource attribute, a function call)."""


@cache
def parse_dir(path: Path) -> dict[str, list[Any]]:
    """Every top-level block of the .tf files of one module, by block type."""
    merged: dict[str, list[Any]] = {}
    for tf in sorted(path.glob("*.tf")):
        doc = hcl2.loads(tf.read_text(encoding="utf-8"), serialization_options=_OPTIONS)
        for kind, blocks in doc.items():
            merged.setdefault(kind, []).extend(blocks)
    return merged


def labelled(path: Path, kind: str) -> dict[str, dict[str, Any]]:
    """Blocks with one label (variable, output, module) by label."""
    return {name: body for block in parse_dir(path).get(kind, []) for name, body in block.items()}


def resources(path: Path, kind: str = "resource") -> dict[tuple[str, str], dict[str, Any]]:
    """Resources (or data sources) by (type, name)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for block in parse_dir(path).get(kind, []):
        for rtype, named in block.items():
            for name, body in named.items():
                found[(rtype, name)] = body
    return found


def locals_of(path: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in parse_dir(path).get("locals", []):
        merged.update(block)
    return merged


def modules_with_source(source: str) -> dict[str, dict[str, Any]]:
    return {
        name: body
        for name, body in labelled(TERRAFORM, "module").items()
        if body["source"] == source
    }


class Scope:
    """Evaluates literals, var.* (defaults, or given values) and local.* of one module (as
    written, or given values for locals that come from data sources or functions)."""

    def __init__(
        self,
        path: Path,
        var_values: dict[str, Any] | None = None,
        local_values: dict[str, Any] | None = None,
    ) -> None:
        self.path = path
        self.var_values = var_values or {}
        self.local_values = local_values or {}

    def lookup(self, expression: str) -> Any:
        """The raw HCL value a var.* or local.* reference points at (not evaluated further)."""
        match = _REFERENCE.match(expression.strip())
        if match is None:
            raise Unresolved(expression)
        kind, name, rest = match.groups()
        if kind == "var":
            if name in self.var_values:
                value = self.var_values[name]
            else:
                declared = labelled(self.path, "variable")[name]
                if "default" not in declared:
                    raise Unresolved(expression)
                value = declared["default"]
        elif name in self.local_values:
            value = self.local_values[name]
        else:
            value = locals_of(self.path)[name]
        for key in filter(None, rest.split(".")):
            value = self.evaluate(value)[key]
        return value

    def evaluate(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: self.evaluate(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.evaluate(item) for item in value]
        if not isinstance(value, str):
            return value
        whole = _WHOLE_EXPRESSION.match(value)
        if whole:
            return self.evaluate(self.lookup(whole.group(1)))
        return _INTERPOLATION.sub(lambda m: str(self.evaluate(self.lookup(m.group(1)))), value)


ROOT_SCOPE = Scope(TERRAFORM, {"name_prefix": PREFIX})


def reference_of(value: Any) -> str:
    """`${local.x}` -> `local.x`."""
    assert isinstance(value, str), value
    match = _WHOLE_EXPRESSION.match(value)
    assert match, f"expected a single reference, got {value!r}"
    return match.group(1).strip()


def module_dirs() -> list[Path]:
    return [TERRAFORM, *sorted(p for p in MODULES.iterdir() if p.is_dir())]


# ---------------------------------------------------------------------------------------------
# (a) state: the recordings table is the sandbox's schema; the slots table and the bucket
# ---------------------------------------------------------------------------------------------


def test_recordings_table_matches_the_sandbox_schema() -> None:
    table = resources(TERRAFORM)[("aws_dynamodb_table", "recordings")]
    schema = RECORDINGS_TABLE_SCHEMA

    assert ROOT_SCOPE.evaluate(table["name"]) == NAMES.recordings_table
    assert table["billing_mode"] == schema["BillingMode"]

    keys = {k["KeyType"]: k["AttributeName"] for k in schema["KeySchema"]}
    assert table["hash_key"] == keys["HASH"]
    assert table.get("range_key") == keys.get("RANGE")

    declared = {(a["name"], a["type"]) for a in table["attribute"]}
    expected = {(a["AttributeName"], a["AttributeType"]) for a in schema["AttributeDefinitions"]}
    assert declared == expected

    def index_shape(key_schema: list[dict[str, str]], projection: str) -> tuple[Any, ...]:
        index_keys = {k["KeyType"]: k["AttributeName"] for k in key_schema}
        return index_keys["HASH"], index_keys.get("RANGE"), projection

    declared_indexes = {
        gsi["name"]: (gsi["hash_key"], gsi.get("range_key"), gsi["projection_type"])
        for gsi in table["global_secondary_index"]
    }
    # Provider neutral: a Symbl job id or a Transcribe job name leads to its meeting.
    assert declared_indexes["by-job"] == ("job_id", None, "KEYS_ONLY")
    expected_indexes = {
        gsi["IndexName"]: index_shape(gsi["KeySchema"], gsi["Projection"]["ProjectionType"])
        for gsi in schema["GlobalSecondaryIndexes"]
    }
    assert declared_indexes == expected_indexes

    assert table["ttl"] == [{"attribute_name": TTL_ATTRIBUTE, "enabled": True}]
    assert table["point_in_time_recovery"] == [{"enabled": True}]
    assert table["server_side_encryption"][0]["enabled"] is True


def test_slots_table_and_media_bucket() -> None:
    declared = resources(TERRAFORM)
    slots = declared[("aws_dynamodb_table", "slots")]
    assert ROOT_SCOPE.evaluate(slots["name"]) == f"{PREFIX}-slots"
    schema = aws_resources.SLOTS_TABLE_SCHEMA
    assert slots["billing_mode"] == schema["BillingMode"]
    (hash_key,) = (k["AttributeName"] for k in schema["KeySchema"] if k["KeyType"] == "HASH")
    assert slots["hash_key"] == hash_key and "range_key" not in slots
    assert slots["attribute"] == [
        {"name": a["AttributeName"], "type": a["AttributeType"]}
        for a in schema["AttributeDefinitions"]
    ]
    assert slots["point_in_time_recovery"] == [{"enabled": True}]
    assert slots["server_side_encryption"][0]["enabled"] is True

    bucket = declared[("aws_s3_bucket", "media")]
    assert ROOT_SCOPE.evaluate(bucket["bucket"]) == NAMES.media_bucket
    block = declared[("aws_s3_bucket_public_access_block", "media")]
    assert all(
        block[flag] is True
        for flag in (
            "block_public_acls",
            "block_public_policy",
            "ignore_public_acls",
            "restrict_public_buckets",
        )
    )


# ---------------------------------------------------------------------------------------------
# (b) queues: names, redrive, visibility timeouts against the consumers' timeouts
# ---------------------------------------------------------------------------------------------


def queue_modules_by_stage() -> dict[str, tuple[str, dict[str, Any]]]:
    by_stage = {}
    for name, body in modules_with_source(QUEUE_MODULE_SOURCE).items():
        queue_name = ROOT_SCOPE.evaluate(body["name"])
        stage = queue_name.removeprefix(f"{PREFIX}-")
        by_stage[stage] = (name, body)
    return by_stage


def test_every_stage_has_a_queue_module() -> None:
    assert set(queue_modules_by_stage()) == set(ALL_QUEUES)


@pytest.mark.parametrize("stage", ALL_QUEUES)
def test_queue_and_dlq_names_follow_stack_names(stage: str) -> None:
    _, call = queue_modules_by_stage()[stage]
    queue_name = ROOT_SCOPE.evaluate(call["name"])
    assert queue_name == NAMES.queue(stage)

    module_scope = Scope(MODULES / "queue", {"name": queue_name})
    queue_resources = resources(MODULES / "queue")
    assert module_scope.evaluate(queue_resources[("aws_sqs_queue", "this")]["name"]) == queue_name
    dlq_name = module_scope.evaluate(queue_resources[("aws_sqs_queue", "dlq")]["name"])
    assert dlq_name == NAMES.dlq(stage)


@pytest.mark.parametrize("stage", ALL_QUEUES)
def test_redrive_after_max_receive_count(stage: str) -> None:
    _, call = queue_modules_by_stage()[stage]
    module_scope = Scope(MODULES / "queue")
    count = (
        ROOT_SCOPE.evaluate(call["max_receive_count"])
        if "max_receive_count" in call
        else module_scope.lookup("var.max_receive_count")
    )
    assert count == MAX_RECEIVE_COUNT

    queue_resources = resources(MODULES / "queue")
    redrive = queue_resources[("aws_sqs_queue", "this")]["redrive_policy"]
    assert "maxReceiveCount" in redrive and "var.max_receive_count" in redrive
    assert "deadLetterTargetArn" in redrive and "aws_sqs_queue.dlq.arn" in redrive
    for name in ("this", "dlq"):
        assert queue_resources[("aws_sqs_queue", name)]["sqs_managed_sse_enabled"] is True


@pytest.mark.parametrize("stage", ALL_QUEUES)
def test_visibility_timeout_is_the_sandbox_s_and_six_times_the_consumer_s(stage: str) -> None:
    _, call = queue_modules_by_stage()[stage]
    visibility = ROOT_SCOPE.evaluate(call["visibility_timeout_seconds"])
    # The sandbox declares every stage's; an event queue's only once the sandbox plays it.
    if stage in STAGES or stage in QUEUE_VISIBILITY_SECONDS:
        assert visibility == QUEUE_VISIBILITY_SECONDS[stage]

    consumer = labelled(TERRAFORM, "module")[QUEUE_CONSUMERS[stage]]
    consumer_timeout = ROOT_SCOPE.evaluate(consumer["timeout_seconds"])
    assert visibility >= 6 * consumer_timeout, (
        f"{stage}: visibility {visibility} s < 6 x {QUEUE_CONSUMERS[stage]} timeout"
    )
    # The module's own precondition checks against this number: it must be the consumer's.
    assert ROOT_SCOPE.evaluate(call["consumer_timeout_seconds"]) == consumer_timeout


def test_sqs_triggers_report_batch_item_failures() -> None:
    functions = modules_with_source(LAMBDA_MODULE_SOURCE)
    triggered = {
        name: reference_of(body["sqs_event_source"]["queue_arn"])
        for name, body in functions.items()
        if body.get("sqs_event_source") is not None
    }
    assert triggered == {fn: f"module.{queue}.arn" for fn, queue in TRIGGERED_BY_QUEUE.items()}
    # The submit queue is no trigger: the pump receives from it only when it holds a slot.

    mapping = resources(MODULES / "lambda_service")[("aws_lambda_event_source_mapping", "sqs")]
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]


# ---------------------------------------------------------------------------------------------
# (c) environments: exactly what each settings class reads
# ---------------------------------------------------------------------------------------------


def settings_variables(cls: type[BaseSettings]) -> tuple[set[str], set[str]]:
    """(every variable the class reads, the required ones), as environment variable names."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    readable: set[str] = set()
    required: set[str] = set()
    for name, field in cls.model_fields.items():
        alias = field.validation_alias if isinstance(field.validation_alias, str) else None
        variable = (alias or prefix + name).upper()
        readable.add(variable)
        if field.is_required():
            required.add(variable)
    return readable, required


def unit_environment(unit: str) -> dict[str, Any]:
    call = labelled(TERRAFORM, "module")[unit]
    environment = ROOT_SCOPE.lookup(reference_of(call["environment"]))
    assert isinstance(environment, dict)
    return environment


def test_environment_maps_live_in_environment_tf() -> None:
    defined_there = set(
        hcl2.loads(
            (TERRAFORM / "environment.tf").read_text(encoding="utf-8"),
            serialization_options=_OPTIONS,
        )["locals"][0]
    )
    for unit in SETTINGS_OF_UNIT:
        call = labelled(TERRAFORM, "module")[unit]
        reference = reference_of(call["environment"])
        assert reference.startswith("local."), f"{unit}: environment must be a local"
        assert reference.removeprefix("local.") in defined_there, unit


@pytest.mark.parametrize("unit", sorted(SETTINGS_OF_UNIT))
def test_environment_is_exactly_what_the_settings_class_reads(unit: str) -> None:
    class_name = SETTINGS_OF_UNIT[unit]
    cls = getattr(settings_module, class_name, None)
    environment = set(unit_environment(unit))
    assert environment >= POWERTOOLS_VARIABLES, f"{unit}: POWERTOOLS_* missing"
    assert cls is not None, f"{class_name} ({unit}'s settings) is not in services/core/settings.py"
    readable, required = settings_variables(cls)
    missing = required - environment
    unread = environment - readable - POWERTOOLS_VARIABLES
    assert not missing, f"{unit}: required by {class_name} but not set: {sorted(missing)}"
    assert not unread, f"{unit}: set but not read by {class_name}: {sorted(unread)}"


# ---------------------------------------------------------------------------------------------
# (d) handlers: the image commands name functions that exist
# ---------------------------------------------------------------------------------------------


def test_every_function_runs_its_expected_handler() -> None:
    commands = {
        name: ROOT_SCOPE.evaluate(body["image_command"])
        for name, body in modules_with_source(LAMBDA_MODULE_SOURCE).items()
    }
    assert commands == {name: [handler] for name, handler in EXPECTED_HANDLERS.items()}


@pytest.mark.parametrize("function", sorted(EXPECTED_HANDLERS))
def test_image_command_names_an_importable_handler(function: str) -> None:
    call = modules_with_source(LAMBDA_MODULE_SOURCE)[function]
    (handler,) = ROOT_SCOPE.evaluate(call["image_command"])
    module_name, _, attribute = handler.rpartition(".")
    module = importlib.import_module(module_name)  # a missing module fails here
    assert callable(getattr(module, attribute, None)), f"{handler} is not a function"


def test_merge_task_command_names_an_existing_module() -> None:
    (call,) = modules_with_source(TASK_MODULE_SOURCE).values()
    command = ROOT_SCOPE.evaluate(call["command"])
    assert command[:2] == ["python", "-m"], command
    importlib.import_module(command[2])  # a missing module fails here


# ---------------------------------------------------------------------------------------------
# (e) secrets: declared with their names, never with values
# ---------------------------------------------------------------------------------------------


def test_secrets_are_declared_without_values() -> None:
    for path in module_dirs():
        for kind in ("resource", "data"):
            types = {rtype for rtype, _ in resources(path, kind)}
            assert "aws_secretsmanager_secret_version" not in types, path

    secret = resources(TERRAFORM)[("aws_secretsmanager_secret", "this")]
    keys = set(ROOT_SCOPE.lookup(reference_of(secret["for_each"])))
    assert keys == set(SECRETS) and set(SECRET_NAMES) <= keys
    scope = Scope(TERRAFORM, {"name_prefix": PREFIX})
    name = secret["name"].replace("${each.key}", "{key}")
    for key in SECRETS:
        assert scope.evaluate(name).format(key=key) == NAMES.secret(key)


# ---------------------------------------------------------------------------------------------
# (f), (g) module hygiene, and what `terraform validate` would catch
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", module_dirs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_variables_typed_and_described_outputs_described(path: Path) -> None:
    for name, body in labelled(path, "variable").items():
        assert "type" in body, f"variable {name} in {path.name} has no type"
        assert str(body.get("description", "")).strip(), f"variable {name} has no description"
    for name, body in labelled(path, "output").items():
        assert str(body.get("description", "")).strip(), f"output {name} has no description"


@pytest.mark.parametrize("path", module_dirs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_has_the_four_files(path: Path) -> None:
    for file in MODULE_FILES:
        assert (path / file).is_file(), f"{path.relative_to(ROOT)} lacks {file}"


def test_root_declares_the_modules() -> None:
    assert {p.name for p in MODULES.iterdir() if p.is_dir()} == {
        "lambda_service",
        "queue",
        "fargate_task",
    }


def code_of(path: Path) -> Iterator[str]:
    """The .tf text of a module without full-line comments."""
    for tf in sorted(path.glob("*.tf")):
        for line in tf.read_text(encoding="utf-8").splitlines():
            if not line.lstrip().startswith("#"):
                yield line


@pytest.mark.parametrize("path", module_dirs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_references_are_declared(path: Path) -> None:
    text = "\n".join(code_of(path))
    variables = set(labelled(path, "variable"))
    local_names = set(locals_of(path))
    declared_resources = {f"{t}.{n}" for t, n in resources(path)}
    declared_data = {f"data.{t}.{n}" for t, n in resources(path, "data")}
    calls = labelled(path, "module")

    for name in set(re.findall(r"\bvar\.([A-Za-z_][\w-]*)", text)):
        assert name in variables, f"var.{name} is not declared in {path.name}"
    for name in set(re.findall(r"\blocal\.([A-Za-z_][\w-]*)", text)):
        assert name in local_names, f"local.{name} is not defined in {path.name}"
    for ref in set(re.findall(r"(?<![\w.])(aws_[a-z0-9_]+\.[A-Za-z_][\w-]*)", text)):
        assert ref in declared_resources, f"{ref} is not declared in {path.name}"
    for ref in set(re.findall(r"\b(data\.aws_[a-z0-9_]+\.[A-Za-z_][\w-]*)", text)):
        assert ref in declared_data, f"{ref} is not declared in {path.name}"
    for module, output in set(re.findall(r"\bmodule\.([A-Za-z_][\w-]*)\.([A-Za-z_][\w-]*)", text)):
        assert module in calls, f"module.{module} is not called in {path.name}"
        source = (path / calls[module]["source"]).resolve()
        assert output in labelled(source, "output"), f"module.{module} has no output {output}"


def test_module_calls_pass_declared_and_required_variables() -> None:
    meta_arguments = {"source", "version", "providers", "count", "for_each", "depends_on"}
    for name, call in labelled(TERRAFORM, "module").items():
        source = (TERRAFORM / call["source"]).resolve()
        declared = labelled(source, "variable")
        passed = set(call) - meta_arguments
        assert passed <= set(declared), f"module.{name}: unknown {sorted(passed - set(declared))}"
        required = {var for var, body in declared.items() if "default" not in body}
        assert required <= passed, f"module.{name}: missing {sorted(required - passed)}"


def test_tfvars_example_sets_declared_variables_and_every_required_one() -> None:
    example = hcl2.loads(
        (TERRAFORM / "terraform.tfvars.example").read_text(encoding="utf-8"),
        serialization_options=_OPTIONS,
    )
    declared = labelled(TERRAFORM, "variable")
    assert set(example) <= set(declared), sorted(set(example) - set(declared))
    required = {name for name, body in declared.items() if "default" not in body}
    assert required <= set(example), sorted(required - set(example))


# ---------------------------------------------------------------------------------------------
# (h) the HTTP API's access log keeps secrets out: the route template, never the request path
# ---------------------------------------------------------------------------------------------


def test_api_access_log_records_the_route_not_the_path() -> None:
    """`/symbl/callback/{secret}` carries the callback secret in its path and the insights page
    its token in the query: the log has `$context.routeKey` (the template) and nothing that
    expands to the request's path or query."""
    assert "POST /symbl/callback/{secret}" in str(locals_of(TERRAFORM)["api_routes"])
    stage = resources(TERRAFORM)[("aws_apigatewayv2_stage", "default")]
    (settings,) = stage["access_log_settings"]
    log_format = settings["format"]
    variables = set(re.findall(r"\$context\.[\w.]+", log_format))
    assert "$context.routeKey" in variables
    leaking = {
        v
        for v in variables
        if v in {"$context.path", "$context.resourcePath"}
        or v.startswith(("$context.requestOverride", "$context.customDomain"))
    }
    assert not leaking, f"the access log would record request paths: {sorted(leaking)}"


def test_ses_configuration_set_and_alerts_topic_follow_stack_names() -> None:
    """The names the sandbox gives the SES configuration set and the operators' topic are the
    Terraform's."""
    declared = resources(TERRAFORM)
    expected = {
        ("aws_sesv2_configuration_set", "this", "configuration_set_name"): (
            NAMES.ses_configuration_set
        ),
        ("aws_sns_topic", "alerts", "name"): NAMES.operator_topic,
    }
    for (rtype, name, attribute), sandbox_name in expected.items():
        assert ROOT_SCOPE.evaluate(declared[(rtype, name)][attribute]) == sandbox_name


def settings_of_unit(unit: str, scope: Scope = ROOT_SCOPE) -> BaseSettings:
    """The unit's settings class built from its Terraform environment, as the function would at
    start. Values this evaluator cannot compute (resource attributes, function calls) become a
    placeholder in a text field and the code's default otherwise."""
    cls = getattr(settings_module, SETTINGS_OF_UNIT[unit])
    fields = cls.model_fields
    values: dict[str, Any] = {}
    for variable, raw in unit_environment(unit).items():
        name = variable.lower()
        if name not in fields:
            continue
        try:
            value = scope.evaluate(raw)
        except Unresolved:
            value = None
        if value is None or "${" in str(value):
            if fields[name].annotation is str:
                values[name] = f"placeholder-{name}"
            continue
        values[name] = value
    return cls.model_validate(values)


def test_the_pump_s_last_submission_ends_inside_its_lambda_timeout() -> None:
    """A pump starts no submission after PUMP_MAX_SECONDS; the last one (token, submission,
    status check, each with the client's retry budget and timeouts) must still end before
    Lambda stops the function, or a job Symbl accepted could go unrecorded."""
    settings = settings_of_unit("pump")
    assert isinstance(settings, settings_module.SubmitterSettings)
    timeout = ROOT_SCOPE.evaluate(ROOT_SCOPE.lookup("local.function_timeouts"))["pump"]
    assert settings.pump_max_seconds == 60
    assert settings.pump_worst_case_seconds <= timeout, (
        f"PUMP_MAX_SECONDS {settings.pump_max_seconds} + worst-case submission "
        f"{settings.symbl_worst_case_seconds(2)} s > the pump's {timeout} s timeout"
    )


# ---------------------------------------------------------------------------------------------
# (i) the speech provider: its settings, the Transcribe job names, the AWS-only IAM, Bedrock
# ---------------------------------------------------------------------------------------------

# What data sources give in a real account; the locals built from them are evaluated with these.
ACCOUNT = {"partition": "aws", "region": "eu-west-1", "account_id": "111122223333"}
AWS_SPEECH_UNITS = {"pump", "reconciler", "notifier"}


def speech_units() -> set[str]:
    return {
        unit
        for unit, name in SETTINGS_OF_UNIT.items()
        if issubclass(getattr(settings_module, name), settings_module.SpeechSettings)
    }


def test_every_speech_unit_knows_the_provider_and_the_stack_name() -> None:
    """SPEECH_PROVIDER and STACK_NAME come from the variables wherever SpeechSettings is read:
    one provider for the whole stack, and job names the rule and IAM match."""
    assert speech_units() == {"webhook", "pump", "reconciler", "notifier", "job_events"}
    for unit in speech_units():
        environment = unit_environment(unit)
        assert environment["SPEECH_PROVIDER"] == "${var.speech_provider}", unit
        assert environment["STACK_NAME"] == "${var.name_prefix}", unit
        # The secret always exists; the code requires its ARN with "symbl".
        assert "symbl-credentials" in environment["SYMBL_CREDENTIALS_SECRET_ARN"], unit


def test_each_unit_gets_the_speech_settings_it_uses() -> None:
    pump, reconciler, notifier = (unit_environment(u) for u in ("pump", "reconciler", "notifier"))
    assert pump["TRANSCRIBE_CONCURRENCY_LIMIT"] == "${tostring(var.transcribe_concurrency_limit)}"
    assert reconciler["TRANSCRIBE_CONCURRENCY_LIMIT"] == pump["TRANSCRIBE_CONCURRENCY_LIMIT"]
    assert pump["TRANSCRIBE_LANGUAGE_CODE"] == "${var.transcribe_language_code}"
    # The pump starts the jobs, so it names the key Transcribe encrypts the transcripts with.
    assert pump["TRANSCRIPT_KMS_KEY_ARN"] == "${aws_kms_key.speech.arn}"
    assert notifier["BEDROCK_MODEL_ID"] == "${var.bedrock_model_id}"
    assert notifier["BEDROCK_CONTEXT_TOKENS"] == "${tostring(var.bedrock_context_tokens)}"
    assert notifier["BEDROCK_MAX_OUTPUT_TOKENS"] == "${tostring(var.bedrock_max_output_tokens)}"


def test_speech_variables_default_to_the_code_s_defaults() -> None:
    """A stack deployed with the defaults runs as the code would without the variable set."""
    variables = labelled(TERRAFORM, "variable")
    speech = settings_module.SpeechSettings.model_fields
    submitter = settings_module.SubmitterSettings.model_fields
    expected = {
        "speech_provider": speech["speech_provider"].default,
        "transcribe_language_code": speech["transcribe_language_code"].default,
        "bedrock_model_id": speech["bedrock_model_id"].default,
        "bedrock_context_tokens": speech["bedrock_context_tokens"].default,
        "bedrock_max_output_tokens": speech["bedrock_max_output_tokens"].default,
        "transcribe_concurrency_limit": submitter["transcribe_concurrency_limit"].default,
        "symbl_concurrency_limit": submitter["symbl_concurrency_limit"].default,
    }
    assert {name: variables[name]["default"] for name in expected} == expected


def test_speech_provider_variable_accepts_exactly_the_code_s_providers() -> None:
    annotation = settings_module.SpeechSettings.model_fields["speech_provider"].annotation
    (validation,) = labelled(TERRAFORM, "variable")["speech_provider"]["validation"]
    match = re.fullmatch(
        r"\$\{contains\(\[(.*)\], var\.speech_provider\)\}", validation["condition"]
    )
    assert match, validation["condition"]
    assert set(re.findall(r'"(\w+)"', match[1])) == set(get_args(annotation))


@pytest.mark.parametrize("provider", ["symbl", "aws"])
@pytest.mark.parametrize("unit", sorted(SETTINGS_OF_UNIT))
def test_every_environment_starts_its_service_with_either_provider(
    unit: str, provider: str
) -> None:
    """The settings class accepts what Terraform sets, defaults included (a STACK_NAME the job
    names allow, output tokens within the context window, the secret ARN Symbl needs)."""
    scope = Scope(TERRAFORM, {"name_prefix": PREFIX, "speech_provider": provider})
    settings = settings_of_unit(unit, scope)
    if unit in speech_units():
        assert isinstance(settings, settings_module.SpeechSettings)
        assert settings.speech_provider == provider
        assert settings.stack_name == PREFIX


def _root_scope_in_account(**var_values: Any) -> Scope:
    return Scope(TERRAFORM, {"name_prefix": PREFIX, **var_values}, dict(ACCOUNT))


def test_transcribe_rule_matches_exactly_our_jobs_and_the_code_names_them_so() -> None:
    """The rule, the IAM job ARNs and the code's job names agree on "<STACK_NAME>-"."""
    scope = _root_scope_in_account()
    prefix = scope.evaluate(scope.lookup("local.transcribe_job_name_prefix"))
    assert prefix == f"{PREFIX}-"

    rule = resources(TERRAFORM)[("aws_cloudwatch_event_rule", "transcribe_job_events")]
    assert rule["event_pattern"] == "${jsonencode(local.transcribe_job_events_pattern)}"
    assert "schedule_expression" not in rule and "event_bus_name" not in rule  # the default bus
    pattern = scope.evaluate(scope.lookup("local.transcribe_job_events_pattern"))
    assert pattern == {
        "source": ["aws.transcribe"],
        "detail-type": ["Transcribe Job State Change"],
        "detail": {
            "TranscriptionJobStatus": ["COMPLETED", "FAILED"],
            "TranscriptionJobName": [{"prefix": prefix}],
        },
    }

    job_arn = scope.evaluate(scope.lookup("local.transcribe_job_arn"))
    assert job_arn == f"arn:aws:transcribe:eu-west-1:111122223333:transcription-job/{prefix}*"

    # The code's names (services/core/speech/aws.py) with the stack name Terraform gives it.
    stack_name = unit_environment("pump")["STACK_NAME"]
    aws_speech = importlib.import_module("services.core.speech.aws")
    name = aws_speech.job_name(ROOT_SCOPE.evaluate(stack_name), "aBc/dE+f==", 1)
    assert name.startswith(prefix), name
    assert fnmatchcase(
        f"arn:aws:transcribe:eu-west-1:111122223333:transcription-job/{name}", job_arn
    )
    assert re.fullmatch(r"[0-9a-zA-Z._-]{1,200}", name), f"not a Transcribe job name: {name}"


def _documents() -> dict[str, dict[str, Any]]:
    return {name: body for (kind, name), body in resources(TERRAFORM, "data").items()}


def _document_name(reference: str) -> str:
    match = re.fullmatch(r"\$\{data\.aws_iam_policy_document\.(\w+)\.json\}", reference)
    assert match, reference
    return match[1]


def _statements(names: list[str]) -> list[dict[str, Any]]:
    documents = _documents()
    found = []
    for name in names:
        found += documents[name].get("statement", [])
        assert "dynamic" not in documents[name], f"{name}: a role's statements are written out"
    return found


def aws_speech_capabilities() -> dict[str, dict[str, str]]:
    """Module call -> capability -> document name, of what only speech_provider "aws" attaches."""
    return {
        unit: {capability: _document_name(ref) for capability, ref in capabilities.items()}
        for unit, capabilities in locals_of(TERRAFORM)["aws_speech_policy_documents"].items()
    }


def test_aws_speech_permissions_are_attached_only_with_the_aws_provider() -> None:
    """With "symbl" every role is what it was: the AWS provider's documents reach a role only
    through extra_policy_documents, guarded by local.aws_speech, and the module attaches them."""
    assert locals_of(TERRAFORM)["aws_speech"] == '${var.speech_provider == "aws"}'
    capabilities = aws_speech_capabilities()
    assert set(capabilities) == AWS_SPEECH_UNITS
    functions = modules_with_source(LAMBDA_MODULE_SOURCE)
    guarded = {
        name: call["extra_policy_documents"]
        for name, call in functions.items()
        if "extra_policy_documents" in call
    }
    assert guarded == {
        unit: f"${{local.aws_speech ? local.aws_speech_policy_documents.{unit} : {{}}}}"
        for unit in AWS_SPEECH_UNITS
    }
    policies = resources(MODULES / "lambda_service")[("aws_iam_role_policy", "capabilities")]
    assert "var.extra_policy_documents" in policies["for_each"]

    # Nothing attached with either provider reaches Transcribe (but job-events' status check),
    # Bedrock, the transcripts or their key.
    for name, call in functions.items():
        always = [_document_name(ref) for ref in call["policy_documents"].values()]
        for statement in _statements(always):
            text = str(statement)
            if name == "job_events" and statement["actions"] == ["transcribe:GetTranscriptionJob"]:
                assert statement["resources"] == ["${local.transcribe_job_arn}"]
                continue
            assert "transcribe:" not in text and "bedrock:" not in text, (name, statement)
            assert "transcripts" not in text and "aws_kms_key.speech" not in text, (name, text)
    for unit, documents in capabilities.items():
        always = {_document_name(ref) for ref in functions[unit]["policy_documents"].values()}
        assert not always & set(documents.values()), unit


def _allowed(unit: str) -> set[tuple[str, str]]:
    return {
        (action, resource)
        for statement in _statements(list(aws_speech_capabilities()[unit].values()))
        for action in statement["actions"]
        for resource in (
            [statement["resources"]]
            if isinstance(statement["resources"], str)
            else statement["resources"]
        )
    }


def test_aws_speech_permissions_are_exactly_what_each_role_does() -> None:
    job = "${local.transcribe_job_arn}"
    transcripts = "${local.media_object_arn.transcripts}"
    key = "${aws_kms_key.speech.arn}"
    assert ROOT_SCOPE.lookup("local.media_prefixes")["transcripts"] == "transcripts/"
    assert _allowed("pump") == {
        ("transcribe:StartTranscriptionJob", job),
        ("transcribe:GetTranscriptionJob", job),
        ("s3:PutObject", transcripts),  # Transcribe writes with the caller's rights
        ("kms:Encrypt", key),
        ("kms:GenerateDataKey", key),
        ("kms:DescribeKey", key),
    }
    assert _allowed("reconciler") == {("transcribe:GetTranscriptionJob", job)}
    assert _allowed("notifier") == {
        ("s3:GetObject", transcripts),
        ("kms:Decrypt", key),
        ("transcribe:DeleteTranscriptionJob", job),
        ("bedrock:InvokeModel", "${local.bedrock_model_arns}"),
    }
    # The notifier decrypts only through S3 (reading a transcript), never directly.
    (decrypt,) = [
        s
        for s in _statements(list(aws_speech_capabilities()["notifier"].values()))
        if s["actions"] == ["kms:Decrypt"]
    ]
    assert decrypt["condition"] == [
        {
            "test": "StringEquals",
            "variable": "kms:ViaService",
            "values": ["s3.${local.region}.${local.dns_suffix}"],
        }
    ]


def test_transcript_key_lets_the_pump_encrypt_and_the_notifier_decrypt_only_with_aws() -> None:
    declared = resources(TERRAFORM)
    key = declared[("aws_kms_key", "speech")]
    assert key["enable_key_rotation"] is True
    assert key["policy"] == "${data.aws_iam_policy_document.speech_key.json}"
    document = _documents()["speech_key"]
    grants = {}
    for block in document["dynamic"]:
        (dynamic,) = block["statement"]["content"]
        assert re.fullmatch(
            r'\$\{local\.aws_speech \? \["\w+"\] : \[\]\}', block["statement"]["for_each"]
        )
        (principal,) = dynamic["principals"]
        grants[principal["identifiers"][0]] = sorted(dynamic["actions"])
    assert grants == {
        "${module.pump.role_arn}": ["kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"],
        "${module.notifier.role_arn}": ["kms:Decrypt"],
    }
    # Always there: the account administers it (through IAM), as the stack's other key.
    (always,) = document["statement"]
    assert always["actions"] == ["kms:*"]


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        (
            "amazon.nova-lite-v1:0",
            ["arn:aws:bedrock:eu-west-1::foundation-model/amazon.nova-lite-v1:0"],
        ),
        (
            "anthropic.claude-haiku-4-5-20251001-v1:0",
            [
                "arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0"
            ],
        ),
        (
            "us.amazon.nova-lite-v1:0",
            [
                "arn:aws:bedrock:eu-west-1:111122223333:inference-profile/us.amazon.nova-lite-v1:0",
                "arn:aws:bedrock:*::foundation-model/amazon.nova-lite-v1:0",
            ],
        ),
        (
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            [
                "arn:aws:bedrock:eu-west-1:111122223333:inference-profile/"
                "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
                "arn:aws:bedrock:*::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0",
            ],
        ),
        (
            "eu.amazon.nova-pro-v1:0",
            [
                "arn:aws:bedrock:eu-west-1:111122223333:inference-profile/eu.amazon.nova-pro-v1:0",
                "arn:aws:bedrock:*::foundation-model/amazon.nova-pro-v1:0",
            ],
        ),
        (
            "apac.amazon.nova-micro-v1:0",
            [
                "arn:aws:bedrock:eu-west-1:111122223333:inference-profile/apac.amazon.nova-micro-v1:0",
                "arn:aws:bedrock:*::foundation-model/amazon.nova-micro-v1:0",
            ],
        ),
        # A provider name that merely starts like a geography is no profile, nor is an id that
        # holds one further in.
        ("usx.model-v1:0", ["arn:aws:bedrock:eu-west-1::foundation-model/usx.model-v1:0"]),
        (
            "acme.campus.model-v1:0",
            ["arn:aws:bedrock:eu-west-1::foundation-model/acme.campus.model-v1:0"],
        ),
    ],
)
def test_bedrock_grant_is_exactly_the_configured_model(model_id: str, expected: list[str]) -> None:
    """The notifier may invoke the model it is configured with, nothing else: a plain id is the
    foundation model in the Region; a geographic prefix names an inference profile, which needs
    the profile and the foundation model in every Region it routes to. The locals are evaluated
    as Terraform would (the prefix regex is applied as written; its functions are checked)."""
    written = locals_of(TERRAFORM)
    regex = re.fullmatch(
        r'\$\{try\(regex\("(.+)", var\.bedrock_model_id\), ""\)\}',
        written["bedrock_profile_prefix"],
    )
    assert regex, written["bedrock_profile_prefix"]
    assert written["bedrock_foundation_model_id"] == (
        "${trimprefix(var.bedrock_model_id, local.bedrock_profile_prefix)}"
    )
    assert written["bedrock_model_kind"] == (
        '${local.bedrock_profile_prefix == "" ? "foundation_model" : "inference_profile"}'
    )
    assert written["bedrock_model_arns"] == (
        "${local.bedrock_model_arns_by_kind[local.bedrock_model_kind]}"
    )
    pattern = regex[1].replace("\\\\", "\\")  # an HCL string literal: "\\." is the regex \.
    found = re.search(pattern, model_id)  # Terraform's regex finds anywhere unless anchored
    prefix = found[0] if found else ""
    kind = "foundation_model" if prefix == "" else "inference_profile"
    scope = Scope(
        TERRAFORM,
        {"name_prefix": PREFIX, "bedrock_model_id": model_id},
        {**ACCOUNT, "bedrock_foundation_model_id": model_id.removeprefix(prefix)},
    )
    arns = scope.evaluate(scope.lookup("local.bedrock_model_arns_by_kind"))[kind]
    assert arns == expected

    (statement,) = _documents()["notifier_invoke_insights_model"]["statement"]
    assert statement["actions"] == ["bedrock:InvokeModel"]
    assert statement["resources"] == "${local.bedrock_model_arns}"


def test_transcripts_expire_with_the_merged_audio() -> None:
    lifecycle = resources(TERRAFORM)[("aws_s3_bucket_lifecycle_configuration", "media")]
    rules = {rule["id"]: rule for rule in lifecycle["rule"]}
    transcripts = rules["expire-transcripts"]
    assert transcripts["status"] == "Enabled"
    assert transcripts["filter"] == [{"prefix": "${local.media_prefixes.transcripts}"}]
    assert transcripts["expiration"] == rules["expire-merged-audio"]["expiration"]


def test_transcripts_go_where_the_terraform_expects_them() -> None:
    """Lifecycle, the pump's write grant and the notifier's read grant follow the prefix the
    code gives Transcribe (OutputKey)."""
    aws_speech = importlib.import_module("services.core.speech.aws")
    assert ROOT_SCOPE.lookup("local.media_prefixes")["transcripts"] == aws_speech.TRANSCRIPTS_PREFIX


def test_the_aws_provider_refuses_a_multichannel_layout_at_plan_time() -> None:
    """Transcribe takes at most 2 channels and the AWS adapter refuses a multichannel job (the
    meeting would end FAILED): the Terraform stops the combination before it is deployed."""
    rule = resources(TERRAFORM)[("aws_cloudwatch_event_rule", "transcribe_job_events")]
    conditions = [
        str(condition.get("condition", ""))
        for lifecycle in rule.get("lifecycle", [])
        for condition in lifecycle.get("precondition", [])
    ]
    assert any(
        'var.speech_provider != "aws"' in c and 'var.audio_layout == "compact"' in c
        for c in conditions
    ), conditions
