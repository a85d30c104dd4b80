# Everyday targets. The README's two commands are `make start` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: start test lint typecheck pytest bench install chromium

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

# daphne on $HOST:$PORT (default 127.0.0.1:8000) with the WebSocket options of settings.
start: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python -m coditect.serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy .

# The browser tests drive Debian's Chromium (never a downloaded build) and the proxy test
# runs Debian's nginx. Installing them needs root; where that fails those tests skip with the
# reason (and fail under CI).
chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get install -y chromium >/dev/null 2>&1 \
		|| (apt-get update >/dev/null 2>&1 && apt-get install -y chromium >/dev/null 2>&1) || true)
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx \
		|| apt-get install -y nginx-light >/dev/null 2>&1 || apt-get install -y nginx >/dev/null 2>&1 || true

pytest: $(STAMP) chromium
	$(BIN)/pytest

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python bench/storage.py
