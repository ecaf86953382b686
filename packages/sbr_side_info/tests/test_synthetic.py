"""When side information helps: on sparse item IDs a side-info model beats its ID-only twin by a clear margin."""

from __future__ import annotations

import pytest

from paperlab.config import ConfigError
from sbr_side_info.synthetic import SyntheticConfig, generate, synthetic_prepared
from sbr_side_info.train import TrainConfig, train_model

SPARSE = SyntheticConfig(n_sessions=2000, items_per_cell=40, seed=0)
CFG = TrainConfig(
    dim=32,
    epochs=4,
    lr=0.005,
    lr_decay_every=2,
    lr_decay=0.5,
    progress=False,
    eval_test_every_epoch=False,
    patience=2,
)


def test_generator_follows_its_rules() -> None:
    cfg = SyntheticConfig(n_sessions=400, items_per_cell=5, p_cart=0.3)
    raw = generate(cfg)
    stay = move = stay_after_cart = carts = 0
    for s in raw.sessions:
        cats = [raw.item_side[i]["category"] for i in s.items]
        for k in range(len(cats) - 1):
            if s.behaviours[k] == "cart":
                carts += 1
                stay_after_cart += cats[k + 1] == cats[k]
            else:
                move += cats[k + 1] != cats[k]
                stay += cats[k + 1] == cats[k]
    assert stay_after_cart == carts > 0  # a cart keeps the category
    assert stay == 0 and move > 0  # a view always moves it
    assert len(raw.item_side) == cfg.n_items


def test_side_info_beats_its_id_only_twin_when_ids_are_sparse() -> None:
    data = synthetic_prepared(SPARSE)
    fusion = train_model("FusionGRU4Rec", data, CFG)["test"]["HR@20"]
    gru = train_model("GRU4Rec", data, CFG)["test"]["HR@20"]
    assert fusion > gru + 5.0, (fusion, gru)


def test_bad_synthetic_config() -> None:
    with pytest.raises(ConfigError, match="p_cart"):
        SyntheticConfig(p_cart=1.5)
    with pytest.raises(ConfigError, match="min_length"):
        SyntheticConfig(min_length=9, max_length=3)
