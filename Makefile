# The two commands of the README: `make up` and `make test`. Both install first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install browser haproxy up demo test test-fast bench bench-ingest bench-freshness bench-attribution bench-spend lock clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

up: install
	$(BIN)/skeldir up

# With `make up` running in another terminal: a demo tenant and a day of signed webhooks.
demo: install
	$(BIN)/skeldir demo

# The dashboard's browser test drives Debian's Chromium. Installed when this can (root with
# apt-get); otherwise that test is skipped and says why.
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the dashboard's browser test"; \
		{ DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 \
		  || { apt-get update -qq >/dev/null 2>&1 \
		       && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; }; } \
			|| echo "could not install chromium: the browser test will be skipped"; \
	fi

# The cluster test (tests/cluster) puts Debian's HAProxy in front of its API hosts. Installed
# when this can (root with apt-get); that test needs root for its network namespaces anyway.
haproxy:
	@if ! command -v haproxy >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's haproxy for the cluster test"; \
		{ DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null 2>&1 \
		  || { apt-get update -qq >/dev/null 2>&1 \
		       && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null 2>&1; }; } \
			|| echo "could not install haproxy: the cluster test will fail and say so"; \
	fi

# lint-imports first: an import that goes up a layer (docs/architecture.md) fails the build.
test: install browser haproxy
	$(BIN)/lint-imports
	$(BIN)/pytest

# Unit and property tests of the source tree's mirror: no database (marker `db`), no processes.
test-fast: install
	$(BIN)/pytest -m "not db and not e2e" tests/domains tests/base tests/operations

# Every benchmark, then one table of figures and targets (needs wrk; several minutes).
bench: install
	$(BIN)/python bench/run_all.py

bench-ingest: install
	$(BIN)/python bench/ingest.py

bench-freshness: install
	$(BIN)/python bench/freshness.py

bench-attribution: install
	$(BIN)/python bench/attribution.py

bench-spend: install
	$(BIN)/python bench/spend_load.py

# Re-pin every dependency after changing pyproject.toml.
lock: install
	$(BIN)/python -m pip freeze --exclude skeldir > requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
