# tofu test for the provider-free inventory renderer: `tofu test` in terraform/modules/inventory.

variables {
  brokers = [
    { name = "broker-0", public_ip = "198.51.100.10", private_ip = "10.0.1.10" },
    { name = "broker-1", public_ip = "198.51.100.11", private_ip = "10.0.1.11" },
    { name = "broker-2", public_ip = "198.51.100.12", private_ip = "10.0.1.12" },
  ]
  gateways = [
    { name = "gateway-0", public_ip = "198.51.100.20", private_ip = "10.0.1.20" },
  ]
  agents = [
    { name = "agent-0", public_ip = "198.51.100.30", private_ip = "10.0.1.30" },
    { name = "agent-1", public_ip = "", private_ip = "10.0.1.31" },
  ]
  monitoring = [
    { name = "monitoring-0", public_ip = "198.51.100.40", private_ip = "10.0.1.40" },
  ]
  s3_data_bucket = "pilot-automq-data-test"
  s3_ops_bucket  = "pilot-automq-ops-test"
  s3_region      = "eu-west-1"
}

run "three_brokers" {
  command = apply

  assert {
    condition     = output.controller_quorum_voters == "0@10.0.1.10:9093,1@10.0.1.11:9093,2@10.0.1.12:9093"
    error_message = "quorum voters for 3 brokers: ${output.controller_quorum_voters}"
  }
  assert {
    condition     = output.kafka_bootstrap_servers == "10.0.1.10:9092,10.0.1.11:9092,10.0.1.12:9092"
    error_message = "bootstrap servers: ${output.kafka_bootstrap_servers}"
  }
  assert {
    condition     = keys(output.inventory.all.children) == ["agents", "brokers", "gateways", "monitoring"]
    error_message = "groups must be exactly agents, brokers, gateways, monitoring"
  }
  assert {
    condition     = [for n, h in output.inventory.all.children.brokers.hosts : h.automq_node_id] == [0, 1, 2]
    error_message = "brokers must carry automq_node_id 0, 1, 2 in order"
  }
  assert {
    condition     = output.inventory.all.children.brokers.hosts["broker-1"].ansible_host == "198.51.100.11"
    error_message = "ansible_host must be the public address when there is one"
  }
  assert {
    condition     = output.inventory.all.children.brokers.hosts["broker-1"].private_ip == "10.0.1.11"
    error_message = "private_ip host var missing"
  }
  assert {
    condition     = output.inventory.all.children.agents.hosts["agent-1"].ansible_host == "10.0.1.31"
    error_message = "a host without a public address must be reached on its private one"
  }
  assert {
    condition     = output.inventory.all.children.brokers.hosts["broker-2"].automq_listen_address == "10.0.1.12"
    error_message = "brokers must listen on their private address"
  }
  assert {
    condition     = output.inventory.all.children.agents.hosts["agent-0"].monitoring_scrape_address == "10.0.1.30"
    error_message = "Prometheus must scrape private addresses"
  }
  assert {
    condition = (
      output.inventory.all.vars.automq_flavor == "automq" &&
      output.inventory.all.vars.automq_s3_credentials == "instance" &&
      output.inventory.all.vars.automq_s3_path_style == false &&
      output.inventory.all.vars.automq_internal_port == 9094 &&
      output.inventory.all.vars.simulator_api_port == 9510 &&
      output.inventory.all.vars.simulator_metrics_port == 9511
    )
    error_message = "role settings for AWS (flavor, instance credentials, virtual-host S3, ports) wrong"
  }
  assert {
    condition     = !contains(keys(output.inventory.all.children.gateways.hosts["gateway-0"]), "automq_node_id")
    error_message = "only brokers get automq_node_id"
  }
  assert {
    condition = (
      output.inventory.all.vars.automq_s3_data_bucket == "pilot-automq-data-test" &&
      output.inventory.all.vars.automq_s3_ops_bucket == "pilot-automq-ops-test" &&
      output.inventory.all.vars.automq_s3_region == "eu-west-1" &&
      output.inventory.all.vars.automq_s3_endpoint == ""
    )
    error_message = "bucket/region/endpoint vars wrong"
  }
  assert {
    condition     = output.inventory.all.vars.gateway_kafka_bootstrap_servers == output.kafka_bootstrap_servers
    error_message = "gateways must get the broker bootstrap list"
  }
  assert {
    condition     = !contains(keys(output.inventory.all.vars), "ansible_ssh_private_key_file")
    error_message = "no key file var unless one is given"
  }
  assert {
    condition     = yamldecode(output.yaml) == output.inventory
    error_message = "the YAML text must decode to the inventory object"
  }
  assert {
    condition     = startswith(output.yaml, "# Ansible inventory rendered by Terraform")
    error_message = "the YAML must start with the generated-file header"
  }
}

run "one_broker_custom_ports_and_key" {
  command = apply

  variables {
    brokers = [
      { name = "broker-0", public_ip = "198.51.100.10", private_ip = "10.0.1.10" },
    ]
    first_node_id        = 1
    controller_port      = 19093
    kafka_port           = 19092
    ssh_private_key_file = "~/.ssh/pilot"
    s3_endpoint          = "http://127.0.0.1:9000"
  }

  assert {
    condition     = output.controller_quorum_voters == "1@10.0.1.10:19093"
    error_message = "quorum voters for 1 broker: ${output.controller_quorum_voters}"
  }
  assert {
    condition     = output.kafka_bootstrap_servers == "10.0.1.10:19092"
    error_message = "bootstrap for 1 broker: ${output.kafka_bootstrap_servers}"
  }
  assert {
    condition     = output.inventory.all.children.brokers.hosts["broker-0"].automq_node_id == 1
    error_message = "first_node_id must set the first broker's node id"
  }
  assert {
    condition     = output.inventory.all.vars.ansible_ssh_private_key_file == "~/.ssh/pilot"
    error_message = "key file var must be rendered when given"
  }
  assert {
    condition     = output.inventory.all.vars.automq_s3_endpoint == "http://127.0.0.1:9000"
    error_message = "custom endpoint must be rendered"
  }
  assert {
    condition     = output.inventory.all.vars.automq_s3_path_style == true
    error_message = "a custom endpoint needs path-style S3"
  }
  assert {
    condition     = output.inventory.all.vars.automq_client_port == 19092 && output.inventory.all.vars.automq_controller_port == 19093
    error_message = "ports must reach the automq role"
  }
}

run "no_agents_gives_empty_group" {
  command = apply

  variables {
    agents = []
  }

  assert {
    condition     = length(output.inventory.all.children.agents.hosts) == 0
    error_message = "agents group must exist and be empty"
  }
}

run "two_brokers_rejected" {
  command = plan

  variables {
    brokers = [
      { name = "broker-0", public_ip = "", private_ip = "10.0.1.10" },
      { name = "broker-1", public_ip = "", private_ip = "10.0.1.11" },
    ]
  }

  expect_failures = [var.brokers]
}

run "two_monitoring_hosts_rejected" {
  command = plan

  variables {
    monitoring = [
      { name = "monitoring-0", public_ip = "", private_ip = "10.0.1.40" },
      { name = "monitoring-1", public_ip = "", private_ip = "10.0.1.41" },
    ]
  }

  expect_failures = [var.monitoring]
}

run "unknown_flavor_rejected" {
  command = plan

  variables {
    broker_flavor = "redpanda"
  }

  expect_failures = [var.broker_flavor]
}

run "bad_bucket_name_rejected" {
  command = plan

  variables {
    s3_data_bucket = "Not_A_Bucket"
  }

  expect_failures = [var.s3_data_bucket]
}

run "duplicate_host_names_rejected" {
  command = plan

  variables {
    gateways = [
      { name = "broker-0", public_ip = "", private_ip = "10.0.1.20" },
    ]
  }

  expect_failures = [output.inventory, output.yaml]
}

run "private_hosts_through_the_bastion" {
  command = apply

  variables {
    bastion_host         = "198.51.100.40"
    ssh_private_key_file = "~/.ssh/pilot"
    cluster_id           = "MkU3OEVBNTcwNTJENDM2Qg"
  }

  assert {
    condition     = output.inventory.all.children.agents.hosts["agent-1"].ansible_ssh_common_args == "-o StrictHostKeyChecking=accept-new -o ProxyCommand=\"ssh -o StrictHostKeyChecking=accept-new -i ~/.ssh/pilot -W %h:%p admin@198.51.100.40\""
    error_message = "a host without a public address is reached through the bastion: ${output.inventory.all.children.agents.hosts["agent-1"].ansible_ssh_common_args}"
  }
  assert {
    condition     = !contains(keys(output.inventory.all.children.agents.hosts["agent-0"]), "ansible_ssh_common_args")
    error_message = "a host with a public address is reached directly (all.vars' options)"
  }
  assert {
    condition     = output.inventory.all.vars.ansible_ssh_common_args == "-o StrictHostKeyChecking=accept-new" && output.inventory.all.vars.automq_cluster_id == "MkU3OEVBNTcwNTJENDM2Qg"
    error_message = "host-key policy and cluster id go to all.vars"
  }
}

run "role_vars_reach_all_vars" {
  command = apply

  variables {
    role_vars = { common_chrony_servers = ["169.254.169.123"], automq_archive_url = "https://example.org/automq-1.7.0_kafka-3.9.1.tgz" }
  }

  assert {
    condition     = output.inventory.all.vars.common_chrony_servers == ["169.254.169.123"] && output.inventory.all.vars.automq_archive_url == "https://example.org/automq-1.7.0_kafka-3.9.1.tgz"
    error_message = "role_vars must be rendered into all.vars"
  }
}

run "role_vars_cannot_replace_module_vars" {
  command = plan

  variables {
    role_vars = { automq_flavor = "kafka" }
  }

  expect_failures = [output.inventory, output.yaml]
}

run "bad_cluster_id_rejected" {
  command = plan

  variables {
    cluster_id = "-starts-with-a-dash-xx"
  }

  expect_failures = [var.cluster_id]
}
