EXPERIMENTS += alpha_umi-tiny
DEMO_alpha_umi := alpha_umi-tiny

.PHONY: alpha_umi-tiny
alpha_umi-tiny: setup ## single-LLM vs alpha-UMi (GLPFT) vs stage-2 only in a synthetic tool world, 2 x 128 Llama (CPU, ~26 min)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m alpha_umi experiment=tiny

EXPERIMENTS += alpha_umi-paper
.PHONY: alpha_umi-paper
alpha_umi-paper: setup ## GLPFT on LLaMA-2-7B with ToolBench data, static evaluation (GPUs + hub; accelerate launch)
	$(PY) -m alpha_umi experiment=paper

EXPERIMENTS += alpha_umi-study
.PHONY: alpha_umi-study
alpha_umi-study: setup ## the demo's settings without progress bars, for seeds and controls (CPU, ~26 min)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m alpha_umi experiment=study
