# tofu test for the provider-free fleet layout that modules/fleet turns into aws_instance resources
# (one instance per entry of `hosts`).

variables {
  broker_count  = 3
  gateway_count = 2
  agent_count   = 4
  subnet_ids    = ["subnet-aaa", "subnet-bbb"]
  instance_types = {
    brokers    = "m6i.large"
    gateways   = "c6i.large"
    agents     = "c6i.xlarge"
    monitoring = "t3.medium"
  }
  root_volume_gb = {
    brokers    = 40
    gateways   = 20
    agents     = 20
    monitoring = 40
  }
  broker_instance_profile = "pilot-broker"
}

run "three_brokers" {
  command = apply

  assert {
    condition     = length(output.hosts) == 10
    error_message = "3 brokers + 2 gateways + 4 agents + 1 monitoring = 10 instances, got ${length(output.hosts)}"
  }
  assert {
    condition     = output.names.brokers == ["broker-0", "broker-1", "broker-2"]
    error_message = "broker count 3 must give broker-0..2"
  }
  assert {
    condition     = output.names.monitoring == ["monitoring-0"]
    error_message = "exactly one monitoring host"
  }
  assert {
    condition     = [for n in output.names.brokers : output.hosts[n].subnet_id] == ["subnet-aaa", "subnet-bbb", "subnet-aaa"]
    error_message = "brokers must be spread round robin over the subnets"
  }
  assert {
    condition     = toset([for h in output.hosts : h.instance_profile if h.instance_profile != null]) == toset(["pilot-broker"]) && length([for h in output.hosts : h if h.instance_profile != null]) == 3
    error_message = "the instance profile must go to the 3 brokers and nobody else"
  }
  assert {
    condition     = output.hosts["agent-3"].instance_type == "c6i.xlarge" && output.hosts["broker-1"].root_volume_gb == 40
    error_message = "types and volume sizes must follow the group"
  }
}

run "one_broker_no_agents" {
  command = apply

  variables {
    broker_count = 1
    agent_count  = 0
  }

  assert {
    condition     = keys(output.hosts) == ["broker-0", "gateway-0", "gateway-1", "monitoring-0"]
    error_message = "1 broker, 2 gateways, 1 monitoring host expected: ${join(", ", keys(output.hosts))}"
  }
}

run "two_brokers_rejected" {
  command = plan

  variables {
    broker_count = 2
  }

  expect_failures = [var.broker_count]
}

run "no_gateway_rejected" {
  command = plan

  variables {
    gateway_count = 0
  }

  expect_failures = [var.gateway_count]
}

run "no_subnet_rejected" {
  command = plan

  variables {
    subnet_ids = []
  }

  expect_failures = [var.subnet_ids]
}
