# A work queue with its dead-letter queue and the alarm that says the DLQ is not empty.

resource "aws_sqs_queue" "dlq" {
  name                      = "${var.name}-dlq"
  message_retention_seconds = var.dlq_message_retention_seconds
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "this" {
  name                       = var.name
  visibility_timeout_seconds = var.visibility_timeout_seconds
  message_retention_seconds  = var.message_retention_seconds
  receive_wait_time_seconds  = var.receive_wait_time_seconds
  sqs_managed_sse_enabled    = true

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = var.max_receive_count
  })

  lifecycle {
    precondition {
      # A message must stay hidden while its consumer may still be working on it, retries included.
      condition     = var.visibility_timeout_seconds >= 6 * var.consumer_timeout_seconds
      error_message = "visibility_timeout_seconds of ${var.name} must be at least 6 x the consumer timeout (${var.consumer_timeout_seconds} s)."
    }
  }
}

# Only this queue may dead-letter into its DLQ.
resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  queue_url = aws_sqs_queue.dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.this.arn]
  })
}

# The queue policy of the queue and of its DLQ.
#
# TLS only: every request over plain HTTP is refused, whoever signs it (the merge queue's messages
# carry Zoom's download_token). AWS's advice for SQS: "Enforce encryption of data in transit" with
# aws:SecureTransport in the queue policy
# (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-security-best-practices.html).
#
# EventBridge rules (var.eventbridge_rule_arns) may send, each only as itself: aws:SourceArn is the
# rule's ARN (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html),
# to the queue and to the DLQ, which a rule's target may name as its dead-letter queue. The queues
# use SSE-SQS, which EventBridge can write without a key grant (a customer managed key would need
# kms:GenerateDataKey and kms:Decrypt for events.amazonaws.com in its key policy).
#
# A queue has one policy (its Policy attribute): this module owns it, so nothing else may set
# `policy` on these queues or attach another aws_sqs_queue_policy; a statement anything needs
# later goes into this document. The redrive allow policy above is a separate attribute.
data "aws_iam_policy_document" "queue_policy" {
  for_each = {
    queue = aws_sqs_queue.this.arn
    dlq   = aws_sqs_queue.dlq.arn
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [each.value]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  dynamic "statement" {
    for_each = length(var.eventbridge_rule_arns) > 0 ? ["EventBridgeRulesSend"] : []

    content {
      sid       = statement.value
      actions   = ["sqs:SendMessage"]
      resources = [each.value]

      principals {
        type        = "Service"
        identifiers = ["events.amazonaws.com"]
      }

      condition {
        test     = "ArnEquals"
        variable = "aws:SourceArn"
        values   = var.eventbridge_rule_arns
      }
    }
  }
}

# The resource keeps its first name, which Terraform state holds (renaming it would replace the
# policies and leave the queues without one for a moment).
resource "aws_sqs_queue_policy" "tls_only" {
  for_each = {
    queue = aws_sqs_queue.this.id
    dlq   = aws_sqs_queue.dlq.id
  }

  queue_url = each.value
  policy    = data.aws_iam_policy_document.queue_policy[each.key].json
}

resource "aws_cloudwatch_metric_alarm" "dlq_not_empty" {
  alarm_name          = "${var.name}-dlq-not-empty"
  alarm_description   = "Messages in ${aws_sqs_queue.dlq.name}: a meeting stopped at this stage. Read the message, fix the cause, redrive it to ${var.name}."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.dlq.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]
}
