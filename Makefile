# Two commands: `make run` (the service on the embedded default, with demo data) and
# `make test` (the whole suite). Both set up .venv first; see DEVELOPERS.md for why torch
# is installed on its own before everything else.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# CPU PyTorch first: an unpinned torch (pulled in by sentence-transformers) would bring
	# gigabytes of CUDA packages.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/memsvc serve --demo

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy memsvc extractors retrievers storage serving evals

bench: install
	$(PY) -m memsvc.evals.bench_store

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
