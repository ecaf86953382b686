EXPERIMENTS += unify-tiny unify-paper unify-paper-b16 unify-paper-didemo unify-paper-activitynet unify-paper-msvd
DEMO_unify := unify-tiny

.PHONY: unify-tiny unify-paper unify-paper-b16 unify-paper-didemo unify-paper-activitynet unify-paper-msvd
unify-tiny: setup ## UNIFY vs latent-only vs lexicon-only on synthetic videos, held-out combinations (tiny, CPU, ~10 min)
	$(PY) -m unify experiment=tiny

unify-paper: setup ## UNIFY on MSR-VTT 1k-A with CLIP ViT-B/32 (GPU, hub weights; DATA=<msrvtt folder>)
	$(if $(DATA),UNIFY_DATA=$(DATA)) HF_HUB_OFFLINE=0 $(PY) -m unify experiment=msrvtt_paper

unify-paper-b16: setup ## UNIFY on MSR-VTT 1k-A with CLIP ViT-B/16 (GPU, hub weights; DATA=<msrvtt folder>)
	$(if $(DATA),UNIFY_DATA=$(DATA)) HF_HUB_OFFLINE=0 $(PY) -m unify experiment=msrvtt_b16_paper

unify-paper-didemo: setup ## UNIFY on DiDeMo with CLIP ViT-B/32 (GPU, hub weights; DATA=<didemo folder>)
	$(if $(DATA),UNIFY_DATA=$(DATA)) HF_HUB_OFFLINE=0 $(PY) -m unify experiment=didemo_paper

unify-paper-activitynet: setup ## UNIFY on ActivityNet Captions with CLIP ViT-B/32 (GPU, hub weights; DATA=<folder>)
	$(if $(DATA),UNIFY_DATA=$(DATA)) HF_HUB_OFFLINE=0 $(PY) -m unify experiment=activitynet_paper

unify-paper-msvd: setup ## UNIFY on MSVD with CLIP ViT-B/32 (GPU, hub weights; DATA=<msvd folder>)
	$(if $(DATA),UNIFY_DATA=$(DATA)) HF_HUB_OFFLINE=0 $(PY) -m unify experiment=msvd_paper
