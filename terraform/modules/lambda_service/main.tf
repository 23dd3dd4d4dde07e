# One container-image Lambda function with everything that belongs to it alone: its execution role
# (one inline policy per capability), its log group, its SQS trigger and its async-invoke settings.

locals {
  consumes_queue = var.sqs_event_source != null
  # A capability named twice would silently keep one of the two documents.
  capability_names_clash = length(setintersection(keys(var.policy_documents), keys(var.extra_policy_documents))) > 0

  # Capabilities this module derives from its own inputs; the caller's documents come on top.
  own_policy_documents = merge(
    { "write-logs" = data.aws_iam_policy_document.write_logs.json },
    local.consumes_queue ? { "consume-queue" = data.aws_iam_policy_document.consume_queue[0].json } : {},
    var.tracing_mode == "Active" ? { "write-traces" = data.aws_iam_policy_document.write_traces[0].json } : {},
  )
}

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338: operational logs kept for var.log_retention_days (30 by default); the audit trail is CloudTrail's
  name              = "/aws/lambda/${var.function_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
}

data "aws_iam_policy_document" "assume" {
  statement {
    sid     = "LambdaAssumesRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = var.function_name
  description        = "Execution role of the ${var.function_name} Lambda function"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

data "aws_iam_policy_document" "write_logs" {
  statement {
    sid       = "WriteOwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }
}

data "aws_iam_policy_document" "consume_queue" {
  count = local.consumes_queue ? 1 : 0

  statement {
    sid = "ConsumeTriggerQueue"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
    ]
    resources = [var.sqs_event_source.queue_arn]
  }
}

data "aws_iam_policy_document" "write_traces" {
  count = var.tracing_mode == "Active" ? 1 : 0

  statement {
    sid = "WriteTraces"
    # X-Ray's write actions have no resource-level permissions.
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "capabilities" {
  for_each = merge(local.own_policy_documents, var.policy_documents, var.extra_policy_documents)

  name   = each.key
  role   = aws_iam_role.this.id
  policy = each.value

  lifecycle {
    precondition {
      condition     = !local.capability_names_clash
      error_message = "${var.function_name}: policy_documents and extra_policy_documents name the same capability."
    }
  }
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_117: no VPC on purpose: the functions reach Zoom, Symbl and AWS APIs only, nothing inside a VPC
  #checkov:skip=CKV_AWS_272: code signing applies to .zip packages only, not to container images
  #checkov:skip=CKV_AWS_116: queue-triggered work dead-letters in the queue's DLQ; async invocations are nudges the reconciler repeats every minute
  #checkov:skip=CKV_AWS_173: environment holds names, ARNs and URLs only (secret values live in Secrets Manager); encrypted with the Lambda service key
  function_name                  = var.function_name
  description                    = var.description
  role                           = aws_iam_role.this.arn
  package_type                   = "Image"
  image_uri                      = var.image_uri
  architectures                  = [var.architecture]
  timeout                        = var.timeout_seconds
  memory_size                    = var.memory_mb
  reserved_concurrent_executions = var.reserved_concurrency

  image_config {
    command = var.image_command
  }

  ephemeral_storage {
    size = var.ephemeral_storage_mb
  }

  environment {
    variables = var.environment
  }

  tracing_config {
    mode = var.tracing_mode
  }

  logging_config {
    log_format = "Text" # the code writes JSON lines itself (Powertools), including EMF metrics
    log_group  = aws_cloudwatch_log_group.this.name
  }

  # The role must be able to write logs (and read its queue) before the first invocation.
  depends_on = [aws_iam_role_policy.capabilities]
}

resource "aws_lambda_event_source_mapping" "sqs" {
  count = local.consumes_queue ? 1 : 0

  event_source_arn                   = var.sqs_event_source.queue_arn
  function_name                      = aws_lambda_function.this.arn
  batch_size                         = var.sqs_event_source.batch_size
  maximum_batching_window_in_seconds = var.sqs_event_source.maximum_batching_window_seconds
  # The handler reports the messages that failed; the others are deleted.
  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.sqs_event_source.maximum_concurrency
  }

  depends_on = [aws_iam_role_policy.capabilities]
}

resource "aws_lambda_function_event_invoke_config" "this" {
  function_name                = aws_lambda_function.this.function_name
  maximum_retry_attempts       = var.async_retry_attempts
  maximum_event_age_in_seconds = var.async_max_event_age_seconds
}
