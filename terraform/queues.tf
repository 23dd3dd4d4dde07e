# The three stage queues and the Transcribe job-events queue, each with its DLQ and DLQ alarm
# (modules/queue). Names follow sandbox/aws_resources.py StackNames: <prefix>-<stage> and
# <prefix>-<stage>-dlq.

module "merge_queue" {
  source = "./modules/queue"

  name                       = "${var.name_prefix}-merge"
  visibility_timeout_seconds = local.queue_visibility_seconds.merge
  consumer_timeout_seconds   = local.function_timeouts.merger
  max_receive_count          = local.max_receive_count
  alarm_topic_arn            = aws_sns_topic.alerts.arn
}

module "submit_queue" {
  source = "./modules/queue"

  name                       = "${var.name_prefix}-submit"
  visibility_timeout_seconds = local.queue_visibility_seconds.submit
  consumer_timeout_seconds   = local.function_timeouts.pump
  max_receive_count          = local.max_receive_count
  alarm_topic_arn            = aws_sns_topic.alerts.arn
}

module "notify_queue" {
  source = "./modules/queue"

  name                       = "${var.name_prefix}-notify"
  visibility_timeout_seconds = local.queue_visibility_seconds.notify
  consumer_timeout_seconds   = local.function_timeouts.notifier
  max_receive_count          = local.max_receive_count
  alarm_topic_arn            = aws_sns_topic.alerts.arn
}

# Transcribe's "Transcribe Job State Change" events for our jobs (speech.tf), for the job-events
# function. The rule may send to the queue, and to its DLQ as the target's dead-letter queue: an
# event EventBridge could not deliver lands where a message the function could not handle lands,
# under the same alarm, and a redrive of that DLQ to this queue replays both.
module "job_events_queue" {
  source = "./modules/queue"

  name                       = "${var.name_prefix}-job-events"
  visibility_timeout_seconds = local.queue_visibility_seconds.job_events
  consumer_timeout_seconds   = local.function_timeouts.job_events
  max_receive_count          = local.max_receive_count
  alarm_topic_arn            = aws_sns_topic.alerts.arn
  eventbridge_rule_arns      = [aws_cloudwatch_event_rule.transcribe_job_events.arn]
}
