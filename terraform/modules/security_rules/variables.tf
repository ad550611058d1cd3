variable "admin_cidrs" {
  description = "Operator networks: SSH and the web/metrics ports. No /0."
  type        = list(string)

  validation {
    condition     = length(var.admin_cidrs) > 0 && alltrue([for c in var.admin_cidrs : can(cidrnetmask(c)) && !endswith(c, "/0")])
    error_message = "admin_cidrs must list at least one IPv4 CIDR and none may be a /0 (the whole internet)."
  }
}

variable "device_cidrs" {
  description = "Networks IoT devices send UDP telemetry from (may be empty, may include 0.0.0.0/0 for field devices)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.device_cidrs : can(cidrnetmask(c))])
    error_message = "device_cidrs must hold IPv4 CIDRs such as 203.0.113.0/24."
  }
}

variable "vpc_cidr" {
  description = "CIDR of the VPC (egress to it is open: DNS resolver, the other hosts)."
  type        = string

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr))
    error_message = "vpc_cidr must be an IPv4 CIDR."
  }
}

variable "ports" {
  description = "Service ports; the defaults match the Ansible roles' defaults."
  type = object({
    kafka          = optional(number, 9092)
    controller     = optional(number, 9093)
    internal       = optional(number, 9094)
    gateway_udp    = optional(number, 5000)
    gateway_http   = optional(number, 8080)
    agent_api      = optional(number, 9510)
    agent_metrics  = optional(number, 9511)
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
