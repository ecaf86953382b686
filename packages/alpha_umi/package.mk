EXPERIMENTS += alpha_umi-tiny
DEMO_alpha_umi := alpha_umi-tiny

.PHONY: alpha_umi-tiny
alpha_umi-tiny: setup ## single-LLM vs alpha-UMi (GLPFT) vs stage-2 only in a synthetic tool world, 2 x 128 Llama (CPU, ~26 min)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m alpha_umi experiment=tiny

# paper runs: make alpha_umi-paper LAUNCH=zero3 NPROC=8 [ALPHA_UMI_EXP=paper_13b] [ARGS="data.train_path=..."]
ALPHA_UMI_EXP ?= paper
EXPERIMENTS += alpha_umi-paper
.PHONY: alpha_umi-paper
alpha_umi-paper: setup ## GLPFT on LLaMA-2-7B (ALPHA_UMI_EXP=paper_13b: 13B) with ToolBench data, static evaluation (GPUs + hub; LAUNCH=zero3 NPROC=8)
	$(call paper_run,alpha_umi,train.scale) experiment=$(ALPHA_UMI_EXP) $(ARGS)

PAPER_DRY += alpha_umi-paper-dry
.PHONY: alpha_umi-paper-dry
alpha_umi-paper-dry: setup ## estimated GiB per GPU of the paper configs (7B and 13B; fake tensors on CPU, ~3 min)
	@fail=0; for e in paper paper_13b; do $(PY) -m paperlab.dryrun alpha_umi experiment=$$e || fail=1; done; exit $$fail

EXPERIMENTS += alpha_umi-study
.PHONY: alpha_umi-study
alpha_umi-study: setup ## the demo's settings without progress bars, for seeds and controls (CPU, ~26 min)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m alpha_umi experiment=study
