# The tables depend on the float kernels: one torch thread (also pinned in the code, `threads: 1`), MKL's
# reproducible path and AVX2 ATen kernels (the same on every x86-64 CPU with AVX2), whatever the caller exports.
ADORE_PINNED := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MKL_CBWR=COMPATIBLE ATEN_CPU_CAPABILITY=avx2

EXPERIMENTS += adore-recall
DEMO_adore := adore-recall

.PHONY: adore-recall
adore-recall: setup ## every KV policy vs ADORE (release + rebuild) on associative recall at 10/25/50% budgets (CPU)
	$(ADORE_PINNED) $(PY) -m adore experiment=recall

EXPERIMENTS += adore-lm
.PHONY: adore-lm
adore-lm: setup ## perplexity vs KV budget on real English text (installed packages' READMEs), every policy (CPU, ~15 min)
	$(ADORE_PINNED) $(PY) -m adore experiment=lm

EXPERIMENTS += adore-lm-code
.PHONY: adore-lm-code
adore-lm-code: setup ## perplexity vs KV budget on real code (installed packages' Python sources: long-range repeats), every policy, induction check (CPU, ~20 min)
	$(ADORE_PINNED) $(PY) -m adore experiment=lm_code

EXPERIMENTS += adore-paper
.PHONY: adore-paper
adore-paper: setup ## GPU + hub: Llama-2-7B-chat perplexity vs KV budget on PG19-style books (TEXT=/path/to/txt-folder)
	@test -n "$(TEXT)" || { echo "adore-paper: give TEXT=/path/to/folder-of-.txt-books (e.g. PG19 test)"; exit 2; }
	$(PY) -m adore experiment=paper 'lm.text_files=[$(TEXT)]'

EXPERIMENTS += adore-qa
.PHONY: adore-qa
adore-qa: setup ## recall as QA through model.generate + AdoreCache, context compressed before the question (CPU)
	$(ADORE_PINNED) $(PY) -m adore experiment=qa

EXPERIMENTS += adore-paper-longbench
.PHONY: adore-paper-longbench
adore-paper-longbench: setup ## GPU + hub: Llama-2-7B-chat F1 vs KV budget on LongBench JSONL (DATA=folder of *.jsonl)
	@test -n "$(DATA)" || { echo "adore-paper-longbench: give DATA=/path/to/folder-of-longbench-jsonl"; exit 2; }
	$(PY) -m adore experiment=paper_longbench "qa.data=[$$(ls $(DATA)/*.jsonl | paste -sd, -)]"

.PHONY: adore-bench-kvpress
adore-bench-kvpress: setup ## ADORE via generate vs our baselines and kvpress 0.5.5 (own venv in /tmp/peer-kvpress), 1k-8k, 2 runs
	test -x /tmp/peer-kvpress/bin/python || { python3 -m venv /tmp/peer-kvpress && \
	  /tmp/peer-kvpress/bin/pip install "torch==2.13.0" "kvpress==0.5.5"; }
	OMP_NUM_THREADS=1 $(PY) benchmarks/adore/bench.py --peer /tmp/peer-kvpress/bin/python --repeats 2

PAPER_DRY += adore-paper-dry
.PHONY: adore-paper-dry
adore-paper-dry: setup ## dry run of experiment=paper and paper_longbench (Llama-2-7B: oracle labels, decode / generate): peak GiB per GPU -> results/adore/paper-dry/ (CPU, ~1 min)
	$(PY) -m paperlab.dryrun adore experiment=paper
	$(PY) -m paperlab.dryrun adore experiment=paper_longbench
