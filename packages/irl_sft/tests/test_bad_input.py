"""Bad input (issue 28): the demonstration and preference loaders parse or refuse every mutated file with a
DataError naming it (fuzzed, in each format), the run key follows every setting and input file, a changed input file
is not served a stale run, and the ``train`` block is checked before anything is built."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from irl_sft.checkpoints import run_key
from irl_sft.data import DataConfig, load_demos, load_prefs
from irl_sft.stages import LLMConfig, run_llm
from paperlab.config import ConfigError
from paperlab.fuzz import fuzz_loader
from paperlab.io import DataError


@pytest.fixture(scope="module")
def tok():
    from paperlab.models import train_tiny_tokenizer

    return train_tiny_tokenizer(
        ["count from 3 by 2: 5 7 9 11 13", "hello world, how are you?"], vocab_size=300
    )


def _cfg(**data) -> LLMConfig:
    return LLMConfig(data=DataConfig(**{"demos": "synthetic", "eval_demos": 1, **data}), max_length=48)


def _jsonl(rows) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


COLUMNS = [{"prompt": f"count from {i} by 1:", "completion": f" {i + 1} {i + 2}"} for i in range(3)]
CHAT = [
    {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": f"count from {i}"},
            {"role": "assistant", "content": f"{i + 1} {i + 2}"},
        ]
    }
    for i in range(3)
]
PREFS = [{"prompt": f"count from {i} by 1:", "chosen": f" {i + 1}", "rejected": " 9"} for i in range(3)]
CHAT_PREFS = [
    {
        "chosen": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "good"}],
        "rejected": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "bad"}],
    }
    for i in range(3)
]


@pytest.mark.parametrize(
    "name, rows, options",
    [
        ("columns", COLUMNS, {}),
        ("chat", CHAT, {"format": "chat"}),
        ("chat_first_turn", CHAT, {"format": "chat", "prompt_turns": "first"}),
    ],
)
def test_fuzz_demonstrations(tok, name, rows, options) -> None:
    counts = fuzz_loader(
        lambda p: load_demos(_cfg(demos=str(p), **options), tok),
        _jsonl(rows),
        kind="jsonl",
        name=f"irl_sft.demos_{name}",
        suffix=".jsonl",
    )
    assert counts["parsed"] > 0 and counts["refused"] > 0


@pytest.mark.parametrize(
    "name, rows, options", [("columns", PREFS, {}), ("chat", CHAT_PREFS, {"format": "chat"})]
)
def test_fuzz_preferences(tok, name, rows, options) -> None:
    counts = fuzz_loader(
        lambda p: load_prefs(_cfg(eval_prefs=str(p), **options), tok),
        _jsonl(rows),
        kind="jsonl",
        name=f"irl_sft.prefs_{name}",
        suffix=".jsonl",
    )
    assert counts["parsed"] > 0 and counts["refused"] > 0


def test_a_message_that_is_not_role_and_content_is_named(tmp_path, tok) -> None:
    path = tmp_path / "chat.jsonl"
    row = {"messages": [{"role": "user", "content": 7}, {"role": "assistant", "content": "8"}]}
    path.write_text(json.dumps(CHAT[0]) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError, match=rf"{path}: line 2: messages\[0\]: field 'content' is int"):
        load_demos(_cfg(demos=str(path), format="chat"), tok)
    path.write_text(json.dumps({"messages": -1}) + "\n")  # found by the seeded 1000-example fuzz run
    with pytest.raises(DataError, match=rf"{path}: line 1: field 'messages' is int; expected a list"):
        load_demos(_cfg(demos=str(path), format="chat"), tok)


def test_run_key_follows_settings_and_input_files(tmp_path) -> None:
    demos = tmp_path / "demos.jsonl"
    demos.write_bytes(_jsonl(COLUMNS))
    cfg = _cfg(demos=str(demos))
    key = run_key(cfg)
    assert run_key(replace(cfg, name="other", train={"logging_steps": 3, "save_steps": 2})) == key
    assert run_key(replace(cfg, beta=0.3)) != key
    assert run_key(replace(cfg, train={"learning_rate": 1e-4})) != key
    with demos.open("a") as handle:
        handle.write(json.dumps(COLUMNS[0]) + "\n")
    assert run_key(cfg) != key  # the same path, another file


TINY = {"learning_rate": 1e-3, "num_train_epochs": 1, "per_device_train_batch_size": 8, "use_cpu": True}


def test_trainer_options_are_checked_before_anything_is_built(tmp_path, monkeypatch) -> None:
    import irl_sft.stages

    def nothing(*args, **kwargs):
        raise AssertionError("a model or tokenizer was built")

    monkeypatch.setattr(irl_sft.stages, "_start", nothing)
    cfg = _cfg()
    with pytest.raises(
        ConfigError, match=r"llm\.train\.per_device_train_batch_size='abc': expected an integer"
    ):
        run_llm(replace(cfg, train={"per_device_train_batch_size": "abc"}), tmp_path / "out")
    with pytest.raises(ConfigError, match=r"llm\.train: unknown field\(s\) \['no_such'\]"):
        run_llm(replace(cfg, train={"no_such": 1}), tmp_path / "out")


@pytest.mark.slow
def test_a_changed_input_file_is_not_served_the_stale_run(tmp_path) -> None:
    """Rerun on another demonstrations file at the same path: the stage is retrained on the new rows (it used to
    reuse stage-1's generations and done.json: the old prompts, 'already done'); the old run is kept aside."""
    demos = tmp_path / "demos.jsonl"
    rows = [{"prompt": f"count from {i} by 1:", "completion": f" {i + 1} {i + 2} {i + 3}"} for i in range(20)]
    demos.write_bytes(_jsonl(rows))
    cfg = LLMConfig(
        data=DataConfig(demos=str(demos), eval_demos=4),
        stages=1,
        prompts_per_stage=8,
        max_length=32,
        max_new_tokens=4,
        train=TINY,
    )
    out = tmp_path / "out"
    first = run_llm(cfg, out)
    pairs = [json.loads(line)["prompt"] for line in (out / "stage-1" / "generations.jsonl").open()]
    assert pairs[0] == "count from 0 by 1:"
    demos.write_bytes(_jsonl([{**r, "prompt": r["prompt"].replace("by 1", "by 2")} for r in rows]))
    again = run_llm(cfg, out)
    pairs = [json.loads(line)["prompt"] for line in (out / "stage-1" / "generations.jsonl").open()]
    assert pairs[0] == "count from 0 by 2:"
    assert again["history"][1]["pairs"] == 8 and again["history"] != first["history"]
    assert len(list(out.glob("previous-*/stage-1/done.json"))) == 1
