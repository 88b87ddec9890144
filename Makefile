# Everything a newcomer needs: `make run` and `make test` create .venv and install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-postgres serve-prod lint install clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# `idp init --demo`, then the IdP on :5000 and the demo portals on :5001-5003 (MLS, Members
# Only, Grace Church); prints the URLs and demo accounts; Ctrl-C stops all of them.
run: $(STAMP)
	$(BIN)/python -m clients.run_demo

test: $(STAMP)
	$(BIN)/pytest -q

# The whole suite on PostgreSQL. It creates (and drops) its own throwaway databases
# idp_test_<host>_<pid>_* on the server of IDP_TEST_DATABASE_URL, whose role needs CREATEDB; the
# database named there is only connected to. Another server:
#   make test-postgres IDP_TEST_DATABASE_URL=postgresql+psycopg://me:secret@db.local/postgres
IDP_TEST_DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres
test-postgres: $(STAMP)
	IDP_TEST_DATABASE_URL='$(IDP_TEST_DATABASE_URL)' IDP_REQUIRE_POSTGRES=1 $(BIN)/pytest -q

# Production-style serving: `idp init` (schema and keys), then gunicorn with WEB_CONCURRENCY
# sync workers (default: 2 per CPU core) on IDP_BIND (default 127.0.0.1:8000), configured by
# IDP_CONFIG and IDP_* variables like every command. Put it behind a TLS-terminating proxy
# (docs/operations.md); the settings are in idp/ops/gunicorn_conf.py. Example:
#   IDP_CONFIG=/etc/idp/config.toml WEB_CONCURRENCY=8 IDP_BIND=0.0.0.0:8000 make serve-prod
serve-prod: $(STAMP)
	$(BIN)/idp init
	$(BIN)/gunicorn -c python:idp.ops.gunicorn_conf 'wsgi:app'

# The IdP under gunicorn with 1,000,000 users, each scenario driven from its own process;
# prints the table and writes bench/results/latest.{json,md}. Under 3 minutes on 2 cores,
# the batch jobs (10,000 invitations, 100,000 legacy rows) included.
bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.run

lint: $(STAMP)
	$(BIN)/ruff check idp clients tests
	$(BIN)/mypy idp

clean:
	rm -rf $(VENV) instance .pytest_cache
