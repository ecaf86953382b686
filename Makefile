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

# Paper-scale launches (paperlab.scale): `make <name>-paper LAUNCH=zero3 NPROC=8`. LAUNCH is single | ddp | fsdp |
# zero3 (accelerate config files in shared/src/paperlab/launch/); unset, the run is one process and the config's own
# scale block must say so (the entry point names the LAUNCH/NPROC to give otherwise). Paper targets reach the hub.
LAUNCH ?=
NPROC ?= 8
LAUNCH_DIR := shared/src/paperlab/launch
# $(call paper_run,<module>,<dotted scale block>) -> the command that runs `python -m <module>` under LAUNCH, the
# config's scale block told the launch; Hydra overrides follow it.
paper_run = HF_HUB_OFFLINE=0 $(if $(filter-out single,$(LAUNCH)),$(VENV)/bin/accelerate launch \
  --config_file $(LAUNCH_DIR)/$(LAUNCH).yaml --num_processes $(NPROC) \
  $(if $(filter zero3,$(LAUNCH)),--deepspeed_config_file $(abspath $(LAUNCH_DIR))/zero3.json) -m $(1) \
  $(2).launch=$(LAUNCH) $(2).num_gpus=$(NPROC),$(PY) -m $(1) $(if $(LAUNCH),$(2).launch=single $(2).num_gpus=1))

# Targets of each package live beside it; they add to EXPERIMENTS (and PAPER_DRY: their -paper-dry targets) and
# set DEMO_<name> / BENCH_<name>.
EXPERIMENTS :=
PAPER_DRY :=
-include $(wildcard packages/*/package.mk)

FUZZ_EXAMPLES ?= 1000
FUZZ_SEED ?= 20261203

.PHONY: fuzz help setup test test-shared test-cross $(addprefix test-,$(PACKAGES)) demo bench lint format clean paper-dry gpu-smoke

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

fuzz: setup ## every loader's fuzz test at FUZZ_EXAMPLES examples (seed FUZZ_SEED) -> results/fuzz/summary.md
	@mkdir -p results/fuzz
	@rm -f results/fuzz/report.jsonl
	OMP_NUM_THREADS=1 PAPERLAB_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) PAPERLAB_FUZZ_SEED=$(FUZZ_SEED) \
	  PAPERLAB_FUZZ_REPORT=$(abspath results/fuzz/report.jsonl) $(PYTEST) $(XDIST) -q -k fuzz $(TEST_DIRS)
	$(PY) -m paperlab.fuzz results/fuzz/report.jsonl results/fuzz/summary.md

bench: setup ## speed/memory benchmarks of every package -> results/bench/<name>.json
	@mkdir -p results/bench
	@for p in paperlab $(PACKAGES); do \
	  if [ -f benchmarks/$$p/bench.py ]; then echo "== bench $$p"; $(PY) benchmarks/$$p/bench.py; \
	  else echo "== bench $$p: no benchmark yet"; fi; \
	done

paper-dry: setup ## every package's paper dry run: estimated peak GiB per GPU -> results/<name>/paper-dry/*.md
	@fail=0; for t in $(PAPER_DRY); do echo "== make $$t"; $(MAKE) --no-print-directory $$t || fail=1; done; \
	if [ -z "$(PAPER_DRY)" ]; then echo "no package has a -paper-dry target yet"; fi; exit $$fail

gpu-smoke: setup ## paper architectures, random weights, a few training steps on one GPU (tiny shapes on CPU)
	$(PY) -m paperlab.smoke $(SMOKE_ARGS)

lint: setup ## ruff check + format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup ## ruff format + safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean: ## remove results and caches (keeps .venv)
	rm -rf results .cache .pytest_cache
