# paperlab: the only entry point a newcomer needs. `make help` lists every target.
# Fresh machine: `make demo` (main job on the tiny defaults) and `make test`. The venv, uv and tiny models
# are brought by the targets themselves.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

PACKAGES := profuser adore aihf irl_sft roleinteract semmim sbr_side_info unify alpha_umi paperowl

export PAPERLAB_DATA ?= $(abspath ../shared/data)
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export PYTHONWARNINGS ?= ignore::FutureWarning

UV := $(or $(shell command -v uv 2>/dev/null),$(HOME)/.local/bin/uv)
VENV := .venv
PY := $(VENV)/bin/python
SYNCED := $(VENV)/.paperlab-synced
PYTEST := $(PY) -m pytest
# Two workers on two cores, one torch thread each.
XDIST := -n 2 --dist loadfile

# Targets of each package live beside it; they add to EXPERIMENTS and set DEMO_<name> / BENCH_<name>.
EXPERIMENTS :=
-include $(wildcard packages/*/package.mk)

.PHONY: help setup test test-shared test-cross $(addprefix test-,$(PACKAGES)) demo bench lint format clean

help: ## list every target
	@echo "paperlab targets:"
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:[^#]*## /\t/' | awk -F'\t' '{printf "  %-28s %s\n", $$1, $$2}'
	@echo "  test-<name>                  one package's tests: $(PACKAGES)"

$(HOME)/.local/bin/uv:
	@echo "uv not found: installing it with pip (user site)"
	python3 -m pip install --quiet --user uv

$(SYNCED): uv.lock pyproject.toml shared/pyproject.toml $(wildcard packages/*/pyproject.toml) | $(UV)
	$(UV) sync --all-packages --frozen --inexact --compile-bytecode
	@touch $@

setup: $(SYNCED) ## create .venv with every package (uv sync --all-packages --frozen)

# Only folders that exist: a package still at its skeleton has no tests/ yet (pytest-xdist would otherwise
# collect nothing at all and exit 5).
TEST_DIRS = $(wildcard shared/tests tests $(addsuffix /tests,$(addprefix packages/,$(PACKAGES))))

test: setup ## run every test: shared, all packages, cross-package (the CI command)
	OMP_NUM_THREADS=1 $(PYTEST) $(XDIST) $(TEST_DIRS)

test-shared: setup ## tests of the paperlab package
	$(PYTEST) shared/tests

test-cross: setup ## cross-package tests: layout, import isolation, one package installs alone
	$(PYTEST) tests

$(addprefix test-,$(PACKAGES)): test-%: setup
	@if [ -d packages/$*/tests ]; then $(PYTEST) packages/$*/tests; \
	else echo "packages/$* has no tests yet (skeleton: see its README)"; fi

demo: setup ## the main job: every package's tiny end-to-end experiment -> results/demo/summary.md
	@mkdir -p results/demo
	@: > results/demo/status.tsv
	@for entry in $(foreach p,$(PACKAGES),$(p):$(or $(DEMO_$(p)),-)); do \
	  pkg=$${entry%%:*}; target=$${entry#*:}; \
	  if [ "$$target" = "-" ]; then \
	    if [ -f packages/$$pkg/package.mk ]; then state="in progress: no demo target yet (see its README)"; \
	    else state="not implemented"; fi; \
	    echo "== $$pkg: $$state"; \
	    printf '%s\t%s\t%s\t%s\n' "$$pkg" "-" "$$state" "0" >> results/demo/status.tsv; \
	    continue; \
	  fi; \
	  echo "== $$pkg: make $$target"; start=$$(date +%s); \
	  if $(MAKE) --no-print-directory $$target; then status=ok; else status=FAILED; fi; \
	  printf '%s\t%s\t%s\t%s\n' "$$pkg" "$$target" "$$status" "$$(( $$(date +%s) - start ))" >> results/demo/status.tsv; \
	done
	@$(PY) -m paperlab.workspace summary results/demo/status.tsv results/demo/summary.md

bench: setup ## speed/memory benchmarks of every package -> results/bench/<name>.json
	@mkdir -p results/bench
	@for p in paperlab $(PACKAGES); do \
	  if [ -f benchmarks/$$p/bench.py ]; then echo "== bench $$p"; $(PY) benchmarks/$$p/bench.py; \
	  else echo "== bench $$p: no benchmark yet"; fi; \
	done

lint: setup ## ruff check + format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup ## ruff format + safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean: ## remove results and caches (keeps .venv)
	rm -rf results .cache .pytest_cache
