# Everything a newcomer needs: `make run` and `make test` create .venv and install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint install clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The IdP on :5000 and the demo portal on :5001; Ctrl-C stops both.
run: $(STAMP)
	$(BIN)/idp init --demo
	@echo "Demo portal: http://127.0.0.1:5001  (IdP: http://127.0.0.1:5000)"
	@trap 'kill 0' INT TERM EXIT; \
	$(BIN)/python -m clients.demo_portal & \
	$(BIN)/idp serve --host 127.0.0.1 --port 5000

test: $(STAMP)
	$(BIN)/pytest -q

# The IdP under gunicorn with 1,000,000 users, each scenario driven from its own process;
# prints the table and writes bench/results/latest.{json,md}. About 5 minutes on 2 cores.
bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.run

lint: $(STAMP)
	$(BIN)/ruff check idp clients tests
	$(BIN)/mypy idp

clean:
	rm -rf $(VENV) instance .pytest_cache
