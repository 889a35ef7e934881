# Two commands: `make run` (the service on the embedded default, with demo data) and
# `make test` (the whole suite). Both set up .venv first; see DEVELOPERS.md for why torch
# is installed on its own before everything else.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed

.PHONY: install browser run test lint bench bench-http clean

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

# Debian's Chromium, for the explorer page's browser test (needs root and apt-get, as on our
# machines and in CI); skipped when a chromium is already on PATH.
browser:
	command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  (DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	   DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)

test: install browser
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy memsvc extractors retrievers storage serving evals

bench: install
	$(PY) -m memsvc.evals.bench_store

bench-http: install
	$(PY) -m memsvc.evals.bench_http

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
