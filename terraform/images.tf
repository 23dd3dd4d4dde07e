# Container image repositories: one per image. Four Lambda images are built from
# docker/lambda.Dockerfile (SERVICE=webhook|merger|submitter|notifier; the pump and the reconciler
# share the submitter image and differ by image_config.command) and one from
# docker/task.Dockerfile. One repository per image keeps each image's tag history, scan results
# and lifecycle apart, and lets the task's execution role pull its own image only.

locals {
  image_names = toset(["webhook", "merger", "submitter", "notifier", "merger-task"])

  # Every image of a deployment carries the same tag (the commit it was built from).
  image_uris = { for name, repository in aws_ecr_repository.images : name => "${repository.repository_url}:${var.image_tag}" }

  # The function images, read through the repository policy that lets Lambda pull them: the
  # reference orders every function after its repository's policy. Without it Terraform may
  # create a function first; Lambda then adds its own statement to the repository policy
  # (or fails when the deployer may not set one), and the next apply overwrites it and shows drift.
  function_image_uris = { for name, policy in aws_ecr_repository_policy.lambda_images : name => local.image_uris[name] }
}

resource "aws_ecr_repository" "images" {
  for_each = local.image_names

  name                 = "${var.name_prefix}/${each.key}"
  image_tag_mutability = "IMMUTABLE"
  force_delete         = false

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
  }
}

resource "aws_ecr_lifecycle_policy" "images" {
  for_each = aws_ecr_repository.images

  repository = each.value.name
  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Drop untagged layers after a week"
        selection    = { tagStatus = "untagged", countType = "sinceImagePushed", countUnit = "days", countNumber = 7 }
        action       = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep the last ${var.images_kept} tagged images (rollback targets)"
        selection    = { tagStatus = "any", countType = "imageCountMoreThan", countNumber = var.images_kept }
        action       = { type = "expire" }
      },
    ]
  })
}

# Lambda pulls the function images with the service principal; declared here rather than left to
# Lambda to add at function creation, so that the deployer needs no ecr:SetRepositoryPolicy and
# Terraform sees no drift. The task image is pulled by the task's execution role instead.
data "aws_iam_policy_document" "lambda_pulls_images" {
  statement {
    sid     = "LambdaPullsFunctionImages"
    actions = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }

    condition {
      test     = "StringLike"
      variable = "aws:sourceArn"
      values   = ["arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${var.name_prefix}-*"]
    }
  }
}

resource "aws_ecr_repository_policy" "lambda_images" {
  for_each = setsubtract(local.image_names, ["merger-task"])

  repository = aws_ecr_repository.images[each.key].name
  policy     = data.aws_iam_policy_document.lambda_pulls_images.json
}
