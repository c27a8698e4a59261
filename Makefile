# `make run` and `make test` work on a fresh machine with only Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test unit integration lint docs lock clean

$(STAMP): requirements.txt requirements-worker.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

run: $(STAMP)
	$(BIN)/agentq dev

test: $(STAMP)
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP)
	$(BIN)/pytest tests/integration

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy agentq api workers tasks bench tests beat_schedule.py gunicorn.conf.py

# The documentation site (docs/, mkdocs.yml) into site/; a broken link or a page left out
# of the navigation fails the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# Pins what is installed into requirements.txt, except the packages that
# requirements-worker.txt and requirements-dev.txt pin (kept there by hand).
lock:
	{ grep '^#' requirements.txt; $(BIN)/pip freeze --exclude-editable \
	  | grep -viE "^($$(sed -n 's/==.*//p' requirements-worker.txt requirements-dev.txt | paste -sd'|' -))=="; } \
	  > requirements.txt.new
	mv requirements.txt.new requirements.txt

clean:
	rm -rf $(VENV) var .pytest_cache site

# The benchmarks of bench/ (MariaDB and Redis on 127.0.0.1; see bench/harness.py), one
# after another: each starts and stops its own processes. Figures go to docs/performance/.
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python -m bench.throughput
	$(BIN)/python -m bench.io_concurrency
	$(BIN)/python -m bench.submit
	$(BIN)/python -m bench.poll
	$(BIN)/python -m bench.memory
	$(BIN)/python -m bench.schedules
	$(BIN)/python -m bench.webhooks
	$(BIN)/python -m bench.fairness
	$(BIN)/python -m bench.cpu_fairness
	$(BIN)/python -m bench.console
