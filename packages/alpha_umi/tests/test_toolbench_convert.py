"""Raw ToolBench answers -> the stage-2 trajectories (official prepro_raw_stage_{1,2}.py) -> role samples, on a
hand-written data folder."""

from __future__ import annotations

import json

import pytest

from alpha_umi.data import load_trajectories, role_datasets
from alpha_umi.toolbench import convert, main
from paperlab.io import DataError

WEATHER = {
    "name": "get_weather_for_weatherapi",
    "description": "Current weather of a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "the city"}, "days": {"type": "integer"}},
    },
}
FINISH = {"name": "Finish", "description": "finish", "parameters": {"type": "object", "properties": {}}}


def _answer(messages, query="Weather in Paris?"):
    return {
        "answer_generation": {"query": query, "function": [WEATHER, FINISH], "train_messages": [[], messages]}
    }


def _call(content, name, arguments):
    return {"role": "assistant", "content": content, "function_call": {"name": name, "arguments": arguments}}


SOLVED = [
    {"role": "system", "content": "You are AutoGPT ..."},
    {"role": "user", "content": "Weather in Paris?"},
    _call("I should look it up.", "get_weather_for_weatherapi", '{"city": "Paris"}'),
    {"role": "function", "content": json.dumps({"error": "", "response": {"temp": 21}})},
    {"role": "assistant", "content": "thinking aloud"},  # no call: dropped, as the official script
    _call(None, "Finish", '{"return_type": "give_answer", "final_answer": "21 degrees"}'),
]
GAVE_UP = [
    {"role": "system", "content": "..."},
    {"role": "user", "content": "q"},
    _call("Broken API.", "Finish", {"return_type": "give_up_and_restart"}),
]


def _folder(tmp_path):
    root = tmp_path / "data"
    (root / "answer" / "G1_answer").mkdir(parents=True)
    (root / "answer" / "G2_answer").mkdir(parents=True)
    (root / "test_query_ids").mkdir()
    (root / "test_query_ids" / "G1_instruction.json").write_text(json.dumps({"77": 1}))
    files = {
        "answer/G1_answer/10_DFS_woFilter_w2.json": _answer(SOLVED),
        "answer/G1_answer/77_DFS_woFilter_w2.json": _answer(SOLVED, "held out"),  # a test query: left out
        "answer/G2_answer/12_CoT.json": {
            "answer_generation": {"query": "x", "function": []}
        },  # no train_messages
        "answer/G2_answer/13_DFS.json": _answer(GAVE_UP, "q"),
    }
    for name, obj in files.items():
        (root / name).write_text(json.dumps(obj))
    return root


def test_raw_answers_become_stage2_trajectories_and_role_samples(tmp_path) -> None:
    rows = convert(_folder(tmp_path))
    assert [r["instruction"] for r in rows] == ["Weather in Paris?", "q"]
    assert rows[0]["tools"] == [
        {"Name": "get_weather_for_weatherapi", "function": "Current weather of a city.",
         "input": {"city": "string, the city", "days": "integer"}}
    ]  # fmt: skip
    assert rows[0]["conversations"] == [
        {"from": "user", "value": "Weather in Paris?"},
        {"from": "assistant", "value": "I should look it up.\n Next: caller."},
        {"from": "caller", "value": 'Action: get_weather_for_weatherapi\nAction Input: {"city": "Paris"}'},
        {"from": "observation", "value": '{"temp": 21}'},
        {"from": "assistant", "value": " Next: conclusion."},
        {"from": "conclusion", "value": "21 degrees"},
    ]
    assert rows[1]["conversations"][1:] == [{"from": "assistant", "value": "Broken API.\n Next: give up."}]
    out = tmp_path / "raw_data_stage_2.json"
    assert main([str(tmp_path / "data"), str(out)]) == 0
    ds = role_datasets(load_trajectories(out))  # the package reads what the converter writes
    assert {k: len(v) for k, v in ds.items()} == {"planner": 3, "caller": 1, "summarizer": 1, "backbone": 3}
    assert ds["caller"][0]["target"].startswith("Action: get_weather_for_weatherapi")
    assert ds["backbone"][2]["target"] == "Broken API.\nconclusion: give up."


def test_bad_raw_data_names_the_file(tmp_path) -> None:
    with pytest.raises(DataError, match="no answer/ folder"):
        convert(tmp_path)
    root = _folder(tmp_path)
    bad = _answer([{"role": "system"}, {"role": "user"}, {"role": "tool", "content": "?"}])
    (root / "answer" / "G1_answer" / "11_x.json").write_text(json.dumps(bad))
    with pytest.raises(DataError, match=r"11_x\.json: chains\[2\] has role 'tool'"):
        convert(root)
