locals {
  counts = {
    brokers    = var.broker_count
    gateways   = var.gateway_count
    agents     = var.agent_count
    monitoring = 1
  }
  # Inventory host name prefix per group.
  prefixes = {
    brokers    = "broker"
    gateways   = "gateway"
    agents     = "agent"
    monitoring = "monitoring"
  }

  hosts = merge([
    for g, n in local.counts : {
      for i in range(n) : "${local.prefixes[g]}-${i}" => { group = g, index = i }
    }
  ]...)
}

resource "aws_key_pair" "this" {
  key_name   = "${var.name}-admin"
  public_key = var.ssh_public_key

  tags = var.tags
}

resource "aws_instance" "this" {
  #checkov:skip=CKV_AWS_88:Public addresses are needed (devices send UDP to gateways; operators SSH in); ingress is limited by security groups and assign_public_ip=false turns it off.
  #checkov:skip=CKV2_AWS_41:Least privilege: only brokers get an IAM role (S3 access); the other hosts need no AWS API access.
  for_each = local.hosts

  ami                         = var.ami_id
  instance_type               = var.instance_types[each.value.group]
  subnet_id                   = var.subnet_ids[each.value.index % length(var.subnet_ids)]
  vpc_security_group_ids      = [var.security_group_ids[each.value.group]]
  key_name                    = aws_key_pair.this.key_name
  associate_public_ip_address = var.assign_public_ip
  iam_instance_profile        = each.value.group == "brokers" ? var.broker_instance_profile : null
  ebs_optimized               = true
  monitoring                  = var.detailed_monitoring

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_gb[each.value.group]
    encrypted             = true
    delete_on_termination = true
  }

  tags = merge(var.tags, {
    Name  = "${var.name}-${each.key}"
    Group = each.value.group
    Host  = each.key
  })
}
