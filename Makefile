# Two commands for a fresh machine: `make run` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
RECIPE ?= fast-60s
RUN_DIR ?= runs/default

.PHONY: setup run test test-all bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# Before training: a local copy of the data, else a download, else Debian's package via apt-get.
run: $(STAMP)
	$(BIN)/python scripts/ensure_data.py
	$(BIN)/fashionbench train --recipe $(RECIPE) --out $(RUN_DIR) --overwrite

# `make test` skips the tests marked slow (tens of seconds of real training each) to stay near 5 minutes
# on 2 cores; `make test-all` (what .ci/run runs) adds them.
test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/python -m pytest -q -m "not slow"

test-all: test
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) runs .pytest_cache
