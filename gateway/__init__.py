"""UDP -> Kafka ingestion gateway for the IoT Burst Resilience Pilot: the supervisor binds the sockets and
serves HTTP, one worker per core authenticates, deduplicates, produces and answers (the wire codec is
``ibp``; the native hot path is gateway/native/)."""
