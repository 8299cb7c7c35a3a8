# Two commands on a fresh machine: `make run` (the demo pipeline) and `make test` (every test).
# Both create or refresh .venv from the pinned dependencies in pyproject.toml when needed.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PROFILE ?= demo
# Another CPU, emulated: PyTorch's kernels without vectorisation, oneDNN at SSE4.1, NumPy
# without AVX2/AVX-512, one thread. A notebook output that depends on floating point passes
# on one machine and fails on another: the second notebook pass below catches it here.
OTHER_CPU := ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 \
	NPY_DISABLE_CPU_FEATURES="X86_V3 X86_V4" OMP_NUM_THREADS=1

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
	$(OTHER_CPU) $(BIN)/python -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider notebooks

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
