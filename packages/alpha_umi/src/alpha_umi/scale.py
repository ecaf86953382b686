"""Paper-scale estimates for ``python -m paperlab.dryrun alpha_umi experiment=paper`` (``make alpha_umi-paper-dry``).

Every trained model of the pipeline -- GLPFT's stage-1 backbone, the planner, caller and summarizer copies of stage
2, and the single-LLM baseline -- is one fine-tune of the same backbone at the same batch and length, run one after
the other in the same launch, so one training step stands for all of them: ``train.batch_size`` sequences of
``train.max_length`` tokens per GPU, ``train.scale`` (ZeRO-3 over 8 GPUs, bf16-mixed, gradient checkpointing in
the paper config). The static evaluation loads the saved role models whole on every rank in bf16, one at a
time (:class:`alpha_umi.infer.Generator`: planner, then caller, then summarizer) and generates ``generation_batch``
prompts of ``max_length - max_new_tokens`` tokens plus ``max_new_tokens`` new ones: an inference-only
step (``DryRunSpec(train=False)``), bf16 weights and the full KV cache.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from paperlab.config import ConfigError, from_config
from paperlab.dryrun import DryRunSpec, ModelShape, load_shape

ARCH_DIR = Path(__file__).parent / "arch"


def arch_file(base: str) -> Path:
    """The architecture file of a hub model name: ``arch/<name after the slash, lower case>.yaml``."""
    return ARCH_DIR / f"{base.rsplit('/', 1)[-1].lower()}.yaml"


def model_shape(base: str) -> ModelShape:
    path = arch_file(base)
    if not path.is_file():
        shipped = sorted(p.stem for p in ARCH_DIR.glob("*.yaml"))
        raise ConfigError(f"model.base={base!r}: no architecture file {path.name} (shipped: {shipped})")
    return load_shape(path)


def dry_run_specs(cfg: Any) -> list[DryRunSpec]:
    """The training step and the evaluation step of the experiment ``cfg`` (a composed Hydra config)."""
    from alpha_umi.experiment import ExperimentConfig

    exp = cfg if isinstance(cfg, ExperimentConfig) else from_config(ExperimentConfig, cfg)
    shape = model_shape(exp.model.base)
    t, scale = exp.train, exp.train.scale
    train = DryRunSpec(
        label=f"{exp.name}: SFT step (GLPFT stage 1, each stage-2 role, single LLM)",
        model=shape,
        scale=scale,
        batch_size=t.batch_size,
        seq_len=t.max_length,
        grad_accum=t.grad_accum,
    )
    inference = replace(
        scale,
        launch="ddp" if scale.num_gpus > 1 else "single",
        precision="bf16-mixed",
        gradient_checkpointing=False,
    )
    evaluation = DryRunSpec(
        label=f"{exp.name}: static evaluation (the bf16 role model on each rank, generation)",
        model=shape,
        scale=inference,
        batch_size=1,
        seq_len=t.max_length,
        eval_batch_size=exp.generation_batch,
        eval_prompt_len=t.max_length - exp.max_new_tokens,
        eval_new_tokens=exp.max_new_tokens,
        train=False,
    )
    return [train, evaluation]
