EXPERIMENTS += sbr_side_info-sample sbr_side_info-synthetic sbr_side_info-repro sbr_side_info-diginetica sbr_side_info-paper sbr_side_info-fetch-movielens sbr_side_info-movielens-sparsity sbr_side_info-repro-table sbr_side_info-bench-speed
DEMO_sbr_side_info := sbr_side_info-sample

# MOVIELENS=false: the sample without MovieLens-100k (no download, no network)
SBR_MOVIELENS_OFF = $(filter false no 0,$(MOVIELENS))

.PHONY: sbr_side_info-sample sbr_side_info-synthetic sbr_side_info-repro sbr_side_info-diginetica sbr_side_info-paper sbr_side_info-fetch-movielens sbr_side_info-fetch sbr_side_info-movielens-sparsity sbr_side_info-repro-table sbr_side_info-bench-speed
sbr_side_info-fetch-movielens: setup ## NETWORK, once: MovieLens-100k from the recbole wheel on PyPI (sha256 checked) into .cache/paperlab/sbr/ml-100k
	$(PY) -c "import logging; logging.basicConfig(level=logging.INFO, format='%(message)s'); from sbr_side_info.movielens import fetch_movielens; print(fetch_movielens())"

sbr_side_info-fetch: sbr_side_info-fetch-movielens

sbr_side_info-sample: setup $(if $(SBR_MOVIELENS_OFF),,sbr_side_info-fetch-movielens) ## all 7 models on the real Diginetica sample + MovieLens-100k sessions (fetched first; MOVIELENS=false: offline; CPU, ~2 min; make demo)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m sbr_side_info experiment=sample $(if $(SBR_MOVIELENS_OFF),movielens=false)

sbr_side_info-synthetic: setup ## sparse vs dense item IDs: side-info models vs their ID-only twins (CPU, ~5 min)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m sbr_side_info experiment=synthetic

sbr_side_info-repro: setup ## SR-GNN/NARM/STAMP/GRU4Rec on full Diginetica, Tmall, Nowplaying vs published (CPU, hours; resumes; MODELS=)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m sbr_side_info experiment=repro $(if $(MODELS),'models=[$(MODELS)]')

sbr_side_info-repro-table: setup ## the reproduction table from the committed run records (packages/sbr_side_info/results/*.json)
	$(PY) -c "from sbr_side_info.records import reproduction_table; print(reproduction_table('packages/sbr_side_info/results'))"

sbr_side_info-movielens-sparsity: setup sbr_side_info-fetch-movielens ## side info vs ID-only twins on MovieLens-100k and sparsified copies (CPU, ~20 min)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m sbr_side_info experiment=movielens_sparsity

sbr_side_info-bench-speed: setup ## issue 31: old vs new training loop on full Diginetica, same run (SBR_SPEED_STEPS=2000)
	$(PY) benchmarks/sbr_side_info/speed.py

sbr_side_info-diginetica: setup ## raw CIKM Cup 2016 Diginetica through the SR-GNN protocol, all models (DATA=<folder>)
	$(PY) -m sbr_side_info experiment=dataset $(if $(DATA),'datasets=[{name: diginetica, loader: diginetica, paths: [$(DATA)/train-item-views.csv, $(DATA)/products.csv, $(DATA)/product-categories.csv]}]')

sbr_side_info-paper: setup ## paper scale on a GPU: Diginetica, YooChoose 1/64, Tmall, RetailRocket raw files (DATA_DIR=)
	$(if $(DATA_DIR),cd $(DATA_DIR) &&) $(abspath $(PY)) -m sbr_side_info experiment=repro_paper
