# Soak (issue #13 item 6): the one-machine stack for SOAK_S seconds, an outage every SOAK_CYCLE_S.

.PHONY: soak
SOAK_S ?= 3600
SOAK_CYCLE_S ?= 180
SOAK_OUTAGE_S ?= 30
SOAK_DEVICES ?= 300
SOAK_ARGS ?=
soak: $(SETUP_STAMP) broker-jars ## Soak: broker + gateway for SOAK_S (default 3600) s, a SOAK_OUTAGE_S outage every SOAK_CYCLE_S s; RSS/fd trends + per-cycle audits -> reports/soak-<ts>/
	$(PY) -m harness soak --duration-s $(SOAK_S) --cycle-s $(SOAK_CYCLE_S) --outage-s $(SOAK_OUTAGE_S) --devices $(SOAK_DEVICES) $(SOAK_ARGS)
