output "family" {
  description = "Task definition family."
  value       = aws_ecs_task_definition.this.family
}

output "task_definition_arn" {
  description = "ARN of the current task definition revision."
  value       = aws_ecs_task_definition.this.arn
}

output "task_definition_arn_without_revision" {
  description = "ARN of the task definition family (any revision), for IAM conditions and policies."
  value       = aws_ecs_task_definition.this.arn_without_revision
}

output "container_name" {
  description = "Name of the task's container."
  value       = var.container_name
}

output "task_role_arn" {
  description = "ARN of the task role (the code's permissions)."
  value       = aws_iam_role.task.arn
}

output "execution_role_arn" {
  description = "ARN of the execution role (image pull and logs, used by the ECS agent)."
  value       = aws_iam_role.execution.arn
}

output "security_group_id" {
  description = "Security group for the task's network interface (egress HTTPS only)."
  value       = aws_security_group.this.id
}

output "log_group_name" {
  description = "Name of the task's CloudWatch log group."
  value       = aws_cloudwatch_log_group.this.name
}
