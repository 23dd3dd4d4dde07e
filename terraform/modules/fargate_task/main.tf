# A Fargate task definition started on demand with ecs:RunTask: its two roles (execution: pull and
# log; task: what the code does), its log group, and a security group that only lets HTTPS out.

data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338: operational logs kept for var.log_retention_days (30 by default); the audit trail is CloudTrail's
  name              = "/ecs/${var.family}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
}

data "aws_iam_policy_document" "assume" {
  statement {
    sid     = "EcsTasksAssumeRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

# Execution role: used by the ECS agent to start the container, never by the code.
resource "aws_iam_role" "execution" {
  name               = "${var.family}-execution"
  description        = "ECS execution role of the ${var.family} task: image pull and logs"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

data "aws_iam_policy_document" "pull_image" {
  statement {
    sid = "PullTaskImage"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = [var.image_repository_arn]
  }

  statement {
    sid = "GetRegistryToken"
    # GetAuthorizationToken has no resource-level permissions.
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }
}

data "aws_iam_policy_document" "write_logs" {
  statement {
    sid       = "WriteOwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }
}

resource "aws_iam_role_policy" "execution" {
  for_each = {
    "pull-image" = data.aws_iam_policy_document.pull_image.json
    "write-logs" = data.aws_iam_policy_document.write_logs.json
  }

  name   = each.key
  role   = aws_iam_role.execution.id
  policy = each.value
}

# Task role: the code's own permissions, one inline policy per capability.
resource "aws_iam_role" "task" {
  name               = "${var.family}-task"
  description        = "ECS task role of the ${var.family} task"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

resource "aws_iam_role_policy" "task" {
  for_each = var.task_policy_documents

  name   = each.key
  role   = aws_iam_role.task.id
  policy = each.value
}

resource "aws_ecs_task_definition" "this" {
  family                   = var.family
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory_mb
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  ephemeral_storage {
    size_in_gib = var.ephemeral_storage_gib
  }

  # A bind mount on the task's ephemeral storage: the only writable place in the container.
  volume {
    name = "scratch"
  }

  container_definitions = jsonencode([
    {
      name                   = var.container_name
      image                  = var.image_uri
      essential              = true
      command                = var.command
      readonlyRootFilesystem = true
      environment            = [for name in sort(keys(var.environment)) : { name = name, value = var.environment[name] }]
      mountPoints            = [{ sourceVolume = "scratch", containerPath = var.scratch_path, readOnly = false }]
      linuxParameters        = { initProcessEnabled = true }
      stopTimeout            = 60
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.this.name
          awslogs-region        = data.aws_region.current.name
          awslogs-stream-prefix = var.container_name
        }
      }
    }
  ])

  depends_on = [aws_iam_role_policy.execution]
}

resource "aws_security_group" "this" {
  #checkov:skip=CKV2_AWS_5: attached at run time: the merger passes it to ecs:RunTask (ECS_SECURITY_GROUPS)
  name        = var.family
  description = "${var.family} Fargate task: no inbound, HTTPS out only"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_egress_rule" "https_ipv4" {
  security_group_id = aws_security_group.this.id
  description       = "HTTPS to Zoom, AWS APIs (S3, DynamoDB, SQS, Lambda, Secrets Manager, ECR, CloudWatch Logs)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "https_ipv6" {
  security_group_id = aws_security_group.this.id
  description       = "HTTPS over IPv6, for dual-stack subnets"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv6         = "::/0"
}
