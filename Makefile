# Two commands for a fresh machine: `make run` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
RECIPE ?= fast-60s
RUN_DIR ?= runs/default

.PHONY: setup run light test test-all bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# Before training: a local copy of the data, else a download, else Debian's package via apt-get.
run: $(STAMP)
	$(BIN)/python scripts/ensure_data.py
	$(BIN)/fashionbench train --recipe $(RECIPE) --out $(RUN_DIR) --overwrite

# The phone model: fastnet_light pruned from a fast-60s run and fine-tuned with a fast-3m teacher (distillation),
# then both ONNX files (fp32 and int8) checked. The parent and the teacher are kept and reused.
light: $(STAMP)
	$(BIN)/python scripts/ensure_data.py
	test -f runs/light-parent/last.pt || $(BIN)/fashionbench train --recipe fast-60s --out runs/light-parent --overwrite
	test -f runs/teacher-3m/last.pt || $(BIN)/fashionbench train --recipe fast-3m --out runs/teacher-3m --overwrite
	$(BIN)/fashionbench train --recipe light --prune-from runs/light-parent --teacher runs/teacher-3m --out runs/light \
		--overwrite
	$(BIN)/fashionbench export runs/light
	$(BIN)/fashionbench export runs/light --int8

# `make test` skips the tests marked slow (tens of seconds of real training each) to stay near 5 minutes
# on 2 cores; `make test-all` (what .ci/run runs) adds them. Two pytest-xdist workers of one thread each
# (tests/conftest.py): most tests run on one core, so this takes 0.6x the time of one 2-thread process.
test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/python -m pytest -q -m "not slow" -n 2

test-all: test
	$(BIN)/python -m pytest -q -m slow -n 2

clean:
	rm -rf $(VENV) runs .pytest_cache
