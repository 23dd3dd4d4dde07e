"""The Terraform against the code: names, shapes and environments must agree.

Parses terraform/ with python-hcl2 (no provider, no AWS, no network) and compares it with what the
code and the sandbox declare: the recordings table schema, queue names and timeouts, each
service's settings class, the Lambda handlers. Without `terraform validate` (providers cannot be
downloaded here) it also checks what validate would: module arguments, references, descriptions.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

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

# Which function consumes each stage queue (merge and notify through an SQS trigger; the pump
# receives from the submit queue itself).
QUEUE_CONSUMERS = {"merge": "merger", "submit": "pump", "notify": "notifier"}
TRIGGERED_BY_QUEUE = {"merger": "merge_queue", "notifier": "notify_queue"}

EXPECTED_HANDLERS = {
    "webhook": "services.webhook.handler.lambda_handler",
    "merger": "services.merger.handler.lambda_handler",
    "pump": "services.submitter.handler.pump_handler",
    "reconciler": "services.submitter.handler.reconciler_handler",
    "notifier": "services.notifier.handler.lambda_handler",
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
    """Evaluates literals, var.* (defaults, or given values) and local.* of one module."""

    def __init__(self, path: Path, var_values: dict[str, Any] | None = None) -> None:
        self.path = path
        self.var_values = var_values or {}

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
    assert set(queue_modules_by_stage()) == set(STAGES)


@pytest.mark.parametrize("stage", STAGES)
def test_queue_and_dlq_names_follow_stack_names(stage: str) -> None:
    _, call = queue_modules_by_stage()[stage]
    queue_name = ROOT_SCOPE.evaluate(call["name"])
    assert queue_name == NAMES.queue(stage)

    module_scope = Scope(MODULES / "queue", {"name": queue_name})
    queue_resources = resources(MODULES / "queue")
    assert module_scope.evaluate(queue_resources[("aws_sqs_queue", "this")]["name"]) == queue_name
    dlq_name = module_scope.evaluate(queue_resources[("aws_sqs_queue", "dlq")]["name"])
    assert dlq_name == NAMES.dlq(stage)


@pytest.mark.parametrize("stage", STAGES)
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


@pytest.mark.parametrize("stage", STAGES)
def test_visibility_timeout_is_the_sandbox_s_and_six_times_the_consumer_s(stage: str) -> None:
    _, call = queue_modules_by_stage()[stage]
    visibility = ROOT_SCOPE.evaluate(call["visibility_timeout_seconds"])
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


def test_the_pump_s_last_submission_ends_inside_its_lambda_timeout() -> None:
    """A pump starts no submission after PUMP_MAX_SECONDS; the last one (token, submission,
    status check, each with the client's retry budget and timeouts) must still end before
    Lambda stops the function, or a job Symbl accepted could go unrecorded."""
    environment = unit_environment("pump")
    values = {
        key.lower(): ROOT_SCOPE.evaluate(value)
        for key, value in environment.items()
        if not isinstance(value, str) or "${" not in value or "local." in value
    }
    known = settings_module.SubmitterSettings.model_fields
    settings = settings_module.SubmitterSettings.model_validate(
        {
            **{
                name: "placeholder-value"
                for name, field in known.items()
                if field.is_required() and name not in values
            },
            **{k: v for k, v in values.items() if k in known and not str(v).startswith("${")},
        }
    )
    timeout = ROOT_SCOPE.evaluate(ROOT_SCOPE.lookup("local.function_timeouts"))["pump"]
    assert settings.pump_max_seconds == 60
    assert settings.pump_worst_case_seconds <= timeout, (
        f"PUMP_MAX_SECONDS {settings.pump_max_seconds} + worst-case submission "
        f"{settings.symbl_worst_case_seconds(2)} s > the pump's {timeout} s timeout"
    )
