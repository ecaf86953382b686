EXPERIMENTS += adore-recall
# adore-recall joins make demo (DEMO_adore) once its claim holds: see packages/adore/README.md

.PHONY: adore-recall
adore-recall: setup ## every KV policy vs ADORE (release + rebuild) on associative recall at 10/25/50% budgets (CPU)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m adore experiment=recall
