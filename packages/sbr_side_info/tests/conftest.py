"""Shared fixtures: the hand-written raw files and small prepared data sets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

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


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(1)
