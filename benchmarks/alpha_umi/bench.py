"""alpha_umi benchmark: what the three-model agent costs next to the single LLM (CPU, fp32, one run).

- latency per agent step: alpha-UMi runs the planner, then the caller or the summarizer (two prompts, two shorter
  outputs); the single LLM runs once with a longer output. Each model writes exactly the gold turn's number of tokens
  (untrained tiny Llama 2 x 128, greedy with min = max new tokens), batch 1 as in the live loop, on the same 48 steps
  of the synthetic world;
- resident parameters: three role models vs one;
- training cost of the study config: sample-passes (samples x epochs) of GLPFT (stage 1 + the three roles) vs the
  single-LLM baseline, and measured seconds per 100 samples of one SFT epoch.

    .venv/bin/python benchmarks/alpha_umi/bench.py      # writes results/bench/alpha_umi.{json,md}
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from alpha_umi.data import (
    END,
    ROLES,
    backbone_samples,
    eval_steps,
    fill,
    prompt_text,
    role_datasets,
    training_text,
)
from alpha_umi.experiment import ExperimentConfig
from alpha_umi.train import StageConfig, TrainConfig, sft
from alpha_umi.world import make_split
from paperlab.models import tiny_causal_lm, train_tiny_tokenizer
from paperlab.report import write_bench

STEPS = 48


@torch.no_grad()
def _generate(model, tok, prompt: str, n: int) -> None:
    ids = tok(prompt_text(prompt), return_tensors="pt", add_special_tokens=False)
    model.generate(**ids, min_new_tokens=n, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id)


def main() -> None:
    torch.set_num_threads(1)
    train = [t for _, t in make_split(60, seed=0)]
    data = role_datasets(train)
    tok = train_tiny_tokenizer(
        [training_text(s, "")["prompt"] + s["target"] for r in data for s in data[r]], vocab_size=2048
    )
    models = {
        r: tiny_causal_lm(tokenizer=tok, layers=2, hidden=128, heads=4, seed=i)
        for i, r in enumerate(("single", *ROLES))
    }
    n_tok = lambda text: len(tok(" " + text, add_special_tokens=False)["input_ids"])  # noqa: E731
    test = [t for _, t in make_split(20, seed=1)]
    steps = [s for t in test for s in eval_steps(t)][:STEPS]
    single_inputs = {}
    for t in test:
        for b in backbone_samples(t):
            single_inputs[(id(t), len(b["history"]))] = b
    t_multi = t_single = 0.0
    for s in steps:
        plan, _, rest = s["reference"].partition(END)
        plan = plan.removeprefix("assistant: ")
        start = time.perf_counter()
        _generate(models["planner"], tok, fill("planner", s["traj"], s["history"]), n_tok(plan))
        after = s["history"] + f"assistant: {plan}{END}"
        if rest.startswith("caller: "):
            call = rest.removeprefix("caller: ").removesuffix(END)
            _generate(models["caller"], tok, fill("caller", s["traj"], after, thought=plan), n_tok(call))
        elif rest.startswith("conclusion: "):
            _generate(
                models["summarizer"],
                tok,
                fill("summarizer", s["traj"], after),
                n_tok(rest.removeprefix("conclusion: ")),
            )
        t_multi += time.perf_counter() - start
        b = single_inputs[(id(s["traj"]), s["index"])]
        start = time.perf_counter()
        _generate(models["single"], tok, b["input"], n_tok(b["target"]))
        t_single += time.perf_counter() - start
    params = sum(p.numel() for p in models["single"].parameters())

    # training: sample-passes of the study config (the comparison of record), and measured SFT throughput
    from paperlab.config import compose, from_config

    cfg = from_config(ExperimentConfig, compose("alpha_umi", ["experiment=study"]))
    t = cfg.train
    full = role_datasets([x for _, x in make_split(cfg.data.train_tasks, seed=0)])
    glpft_passes = len(full["backbone"]) * t.stage1.epochs + sum(
        len(full[r]) * t.stage(r).epochs for r in ROLES
    )
    single_epochs = t.baseline_epochs or t.stage1.epochs + max(t.stage(r).epochs for r in ROLES)
    single_passes = len(full["backbone"]) * single_epochs
    with tempfile.TemporaryDirectory() as d:
        base = Path(d) / "base"
        models["single"].save_pretrained(base)
        tok.save_pretrained(base)
        start = time.perf_counter()
        sft(
            base,
            data["backbone"][:100],
            StageConfig(1e-3, 1.0, 0.0),
            TrainConfig(
                max_length=1024,
                batch_size=8,
                args={"use_cpu": True, "disable_tqdm": True, "bf16": True, "gradient_checkpointing": True},
            ),  # the study config's pinned SFT settings
            Path(d),
            name="bench",
        )
        sft_100 = time.perf_counter() - start

    rows = [
        {
            "measure": "agent step latency: alpha-UMi (planner + caller/summarizer)",
            "value": 1000 * t_multi / len(steps),
            "unit": "ms",
            "ratio to single": t_multi / t_single,
        },
        {
            "measure": "agent step latency: single LLM",
            "value": 1000 * t_single / len(steps),
            "unit": "ms",
            "ratio to single": 1.0,
        },
        {
            "measure": "resident parameters: alpha-UMi (3 role models)",
            "value": 3 * params / 1e6,
            "unit": "M",
            "ratio to single": 3.0,
        },
        {
            "measure": "resident parameters: single LLM",
            "value": params / 1e6,
            "unit": "M",
            "ratio to single": 1.0,
        },
        {
            "measure": "training sample-passes, study config: GLPFT",
            "value": glpft_passes,
            "unit": "samples",
            "ratio to single": glpft_passes / single_passes,
        },
        {
            "measure": "training sample-passes, study config: single LLM",
            "value": single_passes,
            "unit": "samples",
            "ratio to single": 1.0,
        },
        {
            "measure": "SFT, 100 single-LLM samples, one epoch incl. setup (2 x 128, 1 thread)",
            "value": sft_100,
            "unit": "s",
            "ratio to single": "",
        },
    ]
    write_bench(
        "alpha_umi", rows, title="alpha_umi benchmark (CPU, 1 thread, fp32)", extra={"steps": len(steps)}
    )


if __name__ == "__main__":
    main()
