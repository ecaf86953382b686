"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from roleinteract.data import Item
from roleinteract.synthetic import synthetic_items


@pytest.fixture
def synthetic(tmp_path: Path) -> list[Item]:
    return synthetic_items(tmp_path)
