# Two entry points for a fresh clone (see README):
#   make demo  - install the screening package (no torch) and screen the bundled sample
#   make test  - install everything (training stack and test tools) and run the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test pipeline

demo: $(VENV)/.screen-installed
	$(BIN)/knockoff screen data/sample/listings.csv --out results/sample.parquet
	$(BIN)/knockoff show results/sample.parquet

test: $(VENV)/.dev-installed
	$(BIN)/pytest

# The full DVC pipeline (prepare -> train -> export -> index -> evaluate) on the real data.
pipeline: $(VENV)/.dev-installed
	KNOCKOFF_DATA=$${KNOCKOFF_DATA:-../shared/datasets} PATH=$(abspath $(BIN)):$$PATH $(BIN)/dvc repro

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	touch $@

$(VENV)/.screen-installed: pyproject.toml $(VENV)/.created
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml $(VENV)/.created
	$(BIN)/pip install -q -e '.[train,serve,dev]'
	touch $@
