# The rule table comes from the provider-free module security_rules (tested with `tofu test`);
# this module only turns it into AWS resources.
module "rules" {
  source = "../security_rules"

  admin_cidrs  = var.admin_cidrs
  device_cidrs = var.device_cidrs
  vpc_cidr     = var.vpc_cidr
  ports        = var.ports
}

locals {
  descriptions = {
    brokers    = "AutoMQ/Kafka brokers"
    gateways   = "UDP telemetry gateways"
    agents     = "burst simulator agents"
    monitoring = "Prometheus, Grafana and the auditor"
  }
}

resource "aws_security_group" "this" {
  #checkov:skip=CKV2_AWS_5:Attached to the instances in modules/fleet through security_group_ids; checkov cannot follow a for_each map across modules.
  for_each = toset(module.rules.groups)

  name_prefix = "${var.name}-${each.key}-"
  description = "${var.name}: ${local.descriptions[each.key]}"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-${each.key}", Group = each.key })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "this" {
  for_each = module.rules.ingress

  security_group_id            = aws_security_group.this[each.value.group].id
  description                  = each.value.description
  ip_protocol                  = each.value.protocol
  from_port                    = each.value.port
  to_port                      = each.value.port
  cidr_ipv4                    = each.value.cidr
  referenced_security_group_id = each.value.from_group == null ? null : aws_security_group.this[each.value.from_group].id

  tags = merge(var.tags, { Name = each.key })
}

resource "aws_vpc_security_group_egress_rule" "this" {
  for_each = module.rules.egress

  security_group_id = aws_security_group.this[each.value.group].id
  description       = each.value.description
  ip_protocol       = each.value.protocol
  from_port         = each.value.from_port
  to_port           = each.value.to_port
  cidr_ipv4         = each.value.cidr

  tags = merge(var.tags, { Name = each.key })
}
