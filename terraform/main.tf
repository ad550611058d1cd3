provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, { Project = "iot-burst-pilot", Deployment = var.name })
  }

  # Only for an emulator (moto): path-style S3 and no real-account checks.
  s3_use_path_style           = length(var.aws_endpoints) > 0
  skip_credentials_validation = length(var.aws_endpoints) > 0
  skip_metadata_api_check     = length(var.aws_endpoints) > 0

  dynamic "endpoints" {
    for_each = length(var.aws_endpoints) > 0 ? [var.aws_endpoints] : []
    content {
      ec2 = lookup(endpoints.value, "ec2", null)
      s3  = lookup(endpoints.value, "s3", null)
      iam = lookup(endpoints.value, "iam", null)
      sts = lookup(endpoints.value, "sts", null)
    }
  }
}

data "aws_caller_identity" "current" {}

locals {
  azs         = length(var.availability_zones) > 0 ? var.availability_zones : ["${var.region}a"]
  account_id  = data.aws_caller_identity.current.account_id
  data_bucket = var.data_bucket_name != "" ? var.data_bucket_name : "${var.name}-automq-data-${local.account_id}"
  ops_bucket  = var.ops_bucket_name != "" ? var.ops_bucket_name : "${var.name}-automq-ops-${local.account_id}"
}

module "network" {
  source = "./modules/network"

  name                = var.name
  existing_vpc_id     = var.existing_vpc_id
  existing_subnet_ids = var.existing_subnet_ids
  vpc_cidr            = var.vpc_cidr
  availability_zones  = local.azs
}

module "security" {
  source = "./modules/security"

  name         = var.name
  vpc_id       = module.network.vpc_id
  vpc_cidr     = module.network.vpc_cidr
  admin_cidrs  = var.admin_cidrs
  device_cidrs = var.device_cidrs
  ports        = var.ports
}

module "storage" {
  source = "./modules/storage"

  data_bucket_name    = local.data_bucket
  ops_bucket_name     = local.ops_bucket
  force_destroy       = var.force_destroy_buckets
  ops_expiration_days = var.ops_expiration_days
}

module "iam" {
  source = "./modules/iam"

  name        = var.name
  bucket_arns = module.storage.bucket_arns
}

module "fleet" {
  source = "./modules/fleet"

  name                    = var.name
  ami_id                  = var.ami_id
  ssh_public_key          = var.ssh_public_key
  subnet_ids              = module.network.subnet_ids
  security_group_ids      = module.security.security_group_ids
  broker_instance_profile = module.iam.broker_instance_profile
  broker_count            = var.broker_count
  gateway_count           = var.gateway_count
  agent_count             = var.agent_count
  instance_types          = var.instance_types
  assign_public_ip        = var.assign_public_ip
}

module "inventory" {
  source = "./modules/inventory"

  brokers              = [for h in module.fleet.hosts.brokers : { name = h.name, public_ip = h.public_ip, private_ip = h.private_ip }]
  gateways             = [for h in module.fleet.hosts.gateways : { name = h.name, public_ip = h.public_ip, private_ip = h.private_ip }]
  agents               = [for h in module.fleet.hosts.agents : { name = h.name, public_ip = h.public_ip, private_ip = h.private_ip }]
  monitoring           = [for h in module.fleet.hosts.monitoring : { name = h.name, public_ip = h.public_ip, private_ip = h.private_ip }]
  s3_data_bucket       = module.storage.data_bucket
  s3_ops_bucket        = module.storage.ops_bucket
  s3_region            = var.region
  s3_endpoint          = lookup(var.aws_endpoints, "s3", "")
  broker_flavor        = var.broker_flavor
  kafka_port           = var.ports.kafka
  controller_port      = var.ports.controller
  internal_port        = var.ports.internal
  gateway_udp_port     = var.ports.gateway_udp
  gateway_http_port    = var.ports.gateway_http
  agent_api_port       = var.ports.agent_api
  ssh_user             = var.ssh_user
  ssh_private_key_file = var.ssh_private_key_file
}
