# bridgesolve: two commands do everything on a fresh machine.
#   make demo   creates .venv, installs the package, solves the embedded default example
#   make test   creates .venv, installs everything, runs the suite serially and under MPI
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
NPROC ?= 2
PYTEST_ARGS ?=

# The first Python >= 3.12 found (3.12 preferred: every dependency ships wheels for it):
# python3.12/python3.13 on PATH (pyenv shims only count if they run), then pyenv's versions.
PYTHON ?= $(shell for c in python3.12 python3.13 python3 \
	$$(ls -d $$HOME/.pyenv/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -V); do \
	  if command -v $$c >/dev/null 2>&1 && $$c -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
	    echo $$c; break; fi; done)

.PHONY: demo test test-serial test-mpi bench lint figures clean venv

$(VENV)/.installed: pyproject.toml
	@if [ -z "$(PYTHON)" ]; then \
	  echo "error: bridgesolve needs Python >= 3.12 (python3.12 or python3.13); none was found." >&2; \
	  echo "       install one (e.g. 'pyenv install 3.12') or run: make PYTHON=/path/to/python3.12 ..." >&2; \
	  exit 1; fi
	@echo "== creating $(VENV) with $(PYTHON) ($$($(PYTHON) --version))"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dolfinx,test,bench,learn]'
	@touch $@

venv: $(VENV)/.installed

demo: $(VENV)/.installed
	MPLBACKEND=agg $(VENV)/bin/bridgesolve run --output results/demo --overwrite

test: $(VENV)/.installed
	$(MAKE) --no-print-directory test-serial test-mpi

test-serial: $(VENV)/.installed
	MPLBACKEND=agg $(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

# One BLAS/OpenMP thread per rank: NPROC ranks already fill the cores.
test-mpi: $(VENV)/.installed
	MPLBACKEND=agg OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(VENV)/bin/mpiexec -n $(NPROC) $(PY) -m pytest -q -m "mpi and not slow" \
	  -p no:cacheprovider $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(PY) benchmarks/fp_vs_pypde.py
	OMP_NUM_THREADS=1 $(PY) benchmarks/bridge_vs_pot.py

# ruff (pycodestyle, pyflakes, isort, bugbear, pyupgrade, NumPy, Google docstrings) and a
# lenient mypy over bridgesolve/ (settings in pyproject.toml).
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(PY) -m mypy

# The three papers' figure sets (examples/papers/<name>.py) into results/figures/<name>/.
PAPERS := yu-huang-2025 hirono-2024 premkumar-2023
figures: $(VENV)/.installed
	for name in $(PAPERS); do \
	  MPLBACKEND=agg $(VENV)/bin/bridgesolve figures $$name -o results/figures/$$(echo $$name | tr - _) || exit 1; \
	done

clean:
	rm -rf $(VENV) results .pytest_cache .mypy_cache .ruff_cache
