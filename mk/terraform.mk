# Terraform/OpenTofu for AWS (issue #7). OpenTofu is built from its Go module into .cache/tools.
# Cloud targets need the AWS provider: on a machine with registry access `tofu init` fetches it;
# elsewhere point TF_CLI_CONFIG_FILE at a CLI config with a filesystem_mirror (docs/terraform.md).

TOFU := $(ROOT)/.cache/tools/bin/tofu
CHECKOV := $(ROOT)/.cache/tools/checkov-venv/bin/checkov
TF_DIR := $(ROOT)/terraform
TF_INVENTORY := $(ROOT)/ansible/inventories/aws/hosts.yml
TF_PLAN := $(ROOT)/.cache/terraform/tfplan
TF_ARGS ?=
# Offline CLI config written by scripts/build-opentofu.sh: providers only from .cache/tools/providers.
TF_OFFLINE_CONFIG := $(ROOT)/.cache/tools/tofu-offline.tfrc
TF_PROVIDER_FREE_MODULES := inventory security_rules policies fleet_layout

TEST_TARGETS += terraform-test

.PHONY: tofu checkov tf-fmt tf-init tf-plan tf-apply tf-inventory tf-destroy terraform-test

$(TOFU): scripts/build-opentofu.sh
	@./scripts/build-opentofu.sh >/dev/null

$(CHECKOV): terraform/checkov-requirements.lock scripts/install-checkov.sh
	@./scripts/install-checkov.sh >/dev/null

tofu: ## Build OpenTofu from its Go module into .cache/tools/bin (cached; slow only the first time)
	@./scripts/build-opentofu.sh

checkov: ## Install checkov from terraform/checkov-requirements.lock into its own venv
	@./scripts/install-checkov.sh

tf-fmt: $(TOFU) ## Rewrite every .tf/.tftest.hcl file in canonical format
	$(TOFU) fmt -recursive $(TF_DIR)

tf-init: $(TOFU) ## tofu init in terraform/ (needs the AWS provider: registry or TF_CLI_CONFIG_FILE mirror)
	$(TOFU) -chdir=$(TF_DIR) init -input=false

tf-plan: tf-init ## Plan the AWS deployment from terraform/terraform.tfvars into .cache/terraform/tfplan
	@mkdir -p $(dir $(TF_PLAN))
	$(TOFU) -chdir=$(TF_DIR) plan -input=false -out=$(TF_PLAN) $(TF_ARGS)

tf-apply: tf-init ## Apply the deployment, then write ansible/inventories/aws/hosts.yml
	@if [ -f $(TF_PLAN) ]; then $(TOFU) -chdir=$(TF_DIR) apply -input=false $(TF_PLAN); \
	  else $(TOFU) -chdir=$(TF_DIR) apply -input=false $(TF_ARGS); fi
	@rm -f $(TF_PLAN)
	@$(MAKE) --no-print-directory tf-inventory

tf-inventory: $(TOFU) ## Write the Ansible inventory from the current state's output
	@mkdir -p $(dir $(TF_INVENTORY))
	$(TOFU) -chdir=$(TF_DIR) output -raw ansible_inventory_yaml > $(TF_INVENTORY).tmp
	@mv $(TF_INVENTORY).tmp $(TF_INVENTORY)
	@echo "wrote $(TF_INVENTORY)"

tf-destroy: tf-init ## Destroy the deployment and remove the rendered inventory
	$(TOFU) -chdir=$(TF_DIR) destroy -input=false $(TF_ARGS)
	rm -f $(TF_INVENTORY) $(TF_PLAN)

terraform-test: $(TOFU) $(CHECKOV) $(SETUP_STAMP) ## Terraform: fmt check, tofu test of provider-free modules, inventory via Ansible, checkov
	TF_CLI_CONFIG_FILE=$(TF_OFFLINE_CONFIG) $(TOFU) fmt -check -recursive -diff $(TF_DIR)
	@for m in $(TF_PROVIDER_FREE_MODULES); do \
	  echo "== tofu test modules/$$m"; \
	  (cd $(TF_DIR)/modules/$$m && TF_CLI_CONFIG_FILE=$(TF_OFFLINE_CONFIG) $(TOFU) test -no-color) || exit 1; \
	done
	$(PY) -m pytest -q -p no:cacheprovider tests/terraform
