"""The paper experiments' dry runs (``python -m paperlab.dryrun adore experiment=paper``, ``make adore-paper-dry``).

adore evaluates a frozen LM in one process; what a paper run puts on its GPU is the LM's inference, in three steps
per config, each built from the config itself (:mod:`paperlab.dryrun`: the real shape on fake tensors):

- **oracle labels**: one eager forward over a controller training sequence (``lm.window`` / ``qa.controller_window``
  tokens) with the attention summed layer by layer (:func:`adore.decode.attention_topk`; only one layer's
  ``(heads, T, T)`` weights live at a time, then the ``(T, T)`` sum and the ``(T, K)`` table);
- **decode** (``experiment=paper``): the manual decode loop's largest step, the full-cache row: a KV cache of
  ``window - 1`` tokens and one eager step attending to all of it (the budgeted policies hold fewer);
- **generate** (``experiment=paper_longbench``): ``model.generate`` after a ``max_context`` prompt, the cache at
  ``max_context + max_new_tokens`` (the full-cache baseline; AdoreCache keeps the budget).

The controller itself trains on the host (:class:`adore.controller.Controller` keeps its table on the CPU): its
batch of ``batch_size`` examples of up to ``window`` positions is ``batch_size x window x (5 dim + 1)`` floats there,
not on the GPU. Not covered: the LM's fine-tuning under the controller's cache (:mod:`adore.finetune`, built and
run on the recall LM; LoRA through peft is its paper-scale path, whose step on the decode's slots is not dry-run).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from paperlab.config import ConfigError, _plain, from_config
from paperlab.dryrun import DryRunSpec, ModelShape, load_shape

ARCH_DIR = Path(__file__).parent / "arch"
#: hub name -> architecture file of every model the paper configs name
ARCH_FILES = {"meta-llama/Llama-2-7b-chat-hf": "llama-2-7b-chat-hf.yaml"}


def model_shape(name: str) -> ModelShape:
    """The shipped architecture of hub model ``name``, with eager attention (what adore loads: the attention
    weights are read)."""
    if name not in ARCH_FILES:
        raise ConfigError(f"model={name!r}: no architecture file; shipped: {sorted(ARCH_FILES)}")
    return dataclasses.replace(load_shape(ARCH_DIR / ARCH_FILES[name]), attn_implementation="eager")


def _labels_step(top_k: int):
    def step(model: Any, spec: DryRunSpec) -> None:
        from adore.decode import attention_topk

        vocab = model.config.vocab_size
        attention_topk(model, torch.randint(0, vocab, (spec.eval_prompt_len,)), top_k)

    return step


def _decode_step(model: Any, spec: DryRunSpec) -> None:
    """One token attending to a full cache of ``eval_prompt_len`` tokens (built as the loop would hold it)."""
    from transformers import DynamicCache

    from adore.decode import cache_kwargs

    cfg = model.config
    kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    n = spec.eval_prompt_len
    cache = DynamicCache(config=cfg)
    for layer in range(cfg.num_hidden_layers):
        k = torch.zeros(1, kv_heads, n, head_dim, dtype=torch.bfloat16)
        cache.update(k, torch.zeros_like(k), layer)
    model(
        input_ids=torch.randint(0, cfg.vocab_size, (1, 1)),
        position_ids=torch.tensor([[n]]),
        use_cache=True,
        **cache_kwargs(model, cache),
    )


def _inference(
    label: str, shape: ModelShape, scale: Any, length: int, new_tokens: int = 0, step=None
) -> DryRunSpec:
    """One inference-only step of one sequence: ``length`` prompt tokens (plus ``new_tokens`` generated)."""
    return DryRunSpec(
        label=label,
        model=shape,
        scale=scale,
        batch_size=1,
        seq_len=length,
        train=False,
        eval_batch_size=1,
        eval_prompt_len=length,
        eval_new_tokens=new_tokens,
        eval_step=step,
    )


def dry_run_specs(cfg: Any) -> list[DryRunSpec]:
    """The dry-run steps of a composed paper config (``kind: lm`` or ``kind: qa`` with a hub model)."""
    from adore.controller import ControllerConfig
    from adore.lm import LMExperimentConfig
    from adore.qa import QAExperimentConfig

    kind = cfg.get("kind")
    if kind == "lm":
        lm = from_config(LMExperimentConfig, cfg.lm, where="lm")
        if not lm.model:
            raise ConfigError("lm.model='': the dry run is for a hub model (experiment=paper)")
        shape, n = model_shape(lm.model), lm.window
        return [
            _inference(
                f"{lm.name}: oracle labels ({n} tokens)",
                shape,
                lm.scale,
                n,
                step=_labels_step(lm.controller.top_k),
            ),
            _inference(
                f"{lm.name}: decode step, full cache of {n - 1}", shape, lm.scale, n - 1, 1, _decode_step
            ),
        ]
    if kind == "qa":
        block = dict(_plain(cfg.qa))
        block["data"] = block.get("data") or ["(dry run: no file is read)"]  # the files only feed the prompts
        qa = from_config(QAExperimentConfig, block, where="qa")
        if not qa.model:
            raise ConfigError("qa.model='': the dry run is for a hub model (experiment=paper_longbench)")
        controller = from_config(ControllerConfig, _plain(cfg.get("controller") or {}), where="controller")
        shape, n = model_shape(qa.model), qa.controller_window
        return [
            _inference(
                f"{qa.name}: oracle labels ({n} tokens)",
                shape,
                qa.scale,
                n,
                step=_labels_step(controller.top_k),
            ),
            _inference(
                f"{qa.name}: generate {qa.max_new_tokens} after {qa.max_context}",
                shape,
                qa.scale,
                qa.max_context,
                qa.max_new_tokens,
            ),
        ]
    raise ConfigError(f"kind={kind!r}: the dry run is for the paper experiments (kind: lm or qa)")
