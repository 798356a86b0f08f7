# Two commands on a fresh machine (Python 3.11 and pip): `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.install-stamp
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: install run train validate test lint typecheck pytest lock schema soak bench-online bench-batch clean

install: $(STAMP)

# Re-installs only when the project's dependencies or the lock file change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,bench]'
	touch $(STAMP)

train: install
	$(BIN)/python examples/training/train.py

validate: install
	$(BIN)/scorer validate configs/endpoints/demo.yaml configs/batch/demo-batch.yaml

run: train validate
	$(BIN)/scorer serve configs/endpoints/demo.yaml --host 127.0.0.1 --port 8000

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest

test: lint typecheck pytest

soak: install
	$(BIN)/pytest -m soak -p no:cacheprovider

# Benchmarks: never part of `make test`. bench-online needs wrk (apt-get install wrk).
bench-online: train
	$(BIN)/python benchmarks/online.py

bench-batch: train
	$(BIN)/python benchmarks/batch_bench.py

schema: install
	$(BIN)/python -m scorer.spec.schema

# Refresh the lock file from a clean environment with the newest releases that fit pyproject.toml.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q --upgrade pip
	.lock-venv/bin/python -m pip install -q '.[dev,bench]'
	.lock-venv/bin/python -m pip freeze --exclude scorer | sort -f > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .scorer build *.egg-info
