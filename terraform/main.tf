provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, { Project = "iot-burst-pilot", Deployment = var.name })
  }

  # An emulator (moto in make terraform-test) is configured by a test-only override file
  # (tests/terraform/moto/moto_override.tf), never here.
}

data "aws_caller_identity" "current" {}

# The Kafka/AutoMQ cluster id: made once, at the first apply, and kept in the state for the life of
# the deployment (every broker's meta.properties carries it; a new id on re-apply would make the
# automq role's guard refuse the brokers' data). uuid() changes at every plan, so its input is
# ignored after creation. terraform_data is built in: no extra provider.
resource "terraform_data" "cluster_id" {
  input = uuid()

  lifecycle {
    ignore_changes = [input]

    precondition {
      condition     = var.broker_flavor != "automq" || var.automq_archive_checksum != ""
      error_message = "broker_flavor = \"automq\" needs automq_archive_checksum (sha256:<hex> of ${var.automq_archive_url}): run `curl -fsSL ${var.automq_archive_url} | sha256sum`."
    }
  }
}

locals {
  # Kafka's cluster id is 16 bytes in URL-safe base64 (22 characters). Terraform has no hex decoder,
  # so the id is the first 21 base64 characters of the UUID's SHA-256 plus 'A' (a 22nd character
  # with its 4 unused low bits zero, as Kafka's decoder expects), and never starts with '-'
  # (kafka-storage would read it as an option).
  cluster_id_b64 = replace(replace(base64sha256(terraform_data.cluster_id.output), "+", "-"), "/", "_")
  cluster_id     = "${replace(substr(local.cluster_id_b64, 0, 1), "-", "C")}${substr(local.cluster_id_b64, 1, 20)}A"

  # Private deployments: everything but the bastion (the monitoring host) in private subnets.
  public_groups = var.assign_public_ip ? ["brokers", "gateways", "agents", "monitoring"] : (var.bastion ? ["monitoring"] : [])
  bastion_host  = !var.assign_public_ip && var.bastion ? module.fleet.hosts.monitoring[0].public_ip : ""

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
  private_subnets     = !var.assign_public_ip && var.nat_gateway
  region              = var.region
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
  subnet_ids              = module.network.private_subnet_ids
  public_subnet_ids       = module.network.public_subnet_ids
  public_groups           = local.public_groups
  detailed_monitoring     = var.detailed_monitoring
  security_group_ids      = module.security.security_group_ids
  broker_instance_profile = module.iam.broker_instance_profile
  broker_count            = var.broker_count
  gateway_count           = var.gateway_count
  agent_count             = var.agent_count
  instance_types          = var.instance_types
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
  broker_flavor        = var.broker_flavor
  kafka_port           = var.ports.kafka
  controller_port      = var.ports.controller
  internal_port        = var.ports.internal
  gateway_udp_port     = var.ports.gateway_udp
  gateway_http_port    = var.ports.gateway_http
  agent_api_port       = var.ports.agent_api
  agent_metrics_port   = var.ports.agent_metrics
  ssh_user             = var.ssh_user
  ssh_private_key_file = var.ssh_private_key_file
  bastion_host         = local.bastion_host
  cluster_id           = local.cluster_id

  role_vars = {
    # automq flavor: the release the brokers download (a mirror URL works the same).
    automq_archive_url           = var.automq_archive_url
    automq_archive_checksum      = var.automq_archive_checksum
    automq_version               = regex("automq-([^_/]+)_kafka-", var.automq_archive_url)[0]
    automq_release_kafka_version = regex("_kafka-(.+)\\.tgz$", var.automq_archive_url)[0]
    # Ports the security groups open, handed to the roles that listen on them and scrape them.
    automq_telemetry_port         = var.ports.broker_metrics
    automq_jmx_exporter_port      = var.ports.broker_jmx
    monitoring_broker_flavor      = var.broker_flavor
    monitoring_broker_automq_port = var.ports.broker_metrics
    monitoring_broker_jmx_port    = var.ports.broker_jmx
    monitoring_node_exporter_port = var.ports.node_exporter
    monitoring_prometheus_port    = var.ports.prometheus
    monitoring_grafana_port       = var.ports.grafana
    # Grafana's admin password only from Ansible Vault (docs/terraform.md, "Walkthrough").
    monitoring_grafana_admin_password = "{{ ${var.grafana_admin_password_var} }}"
    # The Amazon Time Sync Service by default: the burst refuses agents whose clocks disagree.
    common_chrony_servers = var.time_servers
  }
}
