# Two commands on a fresh machine (Python 3.11 and pip): `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.install-stamp
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: install run train demo-data validate deploy-demo test lint typecheck pytest lock schema soak doc-blocks kserve-client fuzz bench-online bench-batch bench-flood bench-overhead bench-cross-host bench-peers bench-replica-start bench-replica-batch multihost clean

install: $(STAMP)

# Re-installs only when the project's dependencies or the lock file change.
$(STAMP): pyproject.toml constraints.txt
	@echo "make install: creating $(VENV) and installing scorer with its pinned dependencies (constraints.txt)."
	@echo "  The first time this downloads MLflow, Ray, pyarrow, scikit-learn and friends: about a minute or two."
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install --progress-bar off -c constraints.txt -e '.[dev,bench]' > $(VENV)/pip-install.log 2>&1 \
		|| (tail -30 $(VENV)/pip-install.log; echo "make install: pip failed; full log in $(VENV)/pip-install.log"; exit 1)
	@grep -E '^Successfully installed' $(VENV)/pip-install.log | cut -c1-240 || true
	touch $(STAMP)
	@echo "make install: done ($(VENV)/bin/scorer)."

# Also registers the seed endpoints' models (configs/seeds/: ws:/thatmodel:1, ws:/my-model:1)
# as copies of the demo LogisticRegression, so those files run as written.
train: install
	$(BIN)/python examples/training/train.py --also-register thatmodel --also-register my-model

# Input for the batch demo: data/demo.csv and data/demo.parquet (20,000 rows, seeded).
demo-data: install
	$(BIN)/python examples/training/demo_data.py --out data

validate: install
	$(BIN)/scorer validate configs/endpoints/demo.yaml configs/batch/demo-batch.yaml

# The committed Kubernetes demo (deploy/pods, deploy/ray): tests/deploy checks it equals a fresh render.
DEMO_FILES := configs/endpoints/demo.yaml configs/batch/demo-batch.yaml
deploy-demo: install
	rm -rf deploy/pods deploy/ray
	$(BIN)/python -m scorer.cli render k8s $(DEMO_FILES) --out deploy/pods --placement pods
	$(BIN)/python -m scorer.cli render k8s $(DEMO_FILES) --out deploy/ray --placement ray

run: train validate
	$(BIN)/scorer serve configs/endpoints/demo.yaml --host 127.0.0.1 --port 8000

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy
	$(BIN)/mypy --strict -p serving -p batch

pytest: install
	$(BIN)/pytest

test: lint typecheck pytest

soak: install
	$(BIN)/pytest -m soak -p no:cacheprovider

# Every shell block that README.md and docs/*.md mark for newcomers (`<!-- newcomer: ... -->`,
# see tests/docs/blocks.py), the slow ones (batch, the seed endpoint) too; CI runs the rest.
doc-blocks: install
	$(BIN)/pytest tests/docs -m 'soak or not soak' -p no:cacheprovider

# V2 with the KServe client: kserve's pins clash with ours, so it gets its own venv (slow: not in CI)
KSERVE_VENV := build/kserve-venv
kserve-client: install
	test -x $(KSERVE_VENV)/bin/python || ($(BIN)/python -m venv $(KSERVE_VENV) && $(KSERVE_VENV)/bin/pip install kserve)
	SCORER_KSERVE_PYTHON=$(KSERVE_VENV)/bin/python $(BIN)/pytest tests/online/test_kserve_client.py -p no:cacheprovider

# Real multi-node Ray clusters made of network namespaces (root only; skipped with the reason
# elsewhere): the CI checks plus the long ones (three nodes, a larger job against local Ray, a node lost).
multihost: install
	$(BIN)/pytest tests/multihost -m multihost -p no:cacheprovider -s --timeout 900

# Mutation fuzz of every scoring route (10,000 cases a route) and schemathesis against
# /openapi.json (not_a_server_error); the CI run of tests/online/test_fuzz.py is a bounded sample.
fuzz: install
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,bench,fuzz]'
	SCORER_FUZZ_EXAMPLES=10000 SCORER_FUZZ_SECONDS=3600 SCORER_FUZZ_RANDOM=1 $(BIN)/pytest tests/online/test_fuzz.py -p no:cacheprovider -s --timeout 14400

# Benchmarks: never part of `make test`. bench-online needs wrk (apt-get install wrk).
bench-online: train
	$(BIN)/python benchmarks/online.py

# Issue 12 goal 4 in one run: scorer batch, the pandas loop and Ray Data map_batches, each a process of its
# own, on RF(100) and LR, Parquet and CSV (2M rows), plus scorer on 8M rows for driver memory; ratios and
# met / not met. On a quiet machine. BATCH_ARGS='--rounds 3' (medians) or '--quick' (a smoke run).
BATCH_ARGS ?=
bench-batch: train
	$(BIN)/python benchmarks/batch_bench.py $(BATCH_ARGS)

# Goodput under a 10x flood of 429s and of 401s, against goodput at capacity (needs wrk).
bench-flood: train
	$(BIN)/python benchmarks/flood.py

# scorer against MLServer 1.7 (V2, /invocations), Ray Serve and mlflow serve in one table (needs wrk).
# The peers get venvs of their own under .peers-venv/ (pip, first run only). PEERS_ARGS='--duration 5'
PEERS_ARGS ?=
bench-peers: train
	$(BIN)/python benchmarks/peers.py $(PEERS_ARGS)

# Replica cold start (the first, then scaled up through the admin API) and memory per replica.
bench-replica-start: train
	$(BIN)/python benchmarks/replica_start.py --model models:/demo-classifier/2

# A replica's batch path in-process (admit, merged predict, encode): us a request, this checkout;
# another with REPLICA_BATCH_ARGS='--tree /tmp/old' (a git archive).
REPLICA_BATCH_ARGS ?=
bench-replica-batch: train
	$(BIN)/python benchmarks/replica_batch.py $(REPLICA_BATCH_ARGS)

# Router overhead A/B: `scorer serve` of commit BEFORE (git archive) against this working tree, ABABAB,
# median of 3 rounds, verdict against issue 14's rule. e.g. make bench-overhead BEFORE=50e9afa
# OVERHEAD_ARGS='-n 300 --rounds 1'. Default BEFORE: HEAD if the tree has changes (what they do), else HEAD~1.
BEFORE ?= $(shell git status --porcelain | grep -q . && echo HEAD || echo HEAD~1)
OVERHEAD_ARGS ?=
bench-overhead: train
	$(BIN)/python benchmarks/overhead_ab.py --before-commit $(BEFORE) $(OVERHEAD_ARGS)

# The cost of the cross-host path: local replicas, Ray replicas on local Ray, and (as root, with network
# namespaces; else skipped with the reason) Ray replicas on another namespace "host". Needs wrk.
CROSS_HOST_ARGS ?=
bench-cross-host: train
	$(BIN)/python benchmarks/cross_host.py $(CROSS_HOST_ARGS)

schema: install
	$(BIN)/python -m scorer.spec.schema

# Refresh the lock file from a clean environment with the newest releases that fit pyproject.toml.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q --upgrade pip
	.lock-venv/bin/python -m pip install -q '.[dev,bench,fuzz]'
	.lock-venv/bin/python -m pip freeze --exclude scorer | sort -f > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .scorer build *.egg-info
