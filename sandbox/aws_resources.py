"""The AWS resources of one deployment, created with the same names and shapes the Terraform
declares (a test holds the two together), on moto's server, LocalStack or a scratch account."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from services.core import aws
from services.core.recordings import JOB_INDEX, STATE_INDEX, TTL_ATTRIBUTE

# Receive count after which a message moves to its queue's DLQ.
MAX_RECEIVE_COUNT = 5

# Visibility timeouts are at least six times the consumer's function timeout (AWS's advice for
# Lambda event sources); the Terraform sets the same numbers from the function timeouts.
QUEUE_VISIBILITY_SECONDS = {"merge": 5400, "submit": 900, "notify": 5400, "job-events": 360}

RECORDINGS_TABLE_SCHEMA: dict[str, Any] = {
    "KeySchema": [{"AttributeName": "meeting_uuid", "KeyType": "HASH"}],
    "AttributeDefinitions": [
        {"AttributeName": "meeting_uuid", "AttributeType": "S"},
        {"AttributeName": "state", "AttributeType": "S"},
        {"AttributeName": "state_since", "AttributeType": "S"},
        {"AttributeName": "job_id", "AttributeType": "S"},
    ],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": STATE_INDEX,
            "KeySchema": [
                {"AttributeName": "state", "KeyType": "HASH"},
                {"AttributeName": "state_since", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        },
        {
            "IndexName": JOB_INDEX,
            "KeySchema": [{"AttributeName": "job_id", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        },
    ],
    "BillingMode": "PAY_PER_REQUEST",
}


SLOTS_TABLE_SCHEMA: dict[str, Any] = {
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
    "BillingMode": "PAY_PER_REQUEST",
}


@dataclass(frozen=True)
class StackNames:
    """Resource names of a deployment called `prefix` (the Terraform's `name_prefix`)."""

    prefix: str

    @property
    def recordings_table(self) -> str:
        return f"{self.prefix}-recordings"

    @property
    def slots_table(self) -> str:
        return f"{self.prefix}-slots"

    @property
    def media_bucket(self) -> str:
        return f"{self.prefix}-media"

    def queue(self, stage: str) -> str:
        return f"{self.prefix}-{stage}"

    def dlq(self, stage: str) -> str:
        return f"{self.prefix}-{stage}-dlq"

    def secret(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def function(self, service: str) -> str:
        return f"{self.prefix}-{service}"

    @property
    def ses_configuration_set(self) -> str:
        return f"{self.prefix}-insights"

    @property
    def operator_topic(self) -> str:
        return f"{self.prefix}-alerts"


# The stage queues, and the queue Transcribe's job events reach through the EventBridge rule.
STAGES = ("merge", "submit", "notify", "job-events")
# Secret values: the Zoom webhook token and the link-signing key are plain strings; Zoom's S2S
# credentials are {"account_id", "client_id", "client_secret"}; Symbl's {"app_id", "app_secret"}.
SECRET_NAMES = (
    "zoom-webhook-secret-token",
    "zoom-s2s-credentials",
    "symbl-credentials",
    "link-signing-key",
)


# The SES identity (a domain) the local stack's sender belongs to.
SES_IDENTITY = "insights.example.com"


@dataclass(frozen=True)
class ProvisionedStack:
    names: StackNames
    queue_urls: dict[str, str]
    dlq_urls: dict[str, str]
    secret_arns: dict[str, str]
    operator_topic_arn: str = ""

    def service_environment(self) -> dict[str, str]:
        """The environment variables the services read, as the Terraform sets them."""
        return {
            "RECORDINGS_TABLE": self.names.recordings_table,
            "SLOTS_TABLE": self.names.slots_table,
            "MEDIA_BUCKET": self.names.media_bucket,
            "MERGE_QUEUE_URL": self.queue_urls["merge"],
            "SUBMIT_QUEUE_URL": self.queue_urls["submit"],
            "NOTIFY_QUEUE_URL": self.queue_urls["notify"],
            "JOB_EVENTS_QUEUE_URL": self.queue_urls["job-events"],
            "STACK_NAME": self.names.prefix,
            "PUMP_FUNCTION_NAME": self.names.function("pump"),
            "ZOOM_WEBHOOK_SECRET_ARN": self.secret_arns["zoom-webhook-secret-token"],
            "ZOOM_S2S_SECRET_ARN": self.secret_arns["zoom-s2s-credentials"],
            "SYMBL_CREDENTIALS_SECRET_ARN": self.secret_arns["symbl-credentials"],
            "LINK_SIGNING_KEY_SECRET_ARN": self.secret_arns["link-signing-key"],
            "SES_CONFIGURATION_SET": self.names.ses_configuration_set,
            "OPERATOR_TOPIC_ARN": self.operator_topic_arn,
        }


def provision(names: StackNames, secret_values: dict[str, str]) -> ProvisionedStack:
    """Create (or find) every resource; idempotent so a kept stack can be reused."""
    dynamodb = aws.client("dynamodb")
    existing = {
        name
        for page in dynamodb.get_paginator("list_tables").paginate()
        for name in page["TableNames"]
    }
    if names.recordings_table not in existing:
        dynamodb.create_table(TableName=names.recordings_table, **RECORDINGS_TABLE_SCHEMA)
        dynamodb.get_waiter("table_exists").wait(TableName=names.recordings_table)
        dynamodb.update_time_to_live(
            TableName=names.recordings_table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )

    if names.slots_table not in existing:
        dynamodb.create_table(TableName=names.slots_table, **SLOTS_TABLE_SCHEMA)
        dynamodb.get_waiter("table_exists").wait(TableName=names.slots_table)

    s3 = aws.client("s3")
    buckets = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if names.media_bucket not in buckets:
        region = s3.meta.region_name
        kwargs: dict[str, Any] = {"Bucket": names.media_bucket}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**kwargs)

    sqs = aws.client("sqs")
    queue_urls: dict[str, str] = {}
    dlq_urls: dict[str, str] = {}
    for stage in STAGES:
        dlq_url = sqs.create_queue(
            QueueName=names.dlq(stage),
            Attributes={
                "MessageRetentionPeriod": str(14 * 24 * 3600),
                "SqsManagedSseEnabled": "true",
            },
        )["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        queue_urls[stage] = sqs.create_queue(
            QueueName=names.queue(stage),
            Attributes={
                "VisibilityTimeout": str(QUEUE_VISIBILITY_SECONDS[stage]),
                "MessageRetentionPeriod": str(4 * 24 * 3600),
                "SqsManagedSseEnabled": "true",
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
                ),
            },
        )["QueueUrl"]
        dlq_urls[stage] = dlq_url

    secrets = aws.client("secretsmanager")
    secret_arns: dict[str, str] = dict.fromkeys(SECRET_NAMES, "")
    for key in SECRET_NAMES:
        name = names.secret(key)
        value = secret_values.get(key, "")
        if not value:
            continue
        try:
            secret_arns[key] = secrets.create_secret(Name=name, SecretString=value)["ARN"]
        except secrets.exceptions.ResourceExistsException:
            secret_arns[key] = secrets.put_secret_value(SecretId=name, SecretString=value)["ARN"]
    sesv2 = aws.client("sesv2")
    identities = {i["IdentityName"] for i in sesv2.list_email_identities()["EmailIdentities"]}
    if SES_IDENTITY not in identities:
        sesv2.create_email_identity(EmailIdentity=SES_IDENTITY)
    try:
        sesv2.create_configuration_set(ConfigurationSetName=names.ses_configuration_set)
    except ClientError as e:
        # moto answers ConfigurationSetAlreadyExistsException, SES AlreadyExistsException.
        if "AlreadyExists" not in aws.error_code(e):
            raise
    topic = aws.client("sns").create_topic(Name=names.operator_topic)["TopicArn"]
    return ProvisionedStack(names, queue_urls, dlq_urls, secret_arns, topic)
