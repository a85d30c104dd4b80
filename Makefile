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
# The virtualenv's pip is requirements-pip.lock's (pip 26: half the CPU of Python 3.11's bundled
# pip 23.2 on the index pages), installed first by $(PYTHON)'s own pip when it has 22.3 or later
# (--python), into a virtualenv made without pip: making one with pip unpacks and byte-compiles
# pip and setuptools, 6 s of CPU of a first `make start` (10-13 s on the loaded machine) for a
# pip that would be replaced at once. $(PYTHON)'s pip is looked at only by the install recipe
# (a second `make start` does not pay for it), and once.
HOST_PIP = $(eval HOST_PIP := $(shell $(PYTHON) -c 'import sys, pip; \
	sys.exit(tuple(map(int, pip.__version__.split(".")[:2])) < (22, 3))' 2>/dev/null && echo yes))$(HOST_PIP)
BOOTSTRAP_PIP = $(if $(HOST_PIP),$(PYTHON) -m pip --python $(BIN)/python,$(BIN)/python -m pip) \
	--disable-pip-version-check --quiet
# The server's Python caches the bytecode of what it imports (in __pycache__, gitignored; pip
# left .venv uncompiled, --no-compile below) even where PYTHONDONTWRITEBYTECODE is set, as in
# some shells and images: without that cache every start compiles again the ~1,100 modules a
# server imports, 3 s of CPU, most of a second `make start` (and the migration's as much again).
SERVE_PYTHON := PYTHONDONTWRITEBYTECODE= $(BIN)/python
HOST ?= 127.0.0.1
PORT ?= 8000

DATABASE_URL ?=

.PHONY: start test lint typecheck pytest bench install install-runtime lock chromium

# Runtime only: what serving needs, nothing else. --no-deps: the lock lists every package.
# --no-compile: Python compiles the modules a server imports when it first imports them,
# not the whole of every package (a third less CPU and 50 MB less on disk).
$(RUNTIME): requirements.lock requirements-pip.lock
	@test -x $(BIN)/python || { echo "make: creating $(VENV) with $(PYTHON)"; \
		$(PYTHON) -m venv $(if $(HOST_PIP),--without-pip) $(VENV); }
	@echo "make: installing pip, then the runtime dependencies, from requirements-pip.lock and"
	@echo "      requirements.lock (hashed) into $(VENV)"
	$(BOOTSTRAP_PIP) install --require-hashes --no-deps --no-compile -r requirements-pip.lock
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

# The staff tables are migrated when a migration or the installed packages changed since
# var/.migrated, or var/ is new; with DATABASE_URL set (another database), at every start. The
# server's own process does it before listening (python -m coditect.serve --migrate): one
# Python and one Django start-up instead of two, 2 s of CPU of a first start. A second `make
# start` otherwise only serves.
MIGRATED := var/.migrated
MIGRATIONS_CHANGED = $(if $(wildcard $(MIGRATED)),$(shell \
	find $(RUNTIME) $(wildcard */migrations/*.py) -newer $(MIGRATED) -print -quit 2>/dev/null),yes)
MIGRATE = $(if $(DATABASE_URL),--migrate,$(if $(MIGRATIONS_CHANGED),--migrate=$(MIGRATED)))

# daphne on $HOST:$PORT (default 127.0.0.1:8000) with the WebSocket options of settings.
start: $(RUNTIME)
	@$(if $(MIGRATE),echo "make: creating or updating the staff tables (migrate) before serving")
	@echo "make: serving on http://$(HOST):$(PORT)/ with daphne (Ctrl-C stops it)."
	@echo "      For autoreload in development: $(BIN)/python manage.py runserver $(HOST):$(PORT)"
	@HOST=$(HOST) PORT=$(PORT) $(SERVE_PYTHON) -m coditect.serve $(MIGRATE)

# Regenerates the locks from requirements.txt, requirements-dev.txt and requirements-pip.txt
# (needs pip-tools, which the dev lock installs). The editable client line is left out of the
# dev lock.
lock: $(DEV)
	grep -v '^-e ' requirements-dev.txt > .requirements-dev.in
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe \
		--strip-extras --no-emit-index-url --no-emit-find-links \
		--output-file requirements.lock requirements.txt
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe \
		--strip-extras --no-emit-index-url --no-emit-find-links \
		--output-file requirements-dev.lock .requirements-dev.in
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe \
		--strip-extras --no-emit-index-url --no-emit-find-links \
		--output-file requirements-pip.lock requirements-pip.txt
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
