# faena: `make demo` runs the main job, `make test` runs every test. Both set up .venv first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck bench bench-peers clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/faena demo

test: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
	# two processes (2 cores; tests of one xdist_group share one), then, alone, the tests that
	# restart a service the others use
	$(VENV)/bin/pytest -q -n 2 --dist loadgroup -m "not serial"
	$(VENV)/bin/pytest -q -m serial

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/bench_faena.py --broker sqlite --broker postgres --broker redis

bench-peers:
	bash bench/run_peers.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
