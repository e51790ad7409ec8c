# One command to run the product, one to test it. Both set up .venv on a fresh clone.
# The suite runs in four processes: most tests wait on sockets and servers, not on the CPU.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000
export PORT

.PHONY: run test lint bench bench-nodes bench-llm seed create-admin schema clean chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m core.cli run

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads browsers).
# If it cannot be installed, the browser tests fail and say why.
chromium:
	@command -v $${CHROMIUM_PATH:-chromium} >/dev/null 2>&1 || \
		(apt-get update && apt-get install -y chromium) || \
		echo "could not install chromium: the browser tests will fail (or set CHROMIUM_PATH)" >&2

test: $(STAMP) chromium
	$(BIN)/python -m core.cli export-schema --check
	$(BIN)/pytest -n 4 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# The benchmarks print their figures beside a baseline measured in the same run (see load/).
bench: $(STAMP)
	$(BIN)/python -m load.bench

bench-nodes: $(STAMP)
	$(BIN)/python -m load.bench_nodes

bench-llm: $(STAMP)
	$(BIN)/python -m load.bench_llm

seed: $(STAMP)
	$(BIN)/python -m core.cli seed

create-admin: $(STAMP)
	$(BIN)/python -m core.cli create-admin

schema: $(STAMP)
	$(BIN)/python -m core.cli export-schema

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
