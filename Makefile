# dnnbench: `make run` sets up and runs the quickstart; `make test` sets up and runs the tests.
SHELL := bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := run

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG ?= config/quickstart.yaml
# pip prints one warning per package for the offline mirror's missing folders
PIP_FILTER := grep -v -e 'is ignored: it is neither a file nor a directory' || true
# torch is pinned to its CPU build (requirements.lock: torch==2.13.0+cpu), which PyPI does not carry.
# On the project's machines pip finds it in the local wheel folder (pip.conf: find-links = /opt/wheels);
# elsewhere name PyTorch's CPU index: make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
PIP_EXTRA := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))

.PHONY: setup run test test-fast perf dlio-setup s3-up s3-down s3-status lock clean

$(STAMP): requirements.txt requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing requirements into $(VENV) (pinned by requirements.lock) ..."
	@$(PY) -m pip install --disable-pip-version-check -q $(PIP_EXTRA) -r requirements.txt -c requirements.lock 2>&1 \
	  | $(PIP_FILTER)
	@$(PY) -c "import torch, cv2, pandas, pydantic, rich, boto3, s3fs" || { echo "setup failed: a package did not \
	install (for torch's CPU wheel, off this machine: make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu)"; \
	exit 1; }
	@touch $(STAMP)

setup: $(STAMP)

run: setup
	$(PY) benchmark.py --config $(CONFIG)

# everything: unit, e2e and the integration tests against a local S3 server (they start it)
test: setup
	$(PY) -m pytest

# the unit and e2e tests not marked slow (no S3 server, no torchrun, no TensorFlow processes)
test-fast: setup
	$(PY) -m pytest -m "not slow" tests/unit tests/e2e

# the performance benchmarks: ratios measured in one run each (see README "Performance")
# (the local S3 server is stopped again afterwards unless it was already running)
perf: setup
	$(PY) scripts/perf.py
	$(PY) scripts/perf_access.py
	$(PY) scripts/perf_formats.py
	@if scripts/s3-server.sh status >/dev/null 2>&1; then started=0; else started=1; \
	  scripts/s3-server.sh start >/dev/null; fi; \
	rc=0; $(PY) scripts/perf_s3.py || rc=$$?; $(PY) scripts/perf_small.py || rc=$$?; \
	[ $$rc != 0 ] || $(PY) scripts/perf_ckpt.py || rc=$$?; \
	if [ $$started = 1 ]; then scripts/s3-server.sh stop >/dev/null; fi; exit $$rc
	$(PY) scripts/perf_tf.py
	$(MAKE) dlio-setup
	$(PY) scripts/perf_dlio.py --dlio-venv $(DLIO_VENV)

# DLIO 2.0 (MLPerf Storage's engine) in its own venv, for scripts/perf_dlio.py: --no-deps + its
# real dependencies (scripts/dlio-venv.sh says why)
DLIO_VENV ?= .venv-dlio
dlio-setup:
	PYTHON=$(PYTHON) TORCH_INDEX=$(TORCH_INDEX) scripts/dlio-venv.sh $(DLIO_VENV)

s3-up:
	scripts/s3-server.sh start

s3-down:
	scripts/s3-server.sh stop

s3-status:
	scripts/s3-server.sh status

# regenerate the exact pins after changing requirements.txt
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install -q $(PIP_EXTRA) -r requirements.txt 2>&1 | $(PIP_FILTER)
	.venv-lock/bin/pip freeze > requirements.lock && rm -rf .venv-lock

clean:
	rm -rf $(VENV) .pytest_cache data
