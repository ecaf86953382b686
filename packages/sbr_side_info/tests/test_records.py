"""Run records (issue 31, item 3): a finished run writes a small JSON record; the reproduction table reads them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from sbr_side_info.records import FORMAT, load_records, reproduction_table, write_run_record
from sbr_side_info.train import TrainConfig, train_model


def test_a_run_record_is_small_and_complete(small_synthetic, tmp_path: Path) -> None:
    data = replace(small_synthetic, name="diginetica")
    cfg = TrainConfig(dim=8, epochs=2, progress=False, lr=0.01)
    result = train_model("STAMP", data, cfg)
    path = write_run_record(tmp_path, "repro", data, "STAMP", cfg, result, data_key="abc")
    assert path.name == "diginetica-STAMP.json" and path.stat().st_size < 8_000
    record = json.loads(path.read_text())
    assert record["format"] == FORMAT and record["train"]["dim"] == 8 and record["data_key"] == "abc"
    assert [e["epoch"] for e in record["epochs"]] == [1, 2]
    assert record["epochs"][1]["test"]["HR@20"] == round(result["history"][1]["test"]["HR@20"], 4)
    assert record["best_test"]["HR@20"] == round(result["best_test"]["HR@20"], 4)
    assert set(record["commit"]) == {"sha", "dirty"}
    table = reproduction_table(tmp_path)
    ours = round(result["best_test"]["HR@20"], 4)
    # the SR-GNN paper's STAMP row (45.64) beside ours with the difference; other rows say "not run"
    assert f"| diginetica | STAMP | SR-GNN paper (AAAI 2019) Table 2 | 45.64 | 14.32 | {ours:.2f} |" in table
    assert f"{ours - 45.64:.2f}" in table
    assert "| Tmall | SR-GNN | GCE-GNN paper (SIGIR 2020) Table 3 | 27.57 | 13.72 | not run |" in table
    assert len(load_records(tmp_path)) == 1
