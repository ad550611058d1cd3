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
  description = "Operator networks (SSH, metrics, Prometheus, Grafana, agent API): at most /16 wide each unless allow_wide_admin_cidrs."
  type        = list(string)

  validation {
    condition     = length(var.admin_cidrs) > 0 && alltrue([for c in var.admin_cidrs : can(cidrnetmask(c))])
    error_message = "admin_cidrs must list at least one IPv4 CIDR such as 203.0.113.0/24 (your operator network)."
  }
  validation {
    condition     = var.allow_wide_admin_cidrs || alltrue([for c in var.admin_cidrs : can(cidrnetmask(c)) && tonumber(split("/", c)[1]) >= 16])
    error_message = "Each admin_cidrs entry opens SSH and the agent API to everyone in it: use /16 or narrower (e.g. your office /24 or your address /32), or set allow_wide_admin_cidrs = true if you really mean wider."
  }
}

variable "allow_wide_admin_cidrs" {
  description = "Accept admin_cidrs wider than /16 (0.0.0.0/0 included). Off: a wide admin network is almost always a mistake."
  type        = bool
  default     = false
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
  description = "Give every host a public IPv4 address. False: brokers, gateways and agents sit in private subnets with a NAT gateway for egress; the monitoring host keeps a public address and is the SSH bastion (see bastion)."
  type        = bool
  default     = true
}

variable "bastion" {
  description = "With assign_public_ip = false: keep the monitoring host public and reach the others through it (ProxyCommand in the inventory). False: you reach the private addresses yourself (VPN, Direct Connect)."
  type        = bool
  default     = true
}

variable "nat_gateway" {
  description = "With assign_public_ip = false: create private subnets and a NAT gateway so private hosts reach package mirrors (billed per hour and per GB). False: your VPC provides egress."
  type        = bool
  default     = true
}

variable "detailed_monitoring" {
  description = "1-minute EC2 CloudWatch metrics on every instance (billed per instance; Prometheus scrapes every host anyway)."
  type        = bool
  default     = false
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

variable "broker_flavor" {
  description = "automq role flavor on the brokers: automq (data in the S3 buckets) or kafka (Apache Kafka, local disk)."
  type        = string
  default     = "automq"
}


variable "tags" {
  description = "Extra tags for every resource (Project and Deployment are always set)."
  type        = map(string)
  default     = {}
}

# --- Handed to the Ansible roles through the rendered inventory ------------------------------------

variable "automq_archive_url" {
  description = "AutoMQ release tarball the brokers download (automq flavor); the default is the 1.7.0 release, built on Apache Kafka 3.9.1."
  type        = string
  default     = "https://github.com/AutoMQ/automq/releases/download/1.7.0/automq-1.7.0_kafka-3.9.1.tgz"

  validation {
    condition     = can(regex("^(https?|file)://.+/automq-[0-9][^/]*_kafka-[0-9][^/]*\\.tgz$", var.automq_archive_url))
    error_message = "automq_archive_url must be an http(s):// or file:// URL of an automq-<version>_kafka-<kafka version>.tgz release tarball (a mirror of it is fine)."
  }
}

variable "automq_archive_checksum" {
  description = "sha256:<64 hex> of that tarball (required for the automq flavor: `curl -fsSL <url> | sha256sum`)."
  type        = string
  default     = ""

  validation {
    condition     = var.automq_archive_checksum == "" || can(regex("^sha256:[0-9a-f]{64}$", var.automq_archive_checksum))
    error_message = "automq_archive_checksum must be sha256: followed by 64 lowercase hex digits."
  }
}

variable "time_servers" {
  description = "NTP servers for chrony on every host; the default is the Amazon Time Sync Service (link-local, reachable from every instance whatever the security groups say), which the burst's clock-skew check relies on."
  type        = list(string)
  default     = ["169.254.169.123"]
}

variable "grafana_admin_password_var" {
  description = "Name of the Ansible Vault variable holding Grafana's admin password (put it in ansible/inventories/aws/group_vars/all/vault.yml with ansible-vault)."
  type        = string
  default     = "vault_grafana_admin_password"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]*$", var.grafana_admin_password_var))
    error_message = "grafana_admin_password_var must be an Ansible variable name."
  }
}
