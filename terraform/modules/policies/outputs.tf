output "tls_only_bucket_policies" {
  description = "Bucket policy JSON per bucket key: deny any request without TLS."
  value       = { for k, p in local.tls_only : k => jsonencode(p) }
}

output "broker_s3_policy" {
  description = "Identity policy JSON for the broker role: least-privilege object access to the given buckets."
  value       = jsonencode(local.broker_s3)
}

output "assume_role_ec2_policy" {
  description = "Trust policy JSON letting EC2 instances assume the broker role."
  value       = jsonencode(local.assume_role_ec2)
}
