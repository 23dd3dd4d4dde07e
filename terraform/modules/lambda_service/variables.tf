variable "function_name" {
  type        = string
  description = "Name of the Lambda function; also names its IAM role and its log group (/aws/lambda/<name>)."

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,64}$", var.function_name))
    error_message = "function_name: letters, digits, '-' and '_' only, at most 64 characters (it is also the role name)."
  }
}

variable "description" {
  type        = string
  description = "What the function does, shown in the console."
  default     = ""
}

variable "image_uri" {
  type        = string
  description = "Container image of the function: <repository url>:<tag> or @<digest>."
}

variable "image_command" {
  type        = list(string)
  description = "The image CMD override: one element, the handler as module.function (for example services.webhook.handler.lambda_handler)."

  validation {
    condition     = length(var.image_command) == 1
    error_message = "image_command must hold exactly one handler (module.function)."
  }
}

variable "architecture" {
  type        = string
  description = "Instruction set of the image: x86_64 or arm64."
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "timeout_seconds" {
  type        = number
  description = "Function timeout in seconds. A queue consumed by this function needs a visibility timeout of at least six times this."

  validation {
    condition     = var.timeout_seconds >= 1 && var.timeout_seconds <= 900
    error_message = "timeout_seconds must be between 1 and 900."
  }
}

variable "memory_mb" {
  type        = number
  description = "Memory in MB (CPU grows with it: about one vCPU per 1769 MB)."

  validation {
    condition     = var.memory_mb >= 128 && var.memory_mb <= 10240
    error_message = "memory_mb must be between 128 and 10240."
  }
}

variable "ephemeral_storage_mb" {
  type        = number
  description = "Size of /tmp in MB."
  default     = 512

  validation {
    condition     = var.ephemeral_storage_mb >= 512 && var.ephemeral_storage_mb <= 10240
    error_message = "ephemeral_storage_mb must be between 512 and 10240."
  }
}

variable "reserved_concurrency" {
  type        = number
  description = "Reserved concurrent executions: both a guarantee and a cap for this function."

  validation {
    condition     = var.reserved_concurrency >= 1
    error_message = "reserved_concurrency must be at least 1."
  }
}

variable "environment" {
  type        = map(string)
  description = "Environment variables: exactly what the function's settings class reads, plus POWERTOOLS_* for logging and metrics. Names, ARNs and URLs only, never secret values."
}

variable "policy_documents" {
  type        = map(string)
  description = "IAM policy documents (JSON) attached to the function's role as inline policies, keyed by capability (for example read-recordings)."
}

variable "extra_policy_documents" {
  type        = map(string)
  description = "More capability documents like policy_documents, for those the caller attaches only in some configurations (for example only with one speech provider): a map that may be empty. Its keys must differ from policy_documents'."
  default     = {}
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the function's log group in days."
}

variable "log_kms_key_arn" {
  type        = string
  description = "KMS key that encrypts the function's log group."
}

variable "tracing_mode" {
  type        = string
  description = "X-Ray tracing mode: PassThrough (trace only when the caller sampled) or Active (adds the X-Ray write permissions)."
  default     = "PassThrough"

  validation {
    condition     = contains(["PassThrough", "Active"], var.tracing_mode)
    error_message = "tracing_mode must be PassThrough or Active."
  }
}

variable "sqs_event_source" {
  type = object({
    queue_arn                       = string
    batch_size                      = number
    maximum_batching_window_seconds = number
    maximum_concurrency             = number
  })
  description = "SQS queue that triggers the function (per-message failures reported with ReportBatchItemFailures), or null for none. maximum_concurrency (2..1000) should not exceed reserved_concurrency, so that the queue is never throttled into its DLQ."
  default     = null
}

variable "async_retry_attempts" {
  type        = number
  description = "Retries of a failed asynchronous invocation (0..2)."
  default     = 2

  validation {
    condition     = var.async_retry_attempts >= 0 && var.async_retry_attempts <= 2
    error_message = "async_retry_attempts must be 0, 1 or 2."
  }
}

variable "async_max_event_age_seconds" {
  type        = number
  description = "How long an asynchronous invocation may wait (throttled or retried) before it is dropped (60..21600)."
  default     = 21600

  validation {
    condition     = var.async_max_event_age_seconds >= 60 && var.async_max_event_age_seconds <= 21600
    error_message = "async_max_event_age_seconds must be between 60 and 21600."
  }
}
