# The local multi-host lab: the cloud flow (site.yml, then burst.yml) on systemd-nspawn hosts.
LAB_BROKERS ?= 1
LAB_GATEWAYS ?= 1
LAB_AGENTS ?= 3
# This machine is the lab's control machine and, like an operator outside the VPC, cannot reach the
# brokers' client port (burst.yml runs the controller and the audit on the monitoring host).
# LAB_KAFKA_REACHABLE=1 leaves the port open.
LAB_KAFKA_REACHABLE ?= 0
LAB_INVENTORY := $(ROOT)/.cache/lab/hosts.yml
LAB_ANSIBLE := ANSIBLE_CONFIG=$(ROOT)/ansible/ansible.cfg $(BIN)/ansible-playbook -i $(LAB_INVENTORY)

.PHONY: lab lab-hosts lab-site lab-burst lab-faults lab-down

lab: lab-hosts lab-site lab-burst ## Local lab: boot nspawn hosts, run site.yml, then burst.yml with SCENARIO; prints the report

lab-hosts: $(SETUP_STAMP) broker-jars dist ## Boot the lab hosts (LAB_BROKERS/LAB_GATEWAYS/LAB_AGENTS) and render their inventory
	$(PY) scripts/lab.py up --brokers $(LAB_BROKERS) --gateways $(LAB_GATEWAYS) --agents $(LAB_AGENTS) \
	  $(if $(filter 1 yes true,$(LAB_KAFKA_REACHABLE)),--kafka-reachable)

lab-site: $(SETUP_STAMP) ## Run ansible/site.yml on the lab hosts (with this tree's wheel and a dependency wheelhouse)
	$(LAB_ANSIBLE) $(ROOT)/molecule/site/artifacts.yml -e artifacts_dir=$(ROOT)/.cache/lab/artifacts \
	  -e artifacts_control_wheelhouse=true
	$(LAB_ANSIBLE) $(ROOT)/ansible/site.yml

lab-burst: $(SETUP_STAMP) ## Run ansible/burst.yml on the lab with SCENARIO (default scenarios/thundering-herd.yml); this machine off Kafka
	$(PY) scripts/lab.py check-control
	$(LAB_ANSIBLE) $(ROOT)/ansible/burst.yml -e scenario=$(SCENARIO)

FAULTS ?= $(sort $(wildcard $(ROOT)/scenarios/faults/*.yml))
lab-faults: $(SETUP_STAMP) ## Fault matrix on the lab: burst.yml once per FAULTS scenario (scenarios/faults/), one report
	./scripts/fault-matrix.sh $(LAB_INVENTORY) $(FAULTS)

lab-down: $(SETUP_STAMP) ## Remove the lab: hosts, links, addresses, NAT and Kafka-blocking rules, inventory, lab secrets
	$(PY) scripts/lab.py down
