# What each function and the merge task may do: one policy document per capability per service,
# on exact resources. The Lambda module adds "write-logs" (its own log group) and, for an SQS
# trigger, "consume-queue" (receive/delete/change visibility on that queue only).
#
# Held to the code by tests/e2e/test_least_privilege.py: it records every AWS call each service
# makes in the integration and e2e tiers and fails when a call is not allowed here, or when an
# action here is never called and is not in its list of deliberate exceptions (with reasons).

locals {
  recordings_table_resources = [aws_dynamodb_table.recordings.arn, "${aws_dynamodb_table.recordings.arn}/index/*"]
  secret_arns                = { for name, secret in aws_secretsmanager_secret.this : name => secret.arn }
  media_object_arn           = { for key, prefix in local.media_prefixes : key => "${aws_s3_bucket.media.arn}/${prefix}*" }

  # What the AWS speech provider (speech.tf) adds to a role, by module call: attached (the Lambda
  # module's extra_policy_documents, functions.tf) only with speech_provider "aws", so that with
  # "symbl" every role is exactly what Symbl needs. The documents are at the end of this file.
  aws_speech_policy_documents = {
    pump = {
      "transcribe-jobs"     = data.aws_iam_policy_document.pump_transcribe_jobs.json
      "write-transcripts"   = data.aws_iam_policy_document.pump_write_transcripts.json
      "encrypt-transcripts" = data.aws_iam_policy_document.pump_encrypt_transcripts.json
    }
    reconciler = {
      "inspect-transcribe-jobs" = data.aws_iam_policy_document.reconciler_inspect_transcribe_jobs.json
    }
    notifier = {
      "read-transcripts"       = data.aws_iam_policy_document.notifier_read_transcripts.json
      "delete-transcribe-jobs" = data.aws_iam_policy_document.notifier_delete_transcribe_jobs.json
      "invoke-insights-model"  = data.aws_iam_policy_document.notifier_invoke_insights_model.json
    }
  }
}

# Every role that reads or writes a DynamoDB table: the tables are encrypted with the stack's key
# (storage.tf), and DynamoDB decrypts the table key with the caller's permissions when a caller
# first reaches the table (then caches it for minutes; data keys are made and kept outside KMS, so
# a write needs nothing more): https://docs.aws.amazon.com/kms/latest/developerguide/services-dynamodb.html
# ("Table keys", "Table key caching"). Only through DynamoDB, never directly.
data "aws_iam_policy_document" "dynamodb_table_key" {
  statement {
    sid       = "DecryptTableKeyThroughDynamoDb"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.observability.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["dynamodb.${local.region}.${local.dns_suffix}"]
    }
  }
}

# ---------------------------------------------------------------------------------------------
# webhook: Zoom intake, Symbl callback, insights page
# ---------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "webhook_recordings_table" {
  statement {
    sid = "RecordAndAdvanceMeetings"
    # By key only: the Symbl callback finds its meeting by the key in its URL, not an index.
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
    resources = [aws_dynamodb_table.recordings.arn]
  }
}

data "aws_iam_policy_document" "webhook_symbl_slots" {
  statement {
    sid = "ReleaseSlotOnCallback"
    # Releasing only. The pool creates (or repairs) its item with UpdateItem's if_not_exists.
    actions   = ["dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.slots.arn]
  }
}

data "aws_iam_policy_document" "webhook_enqueue_stages" {
  statement {
    sid       = "EnqueueMergeSubmitNotify"
    actions   = ["sqs:SendMessage"]
    resources = [module.merge_queue.arn, module.submit_queue.arn, module.notify_queue.arn]
  }
}

data "aws_iam_policy_document" "webhook_read_secrets" {
  statement {
    sid     = "ReadWebhookSecrets"
    actions = ["secretsmanager:GetSecretValue"]
    resources = [
      local.secret_arns["zoom-webhook-secret-token"], # Zoom signatures
      local.secret_arns["symbl-credentials"],         # the callback confirms the job's status
      local.secret_arns["link-signing-key"],          # the insights page checks its link
    ]
  }
}

data "aws_iam_policy_document" "webhook_nudge_pump" {
  statement {
    sid       = "NudgePump"
    actions   = ["lambda:InvokeFunction"]
    resources = [module.pump.function_arn]
  }
}

# The insights page (GET /meetings/{uuid+}) renders the stored insights document.
data "aws_iam_policy_document" "webhook_read_insights" {
  statement {
    sid       = "ReadInsights"
    actions   = ["s3:GetObject"]
    resources = [local.media_object_arn.insights]
  }
}

# ---------------------------------------------------------------------------------------------
# merger (Lambda) and merge task (Fargate task role)
# ---------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "merger_recordings_table" {
  statement {
    sid       = "ReadAndAdvanceMeetings"
    actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.recordings.arn]
  }
}

data "aws_iam_policy_document" "merger_media_audio" {
  # HEAD (is a download already there?) and the presigned URLs ffmpeg reads the tracks from.
  statement {
    sid       = "ReadParticipantAudio"
    actions   = ["s3:GetObject"]
    resources = [local.media_object_arn.raw]
  }

  statement {
    sid = "WriteParticipantAndMergedAudio"
    # PutObject covers CreateMultipartUpload, UploadPart and CompleteMultipartUpload.
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = [local.media_object_arn.raw, local.media_object_arn.merged]
  }

  # A merge run that lost its lease to a newer run deletes the file it wrote (its own key).
  statement {
    sid       = "DeleteOwnStaleMergedAudio"
    actions   = ["s3:DeleteObject"]
    resources = [local.media_object_arn.merged]
  }

  # So that a HEAD on a participant file not downloaded yet answers 404 (absent), not 403.
  statement {
    sid       = "ListParticipantAudio"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.media.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.media_prefixes.raw}*"]
    }
  }
}

# The submit request of a merged meeting; and the merger's own delayed re-check while Zoom
# still processes a participant file (a fresh message, so waiting spends no receive).
data "aws_iam_policy_document" "merger_enqueue_submit" {
  statement {
    sid       = "EnqueueSubmitAndRecheck"
    actions   = ["sqs:SendMessage"]
    resources = [module.submit_queue.arn, module.merge_queue.arn]
  }
}

data "aws_iam_policy_document" "merger_read_secrets" {
  statement {
    sid       = "ReadZoomCredentials"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [local.secret_arns["zoom-s2s-credentials"]]
  }
}

data "aws_iam_policy_document" "merger_run_merge_task" {
  statement {
    sid       = "RunMergeTaskInOurCluster"
    actions   = ["ecs:RunTask"]
    resources = ["${module.merger_task.task_definition_arn_without_revision}:*"]

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [aws_ecs_cluster.this.arn]
    }
  }

  statement {
    sid       = "PassMergeTaskRoles"
    actions   = ["iam:PassRole"]
    resources = [module.merger_task.task_role_arn, module.merger_task.execution_role_arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "merger_nudge_pump" {
  statement {
    sid       = "NudgePump"
    actions   = ["lambda:InvokeFunction"]
    resources = [module.pump.function_arn]
  }
}

# ---------------------------------------------------------------------------------------------
# pump
# ---------------------------------------------------------------------------------------------

# The pump receives from the submit queue itself (no event source mapping, so no
# GetQueueAttributes). A request it cannot act on yet goes back as a delayed copy (SendMessage,
# below), so waiting never spends a receive.
data "aws_iam_policy_document" "pump_dequeue_submit" {
  statement {
    sid       = "ReceiveAndDeleteSubmissions"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage"]
    resources = [module.submit_queue.arn]
  }
}

data "aws_iam_policy_document" "pump_recordings_table" {
  statement {
    sid       = "ReadAndAdvanceMeetings"
    actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.recordings.arn]
  }
}

data "aws_iam_policy_document" "pump_symbl_slots" {
  statement {
    sid       = "AcquireAndReleaseSlots"
    actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.slots.arn]
  }
}

data "aws_iam_policy_document" "pump_presign_merged" {
  statement {
    sid       = "PresignMergedAudio"
    actions   = ["s3:GetObject"]
    resources = [local.media_object_arn.merged]
  }
}

data "aws_iam_policy_document" "pump_read_secrets" {
  statement {
    sid       = "ReadSymblCredentials"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [local.secret_arns["symbl-credentials"]]
  }
}

# A job that ended before the pump recorded it (its callback found nothing) is settled by the
# pump as the callback would have: notify, or submit again after a failed job. A request that
# must wait (a 429, an unfinished merge, a failed attempt) goes back as a delayed copy.
data "aws_iam_policy_document" "pump_enqueue_stages" {
  statement {
    sid       = "EnqueueNotifyAndResubmit"
    actions   = ["sqs:SendMessage"]
    resources = [module.submit_queue.arn, module.notify_queue.arn]
  }
}

# ... and starts another pump for the slot it freed. The ARN is built from the name: referring to
# module.pump from the pump's own policy would be a dependency cycle.
data "aws_iam_policy_document" "pump_nudge_pump" {
  statement {
    sid       = "StartAnotherPump"
    actions   = ["lambda:InvokeFunction"]
    resources = [local.pump_function_arn]
  }
}

# ---------------------------------------------------------------------------------------------
# reconciler
# ---------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "reconciler_recordings_table" {
  statement {
    sid       = "FindAndRepairStuckMeetings"
    actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query"]
    resources = local.recordings_table_resources
  }
}

data "aws_iam_policy_document" "reconciler_symbl_slots" {
  statement {
    sid       = "ClearExpiredLeases"
    actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.slots.arn]
  }
}

data "aws_iam_policy_document" "reconciler_enqueue_stages" {
  statement {
    sid       = "RequeueStages"
    actions   = ["sqs:SendMessage"]
    resources = [module.merge_queue.arn, module.submit_queue.arn, module.notify_queue.arn]
  }
}

data "aws_iam_policy_document" "reconciler_nudge_pump" {
  statement {
    sid       = "StartPump"
    actions   = ["lambda:InvokeFunction"]
    resources = [module.pump.function_arn]
  }
}

data "aws_iam_policy_document" "reconciler_read_secrets" {
  statement {
    sid       = "ReadSymblCredentials"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [local.secret_arns["symbl-credentials"]]
  }
}

# Whether a long merge's Fargate task still runs.
data "aws_iam_policy_document" "reconciler_inspect_merge_tasks" {
  statement {
    sid       = "DescribeMergeTasks"
    actions   = ["ecs:DescribeTasks"]
    resources = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:task/${aws_ecs_cluster.this.name}/*"]
  }
}

# Every FAILED meeting is announced once on the operators' topic (services/core/failures.py):
# the reconciler's sweep publishes; SNS encrypts with the publisher's permissions.
data "aws_iam_policy_document" "reconciler_alert_operators" {
  statement {
    sid       = "PublishAlerts"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]
  }

  statement {
    sid       = "EncryptAlertsThroughSns"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.observability.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["sns.${local.region}.${local.dns_suffix}"]
    }
  }
}

# ---------------------------------------------------------------------------------------------
# notifier
# ---------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "notifier_recordings_table" {
  statement {
    sid       = "ReadAndAdvanceMeetings"
    actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.recordings.arn]
  }
}

# Writes only: the notifier never reads a stored document back (the webhook's page does).
data "aws_iam_policy_document" "notifier_store_insights" {
  statement {
    sid       = "WriteInsights"
    actions   = ["s3:PutObject"]
    resources = [local.media_object_arn.insights]
  }
}

# A compact file's segment map (merged/<meeting>/<run>.segments.json): its speakers, their talk
# time and the meeting time of every transcript word. The maps only, not the audio.
data "aws_iam_policy_document" "notifier_read_segment_maps" {
  statement {
    sid       = "ReadSegmentMaps"
    actions   = ["s3:GetObject"]
    resources = ["${local.media_object_arn.merged}.segments.json"]
  }
}

# SES API v2 SendEmail with raw MIME content (HTML + text): SES authorizes it as ses:SendEmail and
# ses:SendRawEmail, on the identity and on the configuration set it names.
data "aws_iam_policy_document" "notifier_send_email" {
  statement {
    sid       = "SendWithOurIdentityAndConfigurationSet"
    actions   = ["ses:SendEmail", "ses:SendRawEmail"]
    resources = [aws_sesv2_email_identity.sender.arn, aws_sesv2_configuration_set.this.arn]
  }
}

# A summary Symbl has not finished yet is looked at again through a delayed notify request.
data "aws_iam_policy_document" "notifier_enqueue_notify" {
  statement {
    sid       = "RequeueNotifyRequests"
    actions   = ["sqs:SendMessage"]
    resources = [module.notify_queue.arn]
  }
}

data "aws_iam_policy_document" "notifier_read_secrets" {
  statement {
    sid       = "ReadSymblCredentialsAndLinkKey"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [local.secret_arns["symbl-credentials"], local.secret_arns["link-signing-key"]]
  }
}

# ---------------------------------------------------------------------------------------------
# job-events: Transcribe's job state changes, settled as the Symbl callback settles a job
# ---------------------------------------------------------------------------------------------

# By key only: the job name carries the meeting's key (services/core/speech/aws.py job_name), so
# an event leads straight to its item (no index), which moves on by conditional updates.
data "aws_iam_policy_document" "job_events_recordings_table" {
  statement {
    sid       = "ReadAndAdvanceMeetings"
    actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.recordings.arn]
  }
}

data "aws_iam_policy_document" "job_events_speech_slots" {
  statement {
    sid = "ReleaseSlotOfEndedJob"
    # Releasing only, as the callback. The pool creates (or repairs) its item with if_not_exists.
    actions   = ["dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.slots.arn]
  }
}

# The notification of a completed job; the resubmission of a failed one.
data "aws_iam_policy_document" "job_events_enqueue_stages" {
  statement {
    sid       = "EnqueueNotifyAndResubmit"
    actions   = ["sqs:SendMessage"]
    resources = [module.submit_queue.arn, module.notify_queue.arn]
  }
}

data "aws_iam_policy_document" "job_events_nudge_pump" {
  statement {
    sid       = "NudgePump"
    actions   = ["lambda:InvokeFunction"]
    resources = [module.pump.function_arn]
  }
}

# An event is a hint: the job's state is confirmed with Transcribe before anything moves. Our
# jobs only (the rule matches the same prefix). Present with either provider: jobs started under
# "aws" are still settled after a switch to "symbl".
data "aws_iam_policy_document" "job_events_confirm_jobs" {
  statement {
    sid       = "ConfirmTranscribeJobState"
    actions   = ["transcribe:GetTranscriptionJob"]
    resources = [local.transcribe_job_arn]
  }
}

# ---------------------------------------------------------------------------------------------
# speech_provider "aws" only (local.aws_speech_policy_documents): Transcribe and Bedrock
# ---------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "pump_transcribe_jobs" {
  statement {
    sid = "StartAndCheckTranscribeJobs"
    # Get: the status check after a start whose answer was lost, and of a job that ended early.
    actions   = ["transcribe:StartTranscriptionJob", "transcribe:GetTranscriptionJob"]
    resources = [local.transcribe_job_arn]
  }
}

# Transcribe reads the merged audio and writes the transcript with the caller's rights: the
# pump's "presign-merged" (s3:GetObject on merged/) covers the reading, this the writing. The
# bucket policy (storage.tf) denies only requests without TLS (1.2 or later), which Transcribe's
# are not.
data "aws_iam_policy_document" "pump_write_transcripts" {
  statement {
    sid       = "TranscribeWritesTranscripts"
    actions   = ["s3:PutObject"]
    resources = [local.media_object_arn.transcripts]
  }
}

# The transcript key (speech.tf): Transcribe has S3 encrypt the transcript with it.
data "aws_iam_policy_document" "pump_encrypt_transcripts" {
  statement {
    sid       = "EncryptTranscripts"
    actions   = ["kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.speech.arn]
  }
}

# The reconciler asks about jobs whose completion event never came, and about jobs past their
# deadline.
data "aws_iam_policy_document" "reconciler_inspect_transcribe_jobs" {
  statement {
    sid       = "CheckTranscribeJobs"
    actions   = ["transcribe:GetTranscriptionJob"]
    resources = [local.transcribe_job_arn]
  }
}

data "aws_iam_policy_document" "notifier_read_transcripts" {
  statement {
    sid       = "ReadTranscripts"
    actions   = ["s3:GetObject"]
    resources = [local.media_object_arn.transcripts]
  }

  statement {
    sid       = "DecryptTranscriptsThroughS3"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.speech.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.${local.dns_suffix}"]
    }
  }
}

# Once the insights are stored, the finished job's record is deleted (Transcribe keeps it 90 days
# otherwise, with the transcript's location).
data "aws_iam_policy_document" "notifier_delete_transcribe_jobs" {
  statement {
    sid       = "DeleteFinishedTranscribeJobs"
    actions   = ["transcribe:DeleteTranscriptionJob"]
    resources = [local.transcribe_job_arn]
  }
}

# The Converse API is authorised as bedrock:InvokeModel, on exactly the configured model (and, for
# an inference profile, the profile and the model in the Regions it routes to: speech.tf).
data "aws_iam_policy_document" "notifier_invoke_insights_model" {
  statement {
    sid       = "ConverseWithInsightsModel"
    actions   = ["bedrock:InvokeModel"]
    resources = local.bedrock_model_arns
  }
}
