"""lm-eval on an in-memory model (paperlab.evaluation), offline: a local multiple-choice task built here."""

import json

import pytest

from paperlab.evaluation import run_lm_eval
from paperlab.models import tiny_model_and_tokenizer
from paperlab.testing import choice_accuracy

ROWS = [
    {"q": "The cat sat on the", "choices": ["mat", "moon"], "gold": 0},
    {"q": "A dog ran", "choices": ["away", "sun"], "gold": 0},
    {"q": "The sun", "choices": ["fish", "slept"], "gold": 1},
    {"q": "She reads the", "choices": ["paper", "bird", "far"], "gold": 0},
]


def write_task(folder):
    data = folder / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (folder / "tiny_mc.yaml").write_text(
        "task: tiny_mc\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\noutput_type: multiple_choice\n"
        'doc_to_text: "{{q}}"\ndoc_to_choice: "{{choices}}"\ndoc_to_target: gold\n'
        "metric_list:\n  - metric: acc\n"
    )


@pytest.mark.slow
def test_lm_eval_accuracy_equals_the_argmax_of_loglikelihoods(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    write_task(tmp_path)
    model, tok = tiny_model_and_tokenizer(seed=3)
    model.train()
    out = run_lm_eval(model, tok, ["tiny_mc"], include_path=tmp_path, batch_size=2)
    rows = [{"question": r["q"], "choices": r["choices"], "label": r["gold"]} for r in ROWS]
    expected = choice_accuracy(model, tok, rows)  # lm_eval joins question and choice with a space
    assert 0 < expected < 1  # the tiny model gets some items right and some wrong: the check can fail
    assert out["tiny_mc"]["acc"] == pytest.approx(expected)
    assert model.training  # mode restored


def test_unknown_task_is_named(tmp_path):
    model, tok = tiny_model_and_tokenizer()
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['no_such_task'\]"):
        run_lm_eval(model, tok, ["no_such_task"], include_path=tmp_path)
