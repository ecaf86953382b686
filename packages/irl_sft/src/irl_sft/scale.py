"""The paper experiments' dry runs (``python -m paperlab.dryrun irl_sft experiment=paper``, ``make irl_sft-paper-dry``).

One :class:`paperlab.dryrun.DryRunSpec` per paper experiment, from its own config: the training step of one IRFT
micro-batch (``per_device_train_batch_size`` pairs = twice as many sequences of ``max_length`` tokens: TRL
concatenates demonstrations and generations into one forward) in the config's precision, LoRA and sharding, with the
frozen pi_t beside the policy (the trainer's ``ref_model``; ZeRO-3 shards it too); the evaluation step generates
``generation_batch`` completions of ``max_new_tokens`` after prompts of ``max_length - min_completion_tokens``
tokens. The judge (``eval_reward_model``) stays whole on every GPU for the run (``replicated``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from paperlab.config import ConfigError, from_config
from paperlab.dryrun import DryRunSpec, ModelShape, load_shape

ARCH_DIR = Path(__file__).parent / "arch"
#: hub name -> architecture file of every model the paper configs name
ARCH_FILES = {
    "alignment-handbook/zephyr-7b-sft-full": "zephyr-7b-sft-full.yaml",
    "facebook/opt-1.3b": "opt-1.3b.yaml",
    "OpenAssistant/reward-model-deberta-v3-large-v2": "reward-model-deberta-v3-large-v2.yaml",
}


def model_shape(name: str) -> ModelShape:
    """The shipped architecture of hub model ``name`` (:data:`ARCH_FILES`)."""
    if name not in ARCH_FILES:
        raise ConfigError(f"llm.model={name!r}: no architecture file; shipped: {sorted(ARCH_FILES)}")
    return load_shape(ARCH_DIR / ARCH_FILES[name])


def dry_run_specs(cfg: Any) -> list[DryRunSpec]:
    """The dry-run steps of a composed paper config (``kind: llm``; module docstring)."""
    from irl_sft.stages import LLMConfig

    if cfg.get("kind") != "llm":
        raise ConfigError(f"kind={cfg.get('kind')!r}: the dry run is for the LLM experiments (kind: llm)")
    llm = from_config(LLMConfig, cfg.llm, where="llm")
    policy = model_shape(llm.model)
    pairs = int(llm.train.get("per_device_train_batch_size", 8))
    optim = str(llm.train.get("optim", "adamw_torch"))
    judge = [model_shape(llm.eval_reward_model)] if llm.eval_reward_model else []
    return [
        DryRunSpec(
            label=f"{llm.name}: IRFT step",
            model=policy,
            scale=llm.scale,
            batch_size=2 * pairs,
            seq_len=llm.max_length,
            grad_accum=int(llm.train.get("gradient_accumulation_steps", 1)),
            eval_batch_size=llm.generation_batch,
            eval_prompt_len=llm.max_length - llm.min_completion_tokens,
            eval_new_tokens=llm.max_new_tokens,
            frozen=[policy],  # pi_t
            optimizer="rmsprop" if optim.startswith("rmsprop") else "sgd" if optim == "sgd" else "adamw",
            replicated=judge,
        )
    ]
