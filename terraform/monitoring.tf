# The CloudWatch dashboard and the alarms beyond the DLQ alarms (modules/queue). All alarms notify
# the operator alerts topic (main.tf).

locals {
  # Application metrics are EMF metrics in local.metrics_namespace with one dimension, "service":
  # the POWERTOOLS_SERVICE_NAME of the function that emits them (environment.tf). A widget line or
  # an alarm must name the service that really emits the metric, or it never shows data; each line
  # below is therefore written out as [namespace, metric, "service", emitter, {options}].
  # tests/integration/test_metrics_contract.py collects what each function's code emits and holds
  # every line and alarm here to it (and every emitted metric must be on the dashboard).

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

  dashboard_widgets = [
    {
      type = "metric", x = 0, y = 0, width = 12, height = 6
      properties = {
        title = "Zoom webhooks", region = local.region, view = "timeSeries", stat = "Sum", period = 300
        metrics = [
          [local.metrics_namespace, "WebhookAccepted", "service", local.service_names.webhook, { label = "accepted" }],
          [local.metrics_namespace, "WebhookDuplicate", "service", local.service_names.webhook, { label = "duplicate" }],
          [local.metrics_namespace, "WebhookRejected", "service", local.service_names.webhook, { label = "rejected" }],
          [local.metrics_namespace, "WebhookIgnored", "service", local.service_names.webhook, { label = "other events" }],
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
          [local.metrics_namespace, "EndToEndSeconds", "service", local.service_names.notifier, { stat = "p50", label = "p50" }],
          [local.metrics_namespace, "EndToEndSeconds", "service", local.service_names.notifier, { stat = "p90", label = "p90" }],
          [local.metrics_namespace, "EndToEndSeconds", "service", local.service_names.notifier, { stat = "Maximum", label = "max" }],
        ]
      }
    },
    {
      type = "metric", x = 0, y = 6, width = 8, height = 6
      properties = {
        title = "Merge duration, seconds", region = local.region, view = "timeSeries", period = 900
        metrics = [
          [local.metrics_namespace, "MergeSeconds", "service", local.service_names.merger, { stat = "p50", label = "p50" }],
          [local.metrics_namespace, "MergeSeconds", "service", local.service_names.merger, { stat = "p90", label = "p90" }],
          [local.metrics_namespace, "MergeSeconds", "service", local.service_names.merger, { stat = "Maximum", label = "max" }],
        ]
      }
    },
    {
      type = "metric", x = 8, y = 6, width = 8, height = 6
      properties = {
        title = "Merge realtime factor (meeting seconds per merge second)", region = local.region, view = "timeSeries", period = 900
        metrics = [
          [local.metrics_namespace, "MergeRealtimeFactor", "service", local.service_names.merger, { stat = "Average", label = "average" }],
          [local.metrics_namespace, "MergeRealtimeFactor", "service", local.service_names.merger, { stat = "Minimum", label = "slowest" }],
        ]
      }
    },
    {
      type = "metric", x = 16, y = 6, width = 8, height = 6
      properties = {
        title = "Symbl slots in use", region = local.region, view = "timeSeries", period = 60
        metrics = [
          [local.metrics_namespace, "SlotsInUse", "service", local.service_names.reconciler, { stat = "Maximum", label = "in use" }],
        ]
        annotations = { horizontal = [{ label = "limit", value = var.symbl_concurrency_limit }] }
        yAxis       = { left = { min = 0 } }
      }
    },
    {
      type = "metric", x = 0, y = 12, width = 8, height = 6
      properties = {
        title = "Symbl submits, 429s, lost answers, failed and timed-out jobs", region = local.region, view = "timeSeries", stat = "Sum", period = 300
        metrics = [
          [local.metrics_namespace, "SymblSubmits", "service", local.service_names.pump, { label = "submits" }],
          [local.metrics_namespace, "Symbl429s", "service", local.service_names.pump, { label = "429s" }],
          [local.metrics_namespace, "SymblSubmitOutcomeUnknown", "service", local.service_names.pump, { label = "submit answer lost" }],
          [local.metrics_namespace, "SymblJobsFailed", "service", local.service_names.webhook, { label = "failed jobs (callback)" }],
          [local.metrics_namespace, "SymblJobsFailed", "service", local.service_names.pump, { label = "failed jobs (pump)" }],
          [local.metrics_namespace, "SymblJobsFailed", "service", local.service_names.reconciler, { label = "failed jobs (reconciler)" }],
          [local.metrics_namespace, "SymblJobsTimedOut", "service", local.service_names.reconciler, { label = "jobs past their deadline" }],
        ]
      }
    },
    {
      type = "metric", x = 8, y = 12, width = 8, height = 6
      properties = {
        title = "Emails", region = local.region, view = "timeSeries", stat = "Sum", period = 300
        metrics = [
          [local.metrics_namespace, "EmailsSent", "service", local.service_names.notifier, { label = "sent (app)" }],
          [local.metrics_namespace, "EmailsInDoubt", "service", local.service_names.notifier, { label = "in doubt (app)" }],
          [local.metrics_namespace, "NotesSkipped", "service", local.service_names.notifier, { label = "skipped meetings (app)" }],
          [local.metrics_namespace, "SummariesMissing", "service", local.service_names.notifier, { label = "no summary (app)" }],
          [local.metrics_namespace, "SpeakersUnconfirmed", "service", local.service_names.notifier, { label = "speakers not confirmed (app)" }],
          ["AWS/SES", "Delivery", "ses:configuration-set", aws_sesv2_configuration_set.this.configuration_set_name, { label = "delivered" }],
          ["AWS/SES", "Bounce", "ses:configuration-set", aws_sesv2_configuration_set.this.configuration_set_name, { label = "bounced" }],
          ["AWS/SES", "Complaint", "ses:configuration-set", aws_sesv2_configuration_set.this.configuration_set_name, { label = "complaints" }],
        ]
      }
    },
    {
      type = "metric", x = 16, y = 12, width = 8, height = 6
      properties = {
        title = "Reconciler: stuck meetings, repairs, errors", region = local.region, view = "timeSeries", period = 300
        metrics = [
          [local.metrics_namespace, "StuckMeetings", "service", local.service_names.reconciler, { stat = "Maximum", label = "stuck meetings" }],
          [local.metrics_namespace, "StuckMeetingsGivenUp", "service", local.service_names.reconciler, { stat = "Sum", label = "given up (failed)" }],
          [local.metrics_namespace, "ReconcilerRepairs", "service", local.service_names.reconciler, { stat = "Sum", label = "repairs" }],
          [local.metrics_namespace, "ReconcilerItemErrors", "service", local.service_names.reconciler, { stat = "Sum", label = "repair errors" }],
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
    {
      type = "metric", x = 0, y = 36, width = 8, height = 6
      properties = {
        title = "Insights page (signed links)", region = local.region, view = "timeSeries", stat = "Sum", period = 300
        metrics = [
          [local.metrics_namespace, "InsightsPageViews", "service", local.service_names.webhook, { label = "views" }],
          [local.metrics_namespace, "InsightsPageExpired", "service", local.service_names.webhook, { label = "expired links" }],
          [local.metrics_namespace, "InsightsPageRejected", "service", local.service_names.webhook, { label = "rejected links" }],
        ]
      }
    },
    {
      type = "metric", x = 8, y = 36, width = 8, height = 6
      properties = {
        title = "Failure notices to operators", region = local.region, view = "timeSeries", stat = "Sum", period = 300
        metrics = [
          [local.metrics_namespace, "FailureNotices", "service", local.service_names.reconciler, { label = "sent" }],
          [local.metrics_namespace, "FailureNoticesInDoubt", "service", local.service_names.reconciler, { label = "in doubt" }],
          [local.metrics_namespace, "FailureNoticeErrors", "service", local.service_names.reconciler, { label = "errors" }],
        ]
      }
    },
    {
      type = "metric", x = 16, y = 36, width = 8, height = 6
      properties = {
        title = "Zoom download URLs refused (not Zoom's, or not https)", region = local.region, view = "timeSeries", stat = "Sum", period = 300
        metrics = [
          # The merger's, Lambda and Fargate task alike (both run as the merger service).
          [local.metrics_namespace, "DownloadUrlsRefused", "service", local.service_names.merger, { label = "refused" }],
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
  dimensions          = { service = local.service_names.reconciler }
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
  dimensions          = { service = local.service_names.reconciler } # sampled by the reconciler every minute
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
