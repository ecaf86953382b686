"""AIHFTrainer on TRL: with w_demo = 0 its loss is TRL's DPO loss on the preference rows (to 1e-6); pairs are
weighted one by one (hand-computed from TRL's per-row DPO losses); the loss goes through the public compute_loss;
the linear demonstration term is the default; bad weights are refused."""

from __future__ import annotations

import copy
import math

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


def _row_dpo_losses(policy, model, tok, rows, tmp_path) -> list[float]:
    """TRL's DPO loss of each row alone: -log sigma(beta * margin_i)."""
    out = []
    for row in rows:
        one = [{k: v for k, v in row.items() if k != "is_demo"}]
        dpo = _trainer(DPOTrainer, DPOConfig, policy, tok, one, tmp_path)
        dpo.ref_model.load_state_dict(model.state_dict())
        with torch.no_grad():
            out.append(float(dpo.compute_loss(policy, _batch(dpo, one))))
    return out


@pytest.mark.parametrize("demo_form", ["logistic", "linear"])
def test_pairs_are_weighted_one_by_one_as_in_explicit_reward_loss(model_and_tok, tmp_path, demo_form) -> None:
    """Three rows (1 preference, 2 demonstration), w_demo 2, w_pref 0.5: the loss is the mean over the 3 pairs of
    w_i * l_i (per pair, as explicit_reward_loss and the official batches weigh), not w_demo * mean_demo +
    w_pref * mean_pref (per kind): the two differ by far more than the tolerance here."""
    model, tok = model_and_tok
    policy = _perturbed(copy.deepcopy(model))
    rows = [ROWS[0], ROWS[2], ROWS[3]]
    l_pref, l_d1, l_d2 = _row_dpo_losses(policy, model, tok, rows, tmp_path)
    z = [-math.log(math.expm1(v)) for v in (l_d1, l_d2)]  # beta * margin, from -log sigma(z) = l
    demo_terms = [l_d1, l_d2] if demo_form == "logistic" else [-z[0], -z[1]]
    per_pair = (2.0 * sum(demo_terms) + 0.5 * l_pref) / 3
    per_kind = 2.0 * sum(demo_terms) / 2 + 0.5 * l_pref
    t = _trainer(
        AIHFTrainer, AIHFConfig, policy, tok, rows, tmp_path, w_demo=2.0, w_pref=0.5, demo_form=demo_form
    )
    t.ref_model.load_state_dict(model.state_dict())
    assert _batch(t, rows)["is_demo"].tolist() == [False, True, True]  # the flag survives TRL's preparation
    with torch.no_grad():
        loss = float(t.compute_loss(policy, _batch(t, rows)))
    assert abs(per_pair - per_kind) > 0.1
    assert loss == pytest.approx(per_pair, abs=1e-5)


def test_the_loss_reaches_the_trainer_through_the_public_api(model_and_tok, tmp_path, monkeypatch) -> None:
    """AIHFTrainer overrides TRL's public ``compute_loss``, never the private ``_compute_loss``: with the private
    method broken, training still runs and the AIHF loss (both kinds) is what the Trainer steps on."""
    assert "_compute_loss" not in AIHFTrainer.__dict__ and "compute_loss" in AIHFTrainer.__dict__

    def private(*args, **kwargs):
        raise AssertionError("TRL's private _compute_loss was called")

    monkeypatch.setattr(DPOTrainer, "_compute_loss", private)
    model, tok = model_and_tok
    policy = copy.deepcopy(model)
    t = _trainer(AIHFTrainer, AIHFConfig, policy, tok, ROWS, tmp_path, max_steps=2, learning_rate=1e-3)
    result = t.train()
    assert math.isfinite(result.training_loss) and set(t.last_parts) == {"demo", "pref"}


def test_linear_demonstration_term_is_the_default() -> None:
    """The LLM path uses the linear (ML-IRL) demonstration term by default, the form of the README's tables."""
    from aihf.align import AlignConfig
    from paperlab.config import compose, from_config

    assert AIHFConfig.__dataclass_fields__["demo_form"].default == "linear"
    assert AlignConfig.__dataclass_fields__["demo_form"].default == "linear"
    paper = from_config(AlignConfig, compose("aihf", ["experiment=paper"]).align, where="align")
    assert paper.demo_form == "linear"


def test_bad_weights_are_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="both 0"):
        AIHFConfig(output_dir=str(tmp_path), w_demo=0.0, w_pref=0.0, **COMMON)
    with pytest.raises(ValueError, match="sigmoid"):
        AIHFConfig(output_dir=str(tmp_path), loss_type="ipo", **COMMON)
    with pytest.raises(ValueError, match="demo_form"):
        AIHFConfig(output_dir=str(tmp_path), demo_form="cubic", **COMMON)
