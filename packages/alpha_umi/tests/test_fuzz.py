"""Fuzzed loaders (paperlab.fuzz): every mutated trajectory file (JSON list or JSONL) is loaded and split into the
role data, or refused with a DataError naming the file; so is every mutated raw ToolBench folder given to the
converter (answer files, test query ids). Nothing else escapes. Examples per loader: PAPERLAB_FUZZ_EXAMPLES (40
in make test)."""

from __future__ import annotations

import json

from alpha_umi.data import eval_steps, load_trajectories, role_datasets
from alpha_umi.toolbench import convert
from paperlab.fuzz import fuzz_loader

TRAJS = [
    {
        "tools": [{"Name": "price", "function": "the price of an item", "input": {"item": "string"}}],
        "instruction": "What does a kite cost in EUR?",
        "conversations": [
            {"from": "user", "value": "What does a kite cost in EUR?"},
            {"from": "assistant", "value": "Look it up.\n Next: caller."},
            {"from": "caller", "value": 'Action: price\nAction Input: {"item": "kite"}'},
            {"from": "observation", "value": '{"price": 12}'},
            {"from": "assistant", "value": "Done.\n Next: conclusion."},
            {"from": "conclusion", "value": "12 EUR"},
        ],
    },
    {
        "tools": [{"Name": "f"}],
        "instruction": "q \u2028 caf\u00e9",
        "conversations": [
            {"from": "user", "value": "q"},
            {"from": "assistant", "value": "No. Next: give up."},
        ],
    },
]


def _load(path):
    trajs = load_trajectories(path)
    role_datasets(trajs)  # what the experiment does next must not fail on what the loader accepted
    return [s for t in trajs for s in eval_steps(t)]


def _check(counts) -> None:
    assert counts["parsed"] + counts["refused"] >= 1 and counts["refused"] >= 1


def test_fuzz_trajectories_json() -> None:
    _check(fuzz_loader(_load, json.dumps(TRAJS, ensure_ascii=False).encode(), kind="json",
                       name="alpha_umi.load_trajectories[json]", suffix=".json"))  # fmt: skip


def test_fuzz_trajectories_jsonl() -> None:
    text = "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in TRAJS)
    _check(fuzz_loader(_load, text.encode(), kind="jsonl", name="alpha_umi.load_trajectories[jsonl]",
                       suffix=".jsonl"))  # fmt: skip


def _call(content, name, arguments):
    return {"role": "assistant", "content": content, "function_call": {"name": name, "arguments": arguments}}


WEATHER = {
    "name": "get_weather",
    "description": "Current weather of a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "the city"}}},
}
MESSAGES = [
    {"role": "system", "content": "You are AutoGPT ..."},
    {"role": "user", "content": "Weather in Paris?"},
    _call("I should look it up.", "get_weather", '{"city": "Paris"}'),
    {"role": "function", "content": json.dumps({"error": "", "response": {"temp": 21}})},
    _call(None, "Finish", '{"return_type": "give_answer", "final_answer": "21 degrees"}'),
]


def _answer(query):
    return {"answer_generation": {"query": query, "function": [WEATHER], "train_messages": [[], MESSAGES]}}


def test_fuzz_toolbench_converter_folder() -> None:
    files = {
        "answer/G1_answer/10_DFS_woFilter_w2.json": json.dumps(_answer("Weather in Paris?")).encode(),
        "answer/G2_answer/13_DFS.json": json.dumps(_answer("Weather in Rome?")).encode(),
        "test_query_ids/G1_instruction.json": json.dumps({"77": 1}).encode(),
    }
    _check(fuzz_loader(lambda root: role_datasets(load_ok(convert(root))), files, kind="json",
                       name="alpha_umi.toolbench.convert"))  # fmt: skip


def load_ok(rows):
    from alpha_umi.data import check_trajectory

    return [check_trajectory(r, "converted") for r in rows]
