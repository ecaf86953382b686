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
irl_sft-paper: setup ## IRFT on zephyr-7b-sft-full + ultrachat_200k, 5 stages (GPUs + hub; PAPER_1B=1 for the 1B setting)
	$(PY) -m irl_sft experiment=$(if $(PAPER_1B),paper_1b,paper)

EXPERIMENTS += irl_sft-llm-rft-tiny
.PHONY: irl_sft-llm-rft-tiny
irl_sft-llm-rft-tiny: setup ## explicit RFT on TRL (reward model + RLOO per stage) with a tiny Llama built locally (CPU, ~2 min)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m irl_sft experiment=llm_rft_tiny
