EXPERIMENTS += unify-tiny unify-paper unify-paper-b16 unify-paper-didemo unify-paper-activitynet unify-paper-msvd
DEMO_unify := unify-tiny

.PHONY: unify-tiny unify-paper unify-paper-b16 unify-paper-didemo unify-paper-activitynet unify-paper-msvd
unify-tiny: setup ## UNIFY vs latent-only vs lexicon-only on synthetic videos, held-out combinations (tiny, CPU, ~10 min)
	$(PY) -m unify experiment=tiny

unify-paper: setup ## UNIFY on MSR-VTT 1k-A with CLIP ViT-B/32 (GPUs, hub weights; DATA=<msrvtt folder> LAUNCH=ddp NPROC=4)
	$(if $(DATA),UNIFY_DATA=$(DATA)) $(call paper_run,unify,scale) experiment=msrvtt_paper

unify-paper-b16: setup ## UNIFY on MSR-VTT 1k-A with CLIP ViT-B/16 (GPUs, hub weights; DATA=<msrvtt folder> LAUNCH=ddp NPROC=4)
	$(if $(DATA),UNIFY_DATA=$(DATA)) $(call paper_run,unify,scale) experiment=msrvtt_b16_paper

unify-paper-didemo: setup ## UNIFY on DiDeMo with CLIP ViT-B/32 (GPUs, hub weights; DATA=<didemo folder> LAUNCH=ddp NPROC=8)
	$(if $(DATA),UNIFY_DATA=$(DATA)) $(call paper_run,unify,scale) experiment=didemo_paper

unify-paper-activitynet: setup ## UNIFY on ActivityNet Captions with CLIP ViT-B/32 (GPUs, hub weights; DATA=<folder> LAUNCH=ddp NPROC=8)
	$(if $(DATA),UNIFY_DATA=$(DATA)) $(call paper_run,unify,scale) experiment=activitynet_paper

unify-paper-msvd: setup ## UNIFY on MSVD with CLIP ViT-B/32 (GPUs, hub weights; DATA=<msvd folder> LAUNCH=ddp NPROC=4)
	$(if $(DATA),UNIFY_DATA=$(DATA)) $(call paper_run,unify,scale) experiment=msvd_paper

PAPER_DRY += unify-paper-dry
.PHONY: unify-paper-dry
unify-paper-dry: setup ## dry run of every paper experiment (msrvtt, msrvtt_b16, msvd, didemo, activitynet): peak GiB per GPU -> results/unify/paper-dry/ (CPU, ~2 min)
	@fail=0; for exp in msrvtt_paper msrvtt_b16_paper msvd_paper didemo_paper activitynet_paper; do OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m paperlab.dryrun unify experiment=$$exp || fail=1; done; exit $$fail
