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

.PHONY: run test lint eval bench bench-nodes bench-llm seed create-admin backup restore schema \
	clean chromium nginx

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

# Debian's nginx for the production-shape test (tests/deploy), which runs deploy/nginx.conf.
# If it cannot be installed, that test fails and says why.
nginx:
	@command -v $${NGINX_PATH:-nginx} >/dev/null 2>&1 || test -x /usr/sbin/nginx || \
		(apt-get update && apt-get install -y nginx-light) || \
		echo "could not install nginx: the deployment test will fail (or set NGINX_PATH)" >&2

# The page's model under node's own test runner, then the suite (which also lints the served
# OpenAPI document with Spectral). Coverage (branch) counts the
# product's code run by the tests and by the product processes they start (pyproject.toml
# [tool.coverage]); the suite fails below the floor. Tracing makes CPU-bound tests (the
# schema fuzzing) up to half as slow again, so the per-test hang guard is longer here.
COVERAGE_FLOOR := 90
test: $(STAMP) $(NODE_STAMP) chromium nginx
	$(BIN)/python -m core.cli export-schema --check
	node --test tests/web/*.test.js
	COVERAGE_DATA_DIR=$(CURDIR) $(BIN)/pytest -n 4 --dist loadfile \
		--cov --cov-report=term --cov-fail-under=$(COVERAGE_FLOOR) --timeout=180

lint: $(STAMP) $(NODE_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	node_modules/.bin/eslint .

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

# The staff commands work with or without `make run` running (they find its database).
seed: $(STAMP)
	$(BIN)/python -m core.cli seed

create-admin: $(STAMP)
	$(BIN)/python -m core.cli create-admin $(if $(ADMIN_EMAIL),--email "$(ADMIN_EMAIL)")

backup: $(STAMP)
	$(BIN)/python -m core.cli backup

restore: $(STAMP)
	@test -n "$(FILE)" || { echo "usage: make restore FILE=path/to/backup.tar.gz [FORCE=1]" >&2; exit 2; }
	$(BIN)/python -m core.cli restore "$(FILE)" $(if $(filter 1 yes true,$(FORCE)),--force)

schema: $(STAMP)
	$(BIN)/python -m core.cli export-schema

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
