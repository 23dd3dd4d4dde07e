output "aws_region" {
  description = "Region of the stack (var.aws_region): the deploy steps read it here rather than repeating it."
  value       = var.aws_region
}

output "zoom_webhook_url" {
  description = "Event notification endpoint URL for the Zoom app (event: All Recordings have completed)."
  value       = "${aws_apigatewayv2_api.http.api_endpoint}/zoom/webhook"
}

output "health_url" {
  description = "Health route: GET answers {\"status\":\"ok\"}."
  value       = "${aws_apigatewayv2_api.http.api_endpoint}/healthz"
}

output "symbl_callback_base_url" {
  description = "Base of the Symbl job status callback URLs (a per-recording secret is appended)."
  value       = "${aws_apigatewayv2_api.http.api_endpoint}/symbl/callback/"
}

output "dashboard_url" {
  description = "CloudWatch dashboard of the pipeline."
  value       = "https://${local.region}.console.aws.amazon.com/cloudwatch/home?region=${local.region}#dashboards:name=${aws_cloudwatch_dashboard.pipeline.dashboard_name}"
}

output "image_repositories" {
  description = "ECR repository URL per image (webhook, merger, submitter, notifier, merger-task): push <url>:<image_tag>."
  value       = { for name, repository in aws_ecr_repository.images : name => repository.repository_url }
}

output "function_names" {
  description = "Lambda function name per service."
  value       = local.functions
}

output "recordings_table_name" {
  description = "DynamoDB table of recordings."
  value       = aws_dynamodb_table.recordings.name
}

output "slots_table_name" {
  description = "DynamoDB table of speech-job slots (one pool item per provider)."
  value       = aws_dynamodb_table.slots.name
}

output "media_bucket_name" {
  description = "S3 bucket of participant audio, merged audio, Transcribe transcripts and insights."
  value       = aws_s3_bucket.media.bucket
}

output "queue_urls" {
  description = "SQS queue URL per stage (merge, submit, notify) and of the Transcribe job-events queue (job-events)."
  value       = { for stage, queue in local.queues : stage => queue.url }
}

output "dlq_urls" {
  description = "SQS dead-letter queue URL per stage (merge, submit, notify) and of the job-events queue (job-events; also the dead-letter queue of the EventBridge rule's target)."
  value       = { for stage, queue in local.queues : stage => queue.dlq_url }
}

output "secret_arns" {
  description = "Secrets Manager secret ARN per secret name; set the values with aws secretsmanager put-secret-value (README.md)."
  value       = local.secret_arns
}

output "alerts_topic_arn" {
  description = "SNS topic of operator alerts."
  value       = aws_sns_topic.alerts.arn
}

output "ecs_cluster_name" {
  description = "ECS cluster of the Fargate merge task."
  value       = aws_ecs_cluster.this.name
}

output "merger_task_definition_arn" {
  description = "Current revision of the Fargate merge task definition."
  value       = module.merger_task.task_definition_arn
}

output "ses_dkim_tokens" {
  description = "For a domain identity: publish a CNAME <token>._domainkey.<domain> -> <token>.dkim.amazonses.com for each token."
  value       = try(aws_sesv2_email_identity.sender.dkim_signing_attributes[0].tokens, [])
}

output "speech_provider" {
  description = "The speech provider the services use (var.speech_provider): symbl or aws."
  value       = var.speech_provider
}

output "transcript_kms_key_arn" {
  description = "KMS key Amazon Transcribe encrypts the transcripts (transcripts/ in the media bucket) with."
  value       = aws_kms_key.speech.arn
}

output "bedrock_model_arns" {
  description = "What the notifier may invoke with speech_provider aws: the foundation model, or the inference profile and its model in the Regions it routes to."
  value       = local.bedrock_model_arns
}
