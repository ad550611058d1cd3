locals {
  counts = {
    brokers    = var.broker_count
    gateways   = var.gateway_count
    agents     = var.agent_count
    monitoring = 1
  }
  # Inventory host name prefix per group: broker-0, gateway-0, agent-0, monitoring-0.
  prefixes = {
    brokers    = "broker"
    gateways   = "gateway"
    agents     = "agent"
    monitoring = "monitoring"
  }

  public_subnets = length(var.public_subnet_ids) > 0 ? var.public_subnet_ids : var.subnet_ids

  hosts = merge([
    for g, n in local.counts : {
      for i in range(n) : "${local.prefixes[g]}-${i}" => {
        group            = g
        index            = i
        public_ip        = contains(var.public_groups, g)
        subnet_id        = contains(var.public_groups, g) ? local.public_subnets[i % length(local.public_subnets)] : var.subnet_ids[i % length(var.subnet_ids)]
        instance_type    = var.instance_types[g]
        root_volume_gb   = var.root_volume_gb[g]
        instance_profile = g == "brokers" ? var.broker_instance_profile : null
      }
    }
  ]...)

  names = { for g, n in local.counts : g => [for i in range(n) : "${local.prefixes[g]}-${i}"] }
}
