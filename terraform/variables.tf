variable "name" {
  description = "Deployment name: prefix of every resource name and the default bucket names."
  type        = string
  default     = "iot-burst-pilot"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}$", var.name))
    error_message = "name must be 3-31 characters of a-z, 0-9 and '-', starting with a letter."
  }
}

variable "region" {
  description = "AWS region for every resource, e.g. eu-west-1."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", var.region))
    error_message = "region must look like an AWS region, e.g. eu-west-1."
  }
}

variable "availability_zones" {
  description = "AZs for the created subnets; empty uses <region>a."
  type        = list(string)
  default     = []
}

variable "existing_vpc_id" {
  description = "Deploy into this VPC instead of creating one (then set existing_subnet_ids)."
  type        = string
  default     = ""
}

variable "existing_subnet_ids" {
  description = "Subnets of existing_vpc_id for the hosts."
  type        = list(string)
  default     = []
}

variable "vpc_cidr" {
  description = "CIDR of the VPC to create."
  type        = string
  default     = "10.42.0.0/16"
}

variable "admin_cidrs" {
  description = "Operator networks (SSH, metrics, Prometheus, Grafana, agent API). No /0 allowed."
  type        = list(string)
}

variable "device_cidrs" {
  description = "Networks IoT devices send UDP telemetry from."
  type        = list(string)
  default     = []
}

variable "ami_id" {
  description = "Debian 12 AMI id in the chosen region."
  type        = string
}

variable "ssh_public_key" {
  description = "OpenSSH public key for the login user; keep the private key outside the repository."
  type        = string
}

variable "ssh_user" {
  description = "Login user of the AMI (Debian: admin)."
  type        = string
  default     = "admin"
}

variable "ssh_private_key_file" {
  description = "Private key path written into the inventory as ansible_ssh_private_key_file; empty to rely on ssh-agent."
  type        = string
  default     = ""
}

variable "broker_count" {
  description = "Brokers: 1 or 3."
  type        = number
  default     = 1

  validation {
    condition     = contains([1, 3], var.broker_count)
    error_message = "broker_count must be 1 or 3 (KRaft quorum of 1 or 3 voters)."
  }
}

variable "gateway_count" {
  description = "UDP gateway hosts (1-20)."
  type        = number
  default     = 1
}

variable "agent_count" {
  description = "Burst simulator agent hosts (0-100)."
  type        = number
  default     = 2
}

variable "instance_types" {
  description = "EC2 instance type per group."
  type = object({
    brokers    = string
    gateways   = string
    agents     = string
    monitoring = string
  })
  default = {
    brokers    = "m6i.large"
    gateways   = "c6i.large"
    agents     = "c6i.large"
    monitoring = "t3.medium"
  }
}

variable "assign_public_ip" {
  description = "Give hosts public IPv4 addresses (false for VPN/bastion access)."
  type        = bool
  default     = true
}

variable "data_bucket_name" {
  description = "AutoMQ data bucket name; empty derives <name>-automq-data-<account id>."
  type        = string
  default     = ""
}

variable "ops_bucket_name" {
  description = "AutoMQ ops bucket name; empty derives <name>-automq-ops-<account id>."
  type        = string
  default     = ""
}

variable "force_destroy_buckets" {
  description = "Allow destroy to delete non-empty buckets (test environments only)."
  type        = bool
  default     = false
}

variable "ops_expiration_days" {
  description = "Expire ops bucket objects after this many days."
  type        = number
  default     = 30
}

variable "ports" {
  description = "Service ports the security groups open and the inventory hands to the roles; defaults match the roles."
  type = object({
    kafka          = optional(number, 9092)
    controller     = optional(number, 9093)
    internal       = optional(number, 9094)
    gateway_udp    = optional(number, 5000)
    gateway_http   = optional(number, 8080)
    agent_api      = optional(number, 9510)
    broker_metrics = optional(number, 9090)
    broker_jmx     = optional(number, 7071)
    node_exporter  = optional(number, 9100)
    prometheus     = optional(number, 9090)
    grafana        = optional(number, 3000)
  })
  default = {}

  validation {
    condition     = alltrue([for p in values(var.ports) : p >= 1 && p <= 65535 && floor(p) == p])
    error_message = "every port must be a whole number from 1 to 65535."
  }
}

variable "broker_flavor" {
  description = "automq role flavor on the brokers: automq (data in the S3 buckets) or kafka (Apache Kafka, local disk)."
  type        = string
  default     = "automq"
}

variable "aws_endpoints" {
  description = "Custom AWS API endpoints (keys ec2, s3, iam, sts) for an emulator such as moto; empty for real AWS."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.aws_endpoints : contains(["ec2", "s3", "iam", "sts"], k) && can(regex("^https?://", v))])
    error_message = "aws_endpoints keys must be ec2, s3, iam or sts and values http(s):// URLs."
  }
}

variable "tags" {
  description = "Extra tags for every resource (Project and Deployment are always set)."
  type        = map(string)
  default     = {}
}
