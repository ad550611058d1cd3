locals {
  groups = ["brokers", "gateways", "agents", "monitoring"]

  # Who may reach what. `from` is "admin" (each admin CIDR), "devices" (each device CIDR) or the
  # name of a host group (its security group). Nothing else is open.
  specs = concat(
    [for g in local.groups : { group = g, protocol = "tcp", port = 22, from = "admin", what = "SSH" }],
    [for g in local.groups : { group = g, protocol = "tcp", port = var.ports.node_exporter, from = "monitoring", what = "node_exporter scrape" }],
    [
      { group = "brokers", protocol = "tcp", port = var.ports.kafka, from = "brokers", what = "Kafka between brokers" },
      { group = "brokers", protocol = "tcp", port = var.ports.controller, from = "brokers", what = "KRaft controller quorum" },
      { group = "brokers", protocol = "tcp", port = var.ports.internal, from = "brokers", what = "inter-broker listener" },
      { group = "brokers", protocol = "tcp", port = var.ports.kafka, from = "gateways", what = "Kafka produce from gateways" },
      { group = "brokers", protocol = "tcp", port = var.ports.kafka, from = "monitoring", what = "Kafka consume by the auditor" },
      { group = "brokers", protocol = "tcp", port = var.ports.broker_metrics, from = "monitoring", what = "AutoMQ metrics scrape" },
      { group = "brokers", protocol = "tcp", port = var.ports.broker_jmx, from = "monitoring", what = "JMX exporter scrape" },
      { group = "brokers", protocol = "tcp", port = var.ports.broker_metrics, from = "admin", what = "AutoMQ metrics" },
      { group = "gateways", protocol = "udp", port = var.ports.gateway_udp, from = "devices", what = "IoT telemetry" },
      { group = "gateways", protocol = "udp", port = var.ports.gateway_udp, from = "agents", what = "simulated telemetry from agents" },
      { group = "gateways", protocol = "tcp", port = var.ports.gateway_http, from = "monitoring", what = "gateway metrics scrape" },
      { group = "gateways", protocol = "tcp", port = var.ports.gateway_http, from = "admin", what = "gateway metrics and health" },
      { group = "agents", protocol = "tcp", port = var.ports.agent_api, from = "monitoring", what = "agent API (mutual TLS) for the controller" },
      { group = "agents", protocol = "tcp", port = var.ports.agent_api, from = "admin", what = "agent API (arm, start, status)" },
      { group = "agents", protocol = "tcp", port = var.ports.agent_metrics, from = "monitoring", what = "agent metrics scrape (plain HTTP)" },
      { group = "monitoring", protocol = "tcp", port = var.ports.prometheus, from = "admin", what = "Prometheus web" },
      { group = "monitoring", protocol = "tcp", port = var.ports.grafana, from = "admin", what = "Grafana web" },
    ],
  )

  sources = {
    for s in concat(local.groups, ["admin", "devices"]) : s => (
      s == "admin" ? [for i, c in var.admin_cidrs : { key = "admin${i}", cidr = c, from_group = null, label = "admin network ${c}" }] :
      s == "devices" ? [for i, c in var.device_cidrs : { key = "devices${i}", cidr = c, from_group = null, label = "device network ${c}" }] :
      [{ key = s, cidr = null, from_group = s, label = "the ${s} group" }]
    )
  }

  ingress_list = flatten([
    for r in local.specs : [
      for src in local.sources[r.from] : {
        key         = "${r.group}-${r.protocol}${r.port}-from-${src.key}"
        group       = r.group
        protocol    = r.protocol
        port        = r.port
        cidr        = src.cidr
        from_group  = src.from_group
        description = "${r.what} from ${src.label}"
      }
    ]
  ])

  # Egress: HTTPS/HTTP anywhere (Debian packages, S3, AWS APIs) and anything inside the VPC.
  egress_list = flatten([
    for g in local.groups : [
      { key = "${g}-tcp443-to-any", group = g, protocol = "tcp", from_port = 443, to_port = 443, cidr = "0.0.0.0/0", description = "HTTPS out (packages, S3, AWS APIs)" },
      { key = "${g}-tcp80-to-any", group = g, protocol = "tcp", from_port = 80, to_port = 80, cidr = "0.0.0.0/0", description = "HTTP out (Debian package mirrors)" },
      { key = "${g}-all-to-vpc", group = g, protocol = "-1", from_port = null, to_port = null, cidr = var.vpc_cidr, description = "anything inside the VPC" },
    ]
  ])
}
