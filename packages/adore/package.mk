EXPERIMENTS += adore-recall
DEMO_adore := adore-recall

.PHONY: adore-recall
adore-recall: setup ## every KV policy vs ADORE (release + rebuild) on associative recall at 10/25/50% budgets (CPU)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m adore experiment=recall

EXPERIMENTS += adore-lm
.PHONY: adore-lm
adore-lm: setup ## perplexity vs KV budget on real English text (installed packages' READMEs), every policy (CPU, ~15 min)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m adore experiment=lm

EXPERIMENTS += adore-paper
.PHONY: adore-paper
adore-paper: setup ## GPU + hub: Llama-2-7B-chat perplexity vs KV budget on PG19-style books (TEXT=/path/to/txt-folder)
	@test -n "$(TEXT)" || { echo "adore-paper: give TEXT=/path/to/folder-of-.txt-books (e.g. PG19 test)"; exit 2; }
	$(PY) -m adore experiment=paper 'lm.text_files=[$(TEXT)]'

EXPERIMENTS += adore-qa
.PHONY: adore-qa
adore-qa: setup ## recall as QA through model.generate + AdoreCache, context compressed before the question (CPU)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m adore experiment=qa

EXPERIMENTS += adore-paper-longbench
.PHONY: adore-paper-longbench
adore-paper-longbench: setup ## GPU + hub: Llama-2-7B-chat F1 vs KV budget on LongBench JSONL (DATA=folder of *.jsonl)
	@test -n "$(DATA)" || { echo "adore-paper-longbench: give DATA=/path/to/folder-of-longbench-jsonl"; exit 2; }
	$(PY) -m adore experiment=paper_longbench "qa.data=[$$(ls $(DATA)/*.jsonl | paste -sd, -)]"
