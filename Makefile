# IoT Burst Resilience Pilot. `make help` lists every target with one line each.
# Area-specific targets live in mk/<area>.mk; each appends its test target to TEST_TARGETS.

SHELL := /bin/bash
.DEFAULT_GOAL := help
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export PATH := $(BIN):$(PATH)
SETUP_STAMP := $(VENV)/.setup-stamp
SCENARIO ?= scenarios/thundering-herd.yml

TEST_TARGETS := lint test-python

.PHONY: help setup lock lint test test-python broker broker-stop dist

help: ## Print every target with one line each
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | sort -u | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2}'

setup: ## Install system packages (as root on Debian) and the pinned project virtualenv; idempotent
	@./scripts/setup.sh

$(SETUP_STAMP): requirements.lock pyproject.toml scripts/setup.sh
	@./scripts/setup.sh

lock: ## Re-resolve requirements.in into requirements.lock (needs registry access)
	./scripts/lock.sh

lint: $(SETUP_STAMP) ## Lint everything: ruff, mypy (strict on gateway/ibp), yamllint, ansible-lint (production), shellcheck
	./scripts/lint.sh

test-python: $(SETUP_STAMP) broker-jars ## Run the Python test suites (unit and integration, real broker); tests/terraform runs under terraform-test
	$(PY) -m pytest --ignore=tests/terraform

broker-jars: $(SETUP_STAMP) ## Assemble Apache Kafka from Maven Central into .cache/kafka (cached)
	$(PY) -m broker assemble

broker: broker-jars ## Start the local Kafka broker (KRaft) on free loopback ports
	$(PY) -m broker start

broker-stop: $(SETUP_STAMP) ## Stop the local Kafka broker and delete its data
	$(PY) -m broker stop

dist: $(SETUP_STAMP) ## Build the project wheel and the native hot path's wheel (ibp_native, needs cargo) into dist/
	rm -rf build dist/*.whl
	$(PY) -m pip wheel --no-deps --no-build-isolation -q -w dist .
	@./scripts/build_native_wheel.sh dist >/dev/null || [ $$? -eq 2 ]
	@ls dist/*.whl

-include mk/*.mk

test: $(TEST_TARGETS) ## Run every test: lint, Python suites, firmware host tests, Molecule, Terraform
	@echo "make test: all of [$(TEST_TARGETS)] passed"
