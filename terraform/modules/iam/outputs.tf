output "broker_instance_profile" {
  description = "Name of the instance profile attached to broker instances only."
  value       = aws_iam_instance_profile.broker.name
}

output "broker_role_arn" {
  description = "ARN of the broker role."
  value       = aws_iam_role.broker.arn
}

output "broker_policy_json" {
  description = "The broker's S3 policy document (for review and tests)."
  value       = module.policies.broker_s3_policy
}
