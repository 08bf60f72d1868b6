# Every target sets itself up: the virtual environment is created and the package installed on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint pytest reliability clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --python $(BIN)/python --quiet -e ".[dev]"
	touch $(STAMP)

## demo: run the example DAGs against the built-in vendor emulator and print what happened
demo: $(STAMP)
	$(BIN)/python scripts/demo.py

## test: lint, type-check and run the whole test suite
test: lint pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest

## reliability: run the fault matrix and regenerate docs/reliability.md
reliability: $(STAMP)
	mkdir -p docs
	RELIABILITY_REPORT=docs/reliability.md $(BIN)/python -m pytest tests/reliability/test_fault_matrix.py -q

clean:
	rm -rf $(VENV) .demo
