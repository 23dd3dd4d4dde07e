# The CloudWatch dashboard and the alarms beyond the DLQ alarms (modules/queue). All alarms notify
# the operator alerts topic (main.tf).

locals {
  # Which service emits which EMF metric: the "service" dimension Powertools adds to each.
  # Adjust when a metric moves between services.
  metric_service = {
    WebhookAccepted     = local.service_names.webhook
    WebhookRejected     = local.service_names.webhook
    WebhookDuplicate    = local.service_names.webhook
    WebhookIgnored      = local.service_names.webhook
    MergeSeconds        = local.service_names.merger
    MergeRealtimeFactor = local.service_names.merger
    SlotsInUse          = local.service_names.pump
    SymblSubmits        = local.service_names.pump
    Symbl429s           = local.service_names.pump
    SymblJobsFailed     = local.service_names.webhook # the Symbl callback; the reconciler too (below)
    EmailsSent          = local.service_names.notifier
    EndToEndSeconds     = local.service_names.notifier
    StuckMeetings       = local.service_names.reconciler
    ReconcilerRepairs   = local.service_names.reconciler
  }

  functions = {
    webhook    = module.webhook.function_name
    merger     = module.merger.function_name
    pump       = module.pump.function_name
    reconciler = module.reconciler.function_name
    notifier   = module.notifier.function_name
  }

  queues = {
    merge  = module.merge_queue
    submit = module.submit_queue
    notify = module.notify_queue
  }

  dashboard_name = "${var.name_prefix}-insights-pipeline"

  # ["namespace", "metric", dimension..., { options }] rows for the widgets below.
  app_metric = { for name, service in local.metric_service : name => [local.metrics_namespace, name, "service", service] }

  dashboard_widgets = [
    {
      type = "metric", x = 0, y = 0, width = 12, height = 6
      properties = {
        title = "Zoom webhooks", region = local.region, view = "timeSeries", stat = "Sum", period = 300
        metrics = [
          concat(local.app_metric.WebhookAccepted, [{ label = "accepted" }]),
          concat(local.app_metric.WebhookDuplicate, [{ label = "duplicate" }]),
          concat(local.app_metric.WebhookRejected, [{ label = "rejected" }]),
          concat(local.app_metric.WebhookIgnored, [{ label = "other events" }]),
          ["AWS/ApiGateway", "4xx", "ApiId", aws_apigatewayv2_api.http.id, "Stage", "$default", { label = "API 4xx" }],
          ["AWS/ApiGateway", "5xx", "ApiId", aws_apigatewayv2_api.http.id, "Stage", "$default", { label = "API 5xx" }],
        ]
      }
    },
    {
      type = "metric", x = 12, y = 0, width = 12, height = 6
      properties = {
        title = "End-to-end latency (webhook to email), seconds", region = local.region, view = "timeSeries", period = 900
        metrics = [
          concat(local.app_metric.EndToEndSeconds, [{ stat = "p50", label = "p50" }]),
          concat(local.app_metric.EndToEndSeconds, [{ stat = "p90", label = "p90" }]),
          concat(local.app_metric.EndToEndSeconds, [{ stat = "Maximum", label = "max" }]),
        ]
      }
    },
    {
      type = "metric", x = 0, y = 6, width = 8, height = 6
      properties = {
        title = "Merge duration, seconds", region = local.region, view = "timeSeries", period = 900
        metrics = [
          concat(local.app_metric.MergeSeconds, [{ stat = "p50", label = "p50" }]),
          concat(local.app_metric.MergeSeconds, [{ stat = "p90", label = "p90" }]),
          concat(local.app_metric.MergeSeconds, [{ stat = "Maximum", label = "max" }]),
        ]
      }
    },
    {
      type = "metric", x = 8, y = 6, width = 8, height = 6
      properties = {
        title = "Merge realtime factor (meeting seconds per merge second)", region = local.region, view = "timeSeries", period = 900
        metrics = [
          concat(local.app_metric.MergeRealtimeFactor, [{ stat = "Average", label = "average" }]),
          concat(local.app_metric.MergeRealtimeFactor, [{ stat = "Minimum", label = "slowest" }]),
        ]
      }
    },
    {
      type = "metric", x = 16, y = 6, width = 8, height = 6
      properties = {
        title = "Symbl slots in use", region = local.region, view = "timeSeries", period = 60
        metrics = [
          concat(local.app_metric.SlotsInUse, [{ stat = "Maximum", label = "in use" }]),
        ]
        annotations = { horizontal = [{ label = "limit", value = var.symbl_concurrency_limit }] }
        yAxis       = { left = { min = 0 } }
      }
    },
    {
      type = "metric", x = 0, y = 12, width = 8, height = 6
      properties = {
        title = "Symbl submits, 429s, failed jobs", region = local.region, view = "timeSeries", stat = "Sum", period = 300
        metrics = [
          concat(local.app_metric.SymblSubmits, [{ label = "submits" }]),
          concat(local.app_metric.Symbl429s, [{ label = "429s" }]),
          concat(local.app_metric.SymblJobsFailed, [{ label = "failed jobs (callback)" }]),
          [local.metrics_namespace, "SymblJobsFailed", "service", local.service_names.reconciler, { label = "failed jobs (reconciler)" }],
        ]
      }
    },
    {
      type = "metric", x = 8, y = 12, width = 8, height = 6
      properties = {
        title = "Emails", region = local.region, view = "timeSeries", stat = "Sum", period = 300
        metrics = [
          concat(local.app_metric.EmailsSent, [{ label = "sent (app)" }]),
          ["AWS/SES", "Delivery", "ses:configuration-set", aws_sesv2_configuration_set.this.configuration_set_name, { label = "delivered" }],
          ["AWS/SES", "Bounce", "ses:configuration-set", aws_sesv2_configuration_set.this.configuration_set_name, { label = "bounced" }],
          ["AWS/SES", "Complaint", "ses:configuration-set", aws_sesv2_configuration_set.this.configuration_set_name, { label = "complaints" }],
        ]
      }
    },
    {
      type = "metric", x = 16, y = 12, width = 8, height = 6
      properties = {
        title = "Reconciler: stuck meetings and repairs", region = local.region, view = "timeSeries", period = 300
        metrics = [
          concat(local.app_metric.StuckMeetings, [{ stat = "Maximum", label = "stuck meetings" }]),
          concat(local.app_metric.ReconcilerRepairs, [{ stat = "Sum", label = "repairs" }]),
        ]
      }
    },
    {
      type = "metric", x = 0, y = 18, width = 8, height = 6
      properties = {
        title   = "Queue depth (visible)", region = local.region, view = "timeSeries", stat = "Maximum", period = 60
        metrics = [for stage, queue in local.queues : ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queue.name, { label = stage }]]
      }
    },
    {
      type = "metric", x = 8, y = 18, width = 8, height = 6
      properties = {
        title   = "Oldest message age, seconds", region = local.region, view = "timeSeries", stat = "Maximum", period = 60
        metrics = [for stage, queue in local.queues : ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", queue.name, { label = stage }]]
      }
    },
    {
      type = "metric", x = 16, y = 18, width = 8, height = 6
      properties = {
        title   = "DLQ depth (must be 0)", region = local.region, view = "timeSeries", stat = "Maximum", period = 60
        metrics = [for stage, queue in local.queues : ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queue.dlq_name, { label = "${stage} DLQ" }]]
      }
    },
    {
      type = "metric", x = 0, y = 24, width = 8, height = 6
      properties = {
        title   = "Lambda errors", region = local.region, view = "timeSeries", stat = "Sum", period = 300
        metrics = [for key, name in local.functions : ["AWS/Lambda", "Errors", "FunctionName", name, { label = key }]]
      }
    },
    {
      type = "metric", x = 8, y = 24, width = 8, height = 6
      properties = {
        title   = "Lambda throttles", region = local.region, view = "timeSeries", stat = "Sum", period = 300
        metrics = [for key, name in local.functions : ["AWS/Lambda", "Throttles", "FunctionName", name, { label = key }]]
      }
    },
    {
      type = "metric", x = 16, y = 24, width = 8, height = 6
      properties = {
        title   = "Lambda duration p90, ms", region = local.region, view = "timeSeries", stat = "p90", period = 300
        metrics = [for key, name in local.functions : ["AWS/Lambda", "Duration", "FunctionName", name, { label = key }]]
      }
    },
    {
      type = "metric", x = 0, y = 30, width = 12, height = 6
      properties = {
        title = "Fargate merge tasks running", region = local.region, view = "timeSeries", stat = "Maximum", period = 60
        metrics = [
          ["ECS/ContainerInsights", "TaskCount", "ClusterName", aws_ecs_cluster.this.name, { label = "tasks" }],
        ]
      }
    },
    {
      type = "metric", x = 12, y = 30, width = 12, height = 6
      properties = {
        title = "Fargate merge task resources", region = local.region, view = "timeSeries", stat = "Maximum", period = 300
        metrics = [
          ["ECS/ContainerInsights", "CpuUtilized", "ClusterName", aws_ecs_cluster.this.name, "TaskDefinitionFamily", module.merger_task.family, { label = "CPU units" }],
          ["ECS/ContainerInsights", "MemoryUtilized", "ClusterName", aws_ecs_cluster.this.name, "TaskDefinitionFamily", module.merger_task.family, { label = "memory MiB" }],
          ["ECS/ContainerInsights", "EphemeralStorageUtilized", "ClusterName", aws_ecs_cluster.this.name, "TaskDefinitionFamily", module.merger_task.family, { label = "scratch GB", yAxis = "right" }],
        ]
      }
    },
  ]
}

resource "aws_cloudwatch_dashboard" "pipeline" {
  dashboard_name = local.dashboard_name
  dashboard_body = jsonencode({ widgets = local.dashboard_widgets })
}

resource "aws_cloudwatch_metric_alarm" "stuck_meetings" {
  alarm_name          = "${var.name_prefix}-stuck-meetings"
  alarm_description   = "The reconciler found meetings past their stage deadline. List them by state (index by-state) and read their last error."
  namespace           = local.metrics_namespace
  metric_name         = "StuckMeetings"
  dimensions          = { service = local.metric_service.StuckMeetings }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
}

resource "aws_cloudwatch_metric_alarm" "slots_pinned" {
  alarm_name          = "${var.name_prefix}-symbl-slots-pinned"
  alarm_description   = "Every Symbl slot has been held for ${var.slots_pinned_alarm_minutes} minutes: jobs are slow, leases are not released, or the limit (${var.symbl_concurrency_limit}) is too low for the load."
  namespace           = local.metrics_namespace
  metric_name         = "SlotsInUse"
  dimensions          = { service = local.metric_service.SlotsInUse }
  statistic           = "Minimum"
  period              = 300
  evaluation_periods  = ceil(var.slots_pinned_alarm_minutes / 5)
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = var.symbl_concurrency_limit
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
}

resource "aws_cloudwatch_metric_alarm" "lambda_errors" {
  for_each = local.functions

  alarm_name          = "${each.value}-errors"
  alarm_description   = "The ${each.key} function failed (uncaught error or timeout). Its log group: /aws/lambda/${each.value}."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = each.value }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
}

# The webhook app turns its own failures into 5xx answers (Zoom then retries), so they show here,
# not as Lambda errors.
resource "aws_cloudwatch_metric_alarm" "api_5xx" {
  alarm_name          = "${var.name_prefix}-http-api-5xx"
  alarm_description   = "The HTTP API answered 5xx: AWS calls behind the webhook failed or the function is throttled."
  namespace           = "AWS/ApiGateway"
  metric_name         = "5xx"
  dimensions          = { ApiId = aws_apigatewayv2_api.http.id, Stage = "$default" }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
}
