"""adore benchmark: ADORE through ``model.generate`` (trained controller, rebuild on) vs the full cache, our baselines
and kvpress 0.5.5 (its own throwaway environment), on one random-weight tiny Llama (4 x 256, fp32, SDPA), at
1k / 4k / 8k context and 12.5 % / 25 % budgets; plus one quality figure per system: recall exact match at the same
budget fraction (the recall LM of ``make adore-recall``, question-agnostic as ``make adore-qa``).

    .venv/bin/python benchmarks/adore/bench.py                 # ours only
    .venv/bin/python benchmarks/adore/bench.py --peer /tmp/peer-kvpress/bin/python --repeats 2

Writes ``results/bench/adore.{json,md}``. Decode speed is 1 / the median per-step CPU time (``time.process_time``,
one torch thread: stable on a shared 2-core machine, ``../shared/docs/PEERS.md``), prefill the CPU seconds of the
prompt's forward; every ratio is to the full cache of the SAME environment in the same run. The peer side runs
``benchmarks/adore/peer_kvpress.py`` on the same saved weights (checked by a logits checksum).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import torch
from transformers import DynamicCache

from adore.controller import ControllerConfig, train_controller
from adore.generate import AdoreCache
from adore.policies import StreamingLLM
from adore.qa import recall_examples
from adore.recall import RecallExperimentConfig, recall_controller, recall_lm
from adore.registry import STREAMING_SINKS, budget_tokens
from paperlab.config import compose, from_config
from paperlab.io import atomic_write_json, atomic_write_text
from paperlab.models import tiny_causal_lm
from paperlab.report import markdown_table

CONTEXTS = (1024, 4096, 8192)
FRACTIONS = (0.125, 0.25)
NEW_TOKENS = 32
VOCAB = 512
CHUNK = 16  # our caches release every 16 steps, down to budget - 15
R = 2
RECALL_EXAMPLES = 100
WORK = Path("/tmp/adore-bench")


def bench_model(attn: str = "sdpa") -> Any:
    return tiny_causal_lm(
        vocab_size=VOCAB,
        layers=4,
        hidden=256,
        heads=8,
        max_position=8192 + 64,
        seed=0,
        attn_implementation=attn,
    )


def checksum(model: Any) -> float:
    ids = torch.arange(3, 67)[None]
    with torch.no_grad():
        return float(model(ids).logits.double().sum())


class StepClock:
    """CPU time of every forward of ``model`` (a forward hook)."""

    def __init__(self, model: Any) -> None:
        self.marks: list[float] = []
        self.handle = model.register_forward_pre_hook(lambda *a: self.marks.append(time.process_time()))

    def close(self) -> list[float]:
        self.handle.remove()
        self.marks.append(time.process_time())
        return [b - a for a, b in itertools.pairwise(self.marks)]


def kv_mib(cache: Any) -> float:
    return sum(layer.keys.numel() + layer.values.numel() for layer in cache.layers) * 4 / 2**20


@torch.no_grad()
def measure(model: Any, ids: torch.Tensor, cache: Any) -> dict[str, float]:
    """Prefill the context (one forward), then ``generate`` NEW_TOKENS from it."""
    n = ids.shape[1] - 1
    t0 = time.process_time()
    model(ids[:, :n], past_key_values=cache, use_cache=True)
    prefill = time.process_time() - t0
    clock = StepClock(model)
    w0 = time.perf_counter()
    model.generate(
        ids,
        max_new_tokens=NEW_TOKENS,
        min_new_tokens=NEW_TOKENS,
        do_sample=False,
        pad_token_id=0,
        past_key_values=cache,
    )
    wall = time.perf_counter() - w0
    steps = clock.close()[1:-1]  # the forwards between the first and the last
    return {
        "prefill s": prefill,
        "decode tok/s": 1 / statistics.median(steps),
        "decode tok/s (mean)": len(steps) / sum(steps),
        "decode tok/s (wall)": NEW_TOKENS / wall,
        "KV MiB": kv_mib(cache),
    }


def our_systems(model: Any, controller: Any, budget: int, chunk: int = CHUNK) -> dict[str, Any]:
    common = {"release_every": chunk}
    return {
        "full": lambda: DynamicCache(),
        "StreamingLLM": lambda: AdoreCache(
            model, budget=budget, policy=StreamingLLM(sinks=STREAMING_SINKS), sinks=STREAMING_SINKS, **common
        ),
        "ADORE (R=2)": lambda: AdoreCache(model, controller, budget=budget, rebuild=R, **common),
        "ADORE (R=2, pool scored every 8 steps)": lambda: AdoreCache(
            model, controller, budget=budget, rebuild=R, score_every=8, **common
        ),
        "ADORE (R=2, forced every step)": lambda: AdoreCache(
            model, controller, budget=budget, rebuild=R, threshold=None, **common
        ),
    }


@torch.no_grad()
def recall_quality(fraction: float) -> dict[str, float]:
    """Exact match (%) of each of our systems on recall QA at ``fraction`` of the context (42 tokens), the same
    cache settings as the speed rows (release in steps of 1 at these tiny budgets): the context is prefilled and
    released, then ``generate`` answers the question (question-agnostic, as ``make adore-qa``)."""
    cfg = from_config(RecallExperimentConfig, compose("adore", ["experiment=recall", "progress=false"]))
    lm = recall_lm(cfg, progress=False)
    controller = recall_controller(cfg, lm, cfg.controller, cfg.seed)
    examples = recall_examples(cfg.task, RECALL_EXAMPLES, seed=cfg.seed + 2)
    budget = budget_tokens(fraction, examples[0].context_ids.numel(), R)
    out = {}
    for label, make in our_systems(lm, controller, budget, chunk=1).items():
        hits = 0
        for ex in examples:
            cache = make()
            prompt = torch.cat([ex.context_ids, ex.question_ids])[None]
            lm(ex.context_ids[None], past_key_values=cache, use_cache=True)
            ids = lm.generate(
                prompt, max_new_tokens=1, do_sample=False, pad_token_id=0, past_key_values=cache
            )
            hits += str(int(ids[0, -1])) in ex.answers
            if isinstance(cache, AdoreCache):
                cache.close()
        out[label] = 100 * hits / len(examples)
    return out


def save_recall_for_peer() -> None:
    cfg = from_config(RecallExperimentConfig, compose("adore", ["experiment=recall", "progress=false"]))
    lm = recall_lm(cfg, progress=False)
    examples = recall_examples(cfg.task, RECALL_EXAMPLES, seed=cfg.seed + 2)
    torch.save(
        {
            "config": lm.config.to_dict(),
            "state_dict": lm.state_dict(),
            "examples": [(e.context_ids, e.question_ids, e.answers) for e in examples],
        },
        WORK / "recall.pt",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--peer", default="", help="python of the kvpress environment (../shared/docs/PEERS.md)"
    )
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--contexts", default=",".join(map(str, CONTEXTS)))
    parser.add_argument("--rows", default="", help="reuse the speed rows of an earlier run (its rows.json)")
    args = parser.parse_args()
    contexts = [int(c) for c in args.contexts.split(",")]
    torch.set_num_threads(1)
    WORK.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = bench_model()
    torch.save({"config": model.config.to_dict(), "state_dict": model.state_dict()}, WORK / "bench_model.pt")
    ours_checksum = checksum(model)
    eager = bench_model("eager")
    seqs = torch.randint(3, VOCAB, (8, 256), generator=torch.Generator().manual_seed(1))
    controller = train_controller(eager, seqs, ControllerConfig(sequences=8, epochs=1), progress=False)
    rows: list[dict[str, Any]] = []
    if args.peer:
        save_recall_for_peer()
    quality = {f: recall_quality(f) for f in FRACTIONS}
    peer_quality = {}
    if args.peer:
        for f in FRACTIONS:
            cmd = [args.peer, str(Path(__file__).with_name("peer_kvpress.py")), str(WORK), "recall", str(f)]
            peer_quality[f] = json.loads(
                subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1]
            )
    for rep in range(0 if args.rows else args.repeats):
        for n in contexts:
            ids = torch.randint(3, VOCAB, (1, n + 1), generator=torch.Generator().manual_seed(n))
            for fraction in FRACTIONS:
                budget = round(fraction * n)
                order = ["ours", "peer"] if rep % 2 == 0 else ["peer", "ours"]
                for side in order:
                    if side == "peer" and args.peer:
                        cmd = [args.peer, str(Path(__file__).with_name("peer_kvpress.py")), str(WORK), str(n)]
                        cmd += [str(fraction), str(NEW_TOKENS)]
                        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
                        for r in json.loads(res.stdout.strip().splitlines()[-1]):
                            if abs(r.pop("checksum") - ours_checksum) > 1e-3 * abs(ours_checksum):
                                raise RuntimeError(
                                    "kvpress side loaded other weights (logits checksum differs)"
                                )
                            rows.append(
                                {
                                    "env": "kvpress 0.5.5",
                                    "context": n,
                                    "budget %": 100 * fraction,
                                    "rep": rep,
                                    **r,
                                }
                            )
                            print(rows[-1], flush=True)
                    if side == "ours":
                        for name, make in our_systems(model, controller, budget).items():
                            if name == "full" and fraction != FRACTIONS[0]:
                                continue
                            r = measure(model, ids, make())
                            rows.append(
                                {
                                    "env": "ours",
                                    "context": n,
                                    "budget %": 100 * fraction,
                                    "rep": rep,
                                    "system": name,
                                    **r,
                                }
                            )
                            print(rows[-1], flush=True)
    if args.rows:
        rows = [
            {k: v for k, v in r.items() if k not in ("vs full", "recall EM %")}
            for r in json.loads(Path(args.rows).read_text())
        ]
    atomic_write_json(WORK / "rows.json", rows)
    for r in rows:
        full = [
            b
            for b in rows
            if b["env"] == r["env"]
            and b["context"] == r["context"]
            and b["rep"] == r["rep"]
            and b["system"] == "full"
        ]
        r["vs full"] = r["decode tok/s"] / full[0]["decode tok/s"] if full else None
        q = quality if r["env"] == "ours" else peer_quality
        r["recall EM %"] = q.get(r["budget %"] / 100, {}).get(r["system"]) if q else None
    out = Path("results/bench")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        out / "adore.json", {"rows": rows, "new_tokens": NEW_TOKENS, "chunk": CHUNK, "rebuild": R}
    )
    cols = [
        "env",
        "context",
        "budget %",
        "rep",
        "system",
        "prefill s",
        "decode tok/s",
        "vs full",
        "decode tok/s (wall)",
        "KV MiB",
        "recall EM %",
    ]
    text = (
        f"# adore benchmark (tiny Llama 4 x 256, fp32, SDPA, 1 torch thread; {NEW_TOKENS} tokens decoded after the "
        "context; decode tok/s = 1 / median per-step CPU time; `vs full`: the same environment's full cache)\n\n"
        + markdown_table(rows, cols)
    )
    atomic_write_text(out / "adore.md", text)
    print(text)


if __name__ == "__main__":
    main()
