EXPERIMENTS += aihf-oracle
DEMO_aihf := aihf-oracle

.PHONY: aihf-oracle
aihf-oracle: setup ## AIHF vs SFT / DPO / SFT+DPO / RLHF on a task with a known reward, oracle reward vs n_pref (CPU, ~2 min)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m aihf experiment=oracle

EXPERIMENTS += aihf-oracle-llama
.PHONY: aihf-oracle-llama
aihf-oracle-llama: setup ## the same with a tiny Llama policy built locally (CPU, ~10 min)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m aihf experiment=oracle_llama

EXPERIMENTS += aihf-oracle-unbalanced
.PHONY: aihf-oracle-unbalanced
aihf-oracle-unbalanced: setup ## aihf-oracle with 200 demonstrations and few preferences (the paper's unbalanced regime; ~4 min)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m aihf experiment=oracle_unbalanced

EXPERIMENTS += aihf-mujoco
.PHONY: aihf-mujoco
aihf-mujoco: setup ## AIHF vs BC / RLHF-style / preference-only on Hopper-v5 (stable-baselines3 PPO; CPU, ~20 min; ENV=HalfCheetah-v5)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m aihf experiment=mujoco $(if $(ENV),mujoco.env=$(ENV) mujoco.name=mujoco_$(ENV))

EXPERIMENTS += aihf-align-tiny
.PHONY: aihf-align-tiny
aihf-align-tiny: setup ## the LLM pipeline end to end: tiny Llama, shipped data, tiny judge (CPU, ~1 min)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m aihf experiment=align_tiny

.PHONY: aihf-paper aihf-paper-dry
aihf-paper: setup ## AIHF on Pythia-1.4B + Anthropic-HH helpful-base (GPU + hub): make aihf-paper LAUNCH=ddp NPROC=8
	$(call paper_run,aihf,align.scale) experiment=paper

PAPER_DRY += aihf-paper-dry
aihf-paper-dry: setup ## aihf paper config at real shape on fake tensors: peak GiB per GPU -> results/aihf/paper-dry/
	$(PY) -m paperlab.dryrun aihf experiment=paper
