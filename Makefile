# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# Pinned: an unpinned torch pulls the newest (a CUDA build of several GB on Linux x86_64).
# docs/worker.md says how to put the CPU build in .venv first.
TORCH  := torch==2.13.0

.PHONY: run test install install-bot lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed-bot: $(VENV)/bin/python pyproject.toml
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-all: $(VENV)/bin/python pyproject.toml
	$(PIP) install --quiet $(TORCH)
	$(PIP) install --quiet -e ".[dev,worker]"
	touch $@

install-bot: $(VENV)/.installed-bot   ## the bot alone (no torch)
install: $(VENV)/.installed-all       ## the bot, the GPU worker and the test tools

run: $(VENV)/.installed-bot           ## start every chat adapter that has credentials (console without)
	$(VENV)/bin/imagine-bot run

test: install                         ## lint, type-check, then the whole test suite (offline)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/dispatch.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
