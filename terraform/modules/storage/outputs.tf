output "data_bucket" {
  description = "Name of the AutoMQ data bucket."
  value       = aws_s3_bucket.data.id
}

output "ops_bucket" {
  description = "Name of the AutoMQ ops bucket."
  value       = aws_s3_bucket.ops.id
}

output "bucket_arns" {
  description = "ARNs of both buckets, keyed data / ops (for the broker IAM policy)."
  value       = { for k, b in local.buckets : k => b.arn }
}

output "bucket_policies" {
  description = "The TLS-only bucket policy JSON per bucket, keyed data / ops."
  value       = module.policies.tls_only_bucket_policies
}
