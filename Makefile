# s2cac: two commands do everything on a fresh machine.
#   make demo   set up .venv, then run the whole workflow on the built-in synthetic cohort (CPU, minutes)
#   make test   set up .venv, then run the test suite
# Other targets: setup (idempotent), lint, format, bench, clean.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CORES  ?= all
# test processes (pytest-xdist; whole test files per process, so module fixtures such as the SLURM cluster stay
# in one process). 2 fits a 2-core machine; TEST_WORKERS=0 runs everything in this process.
TEST_WORKERS ?= 2
# Every install is constrained by the lock; nothing else decides a version.
LOCK   := requirements/lock.txt
STAMP  := $(VENV)/.s2cac-installed

.PHONY: setup demo test lint format bench clean

setup: $(STAMP)

$(STAMP): $(LOCK) pyproject.toml
	@test -x $(PY) || { echo ">> creating $(VENV) with $$($(PYTHON) --version)"; $(PYTHON) -m venv $(VENV); }
	@echo ">> installing the locked requirements into $(VENV) (first time: a few minutes)"
	$(PY) -m pip install --quiet --disable-pip-version-check -c $(LOCK) -r $(LOCK)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -c $(LOCK) -e .
	@touch $(STAMP)
	@echo ">> $(VENV) is ready"

demo: setup
	$(VENV)/bin/snakemake --cores $(CORES) --workflow-profile workflow/profiles/default
	$(VENV)/bin/snakemake --report results/report.html
	@echo ">> open results/report.html (tables, figures, config, software versions, wall time per stage)"

test: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile tests

lint: setup
	$(VENV)/bin/ruff check s2cac tests workflow benchmarks
	$(VENV)/bin/ruff format --check s2cac tests workflow benchmarks
	$(VENV)/bin/snakemake --lint

format: setup
	$(VENV)/bin/ruff format s2cac tests workflow benchmarks
	$(VENV)/bin/ruff check --fix s2cac tests workflow benchmarks

bench: setup
	@for b in benchmarks/bench_*.py; do echo ">> $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf results logs .snakemake
