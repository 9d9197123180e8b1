# oxapm — `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUILD_STAMP := $(VENV)/.oxapm-build

.DEFAULT_GOAL := help
.PHONY: help venv build test test-servers test-rust test-python test-abi3 demo bench bench-rust lint

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/bin/maturin:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "maturin>=1.5,<2"

venv: $(VENV)/bin/maturin ## Create the virtualenv in .venv

# Rebuilt when any Rust or Python source of the package changes. The test extra's database clients
# build against the C libraries test-servers installs.
$(BUILD_STAMP): $(VENV)/bin/maturin pyproject.toml Cargo.toml $(shell find crates python -name '*.rs' -o -name '*.py' -o -name '*.pyi' -o -name Cargo.toml) | test-servers
	$(VENV)/bin/maturin develop --release -q --extras test
	@touch $@

build: $(BUILD_STAMP) ## Build the engine and install oxapm (editable) into .venv

test: test-rust test-python test-abi3 ## Build, then run the Rust and Python suites

# The servers the instrumentation tests talk to on loopback (tests/servers.py starts them, each in a
# temporary directory, only when a test asks), the PostgreSQL ODBC driver for pyodbc, and what
# mysqlclient, pylibmc and pyodbc build against. Installed from Debian only when missing.
TEST_DEBS := postgresql mariadb-server redis-server memcached odbc-postgresql \
	build-essential pkg-config libpq-dev libmariadb-dev libmemcached-dev unixodbc-dev
test-servers: ## Install the database and cache servers the tests run (Debian packages)
	@scripts/install-debs test-servers $(TEST_DEBS)

test-rust: ## Run the engine's tests
	cargo test -p oxapm-core --quiet

test-python: test-servers $(BUILD_STAMP) ## Run the Python suite (and check the _core stubs)
	$(PY) -m mypy.stubtest oxapm._core
	$(PY) -m pytest -q

# The one abi3 wheel must work on the oldest and newest CPython we support: the suite runs again
# on each of these versions the machine has (pyenv's, else pythonX.Y on PATH). rotel has no wheel
# for 3.9, so every version uses the build venv's rotel-agent binary (it does not depend on Python).
ABI3_VERSIONS ?= 3.9 3.13
PYENV_VERSIONS := $(or $(PYENV_ROOT),$(HOME)/.pyenv)/versions
test-abi3: test-servers $(BUILD_STAMP) ## Run the Python suite on CPython 3.9 and 3.13 with the abi3 wheel
	rm -rf target/abi3-wheels && $(VENV)/bin/maturin build --release -q -o target/abi3-wheels
	@export OXAPM_TEST_ROTEL_AGENT=$$($(PY) -c 'import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))'); \
	for v in $(ABI3_VERSIONS); do \
	  py=$$(ls -d $(PYENV_VERSIONS)/$$v.*/bin/python 2>/dev/null | tail -n 1); \
	  [ -n "$$py" ] || py=$$(command -v python$$v || true); \
	  if [ -z "$$py" ] || ! $$py -c '' 2>/dev/null; then echo "test-abi3: no CPython $$v here, skipped"; continue; fi; \
	  echo "test-abi3: CPython $$v ($$py)"; env=target/venv-$$v; rm -rf $$env && $$py -m venv $$env && \
	  $$env/bin/pip install -q "$$(ls target/abi3-wheels/oxapm-*.whl)[test]" && \
	  (cd target && ../$$env/bin/python -m pytest -q -p no:cacheprovider ../tests) || exit 1; \
	done

demo: $(BUILD_STAMP) ## Run the example service and show its traces
	OTEL_TRACES_EXPORTER=console $(PY) examples/shop.py

bench: $(BUILD_STAMP) ## Benchmark oxapm against its peers; writes docs/benchmarks.md
	@scripts/install-debs bench wrk valgrind  # the web section's load generator, and the instruction counter
	$(PY) -m pip install -q -r benches/requirements.txt
	$(PY) benches/run.py

bench-rust: ## Criterion benchmarks of the engine's hot paths
	cargo bench -p oxapm-core

lint: ## rustfmt and clippy on the workspace
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
