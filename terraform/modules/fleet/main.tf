# Which instances exist, their names, subnets, types and profiles: the provider-free module
# fleet_layout (tested with `tofu test`). This module only turns each entry into an instance.
module "layout" {
  source = "../fleet_layout"

  broker_count            = var.broker_count
  gateway_count           = var.gateway_count
  agent_count             = var.agent_count
  subnet_ids              = var.subnet_ids
  public_subnet_ids       = var.public_subnet_ids
  public_groups           = var.public_groups
  instance_types          = var.instance_types
  root_volume_gb          = var.root_volume_gb
  broker_instance_profile = var.broker_instance_profile
}

resource "aws_key_pair" "this" {
  key_name   = "${var.name}-admin"
  public_key = var.ssh_public_key

  tags = var.tags
}

resource "aws_instance" "this" {
  #checkov:skip=CKV_AWS_88:Public addresses are needed (devices send UDP to gateways; operators SSH in); ingress is limited by security groups and assign_public_ip=false turns it off for all but the bastion.
  #checkov:skip=CKV_AWS_126:Detailed (1-minute) CloudWatch monitoring is billed per instance and off by default (var.detailed_monitoring); Prometheus and node_exporter scrape every host every 15 s.
  #checkov:skip=CKV2_AWS_41:Least privilege: only brokers get an IAM role (S3 access); the other hosts need no AWS API access.
  for_each = module.layout.hosts

  ami                         = var.ami_id
  instance_type               = each.value.instance_type
  subnet_id                   = each.value.subnet_id
  vpc_security_group_ids      = [var.security_group_ids[each.value.group]]
  key_name                    = aws_key_pair.this.key_name
  associate_public_ip_address = each.value.public_ip
  iam_instance_profile        = each.value.instance_profile
  ebs_optimized               = true
  monitoring                  = var.detailed_monitoring

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = each.value.root_volume_gb
    encrypted             = true
    delete_on_termination = true
  }

  tags = merge(var.tags, {
    Name  = "${var.name}-${each.key}"
    Group = each.value.group
    Host  = each.key
  })
}
