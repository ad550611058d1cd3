# Plan-level tests of the root module and its AWS modules with a mock AWS provider: no API calls,
# no credentials, the real provider's schemas. `make terraform-test` runs them; the apply against a
# moto server (tests/terraform/test_apply_moto.py) proves the same code against a real AWS API and
# checks what only exists after an apply (the cluster id, the rendered inventory).

mock_provider "aws" {
  # Data sources answer at plan time too, so plan-level assertions can use the account id.
  override_during = plan

  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  # The bucket policies validate their ARNs; a random mock string is not one.
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::pilot-mock-bucket" }
  }
}

variables {
  name                    = "pilot"
  region                  = "eu-west-1"
  admin_cidrs             = ["203.0.113.0/24"]
  device_cidrs            = ["198.51.100.0/24"]
  ami_id                  = "ami-0123456789abcdef0"
  ssh_public_key          = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExamp operator@example"
  broker_count            = 3
  gateway_count           = 2
  agent_count             = 4
  automq_archive_checksum = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
}

run "root_counts_and_names" {
  command = plan

  assert {
    condition     = [for g in ["brokers", "gateways", "agents", "monitoring"] : length(module.fleet.hosts[g])] == [3, 2, 4, 1]
    error_message = "3 brokers, 2 gateways, 4 agents and 1 monitoring host expected"
  }
  assert {
    condition     = module.fleet.hosts.brokers[*].name == ["broker-0", "broker-1", "broker-2"]
    error_message = "brokers are named broker-0.. in index order"
  }
  assert {
    condition     = local.data_bucket == "pilot-automq-data-123456789012" && local.ops_bucket == "pilot-automq-ops-123456789012"
    error_message = "bucket names derive from the name and the account id"
  }
}

run "fleet_instances_are_hardened_and_cheap" {
  command = plan

  module {
    source = "./modules/fleet"
  }

  variables {
    subnet_ids              = ["subnet-0a", "subnet-0b"]
    public_subnet_ids       = ["subnet-1a"]
    public_groups           = ["monitoring"]
    security_group_ids      = { brokers = "sg-1", gateways = "sg-2", agents = "sg-3", monitoring = "sg-4" }
    broker_instance_profile = "pilot-broker"
  }

  assert {
    condition     = length(aws_instance.this) == 10
    error_message = "10 instances expected"
  }
  assert {
    condition     = alltrue([for i in aws_instance.this : i.metadata_options[0].http_tokens == "required" && i.metadata_options[0].http_put_response_hop_limit == 1])
    error_message = "every instance must require IMDSv2 tokens with a hop limit of 1"
  }
  assert {
    condition     = alltrue([for i in aws_instance.this : i.root_block_device[0].encrypted && i.root_block_device[0].volume_type == "gp3"])
    error_message = "every root volume must be encrypted gp3"
  }
  assert {
    condition     = alltrue([for i in aws_instance.this : i.monitoring == false])
    error_message = "detailed monitoring must be off by default (it is billed, and hung applies against moto)"
  }
  assert {
    condition     = [for k, i in aws_instance.this : k if i.associate_public_ip_address] == ["monitoring-0"]
    error_message = "only the bastion (monitoring-0) gets a public address when public_groups = [monitoring]"
  }
  assert {
    condition     = aws_instance.this["monitoring-0"].subnet_id == "subnet-1a" && aws_instance.this["broker-1"].subnet_id == "subnet-0b"
    error_message = "public hosts go to public subnets, private ones round robin over the private subnets"
  }
  assert {
    condition     = alltrue([for k, i in aws_instance.this : i.tags.Host == k && i.tags.Name == "pilot-${k}"])
    error_message = "every instance is tagged with its host name"
  }
  assert {
    condition     = [for k in ["broker-0", "broker-1", "broker-2"] : aws_instance.this[k].iam_instance_profile] == ["pilot-broker", "pilot-broker", "pilot-broker"]
    error_message = "brokers get the S3 instance profile (fleet_layout's tests check that no other host does)"
  }
}

run "storage_is_private_and_encrypted" {
  command = plan

  module {
    source = "./modules/storage"
  }

  variables {
    data_bucket_name = "pilot-automq-data-123456789012"
    ops_bucket_name  = "pilot-automq-ops-123456789012"
  }

  assert {
    condition     = alltrue([for b in aws_s3_bucket_public_access_block.this : b.block_public_acls && b.block_public_policy && b.ignore_public_acls && b.restrict_public_buckets])
    error_message = "both buckets block every kind of public access"
  }
  assert {
    condition     = alltrue([for e in aws_s3_bucket_server_side_encryption_configuration.this : one(one(e.rule).apply_server_side_encryption_by_default).sse_algorithm == "aws:kms"])
    error_message = "both buckets are encrypted with KMS"
  }
  assert {
    condition     = one(aws_s3_bucket_versioning.ops.versioning_configuration).status == "Enabled"
    error_message = "the ops bucket keeps versions"
  }
  assert {
    condition     = aws_s3_bucket.data.force_destroy == false && aws_s3_bucket.ops.force_destroy == false
    error_message = "buckets are never force-destroyed by default"
  }
}

run "private_network_has_nat_and_s3_endpoint" {
  command = plan

  module {
    source = "./modules/network"
  }

  variables {
    availability_zones = ["eu-west-1a", "eu-west-1b"]
    private_subnets    = true
  }

  assert {
    condition     = length(aws_subnet.private) == 2 && length(aws_nat_gateway.this) == 1
    error_message = "two private subnets behind one NAT gateway expected"
  }
  assert {
    condition     = aws_vpc_endpoint.s3[0].service_name == "com.amazonaws.eu-west-1.s3" && aws_vpc_endpoint.s3[0].vpc_endpoint_type == "Gateway"
    error_message = "an S3 gateway endpoint keeps AutoMQ's data path inside the VPC"
  }
  assert {
    condition     = aws_subnet.private[0].map_public_ip_on_launch == false && aws_subnet.private[0].cidr_block == "10.42.128.0/24"
    error_message = "private subnets give no public addresses"
  }
}

run "public_network_has_s3_endpoint_and_no_nat" {
  command = plan

  module {
    source = "./modules/network"
  }

  variables {
    availability_zones = ["eu-west-1a"]
  }

  assert {
    condition     = length(aws_nat_gateway.this) == 0 && length(aws_vpc_endpoint.s3) == 1
    error_message = "no NAT gateway (billed hourly) when hosts are public; the S3 endpoint always"
  }
}

run "wide_admin_cidr_rejected" {
  command = plan

  variables {
    admin_cidrs = ["10.0.0.0/8"]
  }

  expect_failures = [var.admin_cidrs]
}

run "wide_admin_cidr_allowed_when_asked" {
  command = plan

  variables {
    admin_cidrs            = ["10.0.0.0/8"]
    allow_wide_admin_cidrs = true
  }
}

run "automq_flavor_needs_a_checksum" {
  command = plan

  variables {
    automq_archive_checksum = ""
  }

  expect_failures = [terraform_data.cluster_id]
}

run "security_groups_open_nothing_to_the_world" {
  command = plan

  module {
    source = "./modules/security"
  }

  variables {
    vpc_id       = "vpc-0123abcd"
    vpc_cidr     = "10.42.0.0/16"
    device_cidrs = ["198.51.100.0/24"]
  }

  assert {
    condition     = alltrue([for r in aws_vpc_security_group_ingress_rule.this : r.cidr_ipv4 != "0.0.0.0/0"])
    error_message = "no ingress rule may be open to 0.0.0.0/0"
  }
  assert {
    condition     = sort([for k, r in aws_vpc_security_group_ingress_rule.this : k if r.ip_protocol == "udp"]) == tolist(["gateways-udp5000-from-agents", "gateways-udp5000-from-devices0"])
    error_message = "UDP telemetry is accepted only on gateways, only from the agents and the device (lab bench) networks"
  }
  assert {
    condition     = alltrue([for k, r in aws_vpc_security_group_ingress_rule.this : r.cidr_ipv4 == "203.0.113.0/24" if r.from_port == 22])
    error_message = "SSH only from the admin network"
  }
}
