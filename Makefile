# One place for the commands README.md and docs/ document.
VENV ?= venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# What the tests run for real, as binary:Debian package; the one list (.ci/run and
# tests/support/prerequisites.py follow it). Prometheus and promtool: the rollout gate's
# integration tests and the alert rules; amtool: the Alertmanager routing; etcd:
# the e2e tier's control plane; shellcheck: actionlint checks the workflows' shell steps with it.
DEB_TOOLS := prometheus:prometheus promtool:prometheus amtool:prometheus-alertmanager etcd:etcd-server shellcheck:shellcheck
# The oldest Go that builds every module under tests/e2e/go-modules/ (their go.mod `go` lines).
GO_MIN := 1.26.0

.PHONY: setup setup-runtime deps lint lint-workflows format test test-fast e2e e2e-tools render bench bench-e2e bench-judge docs docs-check clean

# Two stamps: the runtime (what `make render` and the Pulumi projects need) and the
# test stack on top of it (mlflow, kubernetes-validate...), which only `make test`
# and friends pay for. A fresh `make render` installs requirements.txt alone.
$(VENV)/.runtime: requirements.txt pyproject.toml policy/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	# The policy pack runs in this venv too (policy/PulumiPolicy.yaml): every preview runs it.
	$(PY) -m pip install --quiet -r policy/requirements.txt
	touch $@

$(VENV)/.installed: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

## setup: create ./venv with the pinned runtime and test dependencies (the Pulumi projects use it too)
setup: $(VENV)/.installed

## setup-runtime: create ./venv with the runtime dependencies only (what `render` and `diff` need)
setup-runtime: $(VENV)/.runtime

## deps: install the missing Debian packages the tests run (apt-get: needs root) and check Go for the e2e tools
deps:
	@missing=$$(for pair in $(DEB_TOOLS); do \
	    command -v "$${pair%%:*}" >/dev/null 2>&1 || echo "$${pair#*:}"; done | sort -u | tr '\n' ' '); \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" != 0 ]; then \
	        echo "deps: missing Debian packages: $$missing- run 'sudo make deps' (apt-get needs root)" >&2; exit 1; \
	    fi; \
	    echo "deps: installing $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@version=$$(go env GOVERSION 2>/dev/null | sed 's/^go//'); \
	if [ -z "$$version" ]; then \
	    echo "deps: Go $(GO_MIN) or newer is needed to build the e2e tier's tools and is not on PATH: https://go.dev/dl/" >&2; exit 1; \
	fi; \
	if [ "$$(printf '%s\n' "$(GO_MIN)" "$$version" | sort -V | head -n1)" != "$(GO_MIN)" ]; then \
	    echo "deps: Go $$version is too old to build the e2e tier's tools; install Go $(GO_MIN) or newer: https://go.dev/dl/" >&2; exit 1; \
	fi

## lint: ruff (lint, then format check) and pyright (types); CI needs 0 findings. The pre-commit hooks run these lines
lint: setup
	$(VENV)/bin/ruff check --force-exclude .
	$(VENV)/bin/ruff format --check --force-exclude .
	$(VENV)/bin/pyright --pythonpath $(PY)

## format: rewrite what ruff can fix by itself (import order, pyupgrade...), then format; review the diff
format: setup
	$(VENV)/bin/ruff check --fix --force-exclude .
	$(VENV)/bin/ruff format --force-exclude .

## test: the whole test suite, after `deps` (what CI runs); a missing prerequisite fails, nothing is skipped
test: setup deps
	$(PY) -m pytest

## test-fast: only the mock-based unit tests
test-fast: setup
	$(PY) -m pytest -m "not integration and not e2e"

## e2e: only the end-to-end tier: the real platform and a model stack's rollout, real pulumi engine, simulated cluster (needs MLPLATFORM_TEST_CHARTS)
e2e: setup deps
	$(PY) -m pytest -m e2e

## e2e-tools: build (or find) the pulumi CLI, Python language host, Kubernetes provider and the simulated cluster's binaries
e2e-tools:
	scripts/e2e-tools.sh

## lint-workflows: actionlint (with shellcheck) and zizmor over .github/: 0 findings, or each suppressed inline with its reason
# actionlint comes from its wrapper module (scripts/e2e-tools.sh builds it once, into the tools'
# cache); zizmor is pinned in requirements-dev.txt and runs offline.
lint-workflows: setup deps
	@actionlint=$$(scripts/e2e-tools.sh actionlint | sed -n 's/^actionlint=//p'); \
	test -n "$$actionlint" || { echo "lint-workflows: scripts/e2e-tools.sh gave no actionlint" >&2; exit 1; }; \
	command -v shellcheck >/dev/null || { echo "lint-workflows: shellcheck is missing: make deps (as root)" >&2; exit 1; }; \
	"$$actionlint" -shellcheck "$$(command -v shellcheck)"
	$(VENV)/bin/zizmor --offline --no-progress --min-severity informational .github/
	@echo "lint-workflows: actionlint and zizmor: no findings"

## render: run the platform dev stack and the fraud-detector-dev model stack offline into rendered/ (no cloud, no cluster)
render: setup-runtime
	$(VENV)/bin/mlplatform render . dev --out rendered/dev
	$(VENV)/bin/mlplatform render stacks/model fraud-detector-dev --out rendered/fraud-detector-dev

## bench: program evaluation cost, rollout blast radius and test-suite time, written to docs/benchmarks.md
bench: setup
	$(PY) -m bench

## bench-judge: replay seeded synthetic canaries through the judge and the old gate (docs/benchmarks.md section 6, docs/img/judge.png)
bench-judge: setup
	$(PY) -m bench.judge

## bench-e2e: time the real platform and a rollout on the simulated cluster (docs/benchmarks.md, section 5), then a weight step and a rollback at the engine's floor, paired (bench.engine); needs MLPLATFORM_TEST_CHARTS and kubectl
bench-e2e: setup deps
	$(PY) -m bench.simulated
	$(PY) -m bench.engine

## docs: build the documentation site (docs/, mkdocs.yml) into site/ with MkDocs Material; nothing is fetched
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build

## docs-check: build the site with --strict, so a broken link, anchor or a page missing from the nav fails (CI runs it)
docs-check: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) .pytest_cache site
