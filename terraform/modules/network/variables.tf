variable "name" {
  description = "Name prefix for every resource (Name tags)."
  type        = string
}

variable "existing_vpc_id" {
  description = "Use this VPC instead of creating one; empty creates a new VPC."
  type        = string
  default     = ""

  validation {
    condition     = var.existing_vpc_id == "" || can(regex("^vpc-[0-9a-f]+$", var.existing_vpc_id))
    error_message = "existing_vpc_id must be empty or a VPC id like vpc-0123abcd."
  }
}

variable "existing_subnet_ids" {
  description = "Subnets (in existing_vpc_id) to place hosts in; required when existing_vpc_id is set."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.existing_subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "existing_subnet_ids must hold subnet ids like subnet-0123abcd."
  }
}

variable "vpc_cidr" {
  description = "CIDR of the VPC to create (ignored with existing_vpc_id)."
  type        = string
  default     = "10.42.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr))
    error_message = "vpc_cidr must be an IPv4 CIDR such as 10.42.0.0/16."
  }
}

variable "availability_zones" {
  description = "AZs for the public subnets, one /24 each (ignored with existing_vpc_id)."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 1
    error_message = "availability_zones must list at least one zone."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "private_subnets" {
  description = "Also create one private subnet per AZ whose internet egress goes through a NAT gateway (for hosts without public addresses; ignored with existing_vpc_id)."
  type        = bool
  default     = false
}

variable "region" {
  description = "Region of the VPC (names the S3 gateway endpoint's service, com.amazonaws.<region>.s3)."
  type        = string
}
