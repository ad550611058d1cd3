variable "name" {
  description = "Name prefix for instances and the key pair."
  type        = string
}

variable "ami_id" {
  description = "AMI for every host (a Debian 12 image; the Ansible roles target Debian)."
  type        = string

  validation {
    condition     = can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id must be an AMI id like ami-0123456789abcdef0."
  }
}

variable "ssh_public_key" {
  description = "OpenSSH public key installed for the login user (the private key never enters Terraform)."
  type        = string

  validation {
    condition     = can(regex("^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+", var.ssh_public_key))
    error_message = "ssh_public_key must be one OpenSSH public key line (ssh-ed25519, ssh-rsa or ecdsa-sha2-*)."
  }
}

variable "public_groups" {
  description = "Groups whose hosts get a public IPv4 address (in public_subnet_ids)."
  type        = list(string)
  default     = ["brokers", "gateways", "agents", "monitoring"]
}

variable "public_subnet_ids" {
  description = "Subnets for the hosts of public_groups; empty: subnet_ids."
  type        = list(string)
  default     = []
}

variable "subnet_ids" {
  description = "Subnets to spread hosts over (round robin per group); the private ones for groups not in public_groups."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "subnet_ids must list at least one subnet."
  }
}

variable "security_group_ids" {
  description = "Security group id per group: keys brokers, gateways, agents, monitoring."
  type        = map(string)

  validation {
    condition     = alltrue([for g in ["brokers", "gateways", "agents", "monitoring"] : contains(keys(var.security_group_ids), g)])
    error_message = "security_group_ids must have the keys brokers, gateways, agents and monitoring."
  }
}

variable "broker_instance_profile" {
  description = "Instance profile for brokers (the only hosts with an IAM role)."
  type        = string
}

variable "broker_count" {
  description = "Number of brokers: 1 (single node) or 3 (a KRaft quorum that survives one failure)."
  type        = number
  default     = 1

  validation {
    condition     = contains([1, 3], var.broker_count)
    error_message = "broker_count must be 1 or 3."
  }
}

variable "gateway_count" {
  description = "Number of UDP gateways."
  type        = number
  default     = 1

  validation {
    condition     = var.gateway_count >= 1 && var.gateway_count <= 20 && floor(var.gateway_count) == var.gateway_count
    error_message = "gateway_count must be a whole number from 1 to 20."
  }
}

variable "agent_count" {
  description = "Number of burst simulator agent hosts."
  type        = number
  default     = 2

  validation {
    condition     = var.agent_count >= 0 && var.agent_count <= 100 && floor(var.agent_count) == var.agent_count
    error_message = "agent_count must be a whole number from 0 to 100."
  }
}

variable "instance_types" {
  description = "EC2 instance type per group (keys brokers, gateways, agents, monitoring)."
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

  validation {
    condition     = alltrue([for t in values(var.instance_types) : can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", t))])
    error_message = "instance_types values must be EC2 types like m6i.large."
  }
}

variable "root_volume_gb" {
  description = "Root volume size in GiB per group (keys brokers, gateways, agents, monitoring)."
  type = object({
    brokers    = number
    gateways   = number
    agents     = number
    monitoring = number
  })
  default = {
    brokers    = 40
    gateways   = 20
    agents     = 20
    monitoring = 40
  }

  validation {
    condition     = alltrue([for v in values(var.root_volume_gb) : v >= 8 && v <= 1024])
    error_message = "root_volume_gb values must be between 8 and 1024."
  }
}

variable "detailed_monitoring" {
  description = "1-minute EC2 CloudWatch metrics (billed per instance per month; Prometheus already scrapes every host)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
