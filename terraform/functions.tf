# The six Lambda functions (modules/lambda_service). Environments: environment.tf; IAM: iam.tf.
# What only the AWS speech provider needs is attached with extra_policy_documents, and only with
# speech_provider "aws" (iam.tf, local.aws_speech_policy_documents).
# Reserved concurrency caps what each may do to the outside world (and guarantees it capacity);
# the SQS triggers never ask for more than the reservation, so a queue is never throttled into
# its DLQ.

module "webhook" {
  source = "./modules/lambda_service"

  function_name        = "${var.name_prefix}-webhook"
  description          = "HTTP entry: Zoom webhook, Symbl callback, health, insights page"
  image_uri            = local.function_image_uris["webhook"]
  image_command        = ["services.webhook.handler.lambda_handler"]
  timeout_seconds      = local.function_timeouts.webhook
  memory_mb            = 512
  reserved_concurrency = var.webhook_reserved_concurrency
  environment          = local.webhook_environment
  log_retention_days   = var.log_retention_days
  log_kms_key_arn      = aws_kms_key.observability.arn

  policy_documents = {
    "recordings-table" = data.aws_iam_policy_document.webhook_recordings_table.json
    "symbl-slots"      = data.aws_iam_policy_document.webhook_symbl_slots.json
    "enqueue-stages"   = data.aws_iam_policy_document.webhook_enqueue_stages.json
    "read-secrets"     = data.aws_iam_policy_document.webhook_read_secrets.json
    "nudge-pump"       = data.aws_iam_policy_document.webhook_nudge_pump.json
    "read-insights"    = data.aws_iam_policy_document.webhook_read_insights.json
    "table-key"        = data.aws_iam_policy_document.dynamodb_table_key.json
  }
}

module "merger" {
  source = "./modules/lambda_service"

  function_name        = "${var.name_prefix}-merger"
  description          = "Downloads participant audio and merges it (short meetings) or starts the Fargate task (long ones)"
  image_uri            = local.function_image_uris["merger"]
  image_command        = ["services.merger.handler.lambda_handler"]
  timeout_seconds      = local.function_timeouts.merger
  memory_mb            = 4096  # ~2.3 vCPUs for ffmpeg
  ephemeral_storage_mb = 10240 # the most /tmp Lambda offers; longer meetings go to Fargate
  reserved_concurrency = var.merger_concurrency
  environment          = local.merger_environment
  log_retention_days   = var.log_retention_days
  log_kms_key_arn      = aws_kms_key.observability.arn

  sqs_event_source = {
    queue_arn                       = module.merge_queue.arn
    batch_size                      = 1 # one meeting per invocation: its own 15 minutes, its own failure
    maximum_batching_window_seconds = 0
    maximum_concurrency             = var.merger_concurrency
  }

  policy_documents = {
    "recordings-table" = data.aws_iam_policy_document.merger_recordings_table.json
    "media-audio"      = data.aws_iam_policy_document.merger_media_audio.json
    "enqueue-submit"   = data.aws_iam_policy_document.merger_enqueue_submit.json
    "read-secrets"     = data.aws_iam_policy_document.merger_read_secrets.json
    "run-merge-task"   = data.aws_iam_policy_document.merger_run_merge_task.json
    "nudge-pump"       = data.aws_iam_policy_document.merger_nudge_pump.json
    "table-key"        = data.aws_iam_policy_document.dynamodb_table_key.json
  }
}

module "pump" {
  source = "./modules/lambda_service"

  function_name        = local.pump_function_name
  description          = "Submitter pump: holds a speech-provider slot per job, submits merged files from the submit queue"
  image_uri            = local.function_image_uris["submitter"]
  image_command        = ["services.submitter.handler.pump_handler"]
  timeout_seconds      = local.function_timeouts.pump
  memory_mb            = 256
  reserved_concurrency = var.pump_reserved_concurrency
  environment          = local.pump_environment
  log_retention_days   = var.log_retention_days
  log_kms_key_arn      = aws_kms_key.observability.arn

  # Invoked asynchronously as a nudge (merger, callback, reconciler). A nudge that fails or waits
  # behind the reservation is not worth keeping: the reconciler starts a pump every minute.
  async_retry_attempts        = 0
  async_max_event_age_seconds = 120

  policy_documents = {
    "dequeue-submit"   = data.aws_iam_policy_document.pump_dequeue_submit.json
    "recordings-table" = data.aws_iam_policy_document.pump_recordings_table.json
    "symbl-slots"      = data.aws_iam_policy_document.pump_symbl_slots.json
    "presign-merged"   = data.aws_iam_policy_document.pump_presign_merged.json
    "read-secrets"     = data.aws_iam_policy_document.pump_read_secrets.json
    "enqueue-stages"   = data.aws_iam_policy_document.pump_enqueue_stages.json
    "nudge-pump"       = data.aws_iam_policy_document.pump_nudge_pump.json
    "table-key"        = data.aws_iam_policy_document.dynamodb_table_key.json
  }
  extra_policy_documents = local.aws_speech ? local.aws_speech_policy_documents.pump : {}
}

module "reconciler" {
  source = "./modules/lambda_service"

  function_name        = "${var.name_prefix}-reconciler"
  description          = "Every minute: repairs stranded slots, merges and meetings; starts the pump"
  image_uri            = local.function_image_uris["submitter"]
  image_command        = ["services.submitter.handler.reconciler_handler"]
  timeout_seconds      = local.function_timeouts.reconciler
  memory_mb            = 256
  reserved_concurrency = 1 # one sweep at a time; an overlapping tick waits or is dropped
  environment          = local.reconciler_environment
  log_retention_days   = var.log_retention_days
  log_kms_key_arn      = aws_kms_key.observability.arn

  # The next tick comes within a minute: never retry or keep an old one.
  async_retry_attempts        = 0
  async_max_event_age_seconds = 60

  policy_documents = {
    "recordings-table"    = data.aws_iam_policy_document.reconciler_recordings_table.json
    "symbl-slots"         = data.aws_iam_policy_document.reconciler_symbl_slots.json
    "enqueue-stages"      = data.aws_iam_policy_document.reconciler_enqueue_stages.json
    "nudge-pump"          = data.aws_iam_policy_document.reconciler_nudge_pump.json
    "read-secrets"        = data.aws_iam_policy_document.reconciler_read_secrets.json
    "inspect-merge-tasks" = data.aws_iam_policy_document.reconciler_inspect_merge_tasks.json
    "alert-operators"     = data.aws_iam_policy_document.reconciler_alert_operators.json
    "table-key"           = data.aws_iam_policy_document.dynamodb_table_key.json
  }
  extra_policy_documents = local.aws_speech ? local.aws_speech_policy_documents.reconciler : {}
}

module "notifier" {
  source = "./modules/lambda_service"

  function_name        = "${var.name_prefix}-notifier"
  description          = "Fetches (Symbl) or makes (Transcribe + Bedrock) the insights, stores them in S3 and emails the host a summary"
  image_uri            = local.function_image_uris["notifier"]
  image_command        = ["services.notifier.handler.lambda_handler"]
  timeout_seconds      = local.function_timeouts.notifier
  memory_mb            = 512
  reserved_concurrency = var.notifier_concurrency
  environment          = local.notifier_environment
  log_retention_days   = var.log_retention_days
  log_kms_key_arn      = aws_kms_key.observability.arn

  sqs_event_source = {
    queue_arn                       = module.notify_queue.arn
    batch_size                      = 1 # each meeting its own 15 minutes (Bedrock may take minutes)
    maximum_batching_window_seconds = 0
    maximum_concurrency             = var.notifier_concurrency
  }

  policy_documents = {
    "recordings-table"  = data.aws_iam_policy_document.notifier_recordings_table.json
    "store-insights"    = data.aws_iam_policy_document.notifier_store_insights.json
    "read-segment-maps" = data.aws_iam_policy_document.notifier_read_segment_maps.json
    "send-email"        = data.aws_iam_policy_document.notifier_send_email.json
    "read-secrets"      = data.aws_iam_policy_document.notifier_read_secrets.json
    "enqueue-notify"    = data.aws_iam_policy_document.notifier_enqueue_notify.json
    "table-key"         = data.aws_iam_policy_document.dynamodb_table_key.json
  }
  extra_policy_documents = local.aws_speech ? local.aws_speech_policy_documents.notifier : {}
}

# Transcribe's job state changes (speech.tf: EventBridge rule -> job-events queue): the pump's
# image, another handler. Each event is confirmed with GetTranscriptionJob, then the job is
# settled as the Symbl callback settles one (slot released, notification or resubmission queued,
# the pump nudged).
module "job_events" {
  source = "./modules/lambda_service"

  function_name        = "${var.name_prefix}-job-events"
  description          = "Settles finished Amazon Transcribe jobs from their EventBridge state-change events"
  image_uri            = local.function_image_uris["submitter"]
  image_command        = ["services.submitter.handler.job_events_handler"]
  timeout_seconds      = local.function_timeouts.job_events
  memory_mb            = 256
  reserved_concurrency = var.job_events_concurrency
  environment          = local.job_events_environment
  log_retention_days   = var.log_retention_days
  log_kms_key_arn      = aws_kms_key.observability.arn

  sqs_event_source = {
    queue_arn                       = module.job_events_queue.arn
    batch_size                      = 10
    maximum_batching_window_seconds = 0
    maximum_concurrency             = var.job_events_concurrency
  }

  policy_documents = {
    "recordings-table" = data.aws_iam_policy_document.job_events_recordings_table.json
    "speech-slots"     = data.aws_iam_policy_document.job_events_speech_slots.json
    "enqueue-stages"   = data.aws_iam_policy_document.job_events_enqueue_stages.json
    "nudge-pump"       = data.aws_iam_policy_document.job_events_nudge_pump.json
    "confirm-jobs"     = data.aws_iam_policy_document.job_events_confirm_jobs.json
    "table-key"        = data.aws_iam_policy_document.dynamodb_table_key.json
  }
}

# The reconciler's clock (and the pump's safety-net trigger).
resource "aws_cloudwatch_event_rule" "reconciler" {
  name                = "${var.name_prefix}-reconciler"
  description         = "Runs the reconciler every minute"
  schedule_expression = "rate(1 minute)"
}

resource "aws_cloudwatch_event_target" "reconciler" {
  rule = aws_cloudwatch_event_rule.reconciler.name
  arn  = module.reconciler.function_arn

  retry_policy {
    maximum_retry_attempts       = 0
    maximum_event_age_in_seconds = 60
  }
}

resource "aws_lambda_permission" "reconciler_schedule" {
  statement_id  = "AllowEventBridgeSchedule"
  action        = "lambda:InvokeFunction"
  function_name = module.reconciler.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.reconciler.arn
}
