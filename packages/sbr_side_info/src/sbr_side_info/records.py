"""Small committed run records (issue 31, item 3): a finished run writes ``<record_dir>/<data>-<model>.json`` (a
few KB: the config, the commit, per-epoch validation and test metrics, wall time), so the reproduction table builds
up run by run without checkpoints, which do not outlive the machine they were written on.

Record format (``"format": "sbr_side_info.run/1"``)::

    {"format", "experiment", "data", "model", "data_key", "train": {TrainConfig fields},
     "commit": {"sha", "dirty"}, "machine": {"platform", "torch", "threads", "bf16_scorer"},
     "epochs": [{"epoch", "loss", "seconds", "valid": {metric: value}, "test": {...} | null}],
     "best_epoch", "test": {...} (at the best validation epoch), "best_test": {...} (best epoch per metric),
     "wall_s", "finished_at"}

:func:`reproduction_table` reads a folder of records and lays every published (data set, model) cell beside the
paper's P@20 / MRR@20 with the difference, ``not run`` where no record exists.
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from paperlab.io import atomic_write_json
from paperlab.report import markdown_table
from sbr_side_info.published import PUBLISHED
from sbr_side_info.schema import Prepared

FORMAT = "sbr_side_info.run/1"


def _commit() -> dict[str, Any]:
    here = Path(__file__).parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "."],
            cwd=here.parents[1],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}
    if sha.returncode != 0:
        return {"sha": None, "dirty": None}
    return {"sha": sha.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def _rounded(metrics: dict[str, float] | None) -> dict[str, float] | None:
    return None if metrics is None else {k: round(float(v), 4) for k, v in metrics.items()}


def run_record(
    experiment: str, data: Prepared, model: str, train_cfg: Any, result: dict[str, Any], data_key: str = ""
) -> dict[str, Any]:
    """The record of one finished run (see the module docstring)."""
    train = {k: v for k, v in train_cfg.__dict__.items() if k not in ("checkpoint", "progress")}
    epochs = [
        {
            "epoch": h["epoch"],
            "loss": round(h["loss"], 5),
            "seconds": round(h["seconds"], 1),
            "valid": _rounded(h["valid"]),
            "test": _rounded(h["test"]),
        }
        for h in result["history"]
    ]
    return {
        "format": FORMAT,
        "experiment": experiment,
        "data": data.name,
        "model": model,
        "data_key": data_key,
        "data_stats": {k: v for k, v in data.stats.items() if isinstance(v, (int, float, str))},
        "train": train,
        "commit": _commit(),
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "bf16_scorer": bool(getattr(result["model"], "bf16_scorer", False)),
        },
        "epochs": epochs,
        "best_epoch": result["best_epoch"],
        "test": _rounded(result["test"]),
        "best_test": _rounded(result["best_test"]),
        "wall_s": round(sum(h["seconds"] for h in result["history"]), 1),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_run_record(
    folder: Path,
    experiment: str,
    data: Prepared,
    model: str,
    train_cfg: Any,
    result: dict[str, Any],
    data_key: str = "",
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{data.name}-{model}.json"
    atomic_write_json(path, run_record(experiment, data, model, train_cfg, result, data_key))
    return path


def load_records(folder: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(Path(folder).glob("*.json")):
        record = json.loads(path.read_text())
        if record.get("format") != FORMAT:
            raise ValueError(
                f"{path}: expected a run record with format {FORMAT!r}, got {record.get('format')!r}"
            )
        out.append(record)
    return out


def reproduction_table(folder: Path) -> str:
    """Markdown: every published (source, data set, model) beside our record's P@20 / MRR@20 (the official
    script's best-epoch values, ``best_test``) and the difference; ``not run`` without a record."""
    records = {(r["data"], r["model"]): r for r in load_records(folder)} if Path(folder).is_dir() else {}
    rows = []
    for (source, data, model), (p20, m20) in PUBLISHED.items():
        r = records.get((data, model))
        row = {"data": data, "model": model, "paper": source, "paper P@20": p20, "paper MRR@20": m20}
        if r is None:
            row.update(
                {
                    "ours P@20": "not run",
                    "ours MRR@20": "",
                    "diff P@20": "",
                    "diff MRR@20": "",
                    "loss": "",
                    "epochs": "",
                    "wall h": "",
                }
            )
        else:
            ours_p, ours_m = r["best_test"]["HR@20"], r["best_test"]["MRR@20"]
            row.update(
                {
                    "ours P@20": ours_p,
                    "ours MRR@20": ours_m,
                    "diff P@20": round(ours_p - p20, 2),
                    "diff MRR@20": round(ours_m - m20, 2),
                    "loss": r["train"]["loss"],
                    "epochs": len(r["epochs"]),
                    "wall h": round(r["wall_s"] / 3600, 2),
                }
            )
        rows.append(row)
    columns = [
        "data",
        "model",
        "paper",
        "paper P@20",
        "paper MRR@20",
        "ours P@20",
        "ours MRR@20",
        "diff P@20",
        "diff MRR@20",
        "loss",
        "epochs",
        "wall h",
    ]
    return markdown_table(rows, columns)
