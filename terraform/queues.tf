# The three stage queues, each with its DLQ and DLQ alarm (modules/queue). Names follow
# sandbox/aws_resources.py StackNames: <prefix>-<stage> and <prefix>-<stage>-dlq.

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
