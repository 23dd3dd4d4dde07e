# The AWS speech provider (speech_provider = "aws"): Amazon Transcribe writes the transcript, a
# Bedrock model writes the insights. Here: the names and ARNs the IAM policies (iam.tf) match, the
# key Transcribe encrypts the transcripts with, and the EventBridge rule that brings Transcribe's
# job state changes to the job-events queue (queues.tf) and function (functions.tf).
#
# The rule, the queue, the function and the key exist with either provider: switching providers is
# a variable and an apply (README.md). The permissions to start jobs, read transcripts and call
# Bedrock exist only with "aws" (local.aws_speech, iam.tf).

locals {
  aws_speech = var.speech_provider == "aws"

  # Our Transcribe jobs are named "<STACK_NAME>-<meeting key>-<attempt>" (services/core/speech/aws.py
  # job_name) with STACK_NAME = name_prefix (environment.tf): the rule and every IAM statement on
  # jobs match this prefix, so nothing here touches another stack's jobs in the same account and
  # Region, as long as no stack's prefix is another's plus "-..." ("acme" and "acme-dev" overlap).
  transcribe_job_name_prefix = "${var.name_prefix}-"
  transcribe_job_arn         = "arn:${local.partition}:transcribe:${local.region}:${local.account_id}:transcription-job/${local.transcribe_job_name_prefix}*"

  # Our jobs' ends, COMPLETED or FAILED (Transcribe emits nothing else for a batch job). The event
  # carries the job name and status (and the FailureReason), never the transcript's location.
  transcribe_job_events_pattern = {
    source        = ["aws.transcribe"]
    "detail-type" = ["Transcribe Job State Change"]
    detail = {
      TranscriptionJobStatus = ["COMPLETED", "FAILED"]
      TranscriptionJobName   = [{ prefix = local.transcribe_job_name_prefix }]
    }
  }

  # Bedrock. A model id with a geographic prefix (us.amazon.nova-lite-v1:0) names a cross-Region
  # inference profile: InvokeModel is authorised on the profile and on the foundation model in
  # every Region the profile may route to, hence "*" for the model's Region
  # (https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-prereq.html). A plain
  # id names the foundation model in this Region only.
  bedrock_profile_prefix      = try(regex("^(?:us|eu|apac|jp|global)\\.", var.bedrock_model_id), "")
  bedrock_foundation_model_id = trimprefix(var.bedrock_model_id, local.bedrock_profile_prefix)
  bedrock_model_kind          = local.bedrock_profile_prefix == "" ? "foundation_model" : "inference_profile"
  bedrock_model_arns_by_kind = {
    foundation_model = [
      "arn:${local.partition}:bedrock:${local.region}::foundation-model/${var.bedrock_model_id}",
    ]
    inference_profile = [
      "arn:${local.partition}:bedrock:${local.region}:${local.account_id}:inference-profile/${var.bedrock_model_id}",
      "arn:${local.partition}:bedrock:*::foundation-model/${local.bedrock_foundation_model_id}",
    ]
  }
  bedrock_model_arns = local.bedrock_model_arns_by_kind[local.bedrock_model_kind]
}

# ---------------------------------------------------------------------------------------------
# Transcribe job state changes -> the job-events queue
# ---------------------------------------------------------------------------------------------

# Transcribe emits "Transcribe Job State Change" on the default bus when a job started with
# StartTranscriptionJob ends (COMPLETED or FAILED), best effort: the reconciler asks about jobs
# whose event never came. https://docs.aws.amazon.com/transcribe/latest/dg/monitoring-events.html
resource "aws_cloudwatch_event_rule" "transcribe_job_events" {
  name        = "${var.name_prefix}-transcribe-job-events"
  description = "Transcribe jobs of ${var.name_prefix} that completed or failed, to the job-events queue"

  event_pattern = jsonencode(local.transcribe_job_events_pattern)

  lifecycle {
    # Transcribe takes at most 2 channels: the AWS provider attributes speakers through the
    # compact file's segment map (a multichannel submission would end each meeting FAILED).
    precondition {
      condition     = var.speech_provider != "aws" || var.audio_layout == "compact"
      error_message = "speech_provider = \"aws\" needs audio_layout = \"compact\" (Amazon Transcribe takes at most 2 channels)."
    }
  }
}

# SQS needs no role: the queue policy lets this rule (and only it) send (modules/queue). An event
# that cannot be delivered is retried for up to a day, then goes to the queue's DLQ, which has an
# alarm, rather than being dropped (EventBridge drops it without a dead-letter queue).
resource "aws_cloudwatch_event_target" "transcribe_job_events" {
  rule      = aws_cloudwatch_event_rule.transcribe_job_events.name
  target_id = "job-events-queue"
  arn       = module.job_events_queue.arn

  dead_letter_config {
    arn = module.job_events_queue.dlq_arn
  }

  retry_policy {
    maximum_event_age_in_seconds = 86400 # EventBridge's maximum
    maximum_retry_attempts       = 185   # EventBridge's maximum
  }

  # The queue policies first, or the first events would be refused.
  depends_on = [module.job_events_queue]
}

# ---------------------------------------------------------------------------------------------
# The transcript key
# ---------------------------------------------------------------------------------------------

# Transcribe writes each transcript (transcripts/ in the media bucket) encrypted with this key
# (OutputEncryptionKMSKeyId = TRANSCRIPT_KMS_KEY_ARN), with the rights of the caller: the pump
# encrypts, the notifier decrypts when it reads the transcript through S3. A key of its own, so
# that exactly those two roles may use it (the stack's other key serves logs, the alerts topic
# and the tables). The roles' statements exist only with speech_provider "aws".
resource "aws_kms_key" "speech" {
  description             = "${var.name_prefix}: Amazon Transcribe transcripts in the media bucket (transcripts/)"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.speech_key.json
}

resource "aws_kms_alias" "speech" {
  name          = "alias/${var.name_prefix}-speech"
  target_key_id = aws_kms_key.speech.key_id
}

data "aws_iam_policy_document" "speech_key" {
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

  # Transcribe checks the key and has S3 encrypt the transcript with the pump's credentials (the
  # exact calls are not documented, hence Encrypt, GenerateDataKey and DescribeKey, and no
  # kms:ViaService condition).
  dynamic "statement" {
    for_each = local.aws_speech ? ["PumpEncryptsTranscripts"] : []

    content {
      sid       = statement.value
      actions   = ["kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
      resources = ["*"]

      principals {
        type        = "AWS"
        identifiers = [module.pump.role_arn]
      }
    }
  }

  dynamic "statement" {
    for_each = local.aws_speech ? ["NotifierDecryptsTranscriptsThroughS3"] : []

    content {
      sid       = statement.value
      actions   = ["kms:Decrypt"]
      resources = ["*"]

      principals {
        type        = "AWS"
        identifiers = [module.notifier.role_arn]
      }

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["s3.${local.region}.${local.dns_suffix}"]
      }
    }
  }
}
