# The two commands of the README: `make quickstart` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip

.PHONY: quickstart test lint benchmark clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

quickstart: $(BIN)/python
	$(PIP) install --quiet -e '.[examples]'
	PATH="$(abspath $(BIN)):$$PATH" bash examples/flights/run.sh demo

lint: $(BIN)/python
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/mypy
	$(BIN)/lint-imports

test: $(BIN)/python
	$(PIP) install --quiet -e '.[dev]'
	@# PyTorch's CPU build (the default wheel brings gigabytes of CUDA); without it the PyTorch
	@# flavor tests skip and say so.
	$(BIN)/python -c "import torch" 2>/dev/null || $(PIP) install --quiet --timeout 30 --retries 2 torch \
		--index-url https://download.pytorch.org/whl/cpu || echo "torch not installed: PyTorch flavor tests will skip"
	$(MAKE) lint
	$(BIN)/pytest -n 2 --dist loadgroup

benchmark: $(BIN)/python
	$(PIP) install --quiet -e '.[dev]'
	$(BIN)/python benchmarks/validation.py
	$(BIN)/python benchmarks/pipelines.py
	$(BIN)/python benchmarks/registry.py
	$(BIN)/python benchmarks/features.py
	$(BIN)/python benchmarks/serving.py

clean:
	rm -rf demo .pytest_cache .mypy_cache .ruff_cache
