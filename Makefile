# Two commands do all set-up on a fresh machine (Python 3.11):
#   make run    create .venv, install the pinned dependencies, run the workflow on the embedded dataset
#   make test   same set-up, then the test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-cluster report clean

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed: set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/snakemake --cores all
	$(BIN)/snakemake --report results/report.html
	@echo "Report: results/report.html (summaries: results/synthetic/models/*/summary.md)"

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf results .snakemake
