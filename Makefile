# One command to run the product, one to test it. Both set up .venv on a fresh clone.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000
export PORT

.PHONY: run test lint bench seed create-admin schema clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m core.cli run

test: $(STAMP)
	$(BIN)/python -m core.cli export-schema --check
	$(BIN)/pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

seed: $(STAMP)
	$(BIN)/python -m core.cli seed

create-admin: $(STAMP)
	$(BIN)/python -m core.cli create-admin

schema: $(STAMP)
	$(BIN)/python -m core.cli export-schema

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
