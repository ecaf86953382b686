"""Role split of ToolBench trajectories: the shared real examples give the official conversion's samples exactly."""

from __future__ import annotations

import hashlib
import json

import pytest

from alpha_umi.data import eval_steps, load_trajectories, role_datasets, training_text
from paperlab.io import DataError

# sha256 (first 16 hex) of json.dumps([(input, target), ...]) of the official GLPFT/dataset/toolbench/train-example/
# train_{planner,caller,summarizer}.json, made by prepro_*.py from raw_data_stage_2.json (X-PLUG/Multi-LLM-Agent)
OFFICIAL = {
    "planner": (79, "3c4cbb359ee28614"),
    "caller": (59, "c06faa65b8751190"),
    "summarizer": (14, "e7594ec65c557003"),
}
# train_backbone.json: all 79 targets equal; the 73 non-give-up samples equal in input too (the official script
# reuses a stale prompt for give-up turns, see backbone_samples)
OFFICIAL_BACKBONE_TARGETS = "aac11792ee5aa8dd"
OFFICIAL_BACKBONE_NON_GIVE_UP = (73, "67ce32aeba99fe0c")


def _h(obj) -> str:
    return hashlib.sha256(json.dumps(obj).encode()).hexdigest()[:16]


def test_shared_examples_split_exactly_as_the_official_conversion(real_data) -> None:
    trajs = load_trajectories(real_data("alpha_umi", "train-example", "raw_data", "raw_data_stage_2.json"))
    assert len(trajs) == 20
    ds = role_datasets(trajs)
    for role, (n, digest) in OFFICIAL.items():
        assert len(ds[role]) == n, role
        assert _h([(s["input"], s["target"]) for s in ds[role]]) == digest, role
    backbone = ds["backbone"]
    assert len(backbone) == 79 and _h([s["target"] for s in backbone]) == OFFICIAL_BACKBONE_TARGETS
    kept = [(s["input"], s["target"]) for s in backbone if not s["target"].endswith("conclusion: give up.")]
    assert (len(kept), _h(kept)) == OFFICIAL_BACKBONE_NON_GIVE_UP
    # the texts themselves: a caller sample carries the preceding plan as its thought and ends with the turn tag
    caller = ds["caller"][0]
    assert caller["input"].endswith(" caller: ") and caller["target"].startswith("Action: ")
    assert "The thought of this step is:\n" + caller["history"][-1]["value"] in caller["input"]
    pair = training_text(ds["planner"][0], eos="</s>")
    assert pair["prompt"].startswith("system: You have assess to the following apis:")
    assert pair["prompt"].endswith(" assistant:") and pair["completion"].startswith(" ")
    assert pair["completion"].endswith("</s>")


def test_out_of_domain_test_set_steps(real_data) -> None:
    trajs = load_trajectories(real_data("alpha_umi", "test", "out_of_domain.json"))
    steps = [s for t in trajs for s in eval_steps(t)]
    assert (len(trajs), len(steps)) == (400, 1547)
    kinds = [
        s["reference"].split("</s>")[1].split(":")[0] if "</s>" in s["reference"] else "give up"
        for s in steps
    ]
    assert (kinds.count("caller"), kinds.count("conclusion"), kinds.count("give up")) == (1146, 294, 107)


def test_bad_trajectories_name_the_file_item_and_field(tmp_path) -> None:
    ok = {"tools": [{"Name": "f"}], "instruction": "q", "conversations": [{"from": "user", "value": "q"}]}
    cases = [
        ({**ok, "conversations": None, "chains": []}, "item 2: has 'chains'"),
        ({**ok, "tools": "f"}, "item 2: field 'tools' is str"),
        ({**ok, "conversations": [{"from": "robot", "value": "x"}]}, r"item 2: conversations\[0\]"),
        ({k: v for k, v in ok.items() if k != "instruction"}, "item 2: field 'instruction'"),
    ]
    for row, message in cases:
        path = tmp_path / "bad.json"
        path.write_text(json.dumps([ok, row]))
        with pytest.raises(DataError, match=r"bad\.json: " + message):
            load_trajectories(path)
    (tmp_path / "broken.json").write_text("[{")
    with pytest.raises(DataError, match=r"broken\.json:1: not valid JSON"):
        load_trajectories(tmp_path / "broken.json")


def test_jsonl_trajectories_name_the_bad_line_and_keep_line_separators(tmp_path) -> None:
    ok = {
        "tools": [{"Name": "f"}],
        "instruction": "q\u2028r",
        "conversations": [{"from": "user", "value": "q"}],
    }
    path = tmp_path / "t.jsonl"
    path.write_text(
        json.dumps(ok, ensure_ascii=False) + "\n" + json.dumps(ok) + "\n{broken\n", encoding="utf-8"
    )
    with pytest.raises(DataError, match=r"t\.jsonl:3: not valid JSON"):
        load_trajectories(path)
    path.write_text("".join(json.dumps(ok, ensure_ascii=False) + "\n" for _ in range(2)), encoding="utf-8")
    assert len(load_trajectories(path)) == 2
