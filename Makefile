# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# Pinned: an unpinned torch pulls the newest (a CUDA build of several GB on Linux x86_64).
# docs/worker.md says how to put the CPU build in .venv first.
TORCH  := torch==2.13.0

.PHONY: run test install install-bot lint bench clean mutation

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed-bot: $(VENV)/bin/python pyproject.toml
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-all: $(VENV)/bin/python pyproject.toml
	$(PIP) install --quiet $(TORCH)
	$(PIP) install --quiet -e ".[dev,worker,fleet]"
	touch $@

install-bot: $(VENV)/.installed-bot   ## the bot alone (no torch)
install: $(VENV)/.installed-all       ## the bot, the GPU worker, the fleet and the test tools

run: $(VENV)/.installed-bot           ## start every chat adapter that has credentials (console without)
	$(VENV)/bin/imagine-bot run

# The suite runs in TEST_WORKERS processes (pytest-xdist), tests handed out one at a time; the
# tests that share the fleet's local Ray run in one of them (see tests/fleet/conftest.py).
# Many tests wait on sockets, timers and child processes, so even 2 cores gain from two.
TEST_WORKERS ?= 2

test: install                         ## lint, type-check, then the whole test suite (offline)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/dispatch.py

# Mutation testing (slow, so not part of `make test`): see [tool.mutmut] in pyproject.toml and
# docs/reliability.md. MUTATE narrows the run to some of the files there, e.g.
# `make mutation MUTATE=bot/core/quota.py`; empty means all of them. Each run starts afresh in
# mutants/, which stays afterwards for `mutmut results` and `mutmut show NAME`.
MUTATE ?=
MUTANT_MODULES = $(subst /,.,$(MUTATE:.py=))
# Mutants run in parallel; the tests wait on loopback sockets and timers much of the time, so
# twice as many as cores keeps 2 cores busy (the full run: 1,487 s with 2 at once, 1,109 s with 4
# in the same conditions; 837 s with 4 on a quiet machine).
MUTATION_CHILDREN ?= 4

mutation: install                     ## mutation testing of the quota and dispatch code (~14-19 min on 2 cores)
	rm -rf mutants
	@start=$$(date +%s); \
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/mutmut run --max-children $(MUTATION_CHILDREN) \
		$(foreach m,$(MUTANT_MODULES),'$(m).*') \
		|| exit $$?; \
	echo; echo "mutation run took $$(( $$(date +%s) - start )) s"
	@$(VENV)/bin/mutmut results --all=true \
		| $(if $(MUTATE),grep -F $(foreach m,$(MUTANT_MODULES),-e ' $(m).x'),cat) \
		| awk -F': ' '{ sub(/^ +/, "", $$1); n++; s = $$NF; \
			if (s == "killed") k++; else if (s == "caught by type check") { k++; t++ } \
			else if (s == "survived") { v++; names = names "\n    " $$1 } \
			else { o++; other[s]++ } } \
		END { printf "%d mutants: %d killed (%d of them by mypy), %d survived, %d other", n, k, t, v, o; \
			sep = " ("; for (s in other) { printf "%s%d %s", sep, other[s], s; sep = ", " } \
			if (o) printf ")"; printf "\n"; \
			if (v) printf "survivors:%s\n", names; \
			print "see one with: $(VENV)/bin/mutmut show NAME (all: $(VENV)/bin/mutmut results)" }'

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
