# Smart Guangdong remote monitoring. `make demo` runs the product embedded; `make test` tests it.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup demo test lint fmt bench run migrate seed clean browser

setup: $(VENV)/.installed frontend/static/vendor/.installed

# Front-end libraries come from the npm registry (package.json), never from a CDN.
frontend/static/vendor/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p frontend/static/vendor
	cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css frontend/static/vendor/
	@touch $@

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

migrate: setup
	$(PY) manage.py migrate --noinput -v0

seed: migrate
	$(PY) manage.py seed_demo

# The embedded default: SQLite, in-memory channel layer, eager Celery; no service needed.
demo: export DATABASE_URL :=
demo: export REDIS_URL :=
demo: export CELERY_BROKER_URL :=
demo: seed
	@echo ""
	@echo "Smart Guangdong remote monitoring is starting at http://$(HOST):$(PORT)/"
	@echo "  log in at http://$(HOST):$(PORT)/login/ with a demo login above; admin at /admin/"
	@echo "  stop with Ctrl-C; a second 'make demo' reuses the data in var/"
	$(PY) manage.py rundemo --host $(HOST) --port $(PORT)

# Browser tests drive Debian's Chromium (never a downloaded browser build).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# ruff, then pytest against PostgreSQL and Redis when reachable (required when CI=true).
test: setup browser
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) tests/run_with_services.py

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: setup
	$(PY) bench/run_all.py

clean:
	rm -rf var/ .pytest_cache .ruff_cache .hypothesis
