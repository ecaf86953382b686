"""lm-eval on an in-memory model (paperlab.evaluation), offline: a local multiple-choice task built here."""

import pytest

from paperlab.evaluation import run_lm_eval
from paperlab.models import tiny_model_and_tokenizer
from paperlab.testing import choice_accuracy, write_choice_task

ROWS = [
    {"question": "The cat sat on the", "choices": ["mat", "moon"], "label": 0},
    {"question": "A dog ran", "choices": ["away", "sun"], "label": 0},
    {"question": "The sun", "choices": ["fish", "slept"], "label": 1},
    {"question": "She reads the", "choices": ["paper", "bird", "far"], "label": 0},
]


@pytest.mark.slow
def test_lm_eval_accuracy_equals_the_argmax_of_loglikelihoods(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    write_choice_task(tmp_path, "tiny_mc", ROWS)
    model, tok = tiny_model_and_tokenizer(seed=3)
    model.train()
    out = run_lm_eval(model, tok, ["tiny_mc"], include_path=tmp_path, batch_size=2)
    expected = choice_accuracy(model, tok, ROWS)  # lm_eval joins question and choice with a space
    assert 0 < expected < 1  # the tiny model gets some items right and some wrong: the check can fail
    assert out["tiny_mc"]["acc"] == pytest.approx(expected)
    assert model.training  # mode restored


def test_unknown_task_is_named(tmp_path):
    model, tok = tiny_model_and_tokenizer()
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['no_such_task'\]"):
        run_lm_eval(model, tok, ["no_such_task"], include_path=tmp_path)


def test_config_fields_reach_lm_eval_and_only_the_main_process_runs(monkeypatch):
    from types import SimpleNamespace

    import paperlab.evaluation as ev

    calls = []
    monkeypatch.setattr(ev, "run_lm_eval", lambda m, t, tasks, **kw: calls.append((tasks, kw)) or {"x": {}})
    cfg = SimpleNamespace(
        lm_eval_tasks=["a"], lm_eval_limit=5.0, lm_eval_num_fewshot=-1, lm_eval_include_path=""
    )
    assert ev.lm_eval_from_config(None, None, cfg) == {"x": {}}
    assert calls[-1] == (["a"], {"include_path": None, "limit": 5, "batch_size": 8, "num_fewshot": None})
    cfg = SimpleNamespace(
        lm_eval_tasks=["a"], lm_eval_limit=0.25, lm_eval_num_fewshot=3, lm_eval_batch_size=2
    )
    ev.lm_eval_from_config(None, None, cfg)
    assert calls[-1][1] == {"include_path": None, "limit": 0.25, "batch_size": 2, "num_fewshot": 3}
    assert ev.lm_eval_from_config(None, None, SimpleNamespace(lm_eval_tasks=[])) == {}
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert ev.lm_eval_from_config(None, None, cfg) == {} and len(calls) == 2
