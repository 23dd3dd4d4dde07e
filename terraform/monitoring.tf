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
    job_events = module.job_events.function_name
  }

  # Every queue: the depth, age and DLQ widgets below show each (the job-events queue included).
  queues = {
    merge        = module.merge_queue
    submit       = module.submit_queue
    notify       = module.notify_queue
    "job-events" = module.job_events_queue
  }

  # The slots limit of the provider in use (SubmitterSettings.concurrency_limit).
  speech_concurrency_limit = local.aws_speech ? var.transcribe_concurrency_limit : var.symbl_concurrency_limit

  # Speech jobs are settled (SpeechJobsFailed) wherever a finished job is learnt of: the Symbl
  # callback (webhook), the pump (a job that ended before it was recorded), the reconciler (a lost
  # callback or event) and the Transcribe job events.
  speech_job_settlers = {
    webhook    = local.service_names.webhook
    pump       = local.service_names.pump
    reconciler = local.service_names.reconciler
    job_events = local.service_names.job_events
  }

  # Cost per meeting, in USD, of the AWS provider (Transcribe + Bedrock; with Symbl it prices
  # nothing real): what the period's jobs billed, SpeechAudioSeconds / 60 x the per-minute price,
  # plus the model's tokens x their prices, divided by the meetings emailed in the period
  # (EmailsSent: one per meeting). Divided by emails rather than by SpeechSubmits so that the
  # cost of failed and repeated jobs and of re-asked models is carried by the meetings that were
  # delivered: what a meeting really costs. Hourly sums; an hour without an email shows no point.
  cost_spent_expression = join(" + ", [
    "FILL(audio, 0) / 60 * ${var.transcribe_price_per_minute}",
    "FILL(tokensin, 0) * ${var.bedrock_input_price_per_million_tokens} / 1000000",
    "FILL(tokensout, 0) * ${var.bedrock_output_price_per_million_tokens} / 1000000",
  ])

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
        title = "Speech job slots in use (${var.speech_provider})", region = local.region, view = "timeSeries", period = 60
        metrics = [
          [local.metrics_namespace, "SlotsInUse", "service", local.service_names.reconciler, { stat = "Maximum", label = "in use" }],
        ]
        annotations = { horizontal = [{ label = "limit", value = local.speech_concurrency_limit }] }
        yAxis       = { left = { min = 0 } }
      }
    },
    {
      type = "metric", x = 0, y = 12, width = 8, height = 6
      properties = {
        title = "Speech jobs: submits, limit refusals, lost answers, failed and timed-out jobs", region = local.region, view = "timeSeries", stat = "Sum", period = 300
        metrics = [
          [local.metrics_namespace, "SpeechSubmits", "service", local.service_names.pump, { label = "submits" }],
          [local.metrics_namespace, "SpeechLimitRefusals", "service", local.service_names.pump, { label = "refused: provider at its limit" }],
          [local.metrics_namespace, "SpeechSubmitOutcomeUnknown", "service", local.service_names.pump, { label = "submit answer lost" }],
          [local.metrics_namespace, "SpeechJobsFailed", "service", local.service_names.webhook, { label = "failed jobs (Symbl callback)" }],
          [local.metrics_namespace, "SpeechJobsFailed", "service", local.service_names.pump, { label = "failed jobs (pump)" }],
          [local.metrics_namespace, "SpeechJobsFailed", "service", local.service_names.reconciler, { label = "failed jobs (reconciler)" }],
          [local.metrics_namespace, "SpeechJobsFailed", "service", local.service_names.job_events, { label = "failed jobs (Transcribe events)" }],
          [local.metrics_namespace, "SpeechJobsTimedOut", "service", local.service_names.reconciler, { label = "jobs past their deadline" }],
          [local.metrics_namespace, "SpeechJobsNotDeleted", "service", local.service_names.notifier, { label = "finished job records not deleted" }],
          [local.metrics_namespace, "SpeechAudioSeconds", "service", local.service_names.pump, { label = "audio seconds billed (right)", yAxis = "right" }],
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
    {
      type = "metric", x = 0, y = 42, width = 8, height = 6
      properties = {
        title = "Bedrock: tokens, calls, insights sections missing", region = local.region, view = "timeSeries", stat = "Sum", period = 300
        metrics = [
          [local.metrics_namespace, "ModelInputTokens", "service", local.service_names.notifier, { label = "input tokens" }],
          [local.metrics_namespace, "ModelOutputTokens", "service", local.service_names.notifier, { label = "output tokens" }],
          [local.metrics_namespace, "ModelCalls", "service", local.service_names.notifier, { label = "calls (right)", yAxis = "right" }],
          [local.metrics_namespace, "InsightsSectionsMissing", "service", local.service_names.notifier, { label = "sections missing (right)", yAxis = "right" }],
        ]
      }
    },
    {
      type = "metric", x = 8, y = 42, width = 8, height = 6
      properties = {
        title = "Cost per meeting, USD (AWS provider: Transcribe + Bedrock, at the price variables)", region = local.region, view = "timeSeries", stat = "Sum", period = 3600
        metrics = [
          [local.metrics_namespace, "SpeechAudioSeconds", "service", local.service_names.pump, { id = "audio", visible = false }],
          [local.metrics_namespace, "ModelInputTokens", "service", local.service_names.notifier, { id = "tokensin", visible = false }],
          [local.metrics_namespace, "ModelOutputTokens", "service", local.service_names.notifier, { id = "tokensout", visible = false }],
          [local.metrics_namespace, "EmailsSent", "service", local.service_names.notifier, { id = "emails", visible = false }],
          [{ id = "spent", expression = local.cost_spent_expression, label = "USD spent in the hour (right)", yAxis = "right" }],
          [{ id = "permeeting", expression = "IF(emails > 0, spent / emails)", label = "USD per emailed meeting" }],
        ]
        yAxis = { left = { min = 0 }, right = { min = 0 } }
      }
    },
    {
      type = "metric", x = 16, y = 42, width = 8, height = 6
      properties = {
        title = "Transcribe job events (the queue's depth and DLQ: the queue widgets)", region = local.region, view = "timeSeries", stat = "Sum", period = 300
        metrics = [
          [local.metrics_namespace, "JobEventsReceived", "service", local.service_names.job_events, { label = "received" }],
          [local.metrics_namespace, "JobEventsIgnored", "service", local.service_names.job_events, { label = "ignored (unknown or already settled)" }],
          ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", module.job_events_queue.name, { stat = "Maximum", label = "queued (right)", yAxis = "right" }],
          ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", module.job_events_queue.dlq_name, { stat = "Maximum", label = "in the DLQ (right)", yAxis = "right" }],
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
  alarm_name          = "${var.name_prefix}-speech-slots-pinned"
  alarm_description   = "Every ${var.speech_provider} job slot has been held for ${var.slots_pinned_alarm_minutes} minutes: jobs are slow, leases are not released, or the limit (${local.speech_concurrency_limit}) is too low for the load."
  namespace           = local.metrics_namespace
  metric_name         = "SlotsInUse"
  dimensions          = { service = local.service_names.reconciler } # sampled by the reconciler every minute
  statistic           = "Minimum"
  period              = 300
  evaluation_periods  = ceil(var.slots_pinned_alarm_minutes / 5)
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = local.speech_concurrency_limit
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

# A failed job is submitted again (up to SPEECH_JOB_ATTEMPTS) before its meeting ends FAILED, but
# every failure says something is wrong with the audio or the provider. One alarm per service that
# settles jobs (the metric carries the service that saw the failure).
resource "aws_cloudwatch_metric_alarm" "speech_jobs_failed" {
  for_each = local.speech_job_settlers

  alarm_name          = "${each.value}-speech-jobs-failed"
  alarm_description   = "The speech provider (${var.speech_provider}) failed jobs, seen by the ${each.key}. The meeting's last error holds Transcribe's FailureReason when its completion event carried it (else the job-events and reconciler logs do); the job is submitted again until its attempts are spent."
  namespace           = local.metrics_namespace
  metric_name         = "SpeechJobsFailed"
  dimensions          = { service = each.value }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
}

# One meeting whose insights lack a section (no summary, no topics...) may just be a short or odd
# meeting; every hour for hours on end means the model, its output limit (a truncated tool
# answer) or the prompt is wrong.
resource "aws_cloudwatch_metric_alarm" "insights_sections_missing" {
  alarm_name          = "${var.name_prefix}-insights-sections-missing"
  alarm_description   = "For ${var.sections_missing_alarm_hours} hours in a row the Bedrock model (${var.bedrock_model_id}) left insights sections out. Read the notifier's logs; check bedrock_max_output_tokens (a truncated answer) and the model."
  namespace           = local.metrics_namespace
  metric_name         = "InsightsSectionsMissing"
  dimensions          = { service = local.service_names.notifier }
  statistic           = "Sum"
  period              = 3600
  evaluation_periods  = var.sections_missing_alarm_hours
  datapoints_to_alarm = var.sections_missing_alarm_hours
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
}
