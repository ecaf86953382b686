"""Paper-scale estimates for ``python -m paperlab.dryrun aihf experiment=paper`` (``make aihf-paper-dry``).

The paper config's AIHF run (:mod:`aihf.align`) holds on each GPU: the policy being trained (its micro-batch of
``per_device_train_batch_size`` pairs = twice as many sequences of ``max_length`` tokens, precision and optimizer as
configured), the frozen reference policy (the initial model, bf16) and the frozen reward-model judge of the
evaluation step (bf16). Its generation step is the self-play sampling / evaluation answering:
``max(generation_batch, eval.batch_size)`` prompts of ``max_length - max_new_tokens`` tokens generating
``max_new_tokens`` with the full KV cache. Architectures: ``aihf/arch/*.yaml`` (cited in each file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from paperlab.config import ConfigError, from_config
from paperlab.dryrun import DryRunSpec, ModelShape, load_shape

ARCH_DIR = Path(__file__).parent / "arch"
#: hub name -> architecture file in ``aihf/arch/``.
ARCH_FILES = {
    "EleutherAI/pythia-1.4b": "pythia-1.4b.yaml",
    "OpenAssistant/reward-model-deberta-v3-large-v2": "reward-model-deberta-v3-large-v2.yaml",
}


def shape_of(name: str) -> ModelShape:
    """The shipped architecture of hub model ``name``; an unknown name says which files exist."""
    if name not in ARCH_FILES:
        raise ConfigError(f"no architecture file for {name!r} in {ARCH_DIR}; known: {sorted(ARCH_FILES)}")
    return load_shape(ARCH_DIR / ARCH_FILES[name])


def dry_run_specs(cfg: Any) -> list[DryRunSpec]:
    """The paper config's steps to estimate (``cfg``: the composed Hydra config of an ``align`` experiment)."""
    from aihf.align import AlignConfig

    if cfg.get("kind", "oracle") != "align":
        raise ConfigError(f"kind={cfg.get('kind')!r}: the dry run estimates the LLM pipeline (kind: align)")
    align = from_config(AlignConfig, cfg.align, where="align")
    policy = shape_of(align.model)
    frozen = [] if align.scale.uses_lora else [policy]  # LoRA: the reference is the disabled adapter
    if align.eval.judge:
        frozen.append(shape_of(align.eval.judge))
    train = align.train
    pairs = int(train.get("per_device_train_batch_size", 8))
    seq_len = int(train.get("max_length", 1024))
    new_tokens = max(align.max_new_tokens, align.eval.max_new_tokens if align.eval.judged else 0)
    return [
        DryRunSpec(
            label=f"{align.name}: AIHF policy step + self-play / evaluation generation",
            model=policy,
            scale=align.scale,
            batch_size=2 * pairs,  # a pair is two sequences (chosen/demonstration, rejected/sample)
            seq_len=seq_len,
            grad_accum=int(train.get("gradient_accumulation_steps", 1)),
            eval_batch_size=max(align.generation_batch, align.eval.batch_size if align.eval.judged else 0),
            eval_prompt_len=max(seq_len - new_tokens, 1),
            eval_new_tokens=new_tokens,
            frozen=frozen,
            optimizer="rmsprop" if str(train.get("optim", "adamw")).startswith("rmsprop") else "adamw",
        )
    ]
