"""Experiments end to end (tiny settings): a raw Diginetica-format folder point-and-run, the sample, the sweep."""

from __future__ import annotations

import json
import random
from pathlib import Path

from paperlab.config import compose
from sbr_side_info.experiment import run


def _write_raw_diginetica(folder: Path, n_sessions: int = 300) -> None:
    rng = random.Random(0)
    rows = ["session_id;user_id;item_id;timeframe;eventdate"]
    for s in range(n_sessions):
        day = 1 + s * 20 // n_sessions  # 20 days: the last 7 are the test period
        start = rng.randrange(30)
        for k in range(rng.randint(2, 6)):
            rows.append(f"{s};NA;{(start + k) % 30};{1000 * k};2016-05-{day:02d}")
    (folder / "train-item-views.csv").write_text("\n".join(rows) + "\n")
    (folder / "products.csv").write_text(
        "itemId;pricelog2;product.name.tokens\n" + "".join(f"{i};{i % 4};{i}\n" for i in range(30))
    )
    (folder / "product-categories.csv").write_text(
        "itemId;categoryId\n" + "".join(f"{i};{i // 5}\n" for i in range(30))
    )


def test_point_and_run_on_a_raw_diginetica_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PAPERLAB_RESULTS", str(tmp_path / "results"))
    _write_raw_diginetica(tmp_path)
    d = str(tmp_path)
    cfg = compose(
        "sbr_side_info",
        [
            "experiment=dataset",
            "models=[GRU4Rec,FusionGRU4Rec]",
            "train.epochs=2",
            "train.dim=8",
            "train.progress=false",
            f"datasets=[{{name: digi, loader: diginetica, paths: [{d}/train-item-views.csv, {d}/products.csv, "
            f"{d}/product-categories.csv]}}]",
        ],
    )
    out = run(cfg)
    rows = out["rows"]
    assert [r["model"] for r in rows] == ["GRU4Rec", "FusionGRU4Rec"]
    folder = Path(out["out"])
    for name in ("results.md", "results.csv", "metrics.json", "epochs-digi.png"):
        assert (folder / name).is_file(), name
    assert len(list(folder.glob("prepared-digi-*.json"))) == 1  # keyed by protocol + input files
    written = json.loads((folder / "metrics.json").read_text())
    assert written["kind"] == "dataset"
    assert [r["test HR@20"] for r in written["rows"]] == [r["test HR@20"] for r in rows]
    assert len(list((folder / "checkpoints").glob("digi-GRU4Rec-*.pt"))) == 1
    again = run(cfg)  # the prepared split and the finished checkpoints are reused: same numbers
    assert [r["test HR@20"] for r in again["rows"]] == [r["test HR@20"] for r in rows]


def test_sample_experiment_on_the_real_diginetica_sample(real_data, tmp_path: Path, monkeypatch) -> None:
    real_data("sbr", "diginetica-sample", "sample_train-item-views.csv")
    monkeypatch.setenv("PAPERLAB_RESULTS", str(tmp_path / "results"))
    cfg = compose(
        "sbr_side_info",
        [
            "experiment=sample",
            "models=[STAMP,CoHHN]",
            "movielens=false",
            "train.epochs=1",
            "train.dim=8",
            "train.progress=false",
        ],
    )
    rows = run(cfg)["rows"]
    assert [r["model"] for r in rows] == ["STAMP"]  # CoHHN skipped: the sample has no categories
    assert rows[0]["data"] == "diginetica"
