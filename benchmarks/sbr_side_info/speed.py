"""Issue 31: training speed of today's loop vs the loop before it, in one run, on full Diginetica (GCE-GNN split,
719,470 training cases, 43,097 items; batch 100, d = 100, SR-GNN's Adam settings).

    .venv/bin/python benchmarks/sbr_side_info/speed.py   # SBR_SPEED_STEPS=2000, SBR_SPEED_THREADS=1 (defaults)

The default 2,000-step slice takes ~30 min on 2 shared cores (both models, three paths); the README's numbers are
from ``SBR_SPEED_STEPS=300``.

**Old path** (kept here only, as it was before issue 31): random batches, rows padded and SR-GNN graphs built in a
Python loop per batch (:func:`_old_collate`), ``torch.optim.Adam`` (single-tensor), the scorer in fp32.
**New path** (the package's ``TrainConfig`` defaults): the same random batches gathered from the
:class:`~sbr_side_info.batch.CaseTable`, GRUs over packed sequences, fused Adam, the scorer in bf16 where the CPU
has ``avx512_bf16``. **new+bucket**: the new path with length-bucketed batches (``bucket_batches=50``, opt-in).
Each path trains NARM and SR-GNN for ``STEPS`` steps of batch 100 from the same seeded weights (old and new: the
same first ``STEPS`` batches of epoch 1; new+bucket: its own bucketed ones). Reported: ms per step (wall and
process CPU time), the ratio old / new, and the collate share.

Quality: every path trains NARM and SR-GNN on the real Diginetica sample (SR-GNN's ``sample_train-item-views.csv``,
99 test cases; the sample config: d 48, lr 5e-3 halved every 3 epochs) for 5 epochs, ``SEEDS`` seeds each; test
HR@20 / MRR@20 side by side. Stated tolerance (asserted for seed 0 in ``tests/test_speed_equivalence.py``): HR@20
within one test case (1.02 points), MRR@20 within 1 point of the old path.

Writes ``results/bench/sbr_side_info-speed.{json,md}``.
"""

from __future__ import annotations

import itertools
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from paperlab.data import data_path
from paperlab.io import atomic_write_json, atomic_write_text
from paperlab.report import markdown_table
from paperlab.seed import seed_everything
from sbr_side_info.batch import SessionBatch, case_table, collate, length_bucketed_batches, session_graph
from sbr_side_info.evaluate import evaluate
from sbr_side_info.loaders import load_diginetica, load_gce_gnn
from sbr_side_info.losses import cross_entropy
from sbr_side_info.models import build_model
from sbr_side_info.preprocess import ProtocolConfig, prepare
from sbr_side_info.schema import Prepared
from sbr_side_info.train import TrainConfig, cpu_has_bf16, make_optimizer, use_bf16_scorer

STEPS = int(os.environ.get("SBR_SPEED_STEPS", "2000"))
SEEDS = int(os.environ.get("SBR_SPEED_SEEDS", "3"))
THREADS = int(
    os.environ.get("SBR_SPEED_THREADS", "1")
)  # 1: stable on 2 shared cores (2 threads swing with load)
MODELS = ("NARM", "SR-GNN")
PATHS = ("old", "new", "new+bucket")
SAMPLE = {"dim": 48, "lr": 0.005, "lr_decay_every": 3, "lr_decay": 0.5}


def _old_collate(data: Prepared, cases, index, graph: bool = False) -> SessionBatch:
    """The collate of before issue 31 (row-by-row padding and graphs), kept here as the benchmark's old path."""
    seqs = [cases.seqs[i] for i in index]
    width = max(len(s) for s in seqs)
    items = torch.zeros(len(seqs), width, dtype=torch.long)
    for r, s in enumerate(seqs):
        items[r, : len(s)] = torch.tensor(s)
    mask = items > 0
    batch = SessionBatch(items, mask, torch.tensor([cases.labels[i] for i in index]))
    if data.item_category is not None:
        batch.categories = torch.tensor(data.item_category)[items] * mask
    if data.item_price_level is not None:
        batch.prices = torch.tensor(data.item_price_level)[items] * mask
    if graph:
        n = max(len(set(s)) for s in seqs)
        nodes = torch.zeros(len(seqs), n, dtype=torch.long)
        alias = torch.zeros(len(seqs), width, dtype=torch.long)
        adjacency = np.zeros((len(seqs), n, 2 * n), dtype=np.float32)
        for r, s in enumerate(seqs):
            u, al, adj = session_graph(s, n)
            nodes[r, : len(u)] = torch.tensor(u)
            alias[r, : len(al)] = torch.tensor(al)
            adjacency[r] = adj
        batch.nodes, batch.alias, batch.adjacency = nodes, alias, torch.from_numpy(adjacency)
    return batch


def _setup(path: str, name: str, data: Prepared, seed: int, **settings):
    """Model, optimizer (and step-decay scheduler) of one path from the same seeded weights."""
    cfg = TrainConfig(seed=seed, progress=False, **settings)
    seed_everything(seed)
    model = build_model(name, data, cfg.dim)
    if path == "old":
        model.bf16_scorer, model.packed = False, False
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.l2)
    else:
        model.bf16_scorer, model.packed = use_bf16_scorer(cfg), cfg.packed_gru
        optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_decay_every, gamma=cfg.lr_decay)
    return model, optimizer, scheduler


def _batches(path: str, data: Prepared, epoch: int, seed: int, batch_size: int = 100) -> list[np.ndarray]:
    rng = np.random.default_rng(seed * 1000 + epoch)
    if path != "new+bucket":  # the old path's batches (the package's default reproduces them)
        order = rng.permutation(len(data.train))
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return length_bucketed_batches(case_table(data.train).lengths, batch_size, rng, 50)


def _step(path: str, model, optimizer, data: Prepared, index) -> tuple[float, float]:
    """One training step; returns (loss, seconds spent in collate)."""
    t0 = time.perf_counter()
    if path == "old":
        batch = _old_collate(data, data.train, list(index), graph=model.needs_graph)
    else:
        batch = collate(data, data.train, index, graph=model.needs_graph)
    collate_s = time.perf_counter() - t0
    logits = model(batch)
    loss = F.cross_entropy(logits, batch.labels - 1) if path == "old" else cross_entropy(logits, batch.labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item(), collate_s


def speed(data: Prepared, steps: int, block: int = 25) -> list[dict]:
    """ms per step of each path; the paths take turns in blocks of ``block`` steps (the order flipped every block),
    so that a change in the machine's load falls on all of them alike."""
    rows = []
    lengths = case_table(data.train).lengths
    for name in MODELS:
        runs = {}
        for path in PATHS:
            model, optimizer, _ = _setup(path, name, data, seed=0)
            model.train()
            batches = _batches(path, data, 0, 0)[: steps + 5]
            for index in batches[:5]:  # warm-up (allocator, oneDNN kernels), not timed
                _step(path, model, optimizer, data, index)
            runs[path] = {
                "model": model,
                "opt": optimizer,
                "batches": batches[5:],
                "wall": 0.0,
                "cpu": 0.0,
                "collate": 0.0,
                "losses": [],
                "widths": [],
            }
        for b, start in enumerate(range(0, steps, block)):
            for path in PATHS if b % 2 == 0 else PATHS[::-1]:
                run = runs[path]
                w0, c0 = time.perf_counter(), time.process_time()
                for index in run["batches"][start : start + block]:
                    loss, collate_s = _step(path, run["model"], run["opt"], data, index)
                    run["collate"] += collate_s
                    run["losses"].append(loss)
                    run["widths"].append(int(lengths[index].max()))
                run["wall"] += time.perf_counter() - w0
                run["cpu"] += time.process_time() - c0
        for path, run in runs.items():
            n = len(run["losses"])
            rows.append(
                {
                    "model": name,
                    "path": path,
                    "steps": n,
                    "ms/step (wall)": 1000 * run["wall"] / n,
                    "ms/step (CPU)": 1000 * run["cpu"] / n,
                    "collate ms/step": 1000 * run["collate"] / n,
                    "mean pad width": float(np.mean(run["widths"])),
                    "mean loss": float(np.mean(run["losses"])),
                    "samples/s": 100 * n / run["wall"],
                }
            )
            print(rows[-1], flush=True)
    return rows


def quality(seeds: int, epochs: int = 5) -> list[dict]:
    """Both paths, full training on the real Diginetica sample: test HR@20 / MRR@20 per seed."""
    views = data_path("sbr", "diginetica-sample", "sample_train-item-views.csv")
    data = prepare(load_diginetica(views), ProtocolConfig())
    rows = []
    for name, seed, path in itertools.product(MODELS, range(seeds), PATHS):
        model, optimizer, scheduler = _setup(path, name, data, seed, **SAMPLE)
        for epoch in range(epochs):
            model.train()
            for index in _batches(path, data, epoch, seed):
                _step(path, model, optimizer, data, index)
            scheduler.step()
        m = evaluate(model, data, data.test)
        rows.append({"model": name, "seed": seed, "path": path, "HR@20": m["HR@20"], "MRR@20": m["MRR@20"]})
    return rows


def main() -> None:
    threads_before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        _main()
    finally:
        torch.set_num_threads(threads_before)


def _main() -> None:
    qual = quality(SEEDS)
    t0 = time.perf_counter()
    data = load_gce_gnn(data_path("sbr", "gce-gnn", "diginetica"), valid_portion=0.0)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    table = case_table(data.train)
    table.graph_parts()
    table_s = time.perf_counter() - t0
    rows = speed(data, STEPS)
    ratios, agree = [], []
    for name in MODELS:
        old = next(r for r in rows if r["model"] == name and r["path"] == "old")
        for path in PATHS[1:]:
            new = next(r for r in rows if r["model"] == name and r["path"] == path)
            ratios.append(
                {
                    "model": name,
                    "path": path,
                    "old/new (wall)": old["ms/step (wall)"] / new["ms/step (wall)"],
                    "old/new (CPU)": old["ms/step (CPU)"] / new["ms/step (CPU)"],
                }
            )
            for metric, tol in (("HR@20", 100 / 99), ("MRR@20", 1.0)):
                a = np.mean([q[metric] for q in qual if q["model"] == name and q["path"] == "old"])
                b = np.mean([q[metric] for q in qual if q["model"] == name and q["path"] == path])
                agree.append(
                    {
                        "model": name,
                        "path": path,
                        "metric": metric,
                        "old": a,
                        "new": b,
                        "|diff|": abs(a - b),
                        "within tolerance": bool(abs(a - b) <= tol + 1e-9),
                    }
                )
    machine = {
        "cpu_bf16": cpu_has_bf16(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "load_s": load_s,
        "case_table_s": table_s,
    }
    out = Path("results/bench")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        out / "sbr_side_info-speed.json",
        {
            "steps": STEPS,
            "machine": machine,
            "speed": rows,
            "ratios": ratios,
            "quality": qual,
            "agreement": agree,
        },
    )
    text = (
        f"# sbr_side_info: training speed, old vs new path (issue 31)\n\nFull Diginetica (GCE-GNN split, "
        f"{len(data.train):,} training cases, {data.n_items - 1:,} items), batch 100, d 100, {STEPS} steps per "
        f"path; {machine['threads']} threads, bf16 CPU: {machine['cpu_bf16']}; CaseTable built in "
        f"{table_s:.1f} s (once per split).\n\n"
        + markdown_table(
            rows,
            [
                "model",
                "path",
                "steps",
                "ms/step (wall)",
                "ms/step (CPU)",
                "collate ms/step",
                "mean pad width",
                "mean loss",
                "samples/s",
            ],
        )
        + "\n"
        + markdown_table(ratios, ["model", "path", "old/new (wall)", "old/new (CPU)"])
        + f"\n## Same metrics: Diginetica sample, 5 epochs, {SEEDS} seeds (tolerance: HR@20 1.02, MRR@20 1.0 points, "
        "seed mean)\n\n"
        + markdown_table(qual, ["model", "seed", "path", "HR@20", "MRR@20"])
        + "\n"
        + markdown_table(agree, ["model", "path", "metric", "old", "new", "|diff|", "within tolerance"])
    )
    atomic_write_text(out / "sbr_side_info-speed.md", text)
    print(text)


if __name__ == "__main__":
    main()
