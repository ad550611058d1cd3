variable "broker_count" {
  description = "Brokers: 1 or 3."
  type        = number

  validation {
    condition     = contains([1, 3], var.broker_count)
    error_message = "broker_count must be 1 or 3 (a KRaft quorum of 1 or 3 voters)."
  }
}

variable "gateway_count" {
  description = "UDP gateways (1-20)."
  type        = number

  validation {
    condition     = var.gateway_count >= 1 && var.gateway_count <= 20 && floor(var.gateway_count) == var.gateway_count
    error_message = "gateway_count must be a whole number from 1 to 20."
  }
}

variable "agent_count" {
  description = "Simulator agent hosts (0-100)."
  type        = number

  validation {
    condition     = var.agent_count >= 0 && var.agent_count <= 100 && floor(var.agent_count) == var.agent_count
    error_message = "agent_count must be a whole number from 0 to 100."
  }
}

variable "public_groups" {
  description = "Groups whose hosts get a public address and sit in public_subnet_ids; the others sit in subnet_ids."
  type        = list(string)
  default     = ["brokers", "gateways", "agents", "monitoring"]

  validation {
    condition     = alltrue([for g in var.public_groups : contains(["brokers", "gateways", "agents", "monitoring"], g)])
    error_message = "public_groups may only name brokers, gateways, agents and monitoring."
  }
}

variable "public_subnet_ids" {
  description = "Subnets for the hosts of public_groups, round robin; empty: subnet_ids."
  type        = list(string)
  default     = []
}

variable "subnet_ids" {
  description = "Subnets to spread each group over, round robin (the groups not in public_groups)."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "subnet_ids must list at least one subnet."
  }
}

variable "instance_types" {
  description = "Instance type per group."
  type = object({
    brokers    = string
    gateways   = string
    agents     = string
    monitoring = string
  })
}

variable "root_volume_gb" {
  description = "Root volume GiB per group."
  type = object({
    brokers    = number
    gateways   = number
    agents     = number
    monitoring = number
  })
}

variable "broker_instance_profile" {
  description = "Instance profile for brokers; every other host gets none."
  type        = string
}
