# Gateway: UDP (IBP/1 + legacy) -> Kafka (issue #3). Owner: gateway area.
# Its tests (tests/gateway/) run under test-python; gateway-test runs them alone.

.PHONY: bench gateway-test gateway-check

bench: $(SETUP_STAMP) broker-jars ## Gateway vs bare aiokafka producer, 0 and 250 ms broker latency -> reports/bench-*.json
	$(PY) -m bench $(BENCH_ARGS)

gateway-test: $(SETUP_STAMP) broker-jars ## Run only the gateway's test suite (real broker, real UDP)
	$(PY) -m pytest tests/gateway

gateway-check: $(SETUP_STAMP) ## Validate a gateway config and key registry: make gateway-check CONFIG=gateway.yml
	$(PY) -m gateway --check $(if $(CONFIG),--config $(CONFIG))
