EXPERIMENTS += paperowl-build paperowl-tiny paperowl-paper
DEMO_paperowl := paperowl-build

.PHONY: paperowl-build paperowl-tiny paperowl-paper paperowl-tex
paperowl-build: setup ## build M-Paper from the shared LaTeX papers: counts per task + contact sheet (CPU, seconds; make demo)
	$(PY) -m paperowl experiment=build $(if $(SRC),experiment.src=$(SRC)) $(if $(OUT),experiment.out=$(OUT))

paperowl-tiny: setup ## tiny PaperOwl (ViT + abstractor + LoRA LM) on synthetic diagrams vs caption priors (CPU, ~3 min)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m paperowl experiment=tiny

paperowl-paper: setup ## mPLUG-DocOwl-scale instruction tuning on built M-Paper JSONL (TRAIN=, EVAL=; GPUs + hub)
	$(PY) -m paperowl experiment=tiny_paper $(if $(TRAIN),experiment.train_jsonl=$(TRAIN)) $(if $(EVAL),experiment.eval_jsonl=$(EVAL))

paperowl-tex: ## install TeX Live (apt) so the builder also renders tables to PNG; only when you ask for it
	@if command -v pdflatex >/dev/null; then echo "pdflatex already installed: $$(command -v pdflatex)"; \
	else SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update && \
	$$SUDO apt-get install -y --no-install-recommends texlive-latex-base texlive-latex-recommended texlive-latex-extra; fi

PAPER_DRY += paperowl-paper-dry
.PHONY: paperowl-paper-dry
paperowl-paper-dry: setup ## dry run of experiment=tiny_paper (mPLUG-Owl 7B, micro-batch 4 x 2,304 tokens, LoRA, 8 x A100-80GB DDP): peak GiB per GPU -> results/paperowl/paper-dry/ (CPU, minutes)
	$(PY) -m paperlab.dryrun paperowl experiment=tiny_paper
