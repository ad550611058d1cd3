# Molecule on systemd-nspawn test hosts (docs/test-hosts.md). Owner: test-hosts area.
.PHONY: molecule molecule-rootfs molecule-hosts molecule-clean

ROLE ?=

molecule: $(SETUP_STAMP) ## Run every Molecule scenario on nspawn hosts; `make molecule ROLE=x` runs role x only
	./scripts/nspawn-molecule.sh $(ROLE)

molecule-rootfs: ## Build (or reuse) the cached Debian 12 rootfs of the nspawn test hosts
	python3 molecule/shared/nspawn_hosts.py rootfs

molecule-hosts: ## List the nspawn test hosts that are up
	python3 molecule/shared/nspawn_hosts.py list

molecule-clean: ## Destroy EVERY nspawn test host of this machine's cache (also other runs' hosts)
	python3 molecule/shared/nspawn_hosts.py destroy --all

TEST_TARGETS += molecule
