# One place for the commands README.md documents.
VENV ?= venv
PYTHON ?= python3
PY := $(VENV)/bin/python

.PHONY: setup setup-runtime test test-fast e2e e2e-tools render bench clean

# Two stamps: the runtime (what `make render` and the Pulumi projects need) and the
# test stack on top of it (mlflow, kubernetes-validate...), which only `make test`
# and friends pay for. A fresh `make render` installs requirements.txt alone.
$(VENV)/.runtime: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

## setup: create ./venv with the pinned runtime and test dependencies (the Pulumi projects use it too)
setup: $(VENV)/.installed

## setup-runtime: create ./venv with the runtime dependencies only (what `render` and `diff` need)
setup-runtime: $(VENV)/.runtime

## test: the whole test suite (what CI runs)
test: setup
	$(PY) -m pytest

## test-fast: only the mock-based unit tests
test-fast: setup
	$(PY) -m pytest -m "not integration and not e2e"

## e2e: only the end-to-end tier: a model stack's rollout with the real pulumi engine against a local kube-apiserver
e2e: setup
	$(PY) -m pytest -m e2e

## e2e-tools: build (or find) the pulumi CLI, Python language host, Kubernetes provider and kube-apiserver
e2e-tools:
	scripts/e2e-tools.sh

## render: run the platform dev stack and the fraud-detector-dev model stack offline into rendered/ (no cloud, no cluster)
render: setup-runtime
	$(VENV)/bin/mlplatform render . dev --out rendered/dev
	$(VENV)/bin/mlplatform render stacks/model fraud-detector-dev --out rendered/fraud-detector-dev

## bench: program evaluation cost, rollout blast radius and test-suite time, written to docs/benchmarks.md
bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache
