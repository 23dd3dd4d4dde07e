# Zoom → Symbl meeting insights: the whole stack. This file holds the provider, the names and sizes
# every other file shares, and the operator alerts (KMS key, SNS topic). See README.md for the map.

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = merge(var.tags, {
      Project   = "zoom-symbl-insights"
      Stack     = var.name_prefix
      ManagedBy = "terraform"
    })
  }
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
  dns_suffix = data.aws_partition.current.dns_suffix

  # EMF namespace of every metric the services emit (services/core/observability.py).
  metrics_namespace = "ZoomSymblInsights"

  # POWERTOOLS_SERVICE_NAME of each function; EMF metrics carry it as their "service" dimension.
  # The Fargate merge task uses the merger's, so that its metrics add up with the Lambda's.
  service_names = {
    webhook    = "${var.name_prefix}-webhook"
    merger     = "${var.name_prefix}-merger"
    pump       = "${var.name_prefix}-pump"
    reconciler = "${var.name_prefix}-reconciler"
    notifier   = "${var.name_prefix}-notifier"
    job_events = "${var.name_prefix}-job-events"
  }

  # The pump's function name and ARN, known before the function exists: the pump's own
  # environment (PUMP_FUNCTION_NAME) and policy (it starts another pump) name it, and referring to
  # module.pump from the pump's own inputs would be a dependency cycle.
  pump_function_name = "${var.name_prefix}-pump"
  pump_function_arn  = "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${local.pump_function_name}"

  # Function timeouts in seconds: the webhook answers Zoom within milliseconds (Zoom gives up
  # after 3 s); the merger may run a whole inline merge (Lambda's maximum); the pump submits for
  # PUMP_MAX_SECONDS and is started again by nudges and the schedule; the reconciler asks the
  # provider about every job in flight; the notifier fetches insights, stores them and sends the
  # emails of one batch; job-events settles a batch of finished Transcribe jobs (a status check,
  # a few table writes and messages each).
  function_timeouts = {
    webhook    = 10
    merger     = 900
    pump       = 150
    reconciler = 120
    notifier   = 900 # one meeting per invocation: with Bedrock, an hour of meeting is several model calls
    job_events = 60
  }

  # Visibility timeouts: six times the consumer's timeout (AWS's advice for Lambda consumers; the
  # queue module refuses less). sandbox/aws_resources.py QUEUE_VISIBILITY_SECONDS holds the same
  # numbers, and tests/integration/test_terraform_contract.py holds the two together.
  queue_visibility_seconds = {
    merge      = 5400 # merger, 900 s
    submit     = 900  # pump, 150 s (the pump receives from this queue itself; no event source)
    notify     = 5400 # notifier, 900 s
    job_events = 360  # job-events, 60 s (queue <prefix>-job-events)
  }

  # The pump starts no submission after this many seconds. The last one started then (a token,
  # the submission, the status check after it: SymblSettings.symbl_worst_case_seconds(2), 90 s
  # with the default Symbl timeout and retry budget) must end inside the pump's timeout;
  # tests/integration/test_terraform_contract.py holds the two together.
  pump_max_seconds = 60

  # Receives before a message moves to its DLQ (sandbox/aws_resources.py MAX_RECEIVE_COUNT).
  max_receive_count = 5

  # Where the services write in the media bucket; lifecycle rules and IAM follow these prefixes.
  # transcripts/: Amazon Transcribe's output (speech_provider "aws"), written with the pump's rights.
  media_prefixes = {
    raw         = "raw/"
    merged      = "merged/"
    insights    = "insights/"
    transcripts = "transcripts/"
  }
}

# The stack's customer managed key, for what AWS services store for us: log groups, the alerts
# topic and the DynamoDB tables (their items hold host emails). (CloudWatch alarms cannot publish
# to a topic encrypted with the AWS-managed SNS key.) The resource keeps its first name, which
# Terraform state holds; renaming it would replace the key.
resource "aws_kms_key" "observability" {
  description             = "${var.name_prefix}: CloudWatch log groups, the operator alerts topic, the DynamoDB tables"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.observability_key.json
}

resource "aws_kms_alias" "observability" {
  name          = "alias/${var.name_prefix}-observability"
  target_key_id = aws_kms_key.observability.key_id
}

data "aws_iam_policy_document" "observability_key" {
  #checkov:skip=CKV_AWS_109: a key policy's "*" resource is this key; account administration is delegated to IAM as AWS recommends
  #checkov:skip=CKV_AWS_111: a key policy's "*" resource is this key; account administration is delegated to IAM as AWS recommends
  #checkov:skip=CKV_AWS_356: a key policy's "*" resource is this key, nothing else
  statement {
    sid       = "AccountAdministersKeyThroughIam"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudWatchLogsEncryptsOurLogGroups"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.${local.dns_suffix}"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values = [
        "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/lambda/${var.name_prefix}-*",
        "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/apigateway/${var.name_prefix}-*",
        "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/ecs/${var.name_prefix}-*",
      ]
    }
  }

  # DynamoDB (tables encrypted with this key, storage.tf). Who may use the key through DynamoDB is
  # decided by IAM (the first statement delegates to it): each service role gets kms:Decrypt with
  # kms:ViaService = dynamodb.<region> (iam.tf), and the deployer's own IAM permissions cover
  # what creating a table asks of the key (DescribeKey, CreateGrant, GenerateDataKey). DynamoDB
  # itself reads the key's metadata directly (read-only), as the policy of AWS's own DynamoDB key
  # allows it to:
  # https://docs.aws.amazon.com/kms/latest/developerguide/services-dynamodb.html (key policy,
  # grants) and https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/encryption.usagenotes.html.
  statement {
    sid       = "DynamoDbReadsKeyMetadata"
    actions   = ["kms:Describe*", "kms:Get*", "kms:List*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["dynamodb.amazonaws.com"]
    }
  }

  statement {
    sid       = "CloudWatchAlarmsPublishToEncryptedTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_sns_topic" "alerts" {
  name              = "${var.name_prefix}-alerts"
  display_name      = "Zoom-Symbl insights alerts (${var.name_prefix})"
  kms_master_key_id = aws_kms_key.observability.arn
}

data "aws_iam_policy_document" "alerts_topic" {
  statement {
    sid       = "CloudWatchAlarmsPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "AccountManagesTopic"
    actions   = ["sns:GetTopicAttributes", "sns:SetTopicAttributes", "sns:Subscribe", "sns:ListSubscriptionsByTopic", "sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
}

resource "aws_sns_topic_policy" "alerts" {
  arn    = aws_sns_topic.alerts.arn
  policy = data.aws_iam_policy_document.alerts_topic.json
}

resource "aws_sns_topic_subscription" "alerts_email" {
  count = var.alert_email == "" ? 0 : 1

  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = var.alert_email
}
