variable "name" {
  description = "Name prefix of the broker role, policy and instance profile."
  type        = string
}

variable "bucket_arns" {
  description = "ARNs of the AutoMQ buckets the brokers may use, keyed data / ops (validated by modules/policies)."
  type        = map(string)
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
