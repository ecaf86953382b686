EXPERIMENTS += profuser-tiny
DEMO_profuser := profuser-tiny

.PHONY: profuser-tiny
profuser-tiny: setup ## three tiny specialists (different tokenizers) fused into a tiny target: SFT vs FuseLLM vs inference-only vs ProFuser, per-skill accuracy (CPU)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m profuser experiment=tiny

EXPERIMENTS += profuser-study
.PHONY: profuser-study
profuser-study: setup ## the tiny world with 5 seeds per method: the comparison of record in the README (CPU)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m profuser experiment=study

EXPERIMENTS += profuser-paper
.PHONY: profuser-paper
profuser-paper: setup ## vicuna-7b-v1.5 + Llama-2-7b-chat + mpt-7b-8k-chat -> vicuna-7b-v1.5 (GPUs + hub; make profuser-paper LAUNCH=zero3 NPROC=8)
	$(call paper_run,profuser,train.scale) experiment=paper

PAPER_DRY += profuser-paper-dry
.PHONY: profuser-paper-dry
profuser-paper-dry: setup ## profuser paper config on fake tensors: estimated peak GiB per GPU of training and of each source's inference mode (CPU)
	$(PY) -m paperlab.dryrun profuser experiment=paper
