EXPERIMENTS += semmim-tiny
DEMO_semmim := semmim-tiny

.PHONY: semmim-tiny
semmim-tiny: setup ## synthetic scenes, held-out colour-shape pairs: ITC+ITM+MLM vs + pixel MIM vs + SemMIM, retrieval R@1/5/10, colour and shape probes, error kinds (CPU, ~3 min)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m semmim experiment=tiny

EXPERIMENTS += semmim-study
.PHONY: semmim-study
semmim-study: setup ## the tiny world with 6 seeds, 600 steps and the SemMIM ablations (random masking, no text in targets) (CPU, ~60 min)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m semmim experiment=study

EXPERIMENTS += semmim-claim
.PHONY: semmim-claim
semmim-claim: setup ## the headline comparison over 18 seeds: ITC+ITM+MLM vs + pixel MIM vs + SemMIM, 600 steps, paired gaps (CPU, ~2 h)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m semmim experiment=claim

EXPERIMENTS += semmim-paper
.PHONY: semmim-paper
semmim-paper: setup ## ViT-B/16 + BERT-base (6 text + 6 fusion layers) on the 4M corpus as JSON caption files (GPUs + hub; LAUNCH=ddp NPROC=8); leaves results/semmim/paper/semmim_seed42.pt
	$(call paper_run,semmim,scale) experiment=paper

PAPER_DRY += semmim-paper-dry
.PHONY: semmim-paper-dry
semmim-paper-dry: setup ## dry run of experiment=paper (pretraining + the 4 paper fine-tunings): estimated peak GiB per GPU -> results/semmim/paper-dry/ (CPU, ~1 min)
	$(PY) -m paperlab.dryrun semmim experiment=paper

EXPERIMENTS += semmim-finetune-tiny
.PHONY: semmim-finetune-tiny
semmim-finetune-tiny: setup ## downstream fine-tuning on the synthetic scenes: retrieval, VQA, captioning from one tiny SemMIM pretraining (CPU, ~3 min)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m semmim.finetune task=retrieval_tiny
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m semmim.finetune task=vqa_tiny
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m semmim.finetune task=caption_tiny

SEMMIM_INIT ?= results/semmim/paper/semmim_seed42.pt
SEMMIM_FINETUNE_TASKS := coco_retrieval flickr_retrieval vqa coco_caption
EXPERIMENTS += semmim-finetune-paper
.PHONY: semmim-finetune-paper
semmim-finetune-paper: setup ## GPUs + hub: COCO / Flickr30K retrieval, VQA v2, COCO captioning from the semmim-paper weights (SEMMIM_INIT=...; accelerate launch)
	@for task in $(SEMMIM_FINETUNE_TASKS); do \
		echo "accelerate launch -m semmim.finetune task=$$task init=$(SEMMIM_INIT)"; \
		HF_HUB_OFFLINE=0 $(PY) -m accelerate.commands.launch --num_processes $(NPROC) -m semmim.finetune task=$$task init=$(SEMMIM_INIT) scale.num_gpus=$(NPROC) || exit $$?; \
	done
