# The two commands the README opens with: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test lint typecheck clean

$(BIN)/majordomo-log: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@

demo: $(BIN)/majordomo-log
	$(BIN)/majordomo-log demo

test: $(BIN)/majordomo-log
	$(BIN)/python -m pytest -q

lint: $(BIN)/majordomo-log
	$(BIN)/ruff check majordomo_log tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) demo-output .pytest_cache
