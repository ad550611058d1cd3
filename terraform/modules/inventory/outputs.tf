output "inventory" {
  description = "The inventory as an object (all.vars + children brokers/gateways/agents/monitoring)."
  value       = local.inventory

  precondition {
    condition     = local.names_unique
    error_message = "Host names must be unique across brokers, gateways, agents and monitoring; repeated: ${join(", ", local.duplicate_names)}."
  }

  precondition {
    condition     = length(local.clashing_role_vars) == 0
    error_message = "role_vars may not set what the inventory module sets itself: ${join(", ", local.clashing_role_vars)}."
  }
}

output "yaml" {
  description = "The inventory as YAML text for ansible/inventories/aws/hosts.yml."
  value       = "${local.header}---\n${yamlencode(local.inventory)}"

  precondition {
    condition     = local.names_unique
    error_message = "Host names must be unique across brokers, gateways, agents and monitoring; repeated: ${join(", ", local.duplicate_names)}."
  }

  precondition {
    condition     = length(local.clashing_role_vars) == 0
    error_message = "role_vars may not set what the inventory module sets itself: ${join(", ", local.clashing_role_vars)}."
  }
}

output "controller_quorum_voters" {
  description = "KRaft controller.quorum.voters, e.g. 0@10.0.1.10:9093,1@10.0.1.11:9093,2@10.0.1.12:9093."
  value       = local.controller_quorum_voters
}

output "kafka_bootstrap_servers" {
  description = "Comma-separated broker private_ip:kafka_port list."
  value       = local.kafka_bootstrap
}
