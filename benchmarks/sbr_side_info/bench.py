"""sbr_side_info benchmark: training samples/s and full-ranking evaluation sessions/s of every model on one real
split, beside RecBole (the peer, run in its own environment) on exactly the same cases, and the memory of scoring
every item at 100k items.

    .venv/bin/python benchmarks/sbr_side_info/bench.py      # writes results/bench/sbr_side_info.{json,md}

Data: the YooChoose 100k-click sample (session-rec format, ``$PAPERLAB_DATA/sbr/session-rec-rsc15-100k``) through
the SR-GNN protocol (last day = test): ~35k training cases, ~12k test cases, ~2.5k items.
Peer: set ``RECBOLE_PYTHON`` (default ``/tmp/peer-recbole/bin/python``, the PEERS.md recipe); without it the peer
rows are marked missing and everything else still runs. Same hyper-parameters on both sides (d = 100, batch 100,
Adam lr 1e-3, CE over all items, ``EPOCHS`` epochs, no decay); we report test HR@20 / MRR@20 and samples/s.
Padding: RecBole pads every sequence to ``MAX_ITEM_LIST_LENGTH`` (50); we pad each batch to its longest prefix and
run GRUs over packed sequences.

First runs ``speed.py`` (issue 31: today's training loop vs the one before it on full Diginetica, same run;
``SBR_SPEED_STEPS`` steps, default 2,000; ``SBR_SPEED=0`` skips it).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from paperlab.data import data_path
from paperlab.io import atomic_write_json, atomic_write_text
from paperlab.report import markdown_table
from sbr_side_info.batch import collate
from sbr_side_info.evaluate import evaluate
from sbr_side_info.loaders import load_session_rec
from sbr_side_info.models import MODELS, build_model
from sbr_side_info.preprocess import ProtocolConfig, prepare
from sbr_side_info.schema import Cases, Prepared
from sbr_side_info.synthetic import SyntheticConfig, synthetic_prepared
from sbr_side_info.train import TrainConfig, train_model

EPOCHS = int(os.environ.get("SBR_BENCH_EPOCHS", "2"))
HERE = Path(__file__).parent
PEER_NAMES = {"GRU4Rec": "GRU4Rec", "SR-GNN": "SRGNN"}


def _split() -> Prepared:
    raw = load_session_rec(data_path("sbr", "session-rec-rsc15-100k", "yoochoose-clicks-100k_train_full.txt"))
    return prepare(raw, ProtocolConfig(test_days=1.0, valid_portion=0.1))


def _write_atomic_files(data: Prepared, folder: Path) -> None:
    (folder / "peer").mkdir(parents=True, exist_ok=True)
    for part, cases in (("train", data.train), ("valid", data.valid), ("test", data.test)):
        lines = ["session_id:token\titem_id_list:token_seq\titem_id:token"]
        lines += [
            f"{i}\t{' '.join(map(str, s))}\t{y}"
            for i, (s, y) in enumerate(zip(cases.seqs, cases.labels, strict=True))
        ]
        (folder / "peer" / f"peer.{part}.inter").write_text("\n".join(lines) + "\n")


def bench_quality_vs_peer(data: Prepared) -> list[dict]:
    rows = []
    peer_python = os.environ.get("RECBOLE_PYTHON", "/tmp/peer-recbole/bin/python")
    with tempfile.TemporaryDirectory() as tmp:
        _write_atomic_files(data, Path(tmp))
        for ours, theirs in PEER_NAMES.items():
            cfg = TrainConfig(
                dim=100, epochs=EPOCHS, lr=1e-3, lr_decay=1.0, progress=False, eval_test_every_epoch=False
            )
            cfg_valid = {**cfg.__dict__}
            result = train_model(ours, data, TrainConfig(**cfg_valid))
            # the last epoch's model, as RecBole's side is evaluated after its last epoch
            rows.append(
                {
                    "system": "paperlab",
                    "model": ours,
                    "HR@20": result["test"]["HR@20"],
                    "MRR@20": result["test"]["MRR@20"],
                    "samples/s": result["samples_per_s"],
                    "s/epoch": result["seconds_per_epoch"],
                }
            )
            if not Path(peer_python).is_file():
                rows.append(
                    {
                        "system": "RecBole 1.2.1",
                        "model": theirs,
                        "HR@20": None,
                        "MRR@20": None,
                        "samples/s": None,
                        "s/epoch": None,
                        "note": f"{peer_python} missing (PEERS.md recipe)",
                    }
                )
                continue
            env = {
                **os.environ,
                "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1",
                "OMP_NUM_THREADS": str(torch.get_num_threads()),
            }
            proc = subprocess.run(
                [peer_python, str(HERE / "recbole_peer.py"), tmp, theirs, str(EPOCHS)],
                capture_output=True,
                text=True,
                env=env,
                timeout=3600,
                cwd=tmp,
            )
            line = next((x for x in proc.stdout.splitlines()[::-1] if x.startswith("{")), None)
            if proc.returncode != 0 or line is None:
                rows.append({"system": "RecBole 1.2.1", "model": theirs, "note": proc.stderr[-300:]})
                continue
            peer = json.loads(line)
            rows.append(
                {
                    "system": "RecBole 1.2.1",
                    "model": theirs,
                    "HR@20": peer["metrics"]["hit@20"],
                    "MRR@20": peer["metrics"]["mrr@20"],
                    "samples/s": peer["samples_per_s"],
                    "s/epoch": peer["seconds_per_epoch"],
                }
            )
    return rows


def bench_throughput(data: Prepared) -> list[dict]:
    side = synthetic_prepared(
        SyntheticConfig(n_sessions=6000, items_per_cell=40)
    )  # YooChoose sample has no side info
    rows = []
    for name in MODELS:
        d = data if name not in ("FusionGRU4Rec", "CoHHN") else side
        torch.manual_seed(0)
        model = build_model(name, d, 100)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        steps, n = 60, 0
        t0 = time.perf_counter()
        for s in range(steps):
            batch = collate(d, d.train, list(range(s * 100, (s + 1) * 100)), graph=model.needs_graph)
            loss = torch.nn.functional.cross_entropy(model(batch), batch.labels - 1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            n += len(batch.labels)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        evaluate(model, d, d.test, batch_size=500)
        eval_s = time.perf_counter() - t0
        rows.append(
            {
                "model": name,
                "data": d.name,
                "items": d.n_items - 1,
                "train samples/s": n / train_s,
                "eval sessions/s": len(d.test) / eval_s,
            }
        )
    return rows


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_memory_100k() -> list[dict]:
    rows = []
    n_items = 100_001
    seqs = [[(i * 7919) % (n_items - 1) + 1 for i in range(k, k + 10)] for k in range(100)]
    labels = [(k * 104729) % (n_items - 1) + 1 for k in range(100)]
    data = Prepared("100k-items", Cases(seqs, labels), Cases([], []), Cases([], []), n_items)
    for name in ("GRU4Rec", "SR-GNN"):
        model = build_model(name, data, 100)
        batch = collate(data, data.train, list(range(100)), graph=model.needs_graph)
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS counter (Linux)
        before = _peak_rss_mb()
        loss = torch.nn.functional.cross_entropy(model(batch), batch.labels - 1)
        loss.backward()
        rows.append(
            {
                "model": name,
                "items": n_items - 1,
                "item table MB": model.item_emb.weight.numel() * 4 / 2**20,
                "logits per batch MB": 100 * (n_items - 1) * 4 / 2**20,
                "peak RSS growth MB (fwd+bwd, batch 100)": _peak_rss_mb() - before,
            }
        )
    return rows


def main() -> None:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    if os.environ.get("SBR_SPEED", "1") != "0":
        import speed  # benchmarks/sbr_side_info/speed.py (this script's folder is on sys.path)

        speed.main()
    data = _split()
    quality = bench_quality_vs_peer(data)
    throughput = bench_throughput(data)
    memory = bench_memory_100k()
    ratios = []
    for model, theirs in PEER_NAMES.items():
        a = next(r for r in quality if r["system"] == "paperlab" and r["model"] == model)
        b = next(r for r in quality if r["system"] != "paperlab" and r["model"] == theirs)
        if b.get("samples/s"):
            ratios.append(
                f"{model}: paperlab / RecBole samples/s = {a['samples/s'] / b['samples/s']:.2f}x; "
                f"HR@20 {a['HR@20']:.2f} vs {b['HR@20']:.2f}, MRR@20 {a['MRR@20']:.2f} vs {b['MRR@20']:.2f}"
            )
    out = Path("results/bench")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        out / "sbr_side_info.json",
        {
            "split": data.stats,
            "quality_vs_peer": quality,
            "throughput": throughput,
            "memory_100k": memory,
            "ratios": ratios,
        },
    )
    text = (
        f"# sbr_side_info benchmark (2-core CPU)\n\nSplit: YooChoose 100k sample, SR-GNN protocol: "
        f"{len(data.train)} train / {len(data.test)} test cases, {data.n_items - 1} items.\n\n"
        f"## Same split, {EPOCHS} epochs, same hyper-parameters: ours vs RecBole\n\n"
        + markdown_table(quality, ["system", "model", "HR@20", "MRR@20", "samples/s", "s/epoch", "note"])
        + "\n"
        + "\n".join(f"- {r}" for r in ratios)
        + "\n\n## Throughput per model (60 training steps of batch 100; full-ranking test evaluation)\n\n"
        + markdown_table(throughput, ["model", "data", "items", "train samples/s", "eval sessions/s"])
        + "\n## Scoring every item at 100k items\n\n"
        + markdown_table(
            memory,
            [
                "model",
                "items",
                "item table MB",
                "logits per batch MB",
                "peak RSS growth MB (fwd+bwd, batch 100)",
            ],
        )
    )
    atomic_write_text(out / "sbr_side_info.md", text)
    print(text)


if __name__ == "__main__":
    main()
