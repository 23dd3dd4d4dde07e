# State and media: the recordings table, the speech-job slots table and the media bucket.

# One item per Zoom meeting instance (services/core/recordings.py); the shape equals
# sandbox/aws_resources.py RECORDINGS_TABLE_SCHEMA, which the contract test checks.
#
# Both tables are encrypted with the stack's customer managed key (main.tf): recordings items hold
# host emails. Each role that reads or writes a table may decrypt with that key only through DynamoDB
# (iam.tf, dynamodb_table_key).
resource "aws_dynamodb_table" "recordings" {
  name                        = "${var.name_prefix}-recordings"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "meeting_uuid"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "meeting_uuid"
    type = "S"
  }

  attribute {
    name = "state"
    type = "S"
  }

  attribute {
    name = "state_since"
    type = "S"
  }

  attribute {
    name = "job_id"
    type = "S"
  }

  # The reconciler lists a state oldest first.
  global_secondary_index {
    name            = "by-state"
    hash_key        = "state"
    range_key       = "state_since"
    projection_type = "KEYS_ONLY"
  }

  # A provider's job (a Symbl job id, a Transcribe job name) leads to its meeting: Transcribe's
  # job events name only the job.
  global_secondary_index {
    name            = "by-job"
    hash_key        = "job_id"
    projection_type = "KEYS_ONLY"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.observability.arn
  }
}

# Speech-job slots: one item per provider ("symbl", "aws") holds its jobs in flight with their
# lease deadlines.
resource "aws_dynamodb_table" "slots" {
  name                        = "${var.name_prefix}-slots"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.observability.arn
  }
}

# raw/ participant audio, merged/ the file the provider reads (Symbl by presigned URL, Transcribe
# from S3 with the pump's rights), transcripts/ Transcribe's output (encrypted with the transcript
# key, speech.tf), insights/ the insights documents behind the emailed links.
resource "aws_s3_bucket" "media" {
  #checkov:skip=CKV_AWS_18: server access logs would need a second bucket; S3 data events in CloudTrail are the account's audit trail
  #checkov:skip=CKV_AWS_144: media is transient and can be fetched again from Zoom; insights can be made again from it
  #checkov:skip=CKV_AWS_145: SSE-S3: presigned URLs handed to Symbl then depend on no KMS grant; the bucket is private and TLS-only
  #checkov:skip=CKV2_AWS_62: no consumer of bucket events: the pipeline is driven by its queues
  bucket        = "${var.name_prefix}-media"
  force_destroy = false
}

resource "aws_s3_bucket_public_access_block" "media" {
  bucket                  = aws_s3_bucket.media.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "media" {
  bucket = aws_s3_bucket.media.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "media" {
  bucket = aws_s3_bucket.media.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_versioning" "media" {
  bucket = aws_s3_bucket.media.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "media" {
  bucket = aws_s3_bucket.media.id

  rule {
    id     = "expire-raw-participant-audio"
    status = "Enabled"

    filter {
      prefix = local.media_prefixes.raw
    }

    expiration {
      days = var.raw_audio_retention_days
    }
  }

  rule {
    id     = "expire-merged-audio"
    status = "Enabled"

    filter {
      prefix = local.media_prefixes.merged
    }

    expiration {
      days = var.merged_audio_retention_days
    }
  }

  # Transcribe's transcripts: kept as long as the merged audio they were made from (the same
  # variable; the insights made from them live on under insights/).
  rule {
    id     = "expire-transcripts"
    status = "Enabled"

    filter {
      prefix = local.media_prefixes.transcripts
    }

    expiration {
      days = var.merged_audio_retention_days
    }
  }

  rule {
    id     = "expire-insights"
    status = "Enabled"

    filter {
      prefix = local.media_prefixes.insights
    }

    expiration {
      days = var.insights_retention_days
    }
  }

  # Versioning keeps overwritten and expired objects as noncurrent versions: drop them soon, so
  # that expiry really deletes; resumable uploads that were never finished go too.
  rule {
    id     = "clean-up-versions-and-uploads"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = 1
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 2
    }

    expiration {
      expired_object_delete_marker = true
    }
  }

  depends_on = [aws_s3_bucket_versioning.media]
}

# Deny only: requests without TLS, or with TLS older than 1.2. Transcribe reads merged/ and writes
# transcripts/ with the pump's credentials over TLS 1.2 or later, so nothing here blocks it; no
# statement for a Transcribe principal is needed (its docs ask none of a bucket in the account).
data "aws_iam_policy_document" "media_bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.media.arn, "${aws_s3_bucket.media.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "DenyOutdatedTls"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.media.arn, "${aws_s3_bucket.media.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }
}

resource "aws_s3_bucket_policy" "media" {
  bucket = aws_s3_bucket.media.id
  policy = data.aws_iam_policy_document.media_bucket.json

  # A bucket policy is refused while the public access block is being written.
  depends_on = [aws_s3_bucket_public_access_block.media]
}
