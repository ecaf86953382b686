"""Paper-scale memory estimates (:mod:`paperlab.dryrun`): ``python -m paperlab.dryrun profuser experiment=paper``.

:func:`dry_run_specs` lays out every GPU phase of the paper config:

* **fusion training** of the target (``target.model``) at the per-GPU batch, the 2,048-token windows, the precision
  and launch of ``train.scale`` (ZeRO-3 over 8 GPUs: weights, gradients and Adam state divided by 8), with the
  lm-eval generation step of the trained model (``eval.lm_eval_batch_size`` prompts, 256 new tokens);
* **inference mode** of every source (:mod:`profuser.modes`): the source frozen in bf16 on each GPU beside the
  reward model, answering ``fusion.generation_batch`` prompts of up to ``data.max_tokens`` tokens with
  ``fusion.max_new_tokens`` new ones (the full KV cache): an inference-only ``DryRunSpec(train=False)``, whose
  columns are the generation step's. The teacher-forced forward that builds the representations (``represent_batch``
  sequences, no cache, no gradients) is smaller than this generation step.

The architectures are files in ``profuser/arch/`` (the hub's ``config.json`` fields, each citing its source).
Transformers' native MPT has eager attention only: its file says ``attn_implementation: eager`` (the ``seq x seq``
scores are counted).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from paperlab.config import ConfigError, from_config
from paperlab.dryrun import DryRunSpec, ModelShape, load_shape
from paperlab.scale import ScaleConfig
from profuser.config import ExperimentConfig

ARCH_DIR = Path(__file__).parent / "arch"
#: lm-eval's default generation length (``max_gen_toks``)
LM_EVAL_NEW_TOKENS = 256


def arch_file(name: str) -> Path:
    """The architecture file of a hub model: ``arch/<last part of the name>.yaml``."""
    return ARCH_DIR / f"{name.rstrip('/').split('/')[-1]}.yaml"


def shape_of(name: str) -> ModelShape:
    shape = load_shape(arch_file(name))
    if shape.name != name:
        raise ValueError(f"{arch_file(name)}: describes {shape.name!r}, not {name!r}")
    return shape


def dry_run_specs(cfg: Any) -> list[DryRunSpec]:
    """Every GPU phase of the experiment ``cfg`` (a composed Hydra config or an :class:`ExperimentConfig`)."""
    cfg = cfg if isinstance(cfg, ExperimentConfig) else from_config(ExperimentConfig, cfg)
    if cfg.is_tiny:
        raise ConfigError(
            f"experiment {cfg.name!r} is tiny: the dry run is for hub models (experiment=paper)"
        )
    scale, t = cfg.train.scale, cfg.train
    specs = [
        DryRunSpec(
            label=f"fusion training: {cfg.target.model.split('/')[-1]}",
            model=shape_of(cfg.target.model),
            scale=scale,
            batch_size=t.batch,
            seq_len=cfg.data.max_tokens,
            grad_accum=t.grad_accum,
            eval_batch_size=cfg.eval.lm_eval_batch_size if cfg.eval.lm_eval_tasks else 0,
            eval_prompt_len=cfg.data.max_tokens - LM_EVAL_NEW_TOKENS,
            eval_new_tokens=LM_EVAL_NEW_TOKENS,
        )
    ]
    reward = [shape_of(cfg.fusion.reward)] if cfg.fusion.reward != "rule" else []
    frozen_scale = ScaleConfig(
        launch="ddp" if scale.num_gpus > 1 else "single",
        num_gpus=scale.num_gpus,
        gpu=scale.gpu,
        gpu_memory_gib=scale.gpu_memory_gib,
        precision="bf16-mixed",
    )
    for s in cfg.sources:
        if s.server:
            continue  # its answers come from a server
        specs.append(
            DryRunSpec(
                label=f"inference mode: {s.name} answers (frozen)",
                model=shape_of(s.model),
                scale=frozen_scale,
                batch_size=1,
                seq_len=cfg.data.max_tokens,
                eval_batch_size=s.generation_batch or cfg.fusion.generation_batch,
                eval_prompt_len=cfg.data.max_tokens,
                eval_new_tokens=cfg.fusion.max_new_tokens,
                replicated=reward,
                train=False,
            )
        )
    return specs
