"""AIHF on an LLM (aihf.align): data validation names file/row/field; the paper config validates offline; a tiny
Llama runs two AIHF iterations end to end, raises the demonstrations' likelihood and resumes after an interruption."""

from __future__ import annotations

import json

import pytest
import torch

from aihf.align import AlignConfig, DataConfig, DataError, load_demos, load_prefs, run_align, split_hh
from paperlab.config import ConfigError, compose, from_config

PROMPTS = ["the cat", "a dog", "the sun", "a bird", "the moon", "a fish", "the tree", "a frog"]


def _write(path, rows) -> str:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(path)


@pytest.fixture()
def files(tmp_path):
    demos = _write(
        tmp_path / "demos.jsonl", [{"prompt": p, "completion": " sat on the mat ."} for p in PROMPTS]
    )
    prefs = _write(
        tmp_path / "prefs.jsonl",
        [{"prompt": p, "chosen": " sat on the mat .", "rejected": " ran far away"} for p in PROMPTS],
    )
    return demos, prefs


def test_bad_rows_are_named(tmp_path, files) -> None:
    demos, _ = files
    bad = _write(
        tmp_path / "bad.jsonl",
        [{"prompt": "x", "chosen": "a", "rejected": "b"}, {"prompt": "y", "chosen": "a"}],
    )
    with pytest.raises(DataError, match=r"bad.jsonl: line 2: field 'rejected' is missing"):
        load_prefs(DataConfig(prefs=bad))
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match=r"empty\.jsonl: no demonstrations"):
        load_demos(DataConfig(demos=str(tmp_path / "empty.jsonl")))
    (tmp_path / "broken.jsonl").write_text('{"prompt": "a", "completion": "b"}\n{"prompt": \n')
    with pytest.raises(DataError, match=r"broken.jsonl:2: not valid JSON"):
        load_demos(DataConfig(demos=str(tmp_path / "broken.jsonl")))
    with pytest.raises(ConfigError, match="both 0"):
        AlignConfig(data=DataConfig(demos=demos), w_demo=0.0, w_pref=0.0)
    with pytest.raises(DataError, match="no 'Assistant:' turn"):
        split_hh("Human: hi", "row 1")


def test_hh_transcripts_split_at_the_last_assistant_turn() -> None:
    text = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how?\n\nAssistant: like this"
    prompt, reply = split_hh(text, "row 1")
    assert prompt.endswith("how?\n\nAssistant:") and reply == " like this"


def test_paper_config_validates_offline() -> None:
    cfg = compose("aihf", ["experiment=paper"])
    align = from_config(AlignConfig, cfg.align, where="align")
    assert align.model == "EleutherAI/pythia-1.4b" and align.data.format == "hh" and align.beta == 0.1
    assert (align.scale.launch, align.scale.num_gpus, align.scale.precision) == ("ddp", 8, "bf16-mixed")
    assert align.scale.gradient_checkpointing and align.train["optim"] == "rmsprop"
    assert align.eval.judge and align.eval.prompts.startswith("hub:Anthropic/hh-rlhf:test")
    with pytest.raises(ConfigError, match=r"scale\.precision"):  # the scale block owns bf16
        AlignConfig(data=DataConfig(demos="d.jsonl", prefs="p.jsonl"), train={"bf16": True})
    with pytest.raises(ConfigError, match="FSDP/ZeRO-3"):
        from paperlab.scale import ScaleConfig

        AlignConfig(data=DataConfig(demos="d", prefs="p"), scale=ScaleConfig(launch="zero3", num_gpus=8))


def test_hh_rlhf_is_read_from_the_helpful_base_subset(monkeypatch) -> None:
    """The paper config's hub data go to datasets.load_dataset with data_dir="helpful-base" (demonstrations,
    preferences and the held-out evaluation prompts)."""
    import datasets

    calls = []
    row = {"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant: go away"}

    def fake_load_dataset(name, *args, **kwargs):
        calls.append((name, kwargs))
        return [row]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    align = from_config(AlignConfig, compose("aihf", ["experiment=paper"]).align, where="align")
    assert load_demos(align.data)[0]["completion"] == " hello"
    assert load_prefs(align.data)[0]["rejected"] == " go away"
    from aihf.llm_data import load_prompts

    ev = align.eval
    assert load_prompts(ev.prompts, ev.format, ev.prompt_field, ev.max_prompts, ev.data_dir) == [
        "\n\nHuman: hi\n\nAssistant:"
    ]
    assert [c[0] for c in calls] == ["Anthropic/hh-rlhf"] * 3
    assert [c[1].get("data_dir") for c in calls] == ["helpful-base"] * 3
    assert [c[1]["split"] for c in calls] == ["train[:10000]", "train[10000:12000]", "test[:500]"]


def test_two_iterations_learn_the_demonstrations_and_resume(tmp_path, files, monkeypatch) -> None:
    demos, prefs = files
    cfg = AlignConfig(
        data=DataConfig(demos=demos, prefs=prefs),
        iterations=2,
        max_new_tokens=6,
        beta=0.5,
        train={
            "learning_rate": 3e-3,
            "num_train_epochs": 3,
            "per_device_train_batch_size": 8,
            "use_cpu": True,
            "logging_steps": 1,
        },
    )
    out = tmp_path / "run"
    metrics = run_align(cfg, out)
    assert [h["iteration"] for h in metrics["history"]] == [1, 2]
    assert metrics["history"][0]["rows"] == 16  # 8 preference rows + 8 demonstration rows

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out / "iter-2")

    def demo_nll(model) -> float:
        ids = tok([p + " sat on the mat ." for p in PROMPTS], return_tensors="pt", padding=True)
        with torch.no_grad():
            return float(
                model(**ids, labels=ids["input_ids"].masked_fill(ids["attention_mask"] == 0, -100)).loss
            )

    from paperlab.models import tiny_model_and_tokenizer

    texts = [p + " sat on the mat ." for p in PROMPTS] * 2
    initial, _ = tiny_model_and_tokenizer(texts, vocab_size=512, seed=0)
    trained = AutoModelForCausalLM.from_pretrained(out / "iter-2")
    assert demo_nll(trained) < demo_nll(initial) - 0.5

    import aihf.trainer

    def boom(*args, **kwargs):
        raise AssertionError("a finished iteration was trained again")

    monkeypatch.setattr(aihf.trainer.AIHFTrainer, "train", boom)
    again = run_align(cfg, out)
    assert again["history"] == metrics["history"]  # both iterations were done: read back, nothing retrained


def test_a_non_main_rank_writes_nothing(tmp_path, files, monkeypatch) -> None:
    """On a rank other than 0 (faked: RANK=1 and the Trainer's process index 1), the pipeline trains but writes
    no model, tokenizer, done.json or metrics: checkpoints go through trainer.save_model, files through the main
    process only."""
    import transformers

    demos, prefs = files
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(transformers.TrainingArguments, "process_index", property(lambda self: 1))
    cfg = AlignConfig(
        data=DataConfig(demos=demos, prefs=prefs),
        iterations=1,
        max_new_tokens=4,
        train={"num_train_epochs": 1, "per_device_train_batch_size": 8, "use_cpu": True},
    )
    out = tmp_path / "run"
    metrics = run_align(cfg, out)
    assert [h["iteration"] for h in metrics["history"]] == [1]
    written = (
        sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) if out.exists() else []
    )
    assert written == [], written
