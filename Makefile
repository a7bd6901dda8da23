# `make run` and `make test` each set up .venv themselves on a fresh machine (Python 3.11+).
# `make run` installs what serving needs; `make test` adds the test extra (the type checker,
# schemathesis, a real S3 server, …).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVE_STAMP := $(VENV)/.installed-serve
TEST_STAMP := $(VENV)/.installed-test

# The machine's PostgreSQL; each test run creates its own database there and drops it after.
export CIVICVAULT_TEST_POSTGRES_DSN ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: run test test-quick bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(SERVE_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $(SERVE_STAMP)

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(TEST_STAMP) $(SERVE_STAMP)

run: $(SERVE_STAMP)
	$(BIN)/civicvault serve --demo

test: $(TEST_STAMP)
	$(BIN)/ruff check vault policy projections adapters keys tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -n auto --dist worksteal --durations=15

# While developing: the fast tests only, with the development hypothesis profile.
test-quick: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -n auto --dist worksteal -m "not slow" --durations=10

bench: $(TEST_STAMP)
	$(BIN)/python -m bench.crypto
	$(BIN)/python -m bench.append
	$(BIN)/python -m bench.policy
	$(BIN)/python -m bench.fetch
	$(BIN)/python -m bench.http_fetch
	$(BIN)/python -m bench.http_applications
	$(BIN)/python -m bench.projections
	$(BIN)/python -m bench.ledger
	$(BIN)/python -m bench.readjudicate

clean:
	rm -rf $(VENV) .civicvault .pytest_cache .mypy_cache .ruff_cache .hypothesis
