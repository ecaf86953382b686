EXPERIMENTS += roleinteract-eval roleinteract-fixtures roleinteract-eval-paper
DEMO_roleinteract := roleinteract-eval

# MODEL=<hub name or local path> runs that model with transformers; add ENDPOINT=<base url> to ask an
# OpenAI-compatible server (vLLM, ...) serving MODEL instead. Key from $$OPENAI_API_KEY (or endpoint.api_key_env=).
_ri_comma := ,
RI_MODEL_SPEC = $(if $(ENDPOINT),endpoint:$(MODEL),hf:$(MODEL))
RI_MODELS = $(if $(MODEL),'models=["$(RI_MODEL_SPEC)"$(_ri_comma)random$(_ri_comma)oracle]' $(if $(ENDPOINT),endpoint.base_url=$(ENDPOINT)))

.PHONY: roleinteract-eval roleinteract-fixtures roleinteract-eval-paper
roleinteract-eval: setup ## tiny model, random and oracle on the shipped EP data -> table (CPU, ~30 s; MODEL=, ENDPOINT=)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m roleinteract experiment=eval $(RI_MODELS)

roleinteract-fixtures: setup ## all nine columns + group-level drift on the hand-written fixtures (CPU, seconds)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m roleinteract experiment=fixtures $(RI_MODELS)

roleinteract-eval-paper: setup ## all four published files, 7B chat model (GPU or ENDPOINT=; MODEL=, files under $$PAPERLAB_DATA/socialbench)
	HF_HUB_OFFLINE=0 $(PY) -m roleinteract experiment=eval_paper $(RI_MODELS)
