"""Bad input (issue 28): the data loaders parse or refuse every mutated file with a DataError naming it (fuzzed),
the keys of derived files change with every setting and input file they depend on, and a changed input file is
not served the stale result; the ``train`` block is checked before anything is built."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aihf.align import AlignConfig, run_align, run_key
from aihf.llm_data import DataConfig, load_demos, load_prefs, load_prompts
from aihf.llm_eval import EvalConfig
from paperlab.config import ConfigError
from paperlab.fuzz import fuzz_loader
from paperlab.io import DataError

DATA = Path(__file__).parents[1] / "src" / "aihf" / "data"


def test_fuzz_demonstrations() -> None:
    valid = (DATA / "tiny_demos.jsonl").read_bytes()
    counts = fuzz_loader(
        lambda p: load_demos(DataConfig(demos=str(p))),
        valid,
        kind="jsonl",
        name="aihf.demos",
        suffix=".jsonl",
    )
    assert counts["parsed"] > 0 and counts["refused"] > 0


def test_fuzz_demonstrations_hh() -> None:
    rows = [{"chosen": f"\n\nHuman: hi {i}\n\nAssistant: hello {i}"} for i in range(3)]
    valid = "".join(json.dumps(r) + "\n" for r in rows).encode()
    counts = fuzz_loader(
        lambda p: load_demos(DataConfig(demos=str(p), demo_format="hh")),
        valid,
        kind="jsonl",
        name="aihf.demos_hh",
        suffix=".jsonl",
    )
    assert counts["parsed"] > 0 and counts["refused"] > 0


def test_fuzz_preferences() -> None:
    valid = (DATA / "tiny_prefs.jsonl").read_bytes()
    counts = fuzz_loader(
        lambda p: load_prefs(DataConfig(prefs=str(p))),
        valid,
        kind="jsonl",
        name="aihf.prefs",
        suffix=".jsonl",
    )
    assert counts["parsed"] > 0 and counts["refused"] > 0


def test_fuzz_preferences_hh() -> None:
    rows = [
        {"chosen": f"\n\nHuman: q{i}\n\nAssistant: good", "rejected": f"\n\nHuman: q{i}\n\nAssistant: bad"}
        for i in range(3)
    ]
    valid = "".join(json.dumps(r) + "\n" for r in rows).encode()
    counts = fuzz_loader(
        lambda p: load_prefs(DataConfig(prefs=str(p), format="hh")),
        valid,
        kind="jsonl",
        name="aihf.prefs_hh",
        suffix=".jsonl",
    )
    assert counts["parsed"] > 0 and counts["refused"] > 0


def test_fuzz_eval_prompts() -> None:
    valid = (DATA / "tiny_eval_prompts.jsonl").read_bytes()
    counts = fuzz_loader(
        lambda p: load_prompts(str(p)), valid, kind="jsonl", name="aihf.prompts", suffix=".jsonl"
    )
    assert counts["parsed"] > 0 and counts["refused"] > 0


def test_jsonl_errors_name_the_line_of_the_file(tmp_path) -> None:
    path = tmp_path / "prefs.jsonl"
    good = {"prompt": "a", "chosen": "b", "rejected": "c"}
    path.write_text(f"{json.dumps(good)}\n\n{json.dumps({'prompt': 'a', 'chosen': 'b'})}\n")  # line 2 blank
    with pytest.raises(DataError, match=rf"{path}: line 3: field 'rejected' is missing"):
        load_prefs(DataConfig(prefs=str(path)))


def _align(tmp_path: Path, **changes) -> AlignConfig:
    demos, prefs = tmp_path / "demos.jsonl", tmp_path / "prefs.jsonl"
    for path, src in ((demos, "tiny_demos.jsonl"), (prefs, "tiny_prefs.jsonl")):
        if not path.exists():
            path.write_bytes((DATA / src).read_bytes())
    return AlignConfig(data=DataConfig(demos=str(demos), prefs=str(prefs)), **changes)


def test_run_key_follows_settings_and_input_files(tmp_path) -> None:
    cfg = _align(tmp_path)
    key = run_key(cfg)
    assert run_key(_align(tmp_path, name="other", iterations=5)) == key  # labels / how many follow: same
    assert run_key(_align(tmp_path, train={"logging_steps": 3, "save_steps": 2})) == key
    assert run_key(_align(tmp_path, beta=0.2)) != key
    assert run_key(_align(tmp_path, train={"learning_rate": 1e-4})) != key
    with (tmp_path / "prefs.jsonl").open("a") as handle:
        handle.write(json.dumps({"prompt": "x", "chosen": " y", "rejected": " z"}) + "\n")
    assert run_key(cfg) != key  # the same path, another file


def test_trainer_options_are_checked_before_any_model_is_built(tmp_path, monkeypatch) -> None:
    import aihf.align

    def no_model(*args, **kwargs):
        raise AssertionError("a model was built")

    monkeypatch.setattr(aihf.align, "_policy_and_tokenizer", no_model)
    with pytest.raises(
        ConfigError, match=r"align\.train\.per_device_train_batch_size='abc': expected an integer"
    ):
        run_align(_align(tmp_path, train={"per_device_train_batch_size": "abc"}), tmp_path / "out")
    with pytest.raises(ConfigError, match=r"align\.train: unknown field\(s\) \['no_such'\]"):
        run_align(_align(tmp_path, train={"no_such": 1}), tmp_path / "out")


@pytest.mark.slow
def test_a_changed_input_file_is_not_served_the_stale_run(tmp_path) -> None:
    """A rerun with another evaluation prompts file (same iterations) recomputes the starting model's scores and
    retrains, instead of reusing eval-sft.json and iter-1 (it used to fail: 1 new score against 6 stale ones)."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_bytes((DATA / "tiny_eval_prompts.jsonl").read_bytes())
    train = {"num_train_epochs": 1, "per_device_train_batch_size": 8, "use_cpu": True}
    ev = EvalConfig(prompts=str(prompts), judge="tiny", judge_pair_encoding=False, max_new_tokens=4)
    out = tmp_path / "out"
    first = run_align(_align(tmp_path, iterations=1, max_new_tokens=4, eval=ev, train=train), out)
    assert first["history"][0]["eval"]["prompts"] == 6
    prompts.write_text(json.dumps({"prompt": "the owl"}) + "\n")
    again = run_align(_align(tmp_path, iterations=1, max_new_tokens=4, eval=ev, train=train), out)
    assert again["history"][0]["eval"]["prompts"] == 1
    assert len(json.loads((out / "eval-sft.json").read_text())["scores"]) == 1
    assert again["history"][0]["key"] != first["history"][0]["key"]


def test_oracle_and_mujoco_keys_follow_what_changes_the_results() -> None:
    from aihf.experiment import OracleExperimentConfig, _config_hash
    from aihf.mujoco import MujocoConfig, expert_key, runs_key
    from aihf.oracle import TaskConfig

    base = OracleExperimentConfig()
    assert _config_hash(
        OracleExperimentConfig(name="x", seeds=[7], n_prefs=[3], progress=False)
    ) == _config_hash(base)  # each run is recorded under its method, n_pref and seed
    assert _config_hash(OracleExperimentConfig(task=TaskConfig(n_demo=21))) != _config_hash(base)
    m = MujocoConfig()
    assert runs_key(MujocoConfig(n_prefs=[20, 100, 500], methods=["BC"], name="y")) == runs_key(m)
    # the segment pairs are drawn for max(n_prefs): the first 20 differ when it changes (the old key dropped it)
    assert runs_key(MujocoConfig(n_prefs=[20, 100])) != runs_key(m)
    assert expert_key(MujocoConfig(rl_steps=5)) == expert_key(m)
    assert expert_key(MujocoConfig(env="HalfCheetah-v5")) != expert_key(m)
