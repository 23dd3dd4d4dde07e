# Environment variables of every function and of the merge task, in one place.
#
# Each map holds EXACTLY the variables its settings class in services/core/settings.py reads
# (field names upper-cased; every field without a default must be here), plus
# POWERTOOLS_SERVICE_NAME and POWERTOOLS_METRICS_NAMESPACE for logging and EMF metrics.
# tests/integration/test_terraform_contract.py holds the maps and the classes together.
#
#   webhook_environment          WebhookSettings
#   merger_environment           MergerSettings (Lambda: can hand long merges to Fargate)
#   merger_task_environment      MergerSettings (Fargate task)
#   pump_environment             SubmitterSettings
#   reconciler_environment       ReconcilerSettings
#   notifier_environment         NotifierSettings
#   job_events_environment       JobEventsSettings
#
# SPEECH_PROVIDER chooses the speech provider wherever a service reads SpeechSettings (webhook,
# pump, reconciler, notifier, job-events), with STACK_NAME: Transcribe job names start with
# "<STACK_NAME>-", which the EventBridge rule (speech.tf) and the IAM job ARNs (iam.tf) match. The
# Symbl secret's ARN is passed with either provider (the secret always exists; the code requires it
# only with "symbl").
#
# Optional fields are set only where the deployment wants something other than the code's default
# (or where the value must follow another setting, such as a queue's redrive limit).
# Values are names, ARNs and URLs only; secrets are read from Secrets Manager by ARN.

locals {
  webhook_environment = {
    POWERTOOLS_SERVICE_NAME      = local.service_names.webhook
    POWERTOOLS_METRICS_NAMESPACE = local.metrics_namespace
    LOG_LEVEL                    = var.log_level
    RECORDINGS_TABLE             = aws_dynamodb_table.recordings.name
    RECORD_RETENTION_DAYS        = tostring(var.record_retention_days)
    MERGE_QUEUE_URL              = module.merge_queue.url
    ZOOM_WEBHOOK_SECRET_ARN      = aws_secretsmanager_secret.this["zoom-webhook-secret-token"].arn
    SPEECH_PROVIDER              = var.speech_provider
    STACK_NAME                   = var.name_prefix
    SYMBL_CREDENTIALS_SECRET_ARN = aws_secretsmanager_secret.this["symbl-credentials"].arn
    SLOTS_TABLE                  = aws_dynamodb_table.slots.name
    SUBMIT_QUEUE_URL             = module.submit_queue.url
    NOTIFY_QUEUE_URL             = module.notify_queue.url
    PUMP_FUNCTION_NAME           = module.pump.function_name
    # The insights page (GET /meetings/{uuid+}): checks the signed link, reads insights/ objects.
    MEDIA_BUCKET                = aws_s3_bucket.media.bucket
    LINK_SIGNING_KEY_SECRET_ARN = aws_secretsmanager_secret.this["link-signing-key"].arn
  }

  merger_environment = {
    POWERTOOLS_SERVICE_NAME      = local.service_names.merger
    POWERTOOLS_METRICS_NAMESPACE = local.metrics_namespace
    LOG_LEVEL                    = var.log_level
    RECORDINGS_TABLE             = aws_dynamodb_table.recordings.name
    RECORD_RETENTION_DAYS        = tostring(var.record_retention_days)
    ZOOM_S2S_SECRET_ARN          = aws_secretsmanager_secret.this["zoom-s2s-credentials"].arn
    MEDIA_BUCKET                 = aws_s3_bucket.media.bucket
    MERGE_QUEUE_URL              = module.merge_queue.url
    MAX_RECEIVE_COUNT            = tostring(local.max_receive_count) # the merge queue's redrive limit
    SUBMIT_QUEUE_URL             = module.submit_queue.url
    PUMP_FUNCTION_NAME           = module.pump.function_name
    AUDIO_LAYOUT                 = var.audio_layout
    INLINE_MERGE_MAX_SECONDS     = tostring(var.inline_merge_max_seconds)
    ECS_CLUSTER                  = aws_ecs_cluster.this.arn
    ECS_TASK_DEFINITION          = module.merger_task.task_definition_arn
    ECS_CONTAINER_NAME           = module.merger_task.container_name
    ECS_SUBNETS                  = join(",", var.subnet_ids)
    ECS_SECURITY_GROUPS          = module.merger_task.security_group_id
  }

  # The task merges one meeting (MERGE_MEETING_UUID comes as a RunTask container override).
  merger_task_environment = {
    POWERTOOLS_SERVICE_NAME      = local.service_names.merger
    POWERTOOLS_METRICS_NAMESPACE = local.metrics_namespace
    LOG_LEVEL                    = var.log_level
    RECORDINGS_TABLE             = aws_dynamodb_table.recordings.name
    RECORD_RETENTION_DAYS        = tostring(var.record_retention_days)
    ZOOM_S2S_SECRET_ARN          = aws_secretsmanager_secret.this["zoom-s2s-credentials"].arn
    MEDIA_BUCKET                 = aws_s3_bucket.media.bucket
    AUDIO_LAYOUT                 = var.audio_layout
    MERGE_QUEUE_URL              = module.merge_queue.url # required by MergerSettings; the task sends nothing to it
    SUBMIT_QUEUE_URL             = module.submit_queue.url
    PUMP_FUNCTION_NAME           = module.pump.function_name
  }

  pump_environment = {
    POWERTOOLS_SERVICE_NAME      = local.service_names.pump
    POWERTOOLS_METRICS_NAMESPACE = local.metrics_namespace
    LOG_LEVEL                    = var.log_level
    RECORDINGS_TABLE             = aws_dynamodb_table.recordings.name
    RECORD_RETENTION_DAYS        = tostring(var.record_retention_days)
    SPEECH_PROVIDER              = var.speech_provider
    STACK_NAME                   = var.name_prefix
    SYMBL_CREDENTIALS_SECRET_ARN = aws_secretsmanager_secret.this["symbl-credentials"].arn
    SLOTS_TABLE                  = aws_dynamodb_table.slots.name
    SUBMIT_QUEUE_URL             = module.submit_queue.url
    MEDIA_BUCKET                 = aws_s3_bucket.media.bucket
    SYMBL_CONCURRENCY_LIMIT      = tostring(var.symbl_concurrency_limit)
    TRANSCRIBE_CONCURRENCY_LIMIT = tostring(var.transcribe_concurrency_limit)
    CALLBACK_BASE_URL            = aws_apigatewayv2_api.http.api_endpoint
    # Transcribe jobs (speech_provider "aws"): the meetings' language, and the key Transcribe
    # encrypts the transcripts with (speech.tf); the pump starts the jobs, so it names both.
    TRANSCRIBE_LANGUAGE_CODE = var.transcribe_language_code
    TRANSCRIPT_KMS_KEY_ARN   = aws_kms_key.speech.arn
    # A job that ends before the pump has recorded it is settled by the pump itself: it queues the
    # notification (or the resubmission) and starts another pump for the freed slot. The pump's
    # own name is a local: module.pump.function_name here would be a dependency cycle.
    NOTIFY_QUEUE_URL   = module.notify_queue.url
    PUMP_FUNCTION_NAME = local.pump_function_name
    # The pump starts no new submission after this; the rest of its timeout is for the last one
    # (see local.pump_max_seconds). Nudges and the one-minute schedule start it again.
    PUMP_MAX_SECONDS = "${local.pump_max_seconds}"
  }

  reconciler_environment = {
    POWERTOOLS_SERVICE_NAME      = local.service_names.reconciler
    POWERTOOLS_METRICS_NAMESPACE = local.metrics_namespace
    LOG_LEVEL                    = var.log_level
    RECORDINGS_TABLE             = aws_dynamodb_table.recordings.name
    RECORD_RETENTION_DAYS        = tostring(var.record_retention_days)
    SPEECH_PROVIDER              = var.speech_provider
    STACK_NAME                   = var.name_prefix
    SYMBL_CREDENTIALS_SECRET_ARN = aws_secretsmanager_secret.this["symbl-credentials"].arn
    SLOTS_TABLE                  = aws_dynamodb_table.slots.name
    SUBMIT_QUEUE_URL             = module.submit_queue.url
    MEDIA_BUCKET                 = aws_s3_bucket.media.bucket
    SYMBL_CONCURRENCY_LIMIT      = tostring(var.symbl_concurrency_limit)
    TRANSCRIBE_CONCURRENCY_LIMIT = tostring(var.transcribe_concurrency_limit)
    CALLBACK_BASE_URL            = aws_apigatewayv2_api.http.api_endpoint
    MERGE_QUEUE_URL              = module.merge_queue.url
    NOTIFY_QUEUE_URL             = module.notify_queue.url
    PUMP_FUNCTION_NAME           = module.pump.function_name
    ECS_CLUSTER                  = aws_ecs_cluster.this.arn
    OPERATOR_TOPIC_ARN           = aws_sns_topic.alerts.arn # every FAILED meeting announced once
  }

  notifier_environment = {
    POWERTOOLS_SERVICE_NAME      = local.service_names.notifier
    POWERTOOLS_METRICS_NAMESPACE = local.metrics_namespace
    LOG_LEVEL                    = var.log_level
    RECORDINGS_TABLE             = aws_dynamodb_table.recordings.name
    RECORD_RETENTION_DAYS        = tostring(var.record_retention_days)
    SPEECH_PROVIDER              = var.speech_provider
    STACK_NAME                   = var.name_prefix
    SYMBL_CREDENTIALS_SECRET_ARN = aws_secretsmanager_secret.this["symbl-credentials"].arn
    MEDIA_BUCKET                 = aws_s3_bucket.media.bucket
    LINK_SIGNING_KEY_SECRET_ARN  = aws_secretsmanager_secret.this["link-signing-key"].arn
    NOTIFY_QUEUE_URL             = module.notify_queue.url
    MAX_RECEIVE_COUNT            = tostring(local.max_receive_count) # the notify queue's redrive limit
    SES_SENDER                   = var.email_from_address
    SES_CONFIGURATION_SET        = aws_sesv2_configuration_set.this.configuration_set_name
    EXTRA_RECIPIENTS             = join(",", var.notify_extra_recipients)
    INSIGHTS_PAGE_BASE_URL       = aws_apigatewayv2_api.http.api_endpoint # page links: <base>/meetings/<uuid>?token=...
    OPERATOR_TOPIC_ARN           = aws_sns_topic.alerts.arn
    # The insights of speech_provider "aws": the model, its context window, the output asked.
    BEDROCK_MODEL_ID          = var.bedrock_model_id
    BEDROCK_CONTEXT_TOKENS    = tostring(var.bedrock_context_tokens)
    BEDROCK_MAX_OUTPUT_TOKENS = tostring(var.bedrock_max_output_tokens)
  }

  # Transcribe's job state changes (speech.tf: EventBridge rule -> job-events queue -> function):
  # each is confirmed with GetTranscriptionJob and settled as the Symbl callback settles a job.
  job_events_environment = {
    POWERTOOLS_SERVICE_NAME      = local.service_names.job_events
    POWERTOOLS_METRICS_NAMESPACE = local.metrics_namespace
    LOG_LEVEL                    = var.log_level
    RECORDINGS_TABLE             = aws_dynamodb_table.recordings.name
    RECORD_RETENTION_DAYS        = tostring(var.record_retention_days)
    SPEECH_PROVIDER              = var.speech_provider
    STACK_NAME                   = var.name_prefix
    SYMBL_CREDENTIALS_SECRET_ARN = aws_secretsmanager_secret.this["symbl-credentials"].arn
    SLOTS_TABLE                  = aws_dynamodb_table.slots.name
    SUBMIT_QUEUE_URL             = module.submit_queue.url
    NOTIFY_QUEUE_URL             = module.notify_queue.url
    PUMP_FUNCTION_NAME           = module.pump.function_name
    JOB_EVENTS_QUEUE_URL         = module.job_events_queue.url       # a failed settle backs off on its own message
    MAX_RECEIVE_COUNT            = tostring(local.max_receive_count) # the job-events queue's redrive limit
  }
}
