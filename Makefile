# The two set-up commands: `make demo` and `make test` (each creates .venv on first use).
#
# Both install the exact versions in requirements.lock (what the suite last passed with),
# so a new release of numpy or pytest cannot turn a clean clone red overnight. The
# package's own dependency ranges in pyproject.toml stay open for users. `make lock`
# refreshes the lock from the newest versions those ranges allow.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LOCK := requirements.lock
# PIP_CONSTRAINT also reaches pip's isolated build environment, so setuptools is pinned too.
PIP_LOCKED := PIP_CONSTRAINT=$(abspath $(LOCK)) $(PY) -m pip install --quiet

.PHONY: demo test check bench docs lock clean

$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PIP_LOCKED) pip
	$(PIP_LOCKED) -e '.[test,dev]'
	touch $@

demo: $(VENV)/.installed
	$(PY) -m exporter demo $(ARGS)

test: $(VENV)/.installed
	$(PY) -m pytest -q $(ARGS)

check: $(VENV)/.installed
	$(PY) -m ruff check exporter tests bench
	$(PY) -m ruff format --check exporter
	$(PY) -m mypy

bench: $(VENV)/.installed
	$(PY) bench/proxy_overhead.py $(ARGS)

# The nightly-size fuzz run: 20x the cases tests/fuzz tries in `make test` (226,000; about 15 minutes).
.PHONY: fuzz
fuzz: $(VENV)/.installed
	FUZZ_SCALE=20 $(PY) -m pytest -q tests/fuzz $(ARGS)

docs: $(VENV)/.installed
	$(PY) -m exporter.metrics.docs --write

# Resolve the newest versions pyproject.toml allows in a scratch venv and write them down.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip setuptools
	.venv-lock/bin/python -m pip install --quiet -e '.[test,dev,parquet]'
	{ echo "# Exact versions for make test / make demo / .ci/run; refresh with: make lock"; \
	  .venv-lock/bin/python -m pip freeze --all --exclude-editable | grep -v '^wheel=='; } > $(LOCK)
	rm -rf .venv-lock
	@echo "wrote $(LOCK); run: make clean test"

clean:
	rm -rf $(VENV) .venv-lock build *.egg-info .pytest_cache .hypothesis
