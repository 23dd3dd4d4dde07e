# ---------------------------------------------------------------------------------------------
# Deployment
# ---------------------------------------------------------------------------------------------

variable "aws_region" {
  type        = string
  description = "AWS region of the whole stack (SES must be available there); the provider's region, output as aws_region for the deploy steps."

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", var.aws_region))
    error_message = "aws_region must be a region code such as eu-west-1."
  }
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name (<prefix>-recordings, <prefix>-media, <prefix>-merge, secrets <prefix>/...). The media bucket <prefix>-media must be globally unique: choose accordingly."
  default     = "zsi"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix: 3 to 32 lower-case letters, digits and '-', starting with a letter (it names an S3 bucket)."
  }
}

variable "tags" {
  type        = map(string)
  description = "Extra tags on every resource (provider default_tags; Project, Stack and ManagedBy are always set)."
  default     = {}
}

variable "image_tag" {
  type        = string
  description = "Tag of the images to deploy, the same in every repository (the commit they were built from). Tags are immutable."

  validation {
    condition     = var.image_tag != "latest" && length(var.image_tag) > 0
    error_message = "image_tag must name one build (for example the git commit), not 'latest'."
  }
}

variable "images_kept" {
  type        = number
  description = "Tagged images kept per repository (older ones are expired)."
  default     = 30
}

# ---------------------------------------------------------------------------------------------
# Logs, retention, alerts
# ---------------------------------------------------------------------------------------------

variable "log_level" {
  type        = string
  description = "LOG_LEVEL of every service."
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of every log group in days."
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ... 3653)."
  }
}

variable "record_retention_days" {
  type        = number
  description = "RECORD_RETENTION_DAYS: a recordings item expires (TTL) this long after its last transition."
  default     = 90
}

variable "raw_audio_retention_days" {
  type        = number
  description = "Days participant audio (raw/) is kept in the media bucket."
  default     = 7
}

variable "merged_audio_retention_days" {
  type        = number
  description = "Days merged audio (merged/) and Amazon Transcribe's transcripts (transcripts/) are kept: long enough for the provider to fetch the audio, for a retry, and for the notifier to read the transcript (it stores the insights it makes under insights/)."
  default     = 30
}

variable "insights_retention_days" {
  type        = number
  description = "Days the insights documents (insights/, behind the emailed links) are kept."
  default     = 400
}

variable "alert_email" {
  type        = string
  description = "Email address subscribed to the operator alerts topic (confirm the subscription email); empty for none."
  default     = ""
}

variable "slots_pinned_alarm_minutes" {
  type        = number
  description = "Alarm when every slot of the speech provider has been in use for this long."
  default     = 30
}

variable "sections_missing_alarm_hours" {
  type        = number
  description = "Alarm when the Bedrock model's insights have lacked sections in every hour for this many hours in a row (1..24)."
  default     = 3

  validation {
    condition     = var.sections_missing_alarm_hours >= 1 && var.sections_missing_alarm_hours <= 24
    error_message = "sections_missing_alarm_hours must be between 1 and 24."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Deletion protection of the DynamoDB tables."
  default     = true
}

variable "secret_recovery_window_days" {
  type        = number
  description = "Days a deleted secret can still be restored (0 deletes at once; 7..30 otherwise). Its name stays taken meanwhile: a stack re-created with the same name_prefix within the window collides with it (restore-secret, or 0 for throwaway stacks)."
  default     = 7

  validation {
    condition     = var.secret_recovery_window_days == 0 || (var.secret_recovery_window_days >= 7 && var.secret_recovery_window_days <= 30)
    error_message = "secret_recovery_window_days must be 0 (delete at once) or between 7 and 30 (what Secrets Manager accepts)."
  }
}

# ---------------------------------------------------------------------------------------------
# HTTP API and concurrency
# ---------------------------------------------------------------------------------------------

variable "api_throttling_rate_limit" {
  type        = number
  description = "Steady-state requests per second for a route without its own route_settings (each public route has its own)."
  default     = 50
}

variable "api_throttling_burst_limit" {
  type        = number
  description = "Burst above the rate for a route without its own route_settings (each public route has its own)."
  default     = 100
}

variable "webhook_reserved_concurrency" {
  type        = number
  description = "Reserved concurrency of the webhook function: Zoom is always answered, and the table sees at most this many writers."
  default     = 20
}

variable "merger_concurrency" {
  type        = number
  description = "Merges at once in Lambda (reserved concurrency and the merge queue trigger's maximum concurrency, at least 2)."
  default     = 10

  validation {
    condition     = var.merger_concurrency >= 2
    error_message = "merger_concurrency must be at least 2 (the SQS trigger's minimum)."
  }
}

variable "pump_reserved_concurrency" {
  type        = number
  description = "Pumps at once; the slots already bound the speech jobs, this bounds the functions waiting on them."
  default     = 5
}

variable "notifier_concurrency" {
  type        = number
  description = "Notifications at once (reserved concurrency and the notify queue trigger's maximum concurrency, at least 2); keeps under the SES sending rate."
  default     = 5

  validation {
    condition     = var.notifier_concurrency >= 2
    error_message = "notifier_concurrency must be at least 2 (the SQS trigger's minimum)."
  }
}

variable "job_events_concurrency" {
  type        = number
  description = "Transcribe job events handled at once (reserved concurrency of the job-events function and its queue trigger's maximum concurrency, at least 2). Events come as fast as jobs end: a few suffice."
  default     = 2

  validation {
    condition     = var.job_events_concurrency >= 2
    error_message = "job_events_concurrency must be at least 2 (the SQS trigger's minimum)."
  }
}

# ---------------------------------------------------------------------------------------------
# Merging
# ---------------------------------------------------------------------------------------------

variable "audio_layout" {
  type        = string
  description = "AUDIO_LAYOUT: \"compact\" (only the speech, once, in one mono file with a segment map: billed about 1x the meeting) or \"multichannel\" (one channel per speaker, each as long as the meeting: Symbl bills N x)."
  default     = "compact"

  validation {
    condition     = contains(["compact", "multichannel"], var.audio_layout)
    error_message = "audio_layout must be \"compact\" or \"multichannel\"."
  }
}

variable "inline_merge_max_seconds" {
  type        = number
  description = "INLINE_MERGE_MAX_SECONDS: meetings up to this long merge in the Lambda (900 s timeout); longer ones in the Fargate task."
  default     = 7200
}

variable "merger_task_cpu" {
  type        = number
  description = "CPU units of the Fargate merge task (1024 = 1 vCPU)."
  default     = 2048
}

variable "merger_task_memory_mb" {
  type        = number
  description = "Memory of the Fargate merge task in MiB (a valid Fargate combination with merger_task_cpu)."
  default     = 4096
}

variable "merger_task_ephemeral_storage_gib" {
  type        = number
  description = "Ephemeral storage of the Fargate merge task in GiB (21..200): participant audio and the merged file of the longest meeting."
  default     = 100
}

variable "vpc_id" {
  type        = string
  description = "Existing VPC the Fargate merge task runs in."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Subnets of the Fargate merge task (ECS_SUBNETS): private subnets with a NAT gateway (or VPC endpoints plus a route to Zoom)."

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "subnet_ids needs at least one subnet."
  }
}

# ---------------------------------------------------------------------------------------------
# Speech analytics: Symbl, or Amazon Transcribe + Bedrock ("aws")
# ---------------------------------------------------------------------------------------------

variable "speech_provider" {
  type        = string
  description = "SPEECH_PROVIDER: \"symbl\" (Symbl's API, credentials in the symbl-credentials secret) or \"aws\" (Amazon Transcribe for the transcript, a Bedrock model for the insights, in this account and Region: the recordings never leave it). The IAM permissions the AWS provider needs (Transcribe, Bedrock, transcripts/, the transcript key) exist only with \"aws\"."
  default     = "symbl"

  validation {
    condition     = contains(["symbl", "aws"], var.speech_provider)
    error_message = "speech_provider must be \"symbl\" or \"aws\"."
  }
}

variable "symbl_concurrency_limit" {
  type        = number
  description = "SYMBL_CONCURRENCY_LIMIT: Symbl jobs in flight at most (50 on paid plans, 2 on trial): the slots limit, and the slots alarm threshold with speech_provider \"symbl\"."
  default     = 50
}

variable "transcribe_concurrency_limit" {
  type        = number
  description = "TRANSCRIBE_CONCURRENCY_LIMIT: Transcribe jobs in flight at most: the slots limit, and the slots alarm threshold with speech_provider \"aws\". Transcribe's account quota is 250 concurrent batch jobs by default (older documents say 100), shared by everything in the account and Region: leave room for the rest, or raise the quota (Service Quotas) first."
  default     = 100

  validation {
    condition     = var.transcribe_concurrency_limit >= 1
    error_message = "transcribe_concurrency_limit must be at least 1."
  }
}

variable "transcribe_language_code" {
  type        = string
  description = "TRANSCRIBE_LANGUAGE_CODE: the language of the meetings, as Transcribe names it (en-US, en-GB, de-DE, ...)."
  default     = "en-US"

  validation {
    condition     = can(regex("^[a-z]{2,3}-[A-Z]{2}$", var.transcribe_language_code))
    error_message = "transcribe_language_code must look like en-US."
  }
}

variable "bedrock_model_id" {
  type        = string
  description = "BEDROCK_MODEL_ID: the Bedrock model (or cross-Region inference profile: the id with a us., eu., apac., jp. or global. prefix) that writes the insights; it must support forced tool use. Candidates (check the id exists in the Region with `aws bedrock list-foundation-models` / `list-inference-profiles`): amazon.nova-micro-v1:0 (128K context), amazon.nova-lite-v1:0 (300K, the default), amazon.nova-pro-v1:0 (300K), anthropic.claude-haiku-4-5-20251001-v1:0 (200K), anthropic.claude-sonnet-4-5-20250929-v1:0 (200K; global/us/eu/jp profiles). Avoid anthropic.claude-3-5-haiku-20241022-v1:0 (legacy, end of life 2026-06-19). Set bedrock_context_tokens to the model's context window. IAM grants InvokeModel on exactly this model (and, for a profile, the model in every Region the profile routes to)."
  default     = "amazon.nova-lite-v1:0"

  validation {
    condition     = !startswith(var.bedrock_model_id, "arn:") && can(regex("^[a-z0-9][a-z0-9._:-]*$", var.bedrock_model_id))
    error_message = "bedrock_model_id must be a model or inference profile id such as amazon.nova-lite-v1:0 or us.amazon.nova-lite-v1:0 (not an ARN)."
  }
}

variable "bedrock_context_tokens" {
  type        = number
  description = "BEDROCK_CONTEXT_TOKENS: the model's context window in tokens (Nova Lite 300000); long transcripts are summarised in parts that fit it."
  default     = 300000

  validation {
    condition     = var.bedrock_context_tokens >= 2000
    error_message = "bedrock_context_tokens must be at least 2000."
  }
}

variable "bedrock_max_output_tokens" {
  type        = number
  description = "BEDROCK_MAX_OUTPUT_TOKENS: the most output tokens asked of one call (256..64000, at most half of bedrock_context_tokens, or the notifier refuses to start). Nova models write at most 5000 (some documents say 10000)."
  default     = 4096

  validation {
    condition     = var.bedrock_max_output_tokens >= 256 && var.bedrock_max_output_tokens <= 64000
    error_message = "bedrock_max_output_tokens must be between 256 and 64000."
  }
}

# Prices for the dashboard's cost-per-meeting estimate only (nothing is billed by them). Check
# them against the AWS pricing pages of the Region and the model before trusting the number.

variable "transcribe_price_per_minute" {
  type        = number
  description = "USD per minute of audio for Transcribe standard batch jobs. Default 0.024: the us-east-1 tier 1 price (first 250,000 minutes a month) as commonly quoted, NOT confirmed against AWS's pricing page (not retrieved; noted 2026-12-01). Transcribe bills per second of audio; the 15-second minimum per job is unconfirmed."
  default     = 0.024
}

variable "bedrock_input_price_per_million_tokens" {
  type        = number
  description = "USD per million input tokens of the Bedrock model. Default 0.06: Amazon Nova Lite on demand, from a third-party source (pristren.com, noted 2026-12-01); AWS's price page was not retrieved. Nova Micro 0.035, Nova Pro 0.80, Claude Sonnet 4.5 3.00 (Anthropic's list price)."
  default     = 0.06
}

variable "bedrock_output_price_per_million_tokens" {
  type        = number
  description = "USD per million output tokens of the Bedrock model. Default 0.24: Amazon Nova Lite on demand, from a third-party source (pristren.com, noted 2026-12-01); AWS's price page was not retrieved. Nova Micro 0.14, Nova Pro 3.20, Claude Sonnet 4.5 15.00 (Anthropic's list price)."
  default     = 0.24
}

# ---------------------------------------------------------------------------------------------
# Email
# ---------------------------------------------------------------------------------------------

variable "ses_identity" {
  type        = string
  description = "SES sending identity: a domain (example.com; publish the DKIM records) or one address (insights@example.com; click the verification link)."
}

variable "email_from_address" {
  type        = string
  description = "From address of the summary emails; must belong to ses_identity."
}

variable "notify_extra_recipients" {
  type        = list(string)
  description = "Addresses that receive every summary email besides the meeting host."
  default     = []
}

# ---------------------------------------------------------------------------------------------
# HTTP API: each route's own throttle (requests per second, and the burst above it)
# ---------------------------------------------------------------------------------------------

variable "api_zoom_webhook_rate_limit" {
  type        = number
  description = "Steady-state requests per second POST /zoom/webhook accepts; no other route spends it."
  default     = 50
}

variable "api_zoom_webhook_burst_limit" {
  type        = number
  description = "Burst of requests POST /zoom/webhook accepts above its rate."
  default     = 100
}

variable "api_symbl_callback_rate_limit" {
  type        = number
  description = "Steady-state requests per second POST /symbl/callback/{secret} accepts (a callback is a hint; the reconciler settles any job whose callback was refused)."
  default     = 10
}

variable "api_symbl_callback_burst_limit" {
  type        = number
  description = "Burst of requests POST /symbl/callback/{secret} accepts above its rate (with the page's and the health check's, below webhook_reserved_concurrency)."
  default     = 10
}

variable "api_insights_page_rate_limit" {
  type        = number
  description = "Steady-state requests per second GET /meetings/{uuid+} (the insights page) accepts."
  default     = 5
}

variable "api_insights_page_burst_limit" {
  type        = number
  description = "Burst of requests GET /meetings/{uuid+} accepts above its rate (with the callback's and the health check's, below webhook_reserved_concurrency)."
  default     = 5
}

variable "api_healthz_rate_limit" {
  type        = number
  description = "Steady-state requests per second GET /healthz accepts."
  default     = 1
}

variable "api_healthz_burst_limit" {
  type        = number
  description = "Burst of requests GET /healthz accepts above its rate (with the callback's and the page's, below webhook_reserved_concurrency)."
  default     = 2
}
