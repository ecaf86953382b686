"""AIHFTrainer on TRL: with w_demo = 0 its loss is TRL's DPO loss on the preference rows (to 1e-6); the two terms
add with their weights; bad weights are refused."""

from __future__ import annotations

import copy

import pytest
import torch
from datasets import Dataset
from trl import DPOConfig, DPOTrainer

from aihf.trainer import AIHFConfig, AIHFTrainer
from paperlab.models import tiny_model_and_tokenizer

ROWS = [
    {"prompt": "the cat", "chosen": " sat on the mat", "rejected": " ran away", "is_demo": False},
    {"prompt": "a dog", "chosen": " barked loudly", "rejected": " slept", "is_demo": False},
    {"prompt": "the sun", "chosen": " rose early", "rejected": " set", "is_demo": True},
    {"prompt": "a bird", "chosen": " sang a song", "rejected": " flew", "is_demo": True},
]
COMMON = {"bf16": False, "use_cpu": True, "gradient_checkpointing": False, "report_to": [], "beta": 0.3}


@pytest.fixture(scope="module")
def model_and_tok():
    return tiny_model_and_tokenizer(seed=0)


def _trainer(cls, cfg_cls, model, tok, rows, tmp_path, **kw):
    args = cfg_cls(output_dir=str(tmp_path / cls.__name__), per_device_train_batch_size=4, **COMMON, **kw)
    return cls(
        model=model,
        ref_model=copy.deepcopy(model),
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
    )


def _batch(trainer, rows):
    dataset = trainer.train_dataset
    return trainer.data_collator([dataset[i] for i in range(len(rows))])


def _perturbed(model):
    """A policy different from the reference, so that the DPO loss is not log 2."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def test_w_demo_zero_is_trl_dpo_on_the_preference_rows(model_and_tok, tmp_path) -> None:
    model, tok = model_and_tok
    policy = _perturbed(copy.deepcopy(model))
    pref = [{k: v for k, v in r.items() if k != "is_demo"} for r in ROWS if not r["is_demo"]]
    dpo = _trainer(DPOTrainer, DPOConfig, policy, tok, pref, tmp_path)
    dpo.ref_model.load_state_dict(model.state_dict())
    aihf = _trainer(AIHFTrainer, AIHFConfig, policy, tok, ROWS, tmp_path, w_demo=0.0, w_pref=1.0)
    aihf.ref_model.load_state_dict(model.state_dict())
    with torch.no_grad():
        ref_loss = float(dpo.compute_loss(policy, _batch(dpo, pref)))
        loss = float(aihf.compute_loss(policy, _batch(aihf, ROWS)))
    assert abs(ref_loss - torch.log(torch.tensor(2.0)).item()) > 1e-4  # not the trivial value
    assert loss == pytest.approx(ref_loss, abs=1e-6)


def test_the_two_terms_add_with_their_weights(model_and_tok, tmp_path) -> None:
    model, tok = model_and_tok
    policy = _perturbed(copy.deepcopy(model))
    losses = {}
    for w_demo, w_pref in ((1.0, 0.0), (0.0, 1.0), (2.0, 0.5)):
        t = _trainer(AIHFTrainer, AIHFConfig, policy, tok, ROWS, tmp_path, w_demo=w_demo, w_pref=w_pref)
        t.ref_model.load_state_dict(model.state_dict())
        with torch.no_grad():
            losses[(w_demo, w_pref)] = float(t.compute_loss(policy, _batch(t, ROWS)))
    assert _batch(t, ROWS)["is_demo"].tolist() == [
        False,
        False,
        True,
        True,
    ]  # the flag survives TRL's preparation
    assert losses[(1.0, 0.0)] > 0.1 and losses[(0.0, 1.0)] > 0.1
    assert losses[(1.0, 0.0)] != pytest.approx(losses[(0.0, 1.0)])
    assert losses[(2.0, 0.5)] == pytest.approx(2.0 * losses[(1.0, 0.0)] + 0.5 * losses[(0.0, 1.0)], abs=1e-6)


def test_bad_weights_are_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="both 0"):
        AIHFConfig(output_dir=str(tmp_path), w_demo=0.0, w_pref=0.0, **COMMON)
    with pytest.raises(ValueError, match="sigmoid"):
        AIHFConfig(output_dir=str(tmp_path), loss_type="ipo", **COMMON)
