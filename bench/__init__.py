"""``make bench``: the gateway's end-to-end throughput against a bare aiokafka producer (docs/gateway.md)."""
