# `make run` and `make test` each set up .venv themselves on a fresh machine (Python 3.11+).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The machine's PostgreSQL; each test run creates its own database there and drops it after.
export CIVICVAULT_TEST_POSTGRES_DSN ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: run test test-quick bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/civicvault serve --demo

test: $(STAMP)
	$(BIN)/ruff check vault policy projections adapters keys tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q --durations=15

# While developing: the fast tests only, with the development hypothesis profile.
test-quick: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" --durations=10

bench: $(STAMP)
	$(BIN)/python -m bench.crypto
	$(BIN)/python -m bench.append
	$(BIN)/python -m bench.policy
	$(BIN)/python -m bench.fetch
	$(BIN)/python -m bench.http_fetch
	$(BIN)/python -m bench.projections
	$(BIN)/python -m bench.ledger
	$(BIN)/python -m bench.readjudicate

clean:
	rm -rf $(VENV) .civicvault .pytest_cache .mypy_cache .ruff_cache .hypothesis
