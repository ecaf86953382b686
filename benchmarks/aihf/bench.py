"""aihf benchmark: what one-stage AIHF costs over DPO, in one run on the same tiny Llama (CPU, fp32).

- training: pairs/s of TRL's ``DPOTrainer`` (preference rows only) vs ``AIHFTrainer`` (the same number of rows, half
  demonstration pairs, half preference pairs: two loss passes per batch);
- self-play: seconds to sample one completion per demonstration prompt (AIHF's extra step per iteration);
- the oracle task: seconds per training run of each method (bigram policy, 600 steps per stage).

    .venv/bin/python benchmarks/aihf/bench.py        # writes results/bench/aihf.{json,md}

The paper makes no speed claim; this reports AIHF's overhead as ratios to DPO.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import torch
from datasets import Dataset
from trl import DPOConfig, DPOTrainer

from aihf.align import AlignConfig, DataConfig, sample_completions
from aihf.methods import METHODS, MethodConfig, train
from aihf.oracle import BigramPolicy, TaskConfig, make_task
from aihf.trainer import AIHFConfig, AIHFTrainer
from paperlab.models import SAMPLE_WORDS, random_words, tiny_model_and_tokenizer
from paperlab.report import write_bench

PAIRS = 128
WORDS = SAMPLE_WORDS


def _text(g: torch.Generator, n: int) -> str:
    return random_words(g, n)


def rows(kind: str) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(PAIRS):
        demo = kind == "aihf" and i % 2 == 0
        out.append({"prompt": _text(g, 8), "chosen": _text(g, 24), "rejected": _text(g, 24), "is_demo": demo})
    if kind == "dpo":
        out = [{k: v for k, v in r.items() if k != "is_demo"} for r in out]
    return out


def train_rate(kind: str, model, tok, tmp: Path) -> float:
    common = {
        "output_dir": str(tmp / kind),
        "per_device_train_batch_size": 16,
        "num_train_epochs": 1,
        "bf16": False,
        "use_cpu": True,
        "gradient_checkpointing": False,
        "report_to": [],
        "save_strategy": "no",
        "beta": 0.1,
    }
    cls, cfg = (DPOTrainer, DPOConfig(**common)) if kind == "dpo" else (AIHFTrainer, AIHFConfig(**common))
    trainer = cls(
        model=copy.deepcopy(model),
        ref_model=copy.deepcopy(model),
        args=cfg,
        train_dataset=Dataset.from_list(rows(kind)),
        processing_class=tok,
    )
    start = time.perf_counter()
    trainer.train()
    return PAIRS / (time.perf_counter() - start)


def main() -> None:
    import tempfile

    torch.manual_seed(0)
    texts = [" ".join(WORDS)] * 4
    model, tok = tiny_model_and_tokenizer(texts, vocab_size=256, layers=4, hidden=128, heads=4)
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        rates = {kind: train_rate(kind, model, tok, Path(tmp)) for kind in ("dpo", "aihf")}
    for kind, label in (
        ("dpo", "DPOTrainer (preference rows)"),
        ("aihf", "AIHFTrainer (half demo, half pref)"),
    ):
        results.append(
            {
                "what": f"train: {label}",
                "value": rates[kind],
                "unit": "pairs/s",
                "vs DPO": rates[kind] / rates["dpo"],
            }
        )
    cfg = AlignConfig(data=DataConfig(demos="-", prefs="-"), max_new_tokens=24, generation_batch=16)
    prompts = [r["prompt"] for r in rows("dpo")]
    start = time.perf_counter()
    sample_completions(model, tok, prompts, cfg)
    gen = time.perf_counter() - start
    results.append(
        {
            "what": f"self-play sampling ({PAIRS} prompts x 24 tokens)",
            "value": gen,
            "unit": "s",
            "vs DPO": None,
        }
    )
    results.append(
        {
            "what": "AIHF iteration (sampling + one pass) vs a DPO pass",
            "value": gen + PAIRS / rates["aihf"],
            "unit": "s",
            "vs DPO": (gen + PAIRS / rates["aihf"]) / (PAIRS / rates["dpo"]),
        }
    )
    task_cfg = TaskConfig()
    task = make_task(task_cfg, 0, 30, BigramPolicy(task_cfg.vocab, task_cfg.length))
    times = {}
    for method in METHODS:
        start = time.perf_counter()
        train(method, lambda: BigramPolicy(task_cfg.vocab, task_cfg.length), task, 30, MethodConfig(), seed=0)
        times[method] = time.perf_counter() - start
    for method in METHODS:
        results.append(
            {
                "what": f"oracle task: {method} run",
                "value": times[method],
                "unit": "s",
                "vs DPO": times[method] / times["DPO"],
            }
        )
    write_bench(
        "aihf",
        results,
        title=f"aihf benchmark (tiny Llama 4 x 128, fp32, CPU, {torch.get_num_threads()} threads; {PAIRS} pairs, batch 16)",
        columns=["what", "value", "unit", "vs DPO"],
        extra={"pairs": PAIRS, "threads": torch.get_num_threads()},
    )


if __name__ == "__main__":
    main()
