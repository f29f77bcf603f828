# Two commands do all the set-up on a fresh machine (Python >= 3.11, git, make):
#   make demo   creates .venv, installs, and runs `swarm demo` on the embedded default Redis
#   make test   creates .venv, installs, and runs ruff, mypy --strict and every test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/swarm demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy swarm workers ceremonies
	$(BIN)/lint-imports

# The whole suite on three processes (its integration tests mostly wait on workers and beats),
# then the ledger, beat and calendar tests again on the embedded
# Redis 6.2 server (the oldest supported).
test: lint
	$(BIN)/pytest -n 3 --dist worksteal --durations=15
	SWARM_TEST_REDIS=embedded $(BIN)/pytest -n 3 --dist worksteal -m redis_compat

bench: install
	$(BIN)/python bench/bench_ledger.py
	$(BIN)/python bench/bench_workers.py
	$(BIN)/python bench/bench_cli_startup.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .import_linter_cache
