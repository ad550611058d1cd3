"""UDP -> Kafka ingestion gateway for the IoT Burst Resilience Pilot."""
