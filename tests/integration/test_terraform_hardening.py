"""Hardening and apply order in the Terraform, read from the HCL (no provider, no AWS).

- Every SQS queue and DLQ refuses requests that do not use TLS, in its one queue policy; only the
  Transcribe job-events rule may send to the job-events queue (and its DLQ) from outside IAM.
- Every DynamoDB table is encrypted with the stack's customer managed key, and every role that
  touches a table may decrypt with that key through DynamoDB only. Each key rotates and is
  administered through IAM.
- No secret is declared that no service reads, and none is read that is not declared.
- Every Lambda function is ordered after the ECR repository policy that lets Lambda pull its image.
- The region and the secrets' recovery window are validated variables that the provider and every
  secret use; the deploy steps read the region back and never re-push an immutable tag.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.integration.test_terraform_contract import (
    LAMBDA_MODULE_SOURCE,
    MODULES,
    ROOT,
    TASK_MODULE_SOURCE,
    TERRAFORM,
    labelled,
    locals_of,
    module_dirs,
    modules_with_source,
    parse_dir,
    reference_of,
    resources,
)

QUEUE_MODULE = MODULES / "queue"
DEPLOY_README = TERRAFORM / "README.md"
STACK_KEY = "${aws_kms_key.observability.arn}"
DYNAMODB_VIA = "dynamodb.${local.region}.${local.dns_suffix}"


def _each(body: dict[str, Any], key: str, value: Any) -> Any:
    """A for_each body's attribute for one instance: ${each.key} and ${each.value} filled in."""
    if isinstance(value, dict):
        return {k: _each(body, key, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_each(body, key, v) for v in value]
    if not isinstance(value, str):
        return value
    if value == "${each.value}":
        return body["for_each"][key]
    return value.replace("[each.key]", f'["{key}"]')


def instances(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A resource (or data source) per instance key; one instance "" without for_each."""
    if "for_each" not in body:
        return {"": body}
    assert isinstance(body["for_each"], dict), "for_each over a literal map, readable here"
    return {
        key: {k: _each(body, key, v) for k, v in body.items() if k != "for_each"}
        for key in body["for_each"]
    }


# ---------------------------------------------------------------------------------------------
# Queues: TLS only
# ---------------------------------------------------------------------------------------------


def _denies_plain_http_on(statement: dict[str, Any], queue_arn: str) -> bool:
    principals = statement.get("principals", [])
    conditions = statement.get("condition", [])
    return (
        statement.get("effect") == "Deny"
        and statement.get("actions") == ["sqs:*"]
        and statement.get("resources") == [queue_arn]
        and principals == [{"type": "*", "identifiers": ["*"]}]
        and {"test": "Bool", "variable": "aws:SecureTransport", "values": ["false"]} in conditions
    )


def test_every_queue_is_made_by_the_queue_module() -> None:
    for path in module_dirs():
        queues = {name for rtype, name in resources(path) if rtype == "aws_sqs_queue"}
        if path == QUEUE_MODULE:
            assert queues == {"this", "dlq"}
        else:
            assert not queues, f"{path.relative_to(ROOT)} declares queues outside the module"


@pytest.mark.parametrize("queue", ["this", "dlq"])
def test_every_queue_has_one_policy_that_denies_requests_without_tls(queue: str) -> None:
    declared = resources(QUEUE_MODULE)
    documents = resources(QUEUE_MODULE, "data")
    assert "policy" not in declared[("aws_sqs_queue", queue)], "the queue policy is set twice"

    policies = [
        instance
        for (rtype, _), body in declared.items()
        if rtype == "aws_sqs_queue_policy"
        for instance in instances(body).values()
        if instance["queue_url"]
        in (f"${{aws_sqs_queue.{queue}.id}}", f"${{aws_sqs_queue.{queue}.url}}")
    ]
    assert len(policies) == 1, f"aws_sqs_queue.{queue}: {len(policies)} queue policies (one only)"
    match = re.fullmatch(
        r"\$\{data\.aws_iam_policy_document\.(\w+)(?:\[\"(\w+)\"\])?\.json\}", policies[0]["policy"]
    )
    assert match, policies[0]["policy"]
    document = instances(documents[("aws_iam_policy_document", match[1])])[match[2] or ""]
    assert any(
        _denies_plain_http_on(statement, f"${{aws_sqs_queue.{queue}.arn}}")
        for statement in document["statement"]
    ), f"aws_sqs_queue.{queue}: no statement denies sqs:* without aws:SecureTransport"


def test_only_the_transcribe_rule_may_send_to_the_job_events_queue_and_its_dlq() -> None:
    """EventBridge sends as events.amazonaws.com; the queue policy lets it send only on behalf of
    our rule (aws:SourceArn), to the queue and to the DLQ the rule's target dead-letters into."""
    calls = labelled(TERRAFORM, "module")
    senders = {
        name: call["eventbridge_rule_arns"]
        for name, call in calls.items()
        if "eventbridge_rule_arns" in call
    }
    assert senders == {
        "job_events_queue": ["${aws_cloudwatch_event_rule.transcribe_job_events.arn}"]
    }

    document = resources(QUEUE_MODULE, "data")[("aws_iam_policy_document", "queue_policy")]
    assert set(document["for_each"]) == {"queue", "dlq"}  # both carry the statement
    (dynamic,) = document["dynamic"]
    assert dynamic["statement"]["for_each"] == (
        '${length(var.eventbridge_rule_arns) > 0 ? ["EventBridgeRulesSend"] : []}'
    )
    (statement,) = dynamic["statement"]["content"]
    assert statement.get("effect", "Allow") == "Allow"
    assert statement["actions"] == ["sqs:SendMessage"]
    assert statement["resources"] == ["${each.value}"]
    assert statement["principals"] == [{"type": "Service", "identifiers": ["events.amazonaws.com"]}]
    assert statement["condition"] == [
        {"test": "ArnEquals", "variable": "aws:SourceArn", "values": "${var.eventbridge_rule_arns}"}
    ]
    # SSE-SQS, which EventBridge writes without a key grant (a customer key would need one).
    for queue in ("this", "dlq"):
        declared = resources(QUEUE_MODULE)[("aws_sqs_queue", queue)]
        assert declared["sqs_managed_sse_enabled"] is True and "kms_master_key_id" not in declared


def test_the_transcribe_rule_delivers_to_the_job_events_queue_or_its_dlq() -> None:
    target = resources(TERRAFORM)[("aws_cloudwatch_event_target", "transcribe_job_events")]
    assert target["rule"] == "${aws_cloudwatch_event_rule.transcribe_job_events.name}"
    assert target["arn"] == "${module.job_events_queue.arn}"
    assert "role_arn" not in target  # SQS targets use the queue policy
    assert target["dead_letter_config"] == [{"arn": "${module.job_events_queue.dlq_arn}"}]
    (retry,) = target["retry_policy"]
    assert retry["maximum_event_age_in_seconds"] >= 3600 and retry["maximum_retry_attempts"] > 0
    assert "${module.job_events_queue}" in target["depends_on"]
    # The function consumes that queue.
    consumer = modules_with_source(LAMBDA_MODULE_SOURCE)["job_events"]
    assert consumer["sqs_event_source"]["queue_arn"] == "${module.job_events_queue.arn}"


def test_no_other_queue_policy_anywhere() -> None:
    """A queue has one policy: a second aws_sqs_queue_policy elsewhere would replace this one."""
    for path in module_dirs():
        if path == QUEUE_MODULE:
            continue
        kinds = {rtype for rtype, _ in resources(path)}
        assert "aws_sqs_queue_policy" not in kinds, path.relative_to(ROOT)


# ---------------------------------------------------------------------------------------------
# DynamoDB: the stack's key
# ---------------------------------------------------------------------------------------------


def _key_statements(key: str) -> list[dict[str, Any]]:
    policy = reference_of(resources(TERRAFORM)[("aws_kms_key", key)]["policy"])
    name = re.fullmatch(r"data\.aws_iam_policy_document\.(\w+)\.json", policy)
    assert name, policy
    statements: list[dict[str, Any]] = resources(TERRAFORM, "data")[
        ("aws_iam_policy_document", name[1])
    ]["statement"]
    return statements


def test_the_stack_s_customer_managed_keys_rotate_and_delegate_to_iam() -> None:
    """The stack's key (logs, alerts, tables) and the transcript key (speech.tf)."""
    keys = sorted(name for rtype, name in resources(TERRAFORM) if rtype == "aws_kms_key")
    assert keys == ["observability", "speech"]
    for key in keys:
        assert resources(TERRAFORM)[("aws_kms_key", key)]["enable_key_rotation"] is True, key
        # The account's IAM policies decide who uses the key (the roles' grants in iam.tf count).
        assert any(
            s["actions"] == ["kms:*"]
            and s["principals"][0]["identifiers"]
            == ["arn:${local.partition}:iam::${local.account_id}:root"]
            for s in _key_statements(key)
        ), key
    assert any(
        s["principals"][0] == {"type": "Service", "identifiers": ["dynamodb.amazonaws.com"]}
        for s in _key_statements("observability")
    ), "the key policy lets DynamoDB read the key's metadata"


@pytest.mark.parametrize("table", ["recordings", "slots"])
def test_every_table_is_encrypted_with_the_stack_s_key(table: str) -> None:
    tables = {name for rtype, name in resources(TERRAFORM) if rtype == "aws_dynamodb_table"}
    assert tables == {"recordings", "slots"}
    (encryption,) = resources(TERRAFORM)[("aws_dynamodb_table", table)]["server_side_encryption"]
    assert encryption == {"enabled": True, "kms_key_arn": STACK_KEY}


def _role_documents() -> dict[str, list[str]]:
    """Every function's and the task's policy document names (root data sources), those only the
    AWS speech provider attaches (extra_policy_documents) included."""
    roles: dict[str, list[str]] = {}
    calls = {**modules_with_source(LAMBDA_MODULE_SOURCE), **modules_with_source(TASK_MODULE_SOURCE)}
    aws_speech = locals_of(TERRAFORM)["aws_speech_policy_documents"]
    for name, call in calls.items():
        documents = call.get("policy_documents") or call.get("task_policy_documents")
        if "extra_policy_documents" in call:
            documents = {**documents, **aws_speech[name]}
        roles[name] = []
        for reference in documents.values():
            match = re.fullmatch(r"\$\{data\.aws_iam_policy_document\.(\w+)\.json\}", reference)
            assert match, f"{name}: {reference}"
            roles[name].append(match[1])
    return roles


def test_every_role_that_touches_a_table_may_decrypt_through_dynamodb_only() -> None:
    documents = resources(TERRAFORM, "data")
    roles = _role_documents()
    assert set(roles) >= {
        *("webhook", "merger", "pump", "reconciler", "notifier", "job_events", "merger_task")
    }
    for role, names in roles.items():
        statements = [
            s for n in names for s in documents[("aws_iam_policy_document", n)]["statement"]
        ]
        touches_table = any(
            "aws_dynamodb_table." in str(s.get("resources", ""))
            or "recordings_table_resources" in str(s.get("resources", ""))
            for s in statements
        )
        decrypts = [
            s
            for s in statements
            if STACK_KEY in s.get("resources", []) and "kms:Decrypt" in s["actions"]
        ]
        through_dynamodb = [
            s
            for s in decrypts
            if {"test": "StringEquals", "variable": "kms:ViaService", "values": [DYNAMODB_VIA]}
            in s.get("condition", [])
        ]
        if touches_table:
            assert through_dynamodb, f"{role} reads or writes a table but cannot use its key"
        for statement in through_dynamodb:
            assert statement["actions"] == ["kms:Decrypt"], f"{role}: {statement['actions']}"


# ---------------------------------------------------------------------------------------------
# Secrets: declared exactly when read
# ---------------------------------------------------------------------------------------------


def _secret_arn_variables() -> dict[str, set[str]]:
    """Secret key -> the environment variables (*_SECRET_ARN) that carry its ARN."""
    found: dict[str, set[str]] = {}
    environments = {k: v for k, v in locals_of(TERRAFORM).items() if k.endswith("_environment")}
    assert len(environments) >= 6
    for environment in environments.values():
        for variable, value in environment.items():
            if not variable.endswith("_SECRET_ARN"):
                assert "aws_secretsmanager_secret" not in str(value), variable
                continue
            match = re.fullmatch(
                r"\$\{aws_secretsmanager_secret\.this\[\"([\w-]+)\"\]\.arn\}", value
            )
            assert match, f"{variable} = {value}"
            found.setdefault(match[1], set()).add(variable)
    return found


def test_every_declared_secret_is_read_and_every_read_secret_is_declared() -> None:
    declared = set(locals_of(TERRAFORM)["secrets"])
    read = set(_secret_arn_variables())
    assert declared - read == set(), f"declared, read by no service: {sorted(declared - read)}"
    assert read - declared == set(), f"read, never declared: {sorted(read - declared)}"


# ---------------------------------------------------------------------------------------------
# Apply order: functions after the repository policy
# ---------------------------------------------------------------------------------------------


def test_every_function_is_ordered_after_its_repository_policy() -> None:
    """Lambda adds its own statement to the repository policy when it creates a function before
    Terraform wrote it (or fails without ecr:SetRepositoryPolicy); the next apply overwrites it
    and shows drift. Each function's image must reach it through the policy resource, or the
    module call must depend on it."""
    policy = resources(TERRAFORM)[("aws_ecr_repository_policy", "lambda_images")]
    image_names = set(re.findall(r'"([\w-]+)"', locals_of(TERRAFORM)["image_names"]))
    excluded = set(re.findall(r'"([\w-]+)"', policy["for_each"].split(",", 1)[1]))
    with_policy = image_names - excluded
    assert "local.image_names" in policy["for_each"] and excluded == {"merger-task"}

    ordered_uris = str(locals_of(TERRAFORM).get("function_image_uris", ""))
    for name, call in modules_with_source(LAMBDA_MODULE_SOURCE).items():
        match = re.fullmatch(r'\$\{local\.(\w+)\["([\w-]+)"\]\}', call["image_uri"])
        assert match, f"{name}: image_uri {call['image_uri']}"
        assert match[2] in with_policy, f"{name}: image {match[2]} has no repository policy"
        through_policy = (
            match[1] == "function_image_uris"
            and "aws_ecr_repository_policy.lambda_images" in ordered_uris
        )
        depends = "aws_ecr_repository_policy.lambda_images" in str(call.get("depends_on", ""))
        assert through_policy or depends, (
            f"module.{name} may be created before the repository policy that lets Lambda pull "
            f"its image ({call['image_uri']})"
        )


# ---------------------------------------------------------------------------------------------
# Variables: region and recovery window
# ---------------------------------------------------------------------------------------------


def _validation(variable: str) -> str:
    body = labelled(TERRAFORM, "variable")[variable]
    assert body.get("type") and str(body.get("description", "")).strip(), variable
    (validation,) = body["validation"]
    condition = str(validation["condition"])
    assert condition.startswith("${") and condition.endswith("}"), condition
    return condition[2:-1]


def _hcl_condition(condition: str, variable: str, value: Any) -> bool:
    """Evaluates a validation condition made of comparisons, && and || (as Python)."""
    expression = condition.replace(f"var.{variable}", repr(value))
    expression = expression.replace("&&", " and ").replace("||", " or ")
    assert re.fullmatch(r"[-\d\s()<>=!orand]+", expression), expression
    return bool(eval(expression))  # noqa: S307 - digits, comparisons and boolean words only


@pytest.mark.parametrize(
    ("days", "valid"),
    [(0, True), (1, False), (6, False), (7, True), (30, True), (31, False), (-1, False)],
)
def test_recovery_window_accepts_what_secrets_manager_accepts(days: int, valid: bool) -> None:
    condition = _validation("secret_recovery_window_days")
    assert _hcl_condition(condition, "secret_recovery_window_days", days) is valid


def test_recovery_window_feeds_every_secret() -> None:
    secrets = [
        body for (t, _), body in resources(TERRAFORM).items() if t == "aws_secretsmanager_secret"
    ]
    assert secrets
    for secret in secrets:
        assert secret["recovery_window_in_days"] == "${var.secret_recovery_window_days}"


@pytest.mark.parametrize(
    ("region", "valid"),
    [
        ("eu-west-1", True),
        ("us-gov-west-1", True),
        ("ap-southeast-2", True),
        ("EU", False),
        ("eu-west", False),
        ("", False),
    ],
)
def test_region_is_a_validated_variable(region: str, valid: bool) -> None:
    condition = _validation("aws_region")
    pattern = re.fullmatch(r'can\(regex\("(.+)", var\.aws_region\)\)', condition)
    assert pattern, condition
    assert (re.search(pattern[1], region) is not None) is valid


def test_provider_and_outputs_use_the_region_variable() -> None:
    ((provider,),) = [list(block.values()) for block in parse_dir(TERRAFORM)["provider"]]
    assert provider["region"] == "${var.aws_region}"
    assert labelled(TERRAFORM, "output")["aws_region"]["value"] == "${var.aws_region}"
    for path in module_dirs():
        for tf in path.glob("*.tf"):
            text = "\n".join(
                line for line in tf.read_text().splitlines() if not line.lstrip().startswith("#")
            )
            assert not re.search(r'"[a-z]{2}-(?:gov-)?[a-z]+-\d"', text), f"{tf.name}: a region"


# ---------------------------------------------------------------------------------------------
# Deploy steps (terraform/README.md)
# ---------------------------------------------------------------------------------------------


def _deploy_steps() -> str:
    text = DEPLOY_README.read_text(encoding="utf-8")
    return text[text.index("## Deploy") : text.index("Checks without an AWS account")]


def test_deploy_steps_write_no_region() -> None:
    steps = _deploy_steps()
    assert not re.search(r"\b[a-z]{2}-(?:gov-)?[a-z]+-\d\b", steps), "a region is written out"
    assert "output -raw aws_region" in steps


def test_deploy_steps_never_push_a_tag_that_is_already_there() -> None:
    """Tags are immutable: a second push of the same tag fails. The steps check first."""
    repositories = resources(TERRAFORM)[("aws_ecr_repository", "images")]
    assert repositories["image_tag_mutability"] == "IMMUTABLE"
    steps = _deploy_steps()
    check = steps.index("aws ecr describe-images")
    assert check < steps.index("docker push"), "the push is not behind the existence check"
    assert "--image-ids imageTag=" in steps
    assert "git rev-parse" in steps and "-dirty-" in steps, "the tag does not name the build"


def test_deploy_steps_come_in_an_order_that_works() -> None:
    steps = _deploy_steps()
    order = [
        "apply -target=aws_ecr_repository.images",  # somewhere to push
        "docker push",  # images before the functions that run them
        "apply -var image_tag=",  # the functions
        "put-secret-value",  # values for the secrets apply created
        "zoom_webhook_url",  # Zoom validates with the webhook secret set
    ]
    positions = [steps.index(marker) for marker in order]
    assert positions == sorted(positions), dict(zip(order, positions, strict=True))
    assert "symbl-callback-secret" not in DEPLOY_README.read_text(encoding="utf-8")
