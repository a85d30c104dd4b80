# Everyday targets. The README's two commands are `make start` and `make test`.
# Installs come from the hashed lock files (`make lock` regenerates them from the .txt files):
# `make start` installs only requirements.lock; `make test` adds requirements-dev.lock on top.
PYTHON ?= python3
# Another interpreter gets its own virtualenv: `make test PYTHON=python3.12` -> .venv-python3.12.
VENV ?= $(if $(filter python3,$(PYTHON)),.venv,.venv-$(notdir $(PYTHON)))
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed
PIP := $(BIN)/python -m pip --disable-pip-version-check --quiet
HOST ?= 127.0.0.1
PORT ?= 8000

DATABASE_URL ?=

.PHONY: start test lint typecheck pytest bench install install-runtime lock chromium

# Runtime only: what serving needs, nothing else. --no-deps: the lock lists every package.
# --no-compile: Python compiles the modules a server imports when it first imports them,
# not the whole of every package (a third less CPU and 50 MB less on disk).
$(RUNTIME): requirements.lock
	@test -x $(BIN)/python || { echo "make: creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@echo "make: installing runtime dependencies from requirements.lock (hashed) into $(VENV)"
	$(PIP) install --require-hashes --no-deps --no-compile -r requirements.lock
	@touch $@

# Test, lint and type-check tools on top. The Python client is a local editable path, which
# cannot carry a hash: it is installed after the hashed set, its dependency (websockets)
# being in the lock already.
$(DEV): $(RUNTIME) requirements-dev.lock clients/python/pyproject.toml
	@echo "make: installing test and type-check tools from requirements-dev.lock (hashed)"
	$(PIP) install --require-hashes --no-deps -r requirements-dev.lock
	@echo "make: installing the Python client (clients/python, editable, not hashed)"
	$(PIP) install --no-deps --no-build-isolation -e ./clients/python
	@touch $@

install-runtime: $(RUNTIME)
install: $(DEV)

# The staff tables are migrated when a migration changed or var/ is new; with DATABASE_URL
# set (another database), at every start. A second `make start` otherwise only serves.
MIGRATED := var/.migrated
$(MIGRATED): $(RUNTIME) $(wildcard */migrations/*.py)
	@echo "make: creating or updating the staff tables (manage.py migrate)"
	@$(BIN)/python manage.py migrate --noinput -v 0
	@$(if $(DATABASE_URL),,touch $@)

# daphne on $HOST:$PORT (default 127.0.0.1:8000) with the WebSocket options of settings.
start: $(RUNTIME) $(MIGRATED)
	@echo "make: serving on http://$(HOST):$(PORT)/ with daphne (Ctrl-C stops it)."
	@echo "      For autoreload in development: $(BIN)/python manage.py runserver $(HOST):$(PORT)"
	@HOST=$(HOST) PORT=$(PORT) $(BIN)/python -m coditect.serve

# Regenerates both locks from requirements.txt and requirements-dev.txt (needs pip-tools,
# which the dev lock installs). The editable client line is left out of the dev lock.
lock: $(DEV)
	grep -v '^-e ' requirements-dev.txt > .requirements-dev.in
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe \
		--strip-extras --no-emit-index-url --no-emit-find-links \
		--output-file requirements.lock requirements.txt
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe \
		--strip-extras --no-emit-index-url --no-emit-find-links \
		--output-file requirements-dev.lock .requirements-dev.in
	rm -f .requirements-dev.in

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV)
	$(BIN)/mypy .

# The browser tests drive Debian's Chromium (never a downloaded build) and the proxy test
# runs Debian's nginx. Installing them needs root; where that fails those tests skip with the
# reason (and fail under CI).
chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get install -y chromium >/dev/null 2>&1 \
		|| (apt-get update >/dev/null 2>&1 && apt-get install -y chromium >/dev/null 2>&1) || true)
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx \
		|| apt-get install -y nginx-light >/dev/null 2>&1 || apt-get install -y nginx >/dev/null 2>&1 || true

pytest: $(DEV) chromium
	$(BIN)/pytest

test: lint typecheck pytest

bench: $(DEV)
	$(BIN)/python bench/storage.py
