EXPERIMENTS += irl_sft-tiny
DEMO_irl_sft := irl_sft-tiny

.PHONY: irl_sft-tiny
irl_sft-tiny: setup ## SFT vs SPIN vs IRFT (T=2,4) vs RFT on a tiny Llama, 3 seeds, metrics and plots per step (CPU, ~4 min)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m irl_sft experiment=tiny

EXPERIMENTS += irl_sft-llm-tiny
.PHONY: irl_sft-llm-tiny
irl_sft-llm-tiny: setup ## IRFT stage loop on TRL end to end with a tiny Llama built locally (CPU, ~1 min)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m irl_sft experiment=llm_tiny

EXPERIMENTS += irl_sft-paper
.PHONY: irl_sft-paper
irl_sft-paper: setup ## IRFT on zephyr-7b-sft-full (LoRA, ZeRO-3), 5 stages of SPIN_iter0 (GPUs + hub; LAUNCH=zero3 NPROC=8; PAPER_1B=1 LAUNCH=ddp NPROC=4)
	$(call paper_run,irl_sft,llm.scale) experiment=$(if $(PAPER_1B),paper_1b,paper)

PAPER_DRY += irl_sft-paper-dry
.PHONY: irl_sft-paper-dry
irl_sft-paper-dry: setup ## dry run of experiment=paper and paper_1b: estimated peak GiB per GPU -> results/irl_sft/paper-dry/ (CPU, ~2 min)
	@fail=0; for exp in paper paper_1b; do $(PY) -m paperlab.dryrun irl_sft experiment=$$exp || fail=1; done; exit $$fail

EXPERIMENTS += irl_sft-llm-rft-tiny
.PHONY: irl_sft-llm-rft-tiny
irl_sft-llm-rft-tiny: setup ## explicit RFT on TRL (reward model + RLOO per stage) with a tiny Llama built locally (CPU, ~2 min)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m irl_sft experiment=llm_rft_tiny
