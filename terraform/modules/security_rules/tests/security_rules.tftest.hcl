# tofu test for the provider-free security group rule table used by modules/security.

variables {
  admin_cidrs  = ["203.0.113.0/24"]
  device_cidrs = ["198.51.100.0/24", "192.0.2.0/24"]
  vpc_cidr     = "10.42.0.0/16"
}

run "only_what_is_needed" {
  command = apply

  assert {
    condition     = length(output.ingress) == 26
    error_message = "expected 26 ingress rules (8 SSH/node_exporter, 16 service rules, 2 device networks), got ${length(output.ingress)}"
  }
  assert {
    condition     = alltrue([for r in output.ingress : r.port != 22 || (r.cidr == "203.0.113.0/24" && r.from_group == null)])
    error_message = "SSH must be open from the admin network only"
  }
  assert {
    condition     = length([for r in output.ingress : r if r.port == 22]) == 4
    error_message = "every group needs exactly one SSH rule per admin network"
  }
  assert {
    condition     = alltrue([for r in output.ingress : r.port != 9093 || (r.group == "brokers" && r.from_group == "brokers")])
    error_message = "the KRaft controller port must be open between brokers only"
  }
  assert {
    condition     = alltrue([for r in output.ingress : r.port != 9094 || (r.group == "brokers" && r.from_group == "brokers")])
    error_message = "the inter-broker port must be open between brokers only"
  }
  assert {
    condition = (
      sort([for r in output.ingress : r.from_group if r.port == 9092]) == tolist(["brokers", "gateways", "monitoring"]) &&
      alltrue([for r in output.ingress : r.group == "brokers" if r.port == 9092])
    )
    error_message = "Kafka must be open on brokers from brokers, gateways and monitoring only"
  }
  assert {
    condition = (
      alltrue([for r in output.ingress : r.group == "gateways" if r.protocol == "udp"]) &&
      sort([for r in output.ingress : coalesce(r.cidr, r.from_group) if r.protocol == "udp"]) == tolist(["192.0.2.0/24", "198.51.100.0/24", "agents"])
    )
    error_message = "UDP 5000 must be open on gateways from the device networks and the agents only"
  }
  assert {
    condition = (
      sort([for r in output.ingress : r.port if r.group == "monitoring" && r.cidr != null]) == tolist(["22", "3000", "9090"]) &&
      alltrue([for r in output.ingress : r.cidr == "203.0.113.0/24" if r.group == "monitoring" && r.cidr != null])
    )
    error_message = "monitoring must expose SSH, Prometheus and Grafana to the admin network only"
  }
  assert {
    condition     = alltrue([for r in output.ingress : r.cidr != "0.0.0.0/0"])
    error_message = "nothing may be open to the whole internet unless device_cidrs asks for it"
  }
  assert {
    condition     = alltrue([for r in output.ingress : (r.cidr == null) != (r.from_group == null)])
    error_message = "each rule needs exactly one source: a CIDR or a group"
  }
  assert {
    condition     = alltrue([for r in output.ingress : length(r.description) > 10])
    error_message = "every rule needs a description"
  }
  assert {
    condition     = alltrue([for r in output.egress : !(r.protocol == "-1" && r.cidr == "0.0.0.0/0")])
    error_message = "no all-protocol egress to the internet"
  }
  assert {
    condition     = length(output.egress) == 12
    error_message = "three egress rules per group expected"
  }
}

run "field_devices_anywhere_only_on_udp" {
  command = apply

  variables {
    device_cidrs = ["0.0.0.0/0"]
  }

  assert {
    condition     = [for r in output.ingress : "${r.group}/${r.protocol}/${r.port}" if r.cidr == "0.0.0.0/0"] == ["gateways/udp/5000"]
    error_message = "0.0.0.0/0 from device_cidrs may only open the gateways' UDP port"
  }
}

run "custom_ports_follow" {
  command = apply

  variables {
    ports = { gateway_udp = 15000, kafka = 19092 }
  }

  assert {
    condition     = length([for r in output.ingress : r if r.protocol == "udp" && r.port == 15000]) == 3
    error_message = "a custom UDP port must be used by every UDP rule"
  }
  assert {
    condition     = length([for r in output.ingress : r if r.port == 19092]) == 3 && length([for r in output.ingress : r if r.port == 9092]) == 0
    error_message = "a custom Kafka port must replace 9092"
  }
}

run "no_device_networks" {
  command = apply

  variables {
    device_cidrs = []
  }

  assert {
    condition     = [for r in output.ingress : r.from_group if r.protocol == "udp"] == ["agents"]
    error_message = "without device networks only the agents may send UDP"
  }
}

run "admin_internet_rejected" {
  command = plan

  variables {
    admin_cidrs = ["0.0.0.0/0"]
  }

  expect_failures = [var.admin_cidrs]
}

run "bad_device_cidr_rejected" {
  command = plan

  variables {
    device_cidrs = ["10.0.0.300/24"]
  }

  expect_failures = [var.device_cidrs]
}

run "bad_port_rejected" {
  command = plan

  variables {
    ports = { grafana = 70000 }
  }

  expect_failures = [var.ports]
}
