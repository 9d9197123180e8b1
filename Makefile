# oxapm — `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUILD_STAMP := $(VENV)/.oxapm-build

.DEFAULT_GOAL := help
.PHONY: help venv build test test-rust test-python demo bench bench-rust lint

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/bin/maturin:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "maturin>=1.5,<2"

venv: $(VENV)/bin/maturin ## Create the virtualenv in .venv

# Rebuilt when any Rust or Python source of the package changes.
$(BUILD_STAMP): $(VENV)/bin/maturin pyproject.toml Cargo.toml $(shell find crates python -name '*.rs' -o -name '*.py' -o -name '*.pyi' -o -name Cargo.toml)
	$(VENV)/bin/maturin develop --release -q --extras test
	@touch $@

build: $(BUILD_STAMP) ## Build the engine and install oxapm (editable) into .venv

test: test-rust test-python ## Build, then run the Rust and Python suites

test-rust: ## Run the engine's tests
	cargo test -p oxapm-core --quiet

test-python: $(BUILD_STAMP) ## Run the Python suite (and check the _core stubs)
	$(PY) -m mypy.stubtest oxapm._core
	$(PY) -m pytest -q

demo: $(BUILD_STAMP) ## Run the example service and show its traces
	OTEL_TRACES_EXPORTER=console $(PY) examples/shop.py

bench: $(BUILD_STAMP) ## Benchmark oxapm against its peers; writes docs/benchmarks.md
	$(PY) -m pip install -q -r benches/requirements.txt
	$(PY) benches/run.py

bench-rust: ## Criterion benchmarks of the engine's hot paths
	cargo bench -p oxapm-core

lint: ## rustfmt and clippy on the workspace
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
