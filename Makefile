# The two commands of the README: `make up` and `make test`. Both install first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install up test test-fast bench-ingest bench-freshness bench-attribution lock clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

up: install
	$(BIN)/skeldir up

test: install
	$(BIN)/pytest

# Unit and property tests only: no database, no processes.
test-fast: install
	$(BIN)/pytest -m "not e2e" tests/attribution tests/ingestion tests/webhooks tests/test_money.py

bench-ingest: install
	$(BIN)/python bench/ingest.py

bench-freshness: install
	$(BIN)/python bench/freshness.py

bench-attribution: install
	$(BIN)/python bench/attribution.py

# Re-pin every dependency after changing pyproject.toml.
lock: install
	$(BIN)/python -m pip freeze --exclude skeldir > requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
