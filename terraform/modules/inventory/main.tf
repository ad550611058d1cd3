locals {
  all_hosts = concat(var.brokers, var.gateways, var.agents, var.monitoring)

  # Hosts without a public address are reached on their private one (bastion or VPN setups).
  # Grouping mode (...) so a duplicate name reaches the clear precondition on the outputs
  # instead of failing here with a bare "duplicate object key".
  host_vars_grouped = {
    for h in local.all_hosts : h.name => {
      ansible_host = h.public_ip != "" ? h.public_ip : h.private_ip
      private_ip   = h.private_ip
      # Prometheus scrapes over the private network (the security groups only allow that path).
      monitoring_scrape_address = h.private_ip
    }...
  }
  behind_bastion = { for h in local.all_hosts : h.name => h.public_ip == "" && var.bastion_host != ""... }
  host_vars = {
    for name, vars in local.host_vars_grouped : name => merge(vars[0], local.behind_bastion[name][0] ? local.jump_vars : {})
  }
  names_unique    = length(local.host_vars_grouped) == length(local.all_hosts)
  duplicate_names = [for name, vars in local.host_vars_grouped : name if length(vars) > 1]

  broker_node_ids = { for i, b in var.brokers : b.name => var.first_node_id + i }

  controller_quorum_voters = join(",", [
    for b in var.brokers : "${local.broker_node_ids[b.name]}@${b.private_ip}:${var.controller_port}"
  ])
  kafka_bootstrap = join(",", [for b in var.brokers : "${b.private_ip}:${var.kafka_port}"])

  ssh_options = "-o StrictHostKeyChecking=${var.ssh_host_key_checking}"
  connection_vars = merge(
    { ansible_user = var.ssh_user, ansible_ssh_common_args = local.ssh_options },
    var.ssh_private_key_file == "" ? {} : { ansible_ssh_private_key_file = var.ssh_private_key_file },
  )
  # Hosts without a public address are reached through the bastion. ProxyCommand rather than
  # ProxyJump: ssh passes no -o options to a ProxyJump connection, so the jump itself would not get
  # the host-key policy (nor the key file).
  jump_key = var.ssh_private_key_file == "" ? "" : " -i ${var.ssh_private_key_file}"
  jump_vars = var.bastion_host == "" ? {} : {
    ansible_ssh_common_args = "${local.ssh_options} -o ProxyCommand=\"ssh ${local.ssh_options}${local.jump_key} -W %h:%p ${var.ssh_user}@${var.bastion_host}\""
  }

  own_vars = merge(local.connection_vars, var.cluster_id == "" ? {} : { automq_cluster_id = var.cluster_id }, {
    automq_s3_data_bucket           = var.s3_data_bucket
    automq_s3_ops_bucket            = var.s3_ops_bucket
    automq_s3_region                = var.s3_region
    automq_s3_endpoint              = var.s3_endpoint
    automq_s3_path_style            = var.s3_endpoint != ""
    automq_s3_credentials           = var.s3_credentials
    automq_flavor                   = var.broker_flavor
    automq_client_port              = var.kafka_port
    automq_controller_port          = var.controller_port
    automq_internal_port            = var.internal_port
    kafka_bootstrap_servers         = local.kafka_bootstrap
    gateway_kafka_bootstrap_servers = local.kafka_bootstrap
    gateway_udp_port                = var.gateway_udp_port
    gateway_http_port               = var.gateway_http_port
    simulator_api_port              = var.agent_api_port
    simulator_metrics_port          = var.agent_metrics_port
  })
  clashing_role_vars = [for k in keys(var.role_vars) : k if contains(keys(local.own_vars), k)]

  inventory = {
    all = {
      vars = merge(var.role_vars, local.own_vars)
      children = {
        brokers = {
          hosts = {
            for b in var.brokers : b.name => merge(local.host_vars[b.name], {
              automq_node_id        = local.broker_node_ids[b.name]
              automq_listen_address = b.private_ip
            })
          }
        }
        gateways   = { hosts = { for h in var.gateways : h.name => local.host_vars[h.name] } }
        agents     = { hosts = { for h in var.agents : h.name => local.host_vars[h.name] } }
        monitoring = { hosts = { for h in var.monitoring : h.name => local.host_vars[h.name] } }
      }
    }
  }

  header = "# Ansible inventory rendered by Terraform/OpenTofu (terraform/modules/inventory).\n# Generated file: re-run `make tf-apply` instead of editing it.\n"
}
