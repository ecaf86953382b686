EXPERIMENTS += semmim-tiny
DEMO_semmim := semmim-tiny

.PHONY: semmim-tiny
semmim-tiny: setup ## synthetic scenes, held-out colour-shape pairs: ITC+ITM+MLM vs + pixel MIM vs + SemMIM, retrieval R@1/5/10, colour and shape probes, error kinds (CPU, ~3 min)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m semmim experiment=tiny

EXPERIMENTS += semmim-study
.PHONY: semmim-study
semmim-study: setup ## the tiny world with 6 seeds, 600 steps and the SemMIM ablations: the comparison of record in the README (CPU, ~60 min)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m semmim experiment=study

EXPERIMENTS += semmim-paper
.PHONY: semmim-paper
semmim-paper: setup ## ViT-B/16 + BERT-base on the 4M corpus (COCO, VG, SBU, CC3M) as JSON caption files (GPUs + hub; accelerate launch)
	HF_HUB_OFFLINE=0 $(PY) -m accelerate.commands.launch -m semmim experiment=paper
