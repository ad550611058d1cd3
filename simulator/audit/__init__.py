"""The audit: every (device, sequence) of a run read back from Kafka and accounted for (delivered,
missing, duplicates, latency, the flush timeline), and the gateway's refusals read from its /metrics."""
