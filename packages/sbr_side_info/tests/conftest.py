"""Shared fixtures: the hand-written raw files and small prepared data sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sbr_side_info.evaluate import evaluate
from sbr_side_info.models import SessionModel
from sbr_side_info.synthetic import SyntheticConfig, synthetic_prepared

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def small_synthetic():
    return synthetic_prepared(
        SyntheticConfig(n_sessions=400, items_per_cell=6, n_categories=8, price_levels=2)
    )


class Popularity(SessionModel):
    """Scores every item by how often it is a training target, whatever the session."""

    def __init__(self, data) -> None:
        super().__init__(data.n_items, 1)
        counts = np.bincount(data.train.labels, minlength=data.n_items)[1:]
        self.counts = torch.tensor(counts, dtype=torch.float)

    def forward(self, batch):
        return self.counts.expand(len(batch.labels), -1)


@pytest.fixture
def diginetica_sample(real_data):
    """SR-GNN's real Diginetica sample through the protocol (1,085 training / 99 test cases, 309 items)."""
    from sbr_side_info.loaders import load_diginetica
    from sbr_side_info.preprocess import ProtocolConfig, prepare

    views = real_data("sbr", "diginetica-sample", "sample_train-item-views.csv")
    return prepare(load_diginetica(views), ProtocolConfig())


@pytest.fixture(scope="session")
def popularity_hr10(small_synthetic) -> float:
    """Test HR@10 of the popularity ranking on ``small_synthetic`` (23.66): what a model must beat."""
    return evaluate(Popularity(small_synthetic), small_synthetic, small_synthetic.test)["HR@10"]


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(1)
