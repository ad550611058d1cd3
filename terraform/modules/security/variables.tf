variable "name" {
  description = "Name prefix for the security groups."
  type        = string
}

variable "vpc_id" {
  description = "VPC the security groups belong to."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR of that VPC (egress to it is open)."
  type        = string
}

variable "admin_cidrs" {
  description = "Operator networks allowed to SSH and to open the metrics, Prometheus, Grafana and agent API ports (no /0)."
  type        = list(string)
}

variable "device_cidrs" {
  description = "Networks IoT devices send UDP telemetry from."
  type        = list(string)
  default     = []
}

variable "ports" {
  description = "Service ports (see modules/security_rules for the keys and defaults)."
  type        = map(number)
  default     = {}
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
