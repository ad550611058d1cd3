# Terraform/OpenTofu for AWS. scripts/tf.sh picks the binary (terraform or tofu on PATH, else
# OpenTofu built from its Go module) and, where a local provider mirror exists, installs the AWS
# provider from it (offline); elsewhere init uses the registry as usual (docs/terraform.md).

TF := $(ROOT)/scripts/tf.sh
CHECKOV := $(ROOT)/.cache/tools/checkov-venv/bin/checkov
TF_DIR := $(ROOT)/terraform
TF_INVENTORY := $(ROOT)/ansible/inventories/aws/hosts.yml
TF_PLAN := $(ROOT)/.cache/terraform/tfplan
TF_ARGS ?=
EMPTY_BUCKETS ?= no

TEST_TARGETS += terraform-test

.PHONY: tofu checkov tf-which tf-fmt tf-init tf-plan tf-apply tf-inventory tf-destroy terraform-test

$(CHECKOV): terraform/checkov-requirements.lock scripts/install-checkov.sh
	@./scripts/install-checkov.sh >/dev/null

tofu: ## Build OpenTofu from its Go module into .cache/tools/bin (only needed where neither terraform nor tofu is installed)
	@./scripts/build-opentofu.sh

checkov: ## Install checkov from terraform/checkov-requirements.lock into its own venv
	@./scripts/install-checkov.sh

tf-which: ## Print the Terraform/OpenTofu binary and the provider source make tf-* will use
	@$(TF) --which

tf-fmt: ## Rewrite every .tf/.tftest.hcl file in canonical format
	$(TF) fmt -recursive $(TF_DIR)

tf-init: ## terraform init in terraform/ (AWS provider from a local mirror when found, else the registry)
	$(TF) -chdir=$(TF_DIR) init -input=false

tf-plan: tf-init ## Plan the AWS deployment from terraform/terraform.tfvars into .cache/terraform/tfplan
	@mkdir -p $(dir $(TF_PLAN))
	$(TF) -chdir=$(TF_DIR) plan -input=false -out=$(TF_PLAN) $(TF_ARGS)

tf-apply: tf-init ## Apply the deployment, then write ansible/inventories/aws/hosts.yml
	@if [ -f $(TF_PLAN) ]; then $(TF) -chdir=$(TF_DIR) apply -input=false $(TF_PLAN); \
	  else $(TF) -chdir=$(TF_DIR) apply -input=false $(TF_ARGS); fi
	@rm -f $(TF_PLAN)
	@$(MAKE) --no-print-directory tf-inventory

tf-inventory: ## Write the Ansible inventory from the current state's output
	@mkdir -p $(dir $(TF_INVENTORY))
	$(TF) -chdir=$(TF_DIR) output -raw ansible_inventory_yaml > $(TF_INVENTORY).tmp
	@mv $(TF_INVENTORY).tmp $(TF_INVENTORY)
	@echo "wrote $(TF_INVENTORY)"

# The buckets are checked first: a bucket with data stops the destroy before anything is deleted,
# and only EMPTY_BUCKETS=yes empties them (every version, each key printed). The inventory goes
# only after a destroy that succeeded.
tf-destroy: tf-init $(SETUP_STAMP) ## Destroy the deployment (stops if the S3 buckets hold data; EMPTY_BUCKETS=yes empties them first)
	@buckets="$$($(TF) -chdir=$(TF_DIR) output -json 2>/dev/null | $(PY) -c 'import json,sys; o=json.load(sys.stdin); print(" ".join(o[k]["value"] for k in ("data_bucket","ops_bucket") if k in o))')"; \
	if [ -n "$$buckets" ]; then \
	  if [ "$(EMPTY_BUCKETS)" = yes ]; then $(PY) scripts/tf_buckets.py empty --yes $$buckets || exit 1; \
	  else $(PY) scripts/tf_buckets.py check $$buckets || exit 1; fi; \
	fi
	$(TF) -chdir=$(TF_DIR) destroy -input=false $(TF_ARGS)
	rm -f $(TF_INVENTORY) $(TF_PLAN)

terraform-test: $(CHECKOV) $(SETUP_STAMP) ## Terraform: fmt, module + root plan tests, validate/plan/apply/destroy with the real AWS provider against moto, inventory via Ansible, checkov
	@$(TF) --which
	$(TF) fmt -check -recursive -diff $(TF_DIR)
	$(PY) -m pytest -q -p no:cacheprovider tests/terraform
