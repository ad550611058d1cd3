variable "data_bucket_name" {
  description = "Name of the AutoMQ data bucket (stream objects and the S3 WAL)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", var.data_bucket_name))
    error_message = "data_bucket_name must be 3-63 characters of a-z, 0-9 and '-' (no dots, so TLS virtual-host names work)."
  }
}

variable "ops_bucket_name" {
  description = "Name of the AutoMQ ops bucket (metrics, logs, diagnostics)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", var.ops_bucket_name))
    error_message = "ops_bucket_name must be 3-63 characters of a-z, 0-9 and '-' (no dots, so TLS virtual-host names work)."
  }
}

variable "force_destroy" {
  description = "Let `destroy` delete buckets that still hold objects. Off by default so data is never lost by accident."
  type        = bool
  default     = false
}

variable "ops_expiration_days" {
  description = "Days after which objects in the ops bucket expire."
  type        = number
  default     = 30

  validation {
    condition     = var.ops_expiration_days >= 1 && floor(var.ops_expiration_days) == var.ops_expiration_days
    error_message = "ops_expiration_days must be a whole number of days >= 1."
  }
}

variable "abort_multipart_days" {
  description = "Days after which incomplete multipart uploads (AutoMQ writes large objects in parts) are aborted in both buckets."
  type        = number
  default     = 2

  validation {
    condition     = var.abort_multipart_days >= 1 && floor(var.abort_multipart_days) == var.abort_multipart_days
    error_message = "abort_multipart_days must be a whole number of days >= 1."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
