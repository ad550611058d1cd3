locals {
  buckets = {
    data = aws_s3_bucket.data
    ops  = aws_s3_bucket.ops
  }
}

resource "aws_s3_bucket" "data" {
  #checkov:skip=CKV_AWS_144:Cross-region replication is out of scope: the pilot's data is reproducible test traffic.
  #checkov:skip=CKV2_AWS_62:No consumer for bucket event notifications; AutoMQ reads its objects directly.
  #checkov:skip=CKV_AWS_18:Server access logging is not kept for a short-lived pilot; CloudTrail covers API access.
  #checkov:skip=CKV_AWS_21:AutoMQ compacts and deletes its own stream objects; versions would only keep garbage (the ops bucket is versioned).
  bucket        = var.data_bucket_name
  force_destroy = var.force_destroy

  tags = merge(var.tags, { Name = var.data_bucket_name, Purpose = "automq-data" })
}

resource "aws_s3_bucket" "ops" {
  #checkov:skip=CKV_AWS_144:Cross-region replication is out of scope: ops data (metrics, logs) is short-lived.
  #checkov:skip=CKV2_AWS_62:No consumer for bucket event notifications.
  #checkov:skip=CKV_AWS_18:Server access logging is not kept for a short-lived pilot; CloudTrail covers API access.
  bucket        = var.ops_bucket_name
  force_destroy = var.force_destroy

  tags = merge(var.tags, { Name = var.ops_bucket_name, Purpose = "automq-ops" })
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = local.buckets

  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = local.buckets

  bucket = each.value.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = local.buckets

  bucket = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      # The AWS managed key (aws/s3): no key policy to maintain; bucket keys keep KMS calls low.
      sse_algorithm = "aws:kms"
    }
    bucket_key_enabled = true
  }
}

# Versioning only on ops. The data bucket holds AutoMQ's stream objects, which AutoMQ itself
# compacts and deletes; keeping old versions would only grow the bill.
resource "aws_s3_bucket_versioning" "ops" {
  bucket = aws_s3_bucket.ops.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "ops" {
  bucket = aws_s3_bucket.ops.id

  rule {
    id     = "expire-ops-data"
    status = "Enabled"
    filter {}

    expiration {
      days = var.ops_expiration_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_multipart_days
    }
  }

  depends_on = [aws_s3_bucket_versioning.ops]
}

resource "aws_s3_bucket_lifecycle_configuration" "data" {
  bucket = aws_s3_bucket.data.id

  rule {
    id     = "abort-incomplete-multipart"
    status = "Enabled"
    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_multipart_days
    }
  }
}

# Policy documents come from the provider-free module policies (tested with `tofu test`).
module "policies" {
  source = "../policies"

  bucket_arns = { for k, b in local.buckets : k => b.arn }
}

resource "aws_s3_bucket_policy" "tls_only" {
  for_each = local.buckets

  bucket = each.value.id
  policy = module.policies.tls_only_bucket_policies[each.key]

  # The public access block must exist first, or S3 may judge the policy against open settings.
  depends_on = [aws_s3_bucket_public_access_block.this]
}
