EXPERIMENTS += unify-tiny unify-paper unify-paper-didemo
# unify-tiny joins make demo (DEMO_unify) once its claim is reproduced: see packages/unify/README.md

.PHONY: unify-tiny unify-paper unify-paper-didemo
unify-tiny: setup ## UNIFY vs latent-only vs lexicon-only on synthetic videos, held-out combinations (tiny, CPU; not yet in demo)
	$(PY) -m unify experiment=tiny

unify-paper: setup ## UNIFY on MSR-VTT 1k-A with CLIP ViT-B/32 (GPU, hub weights; DATA=<msrvtt folder>)
	$(if $(DATA),UNIFY_DATA=$(DATA)) HF_HUB_OFFLINE=0 $(PY) -m unify experiment=msrvtt_paper

unify-paper-didemo: setup ## UNIFY on DiDeMo with CLIP ViT-B/32 (GPU, hub weights; DATA=<didemo folder>)
	$(if $(DATA),UNIFY_DATA=$(DATA)) HF_HUB_OFFLINE=0 $(PY) -m unify experiment=didemo_paper
