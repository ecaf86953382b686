"""Shape-adaptive cropping (UReader, arXiv 2310.05126, Sec. 3.2; used by mPLUG-DocOwl/PaperOwl).

A tall table or a wide figure loses its text when squeezed into one low-resolution square. The image is shown as
a *global view* (resized to ``size x size``) plus ``rows x cols`` *crops* of the image resized to
``(rows*size, cols*size)``. The grid is the anchor maximising ``S_rr + S_ra``: ``S_rr``, the IoU between the
image and the anchor at pixel resolution (both boxes at the origin; prefers anchors close to the image's size),
and ``S_ra``, the IoU of their shapes after each is scaled to unit longer side (prefers the same aspect ratio).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

#: UReader's anchors: every grid with at most 20 cells of at most 20 rows/cols would be too many for a tiny model;
#: this default keeps grids of up to 4 cells.
DEFAULT_ANCHORS: tuple[tuple[int, int], ...] = (
    (1, 1),
    (1, 2),
    (2, 1),
    (1, 3),
    (3, 1),
    (2, 2),
    (1, 4),
    (4, 1),
)
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def _iou(w1: float, h1: float, w2: float, h2: float) -> float:
    inter = min(w1, w2) * min(h1, h2)
    return inter / (w1 * h1 + w2 * h2 - inter)


def select_anchor(width: int, height: int, anchors: Sequence[Sequence[int]], size: int) -> tuple[int, int]:
    """The ``(rows, cols)`` anchor maximising ``S_rr + S_ra`` (module docstring); ties go to the first."""
    best, best_score = tuple(anchors[0]), -1.0
    for rows, cols in anchors:
        s_rr = _iou(width, height, cols * size, rows * size)
        scale_i, scale_a = max(width, height), max(rows, cols)
        s_ra = _iou(width / scale_i, height / scale_i, cols / scale_a, rows / scale_a)
        if s_rr + s_ra > best_score + 1e-9:
            best, best_score = (rows, cols), s_rr + s_ra
    return best  # type: ignore[return-value]


def to_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """``(3, size, size)`` CLIP-normalised float tensor of an RGB image resized to a square."""
    array = np.asarray(image.convert("RGB").resize((size, size), Image.BICUBIC), dtype=np.float32) / 255.0
    tensor = torch.from_numpy(array).permute(2, 0, 1)
    return (tensor - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]


def crop_views(
    image: Image.Image, size: int, anchors: Sequence[Sequence[int]] | None = DEFAULT_ANCHORS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Global view + shape-adaptive crops of one image.

    Returns ``views`` ``(1 + rows*cols, 3, size, size)`` (global first, crops row-major) and ``positions``
    ``(1 + rows*cols,)`` long: 0 for the global view, ``1 + row*max_cols + col`` for crops (``max_cols`` = the
    largest column count among the anchors), used by the crop-position embedding. ``anchors=None`` or a single
    ``(1, 1)`` anchor gives the global view only.
    """
    views = [to_tensor(image, size)]
    positions = [0]
    if anchors and any(tuple(a) != (1, 1) for a in anchors):
        rows, cols = select_anchor(image.width, image.height, anchors, size)
        max_cols = max(a[1] for a in anchors)
        resized = image.convert("RGB").resize((cols * size, rows * size), Image.BICUBIC)
        for r in range(rows):
            for c in range(cols):
                tile = resized.crop((c * size, r * size, (c + 1) * size, (r + 1) * size))
                views.append(to_tensor(tile, size))
                positions.append(1 + r * max_cols + c)
    return torch.stack(views), torch.tensor(positions, dtype=torch.long)


def num_positions(anchors: Sequence[Sequence[int]] | None) -> int:
    """Size of the crop-position table for ``anchors`` (global view + every grid cell)."""
    if not anchors:
        return 1
    return 1 + max(a[0] for a in anchors) * max(a[1] for a in anchors)
