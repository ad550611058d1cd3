"""The pilot's Grafana dashboards: what each panel shows and the PromQL behind it.

Metric sources (docs/monitoring.md lists every name):
- gateway (job "gateway"): the run contract's ``iot_*`` metrics;
- agents (job "agent"): the simulator agent's ``iot_agent_*`` metrics and ``iot_run_phase_info``;
- broker (job "broker"): kafka flavor through the JMX exporter (broker/jmx/kafka-jmx.yml), automq
  flavor through AutoMQ's built-in exporter;
- hosts (job "node"): node_exporter.
``$__rate_interval`` is Grafana's; ``$gateway``, ``$agent``, ``$host`` are the dashboards' variables.
"""

from __future__ import annotations

from grafana import Dashboard, Panel, PhaseAnnotation, Query, Variable

RI = "$__rate_interval"
GW = 'instance=~"$gateway"'


def _quantiles(metric: str, selector: str) -> tuple[Query, ...]:
    return tuple(
        Query(
            f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{{{selector}}}[{RI}])))",
            f"p{label}",
        )
        for q, label in (("0.5", "50"), ("0.99", "99"), ("0.999", "99.9"))
    )


BURST_OVERVIEW = Dashboard(
    uid="iot-burst-overview",
    title="IoT burst: overview",
    description="Gateway throughput, latency, backlog and errors during a thundering-herd run.",
    variables=[Variable("gateway", "Gateway", "iot_gateway_ready")],
    phases=PhaseAnnotation(),
    panels=[
        Panel(
            "Readings per second: received and produced",
            (
                Query(f"sum(rate(iot_messages_received_total{{{GW}}}[{RI}]))", "received"),
                Query(f"sum(rate(iot_messages_produced_total{{{GW}}}[{RI}]))", "produced (Kafka acked)"),
            ),
            unit="reqps",
        ),
        Panel("ACK latency (datagram in -> ACK out)", _quantiles("iot_ack_latency_ms", GW), unit="ms"),
        Panel("Kafka produce latency", _quantiles("iot_produce_latency_ms", GW), unit="ms"),
        Panel(
            "Active devices",
            (Query(f"sum(iot_active_devices{{{GW}}})", "active devices"),),
        ),
        Panel(
            "Backlog: gateway in-flight and agents' buffered readings",
            (
                Query(f"sum(iot_inflight_readings{{{GW}}})", "gateway in flight (not yet acked by Kafka)"),
                Query("sum(iot_agent_buffered_readings)", "buffered on devices (agents)"),
            ),
        ),
        Panel(
            "ACK and BUSY answers per second",
            (
                Query(f"sum(rate(iot_acks_sent_total{{{GW}}}[{RI}]))", "ACK"),
                Query(f"sum(rate(iot_busy_sent_total{{{GW}}}[{RI}]))", "BUSY"),
            ),
            unit="reqps",
        ),
        Panel(
            "Datagrams by result",
            (Query(f"sum by (result) (rate(iot_datagrams_total{{{GW}}}[{RI}]))", "{{result}}"),),
            unit="reqps",
        ),
        Panel(
            "Errors by reason",
            (
                Query(
                    f"sum by (reason) (rate(iot_invalid_datagrams_total{{{GW}}}[{RI}]))",
                    "invalid: {{reason}}",
                ),
                Query(f"sum(rate(iot_produce_errors_total{{{GW}}}[{RI}]))", "produce errors"),
            ),
            unit="reqps",
        ),
        Panel(
            "UDP receive-buffer drops",
            (
                Query(
                    f"sum by (instance) (rate(iot_udp_receive_buffer_errors_total{{{GW}}}[{RI}]))",
                    "{{instance}} (gateway socket view)",
                ),
                Query(
                    f'sum by (instance) (rate(node_netstat_Udp_RcvbufErrors{{job="node"}}[{RI}]))',
                    "{{instance}} (kernel, node_exporter)",
                ),
            ),
            unit="pps",
            description="Datagrams the kernel dropped because a socket's receive buffer was full.",
        ),
        Panel(
            "Duplicates and sequence gaps",
            (
                Query(f"sum(rate(iot_duplicate_readings_total{{{GW}}}[{RI}]))", "duplicate readings"),
                Query(f"sum(rate(iot_sequence_gaps_total{{{GW}}}[{RI}]))", "sequence gaps"),
            ),
            unit="reqps",
        ),
        Panel(
            "Readings per datagram (median, p99)",
            (
                Query(
                    f"histogram_quantile(0.5, sum by (le) (rate(iot_batch_readings_bucket{{{GW}}}[{RI}])))",
                    "median",
                ),
                Query(
                    f"histogram_quantile(0.99, sum by (le) (rate(iot_batch_readings_bucket{{{GW}}}[{RI}])))",
                    "p99",
                ),
            ),
        ),
        Panel(
            "Gateways up and ready",
            (
                Query(f'up{{job="gateway", {GW}}}', "{{instance}} up"),
                Query(f"iot_gateway_ready{{{GW}}}", "{{instance}} ready"),
            ),
            kind="stat",
        ),
    ],
)

BROKER_KAFKA = Dashboard(
    uid="iot-broker-kafka",
    title="IoT burst: broker (kafka flavor, JMX exporter)",
    description="Apache Kafka broker metrics through the Prometheus JMX exporter (broker/jmx/kafka-jmx.yml).",
    variables=[Variable("broker", "Broker", "kafka_server_partitions")],
    phases=PhaseAnnotation(),
    panels=[
        Panel(
            "Records in per second",
            (
                Query(
                    f'sum by (instance) (rate(kafka_broker_messages_in_total{{instance=~"$broker"}}[{RI}]))'
                ),
            ),
            unit="reqps",
        ),
        Panel(
            "Bytes in and out per second",
            (
                Query(f'sum(rate(kafka_broker_bytes_in_total{{instance=~"$broker"}}[{RI}]))', "in"),
                Query(f'sum(rate(kafka_broker_bytes_out_total{{instance=~"$broker"}}[{RI}]))', "out"),
            ),
            unit="Bps",
        ),
        Panel(
            "Records in per topic",
            (
                Query(
                    f'topk(10, sum by (topic) (rate(kafka_topic_messages_in_total{{instance=~"$broker"}}[{RI}])))',
                    "{{topic}}",
                ),
            ),
            unit="reqps",
        ),
        Panel(
            "Produce request latency (broker-side)",
            (
                Query(
                    'max by (quantile) (kafka_request_total_time_ms{request="Produce", instance=~"$broker"})',
                    "{{quantile}}",
                ),
            ),
            unit="ms",
        ),
        Panel(
            "Requests per second by type",
            (
                Query(
                    f'sum by (request) (rate(kafka_requests_total{{instance=~"$broker"}}[{RI}]))',
                    "{{request}}",
                ),
            ),
            unit="reqps",
        ),
        Panel(
            "Partitions, leaders, under-replicated, offline",
            (
                Query('sum(kafka_server_partitions{instance=~"$broker"})', "partitions"),
                Query('sum(kafka_server_leader_partitions{instance=~"$broker"})', "leaders"),
                Query(
                    'sum(kafka_server_under_replicated_partitions{instance=~"$broker"})', "under-replicated"
                ),
                Query('max(kafka_controller_offline_partitions{instance=~"$broker"})', "offline"),
            ),
        ),
        Panel(
            "Failed produce requests per second",
            (Query(f'sum(rate(kafka_broker_failed_produce_requests_total{{instance=~"$broker"}}[{RI}]))'),),
            unit="reqps",
        ),
        Panel(
            "Request handler and network idle",
            (
                Query('min(kafka_request_handler_idle_ratio{instance=~"$broker"})', "request handlers"),
                Query('min(kafka_network_processor_idle_ratio{instance=~"$broker"})', "network processors"),
            ),
            unit="percentunit",
        ),
        Panel(
            "JVM heap used",
            (Query('sum by (instance) (jvm_memory_used_bytes{area="heap", instance=~"$broker"})'),),
            unit="bytes",
        ),
        Panel(
            "GC time per second",
            (
                Query(
                    f'sum by (gc) (rate(jvm_gc_collection_seconds_sum{{instance=~"$broker"}}[{RI}]))',
                    "{{gc}}",
                ),
            ),
            unit="s",
        ),
    ],
)

# AutoMQ's built-in exporter (OpenTelemetry -> Prometheus). No AutoMQ broker can run on the build
# machines (it is on no reachable registry), so these queries are checked for validity only.
BROKER_AUTOMQ = Dashboard(
    uid="iot-broker-automq",
    title="IoT burst: broker (AutoMQ flavor)",
    description="AutoMQ's own Prometheus exporter: Kafka traffic plus S3 stream/WAL metrics.",
    phases=PhaseAnnotation(),
    panels=[
        Panel(
            "Network bytes per second",
            (Query(f"sum by (direction) (rate(kafka_network_io_bytes_total[{RI}]))", "{{direction}}"),),
            unit="Bps",
        ),
        Panel(
            "Records in per second",
            (Query(f"sum(rate(kafka_message_count_total[{RI}]))", "records"),),
            unit="reqps",
        ),
        Panel(
            "Requests per second by type",
            (Query(f"sum by (type) (rate(kafka_request_count_total[{RI}]))", "{{type}}"),),
            unit="reqps",
        ),
        Panel(
            "S3 upload and download bytes per second",
            (
                Query(f"sum(rate(kafka_stream_upload_size_bytes_total[{RI}]))", "upload"),
                Query(f"sum(rate(kafka_stream_download_size_bytes_total[{RI}]))", "download"),
            ),
            unit="Bps",
        ),
        Panel(
            "S3 requests per second by operation",
            (
                Query(
                    "sum by (operation_name, status) "
                    f'(rate(kafka_stream_operation_latency_count{{operation_type="S3Request"}}[{RI}]))',
                    "{{operation_name}} {{status}}",
                ),
            ),
            unit="reqps",
        ),
        Panel(
            "Stream and WAL operation latency (p99)",
            (
                Query(
                    "max by (operation_type, operation_name) "
                    "(kafka_stream_operation_latency_99p_nanoseconds) / 1e6",
                    "{{operation_type}} {{operation_name}}",
                ),
            ),
            unit="ms",
        ),
        Panel(
            "Partitions (total, offline)",
            (
                Query("sum(kafka_partition_total_count)", "total"),
                Query("sum(kafka_partition_offline_count)", "offline"),
            ),
        ),
        Panel(
            "S3 back pressure",
            (Query("max(kafka_stream_back_pressure_state)", "back pressure state"),),
        ),
    ],
)

HOSTS = Dashboard(
    uid="iot-hosts",
    title="IoT burst: hosts",
    description="CPU, memory, network and UDP errors of every host (node_exporter).",
    variables=[Variable("host", "Host", "node_uname_info")],
    phases=PhaseAnnotation(),
    panels=[
        Panel(
            "CPU busy",
            (
                Query(
                    f'1 - avg by (instance) (rate(node_cpu_seconds_total{{mode="idle", instance=~"$host"}}[{RI}]))',
                    "{{instance}}",
                ),
            ),
            unit="percentunit",
        ),
        Panel(
            "Memory used",
            (
                Query(
                    'node_memory_MemTotal_bytes{instance=~"$host"} - node_memory_MemAvailable_bytes{instance=~"$host"}',
                    "{{instance}}",
                ),
            ),
            unit="bytes",
        ),
        Panel(
            "Network receive",
            (
                Query(
                    "sum by (instance) (rate(node_network_receive_bytes_total"
                    f'{{device!~"lo|veth.*", instance=~"$host"}}[{RI}]))',
                    "{{instance}}",
                ),
            ),
            unit="Bps",
        ),
        Panel(
            "Network transmit",
            (
                Query(
                    "sum by (instance) (rate(node_network_transmit_bytes_total"
                    f'{{device!~"lo|veth.*", instance=~"$host"}}[{RI}]))',
                    "{{instance}}",
                ),
            ),
            unit="Bps",
        ),
        Panel(
            "UDP datagrams in and out",
            (
                Query(f'rate(node_netstat_Udp_InDatagrams{{instance=~"$host"}}[{RI}])', "{{instance}} in"),
                Query(f'rate(node_netstat_Udp_OutDatagrams{{instance=~"$host"}}[{RI}])', "{{instance}} out"),
            ),
            unit="pps",
        ),
        Panel(
            "UDP errors: receive buffer, in errors, no port",
            (
                Query(
                    f'rate(node_netstat_Udp_RcvbufErrors{{instance=~"$host"}}[{RI}])', "{{instance}} rcvbuf"
                ),
                Query(
                    f'rate(node_netstat_Udp_InErrors{{instance=~"$host"}}[{RI}])', "{{instance}} in errors"
                ),
                Query(f'rate(node_netstat_Udp_NoPorts{{instance=~"$host"}}[{RI}])', "{{instance}} no port"),
            ),
            unit="pps",
        ),
        Panel(
            "Load (1 min)",
            (Query('node_load1{instance=~"$host"}', "{{instance}}"),),
        ),
        Panel(
            "Scrape targets up",
            (Query("sum by (job) (up)", "{{job}} up"), Query("count by (job) (up)", "{{job}} total")),
            kind="stat",
        ),
    ],
)

AGENTS = Dashboard(
    uid="iot-agents",
    title="IoT burst: agents",
    description="Per simulator agent: readings sent, acked, buffered, retransmitted; start skew and clock offset.",
    variables=[Variable("agent", "Agent", "iot_agent_readings_sent_total")],
    phases=PhaseAnnotation(),
    panels=[
        Panel(
            "Readings sent per second",
            (Query(f'sum by (instance) (rate(iot_agent_readings_sent_total{{instance=~"$agent"}}[{RI}]))'),),
            unit="reqps",
        ),
        Panel(
            "Readings acked per second",
            (Query(f'sum by (instance) (rate(iot_agent_readings_acked_total{{instance=~"$agent"}}[{RI}]))'),),
            unit="reqps",
        ),
        Panel(
            "Buffered readings (not yet acked)",
            (Query('sum by (instance) (iot_agent_buffered_readings{instance=~"$agent"})'),),
        ),
        Panel(
            "Retransmits per second",
            (Query(f'sum by (instance) (rate(iot_agent_retransmits_total{{instance=~"$agent"}}[{RI}]))'),),
            unit="reqps",
        ),
        Panel(
            "Start skew (actual start - armed T0)",
            (Query('max by (instance) (iot_agent_start_skew_seconds{instance=~"$agent"})'),),
            unit="s",
        ),
        Panel(
            "Clock offset",
            (Query('max by (instance) (iot_agent_clock_offset_seconds{instance=~"$agent"})'),),
            unit="s",
        ),
    ],
)

ALL = (BURST_OVERVIEW, BROKER_KAFKA, BROKER_AUTOMQ, HOSTS, AGENTS)
# Dashboards whose every query the proof test (tests/monitoring/test_prometheus_proof.py) must see answered.
PROVEN_HERE = ("iot-burst-overview", "iot-broker-kafka", "iot-hosts", "iot-agents")
