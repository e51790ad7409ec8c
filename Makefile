# One command to run the product, one to test it. Both set up .venv on a fresh clone.
# The suite runs in four processes: most tests wait on sockets and servers, not on the CPU.
# CPython 3.13: the newest release every dependency ships wheels for, and free of 3.11's AST
# recursion-depth bug (python/cpython#106905) that Hypothesis and Schemathesis can trigger.
# pyenv's shims answer `python3.13` only when that version is selected, hence the direct paths.
PYTHON_CANDIDATES := python3.13 $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) \
	/usr/local/bin/python3.13 /usr/bin/python3.13
PYTHON ?= $(firstword $(foreach p,$(PYTHON_CANDIDATES),$(shell $(p) -c \
	'import sys; assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1 && echo $(p))))
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000
export PORT

.PHONY: run test lint eval bench bench-nodes bench-llm seed create-admin schema clean chromium

# constraints.txt pins every package the suite was last run with, so a new release upstream
# cannot change a run; refresh it deliberately (pip freeze) when upgrading.
$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "Python 3.13 is needed (set PYTHON=/path/to/python3.13)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# Node tooling (eslint, Spectral, the page's unit tests): pinned by package-lock.json.
NODE_STAMP := node_modules/.installed
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-fund --no-audit --loglevel=error
	touch $(NODE_STAMP)

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

# Grading measured on the labelled answers in tests/evaluator/graded (both halves; the floors in
# tests/evaluator/test_floors.py hold the test half). EVALUATOR=openai grades through the model
# configured by OPENAI_API_KEY / OPENAI_BASE_URL / OPENAI_MODEL (any OpenAI-compatible server).
EVALUATOR ?= local
eval: $(STAMP)
	$(BIN)/python -m tests.evaluator.run --evaluator $(EVALUATOR)

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
