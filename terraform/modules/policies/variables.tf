variable "bucket_arns" {
  description = "ARNs of the AutoMQ buckets, keyed by role (data, ops)."
  type        = map(string)

  validation {
    condition     = length(var.bucket_arns) > 0 && alltrue([for a in values(var.bucket_arns) : can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]+[a-z0-9]$", a))])
    error_message = "bucket_arns values must be bucket ARNs like arn:aws:s3:::my-bucket (no object paths, no wildcards)."
  }
}
