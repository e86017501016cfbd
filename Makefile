# Smart Guangdong remote monitoring. `make demo` runs the product embedded; `make test` tests it.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup demo test lint fmt bench run migrate seed clean browser messages up soak fuzz

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
	@{ command -v chromium >/dev/null 2>&1 && fc-list :lang=zh | grep -q .; } || { \
	  echo "installing Debian's chromium and CJK fonts for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk; }

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

# Cluster mode on one machine: PostgreSQL + Redis, two ASGI workers on one port, Celery workers
# on the ingest, alerts and interfaces queues, the MLLP listener and beat (Procfile;
# docs/scaling.md). Production settings (DEBUG off), served over plain http on loopback: no
# HTTPS redirect and no Secure-only cookies, with a secret kept in var/ across restarts.
up: export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/smartgd
up: export REDIS_URL ?= redis://127.0.0.1:6379/0
up: export DJANGO_DEBUG ?= false
up: export DJANGO_SECURE_SSL_REDIRECT ?= false
up: export DJANGO_SECURE_COOKIES ?= false
up: export DJANGO_SECRET_KEY ?= $(shell mkdir -p var && { test -s var/cluster-secret-key || $(PYTHON) -c "import secrets; print(secrets.token_urlsafe(50))" > var/cluster-secret-key; } && cat var/cluster-secret-key)
up: setup
	$(PY) -c "import psycopg, os; u = os.environ['DATABASE_URL'].replace('postgres://', 'postgresql://'); n = u.rsplit('/', 1)[1]; c = psycopg.connect(u.rsplit('/', 1)[0] + '/postgres', autocommit=True); c.execute('SELECT 1 FROM pg_database WHERE datname = %s', [n]).fetchone() or c.execute(f'CREATE DATABASE \"{n}\"')"
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) manage.py seed_demo
	PORT=$(PORT) HOST=$(HOST) $(VENV)/bin/honcho start -f Procfile -p $(PORT)

# The fault-injection tests at full length (a 10-minute server outage, longer Redis and
# PostgreSQL outages); `make test` runs them shortened.
soak: setup
	SG_SOAK=1 $(PY) tests/run_with_services.py tests/e2e/test_faults_*.py -q

# The fuzz tests with many more examples than `make test` gives them.
fuzz: setup
	SG_FUZZ_EXAMPLES=$${SG_FUZZ_EXAMPLES:-20000} $(PY) tests/run_with_services.py tests/fuzz -q -p no:timeout

# Regenerate the Simplified Chinese catalogue from the sources, then compile it.
messages: setup
	$(PY) manage.py makemessages -l zh_Hans --ignore=.venv --ignore=node_modules --ignore=tests --ignore=bench --ignore=var
	$(PY) manage.py compilemessages -l zh_Hans --ignore=.venv

clean:
	rm -rf var/ .pytest_cache .ruff_cache .hypothesis
