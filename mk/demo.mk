# Simulator, auditor and the one-machine burst run (issue #4). Owner: simulator area.

.PHONY: demo simulator-capacity

demo: $(SETUP_STAMP) broker-jars ## One-machine burst: broker + gateway + SCENARIO (default thundering-herd) + audit + report
	$(PY) -m simulator demo --scenario $(SCENARIO)

simulator-capacity: $(SETUP_STAMP) ## Simulator capacity: devices per process at 1 reading/s and peak flush rate (JSON)
	$(PY) -m simulator capacity --json
