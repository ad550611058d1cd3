variable "brokers" {
  description = "Broker hosts in node-id order. public_ip may be empty (private-only hosts are reached by private_ip)."
  type = list(object({
    name       = string
    public_ip  = string
    private_ip = string
  }))

  validation {
    condition     = contains([1, 3], length(var.brokers))
    error_message = "brokers must list exactly 1 or 3 hosts (a KRaft controller quorum of 1 or 3 voters)."
  }
}

variable "gateways" {
  description = "UDP gateway hosts."
  type = list(object({
    name       = string
    public_ip  = string
    private_ip = string
  }))

  validation {
    condition     = length(var.gateways) >= 1
    error_message = "gateways must list at least one host."
  }
}

variable "agents" {
  description = "Simulator agent hosts (may be empty)."
  type = list(object({
    name       = string
    public_ip  = string
    private_ip = string
  }))
  default = []
}

variable "monitoring" {
  description = "The monitoring host (Prometheus, Grafana, auditor): exactly one."
  type = list(object({
    name       = string
    public_ip  = string
    private_ip = string
  }))

  validation {
    condition     = length(var.monitoring) == 1
    error_message = "monitoring must list exactly one host."
  }
}

variable "first_node_id" {
  description = "KRaft node.id of the first broker; the others count up from it."
  type        = number
  default     = 0

  validation {
    condition     = var.first_node_id >= 0 && floor(var.first_node_id) == var.first_node_id
    error_message = "first_node_id must be a whole number >= 0."
  }
}

variable "s3_data_bucket" {
  description = "Name of the AutoMQ data bucket (s3.data.buckets)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.s3_data_bucket))
    error_message = "s3_data_bucket must be a valid S3 bucket name (3-63 chars of a-z, 0-9, '.', '-')."
  }
}

variable "s3_ops_bucket" {
  description = "Name of the AutoMQ ops bucket (s3.ops.buckets)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.s3_ops_bucket))
    error_message = "s3_ops_bucket must be a valid S3 bucket name (3-63 chars of a-z, 0-9, '.', '-')."
  }
}

variable "s3_region" {
  description = "Region of both buckets, e.g. eu-west-1."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", var.s3_region))
    error_message = "s3_region must look like an AWS region, e.g. eu-west-1."
  }
}

variable "s3_endpoint" {
  description = "S3 endpoint URL for non-AWS object stores; empty for AWS (the role derives it from the region)."
  type        = string
  default     = ""

  validation {
    condition     = var.s3_endpoint == "" || can(regex("^https?://", var.s3_endpoint))
    error_message = "s3_endpoint must be empty (AWS) or an http(s):// URL."
  }
}

variable "kafka_port" {
  description = "Kafka client listener port on brokers."
  type        = number
  default     = 9092
}

variable "controller_port" {
  description = "KRaft controller listener port on brokers."
  type        = number
  default     = 9093
}

variable "internal_port" {
  description = "Inter-broker listener port (automq role: automq_internal_port)."
  type        = number
  default     = 9094
}

variable "gateway_http_port" {
  description = "Gateway metrics/health HTTP port."
  type        = number
  default     = 8080
}

variable "agent_api_port" {
  description = "Simulator agent control API port (mutual TLS)."
  type        = number
  default     = 9510
}

variable "agent_metrics_port" {
  description = "Simulator agent /metrics port (plain HTTP, read-only)."
  type        = number
  default     = 9511
}

variable "broker_flavor" {
  description = "automq role flavor: automq (AutoMQ, data in S3) or kafka (Apache Kafka, local disk)."
  type        = string
  default     = "automq"

  validation {
    condition     = contains(["automq", "kafka"], var.broker_flavor)
    error_message = "broker_flavor must be automq or kafka."
  }
}

variable "s3_credentials" {
  description = "How brokers authenticate to S3: instance (the instance profile) or static (vaulted keys)."
  type        = string
  default     = "instance"

  validation {
    condition     = contains(["instance", "static"], var.s3_credentials)
    error_message = "s3_credentials must be instance or static."
  }
}

variable "gateway_udp_port" {
  description = "UDP port the gateways listen on for device telemetry."
  type        = number
  default     = 5000
}

variable "ssh_user" {
  description = "SSH login user on every host (Debian cloud images use 'admin')."
  type        = string
  default     = "admin"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]*$", var.ssh_user))
    error_message = "ssh_user must be a valid Unix user name."
  }
}

variable "ssh_private_key_file" {
  description = "Path of the SSH private key Ansible should use; empty leaves it to the SSH agent/config."
  type        = string
  default     = ""
}

variable "cluster_id" {
  description = "Kafka/AutoMQ cluster id (22 characters of URL-safe base64) rendered as automq_cluster_id; empty leaves it to the inventory's group_vars."
  type        = string
  default     = ""

  validation {
    condition     = var.cluster_id == "" || can(regex("^[A-Za-z0-9_][A-Za-z0-9_-]{21}$", var.cluster_id))
    error_message = "cluster_id must be 22 characters of A-Z, a-z, 0-9, '_' and '-', not starting with '-'."
  }
}

variable "bastion_host" {
  description = "Public address of an SSH jump host; hosts without a public address are reached through it (ProxyCommand). Empty: reach them directly (VPN)."
  type        = string
  default     = ""
}

variable "ssh_host_key_checking" {
  description = "OpenSSH StrictHostKeyChecking for every host: accept-new (new cloud hosts: trust on first use, refuse a changed key) or yes."
  type        = string
  default     = "accept-new"

  validation {
    condition     = contains(["accept-new", "yes"], var.ssh_host_key_checking)
    error_message = "ssh_host_key_checking must be accept-new or yes."
  }
}

variable "role_vars" {
  description = "Further variables for every host (all.vars), e.g. release archives, time servers, ports; they may not replace a variable this module sets itself."
  type        = any
  default     = {}
}
