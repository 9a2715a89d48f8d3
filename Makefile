# Two commands do all set-up on a fresh machine (Python 3.11):
#   make run    create .venv, install the pinned dependencies, run the workflow on the embedded dataset
#   make test   same set-up, then the test suite (with CI=true also the test against a real SLURM)
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The SLURM executor plugin goes to its own folder, put on PYTHONPATH only by the cluster test, so
# that ordinary snakemake calls never import it (it stalls start-up when no controller answers).
PLUGINS := .slurm-plugins
PLUGINS_STAMP := $(PLUGINS)/.installed

.PHONY: run test test-cluster gpu clean

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed: set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

$(PLUGINS_STAMP): $(STAMP) constraints.txt
	$(BIN)/pip install --quiet --no-deps --target $(PLUGINS) -c constraints.txt \
		snakemake-executor-plugin-slurm snakemake-executor-plugin-slurm-jobstep throttler
	touch $(PLUGINS_STAMP)

run: $(STAMP)
	$(BIN)/snakemake --cores all
	$(BIN)/snakemake --report results/report.html
	@echo "Report: results/report.html (summaries: results/synthetic/models/*/summary.md)"

# pytest is stopped after 40 minutes (the suite takes 13-18), so a hung test fails CI instead of stalling it.
test: $(STAMP)
	@if [ "$$CI" = "true" ]; then $(MAKE) --no-print-directory $(PLUGINS_STAMP) && .ci/slurm.sh start; fi
	@status=0; timeout -k 30 2400 $(BIN)/python -m pytest || status=$$?; \
	if [ "$$CI" = "true" ]; then .ci/slurm.sh stop; fi; exit $$status

# The SLURM test alone (needs root: installs slurm-wlm and munge if missing, starts and stops them).
test-cluster: $(PLUGINS_STAMP)
	.ci/slurm.sh start
	@status=0; $(BIN)/python -m pytest -m slurm || status=$$?; .ci/slurm.sh stop; exit $$status

# On a machine with an NVIDIA GPU: TensorFlow with CUDA in place of the CPU-only wheel. Again after
# any reinstall of the pinned dependencies (make run/test redo it when pyproject.toml or
# constraints.txt change, and put the CPU-only wheel back). Fails when TensorFlow sees no GPU.
gpu: $(STAMP)
	$(BIN)/pip uninstall --quiet --yes tensorflow-cpu tensorflow
	$(BIN)/pip install --quiet -c constraints.txt -c constraints-gpu.txt "tensorflow[and-cuda]"
	$(BIN)/python -c "import sys, tensorflow as tf; gpus = tf.config.list_physical_devices('GPU'); print('GPUs:', gpus); sys.exit(0 if gpus else 'TensorFlow sees no GPU: check the NVIDIA driver (nvidia-smi)')"

clean:
	rm -rf results .snakemake
