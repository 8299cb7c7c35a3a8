# Two commands on a fresh machine: `make run` (the demo pipeline) and `make test` (every test).
# Both create or refresh .venv from the pinned dependencies in pyproject.toml when needed.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PROFILE ?= demo

.PHONY: setup run test notebooks lint format clean-runs help

help:
	@echo "make run    - set up .venv if needed, then run the demo pipeline (runs/$(PROFILE)/)"
	@echo "make test   - set up .venv if needed, then run lint, unit, end-to-end and notebook tests"
	@echo "make setup  - create or refresh .venv from pyproject.toml"
	@echo "make notebooks - re-execute the stored notebooks in place (the outputs nbval compares)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/python run_all.py --profile $(PROFILE)

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider tests notebooks

notebooks: setup
	$(BIN)/python -m cxrlib.pipeline.refresh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean-runs:
	rm -rf runs/
