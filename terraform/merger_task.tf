# Long merges: the ECS cluster and the Fargate task the merger Lambda starts with ecs:RunTask
# when a meeting is longer than INLINE_MERGE_MAX_SECONDS (or its audio larger than the Lambda's
# /tmp). The task runs `python -m services.merger.task`, which calls the same merge function.

resource "aws_ecs_cluster" "this" {
  name = var.name_prefix

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

module "merger_task" {
  source = "./modules/fargate_task"

  family                = "${var.name_prefix}-merger-task"
  image_uri             = local.image_uris["merger-task"]
  image_repository_arn  = aws_ecr_repository.images["merger-task"].arn
  container_name        = "merger"
  command               = ["python", "-m", "services.merger.task"]
  cpu                   = var.merger_task_cpu
  memory_mb             = var.merger_task_memory_mb
  ephemeral_storage_gib = var.merger_task_ephemeral_storage_gib
  environment           = local.merger_task_environment
  log_retention_days    = var.log_retention_days
  log_kms_key_arn       = aws_kms_key.observability.arn
  vpc_id                = var.vpc_id

  # The same capabilities as the merger Lambda, less starting tasks and consuming the queue.
  task_policy_documents = {
    "recordings-table" = data.aws_iam_policy_document.merger_recordings_table.json
    "media-audio"      = data.aws_iam_policy_document.merger_media_audio.json
    "enqueue-submit"   = data.aws_iam_policy_document.merger_enqueue_submit.json
    "read-secrets"     = data.aws_iam_policy_document.merger_read_secrets.json
    "nudge-pump"       = data.aws_iam_policy_document.merger_nudge_pump.json
    "table-key"        = data.aws_iam_policy_document.dynamodb_table_key.json
  }
}
