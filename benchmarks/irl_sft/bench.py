"""irl_sft benchmark: what IRFT's stage loop costs next to plain DPO/SFT passes (CPU, fp32, one run).

- training: pairs/s of ``IRFTTrainer`` (log-probs from the model's logits, :func:`irl_sft.losses.sequence_logps`) vs
  TRL's ``DPOTrainer`` (fused LM head) on the same (demonstration, generation) pairs of a tiny Llama 4 x 128;
- self-play: seconds to sample one completion per prompt of a stage (IRFT's extra step per stage);
- the tiny study: seconds per 400-step run of SFT, SPIN, IRFT-4 and RFT-4 (RFT samples on every policy step).

    .venv/bin/python benchmarks/irl_sft/bench.py        # writes results/bench/irl_sft.{json,md}

The paper makes no speed claim; this reports IRFT's overhead as ratios.
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

import torch
from datasets import Dataset
from trl import DPOConfig, DPOTrainer

from irl_sft.methods import MethodConfig, train
from irl_sft.tiny import TaskConfig, make_task
from irl_sft.trainer import IRFTConfig, IRFTTrainer
from paperlab.models import SAMPLE_WORDS, random_words, sample_completions, tiny_model_and_tokenizer
from paperlab.report import write_bench

PAIRS = 128
WORDS = SAMPLE_WORDS


def _text(g: torch.Generator, n: int) -> str:
    return random_words(g, n)


def pairs() -> list[dict[str, str]]:
    g = torch.Generator().manual_seed(0)
    return [{"prompt": _text(g, 8), "chosen": _text(g, 24), "rejected": _text(g, 24)} for _ in range(PAIRS)]


def train_rate(kind: str, model, tok, tmp: Path) -> float:
    common = {
        "output_dir": str(tmp / kind),
        "per_device_train_batch_size": 16,
        "num_train_epochs": 1,
        "use_cpu": True,
        "report_to": [],
        "save_strategy": "no",
        "beta": 0.1,
        "disable_tqdm": True,
        "activation_checkpointing": False,  # TRL turns it on by default: ~10x slower on CPU
        "bf16": False,
    }
    cls, cfg = (DPOTrainer, DPOConfig(**common)) if kind == "dpo" else (IRFTTrainer, IRFTConfig(**common))
    trainer = cls(
        model=copy.deepcopy(model),
        ref_model=copy.deepcopy(model),
        args=cfg,
        train_dataset=Dataset.from_list(pairs()),
        processing_class=tok,
    )
    start = time.perf_counter()
    trainer.train()
    return PAIRS / (time.perf_counter() - start)


def main() -> None:
    torch.manual_seed(0)
    model, tok = tiny_model_and_tokenizer(
        [" ".join(WORDS)] * 4, vocab_size=256, layers=4, hidden=128, heads=4
    )
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        rates = {kind: train_rate(kind, model, tok, Path(tmp)) for kind in ("dpo", "irft")}
    for kind, label in (("dpo", "TRL DPOTrainer"), ("irft", "IRFTTrainer")):
        results.append(
            {
                "what": f"train: {label}",
                "value": rates[kind],
                "unit": "pairs/s",
                "ratio": rates[kind] / rates["dpo"],
            }
        )
    start = time.perf_counter()
    sample_completions(model, tok, [p["prompt"] for p in pairs()], max_new_tokens=24, batch_size=16)
    gen = time.perf_counter() - start
    results.append({"what": f"self-play sampling ({PAIRS} prompts x 24 tokens)", "value": gen, "unit": "s"})
    results.append(
        {
            "what": "IRFT stage (sampling + one pass) vs one DPO pass",
            "value": gen + PAIRS / rates["irft"],
            "unit": "s",
            "ratio": (gen + PAIRS / rates["irft"]) / (PAIRS / rates["dpo"]),
        }
    )
    torch.set_num_threads(1)  # as experiment=tiny
    task = make_task(TaskConfig(style=0.5, seed=0))
    times = {}
    for run, method, T in (
        ("SFT", "SFT", 1),
        ("SPIN", "SPIN", 1),
        ("IRFT-4", "IRFT", 4),
        ("RFT-4", "RFT", 4),
    ):
        start = time.perf_counter()
        train(method, task, MethodConfig(steps=400, beta=5.0), T=T, seed=0, evals=1)
        times[run] = time.perf_counter() - start
    for run, seconds in times.items():
        results.append(
            {
                "what": f"tiny study: {run} run (400 steps)",
                "value": seconds,
                "unit": "s",
                "ratio": seconds / times["SFT"],
            }
        )
    write_bench(
        "irl_sft",
        results,
        title=f"irl_sft benchmark (tiny Llama 4 x 128, fp32, CPU; {PAIRS} pairs, batch 16; ratio: to DPO or to SFT)",
        columns=["what", "value", "unit", "ratio"],
        extra={"pairs": PAIRS},
    )


if __name__ == "__main__":
    main()
