variable "family" {
  type        = string
  description = "Task definition family; also names the roles (<family>-task, <family>-execution), the log group (/ecs/<family>) and the security group."
}

variable "image_uri" {
  type        = string
  description = "Container image: <repository url>:<tag> or @<digest>."
}

variable "image_repository_arn" {
  type        = string
  description = "ARN of the ECR repository the image is pulled from (the execution role may pull from it only)."
}

variable "container_name" {
  type        = string
  description = "Name of the task's only container (RunTask overrides address it by this name)."
  default     = "merger"
}

variable "command" {
  type        = list(string)
  description = "Container command."
  default     = ["python", "-m", "services.merger.task"]
}

variable "cpu" {
  type        = number
  description = "Task CPU units (1024 = 1 vCPU); must be a Fargate combination with memory_mb."
  default     = 2048
}

variable "memory_mb" {
  type        = number
  description = "Task memory in MiB; must be a Fargate combination with cpu."
  default     = 4096
}

variable "cpu_architecture" {
  type        = string
  description = "X86_64 or ARM64, matching the image."
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "ephemeral_storage_gib" {
  type        = number
  description = "Task ephemeral storage in GiB (21..200); the scratch volume lives on it."
  default     = 100

  validation {
    condition     = var.ephemeral_storage_gib >= 21 && var.ephemeral_storage_gib <= 200
    error_message = "ephemeral_storage_gib must be between 21 and 200."
  }
}

variable "scratch_path" {
  type        = string
  description = "Where the writable scratch volume is mounted (the root filesystem is read-only)."
  default     = "/tmp"
}

variable "environment" {
  type        = map(string)
  description = "Environment variables: exactly what the task's settings class reads, plus POWERTOOLS_*. Names, ARNs and URLs only."
}

variable "task_policy_documents" {
  type        = map(string)
  description = "IAM policy documents (JSON) for the task role (what the code may do), keyed by capability."
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the task's log group in days."
}

variable "log_kms_key_arn" {
  type        = string
  description = "KMS key that encrypts the task's log group."
}

variable "vpc_id" {
  type        = string
  description = "VPC of the subnets the task runs in."
}
