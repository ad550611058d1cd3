# Simulator, auditor and the one-machine burst run (issue #4). Owner: simulator area.

.PHONY: demo simulator-capacity

demo: $(SETUP_STAMP) broker-jars ## One-machine burst: broker + gateway + SCENARIO (default thundering-herd) + audit + report
	$(PY) -m harness demo --scenario $(SCENARIO)

simulator-capacity: $(SETUP_STAMP) ## Simulator capacity: devices per process at 1 reading/s and peak flush rate (JSON)
	$(PY) -m harness capacity --json

.PHONY: limit
LIMIT_SCENARIO ?= $(SCENARIO)
VARY ?= devices
MIN ?= 1000
MAX ?= 80000
BUDGET_S ?= 1800
MAX_RUNS ?= 10
limit: $(SETUP_STAMP) broker-jars ## Limit search: SCENARIO at growing VARY=devices|outage_s|rate_hz (MIN..MAX), bisect to the largest passing size, one report
	$(PY) -m harness limit --scenario $(LIMIT_SCENARIO) --vary $(VARY) --min $(MIN) --max $(MAX) --budget-s $(BUDGET_S) --max-runs $(MAX_RUNS)
