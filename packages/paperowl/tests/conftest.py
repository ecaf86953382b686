"""Shared fixtures: hand-written LaTeX papers copied to a temporary folder with tiny generated images."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

FIXTURES = Path(__file__).parent / "fixtures"


def _image(color: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> Image.Image:
    return Image.new("RGB", size, color)


@pytest.fixture
def tiny_paper(tmp_path: Path) -> Path:
    """tests/fixtures/tiny_paper with figures written three ways: with extension (PNG), without (PDF) and a
    bare name found through \\graphicspath (JPG)."""
    root = tmp_path / "tiny_paper"
    shutil.copytree(FIXTURES / "tiny_paper", root)
    (root / "figures").mkdir()
    _image((200, 30, 30)).save(root / "figures" / "curve.png")
    _image((30, 200, 30)).save(root / "figures" / "left.pdf")
    _image((30, 30, 200)).save(root / "figures" / "right.jpg")
    return root


@pytest.fixture
def broken_paper(tmp_path: Path) -> Path:
    root = tmp_path / "broken_paper"
    shutil.copytree(FIXTURES / "broken_paper", root)
    _image((100, 100, 100)).save(root / "good.png")
    return root


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(1)
