"""Shape-adaptive cropping (UReader, arXiv 2310.05126, Sec. 3.2; used by mPLUG-DocOwl/PaperOwl).

A tall table or a wide figure loses its text when squeezed into one low-resolution square. The image is shown as
a *global view* (resized to ``size x size``) plus ``rows x cols`` *crops* of the image resized to
``(rows*size, cols*size)``. The grid is chosen as the official code does (X-PLUG/mPLUG-DocOwl
``PaperOwl/pipeline/data_utils/processors/doc_processor.py``, ``anchor_rank``): the anchor maximising
``100 * shape_iou + iou``, i.e. the shape IoU first and the resolution IoU only to break near-ties. ``shape_iou`` is
the IoU of the anchor box ``(cols*size, rows*size)`` with the image's shape at the anchor's width
``(cols*size, floor(cols*size*h/w))``; ``iou`` the IoU of the anchor box with the image box ``(w, h)``, all
boxes at the origin, ``inter / (union + 1e-5)``. The paper's anchors are ``configs/sft/release.yaml``'s: ``[[2, 2]]``
(every image: the global view and 2x2 crops, 5 views).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

#: The official ``DocPretrainProcessor`` default's first 8 anchors (grids of up to 4 cells; the official list goes on
#: to 9 cells); the paper's instruction tuning uses ``PAPER_ANCHORS``.
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
#: ``configs/sft/release.yaml`` (mPLUG-DocOwl/PaperOwl): ``anchors: [[2, 2]]`` for training and validation
PAPER_ANCHORS: tuple[tuple[int, int], ...] = ((2, 2),)
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def anchor_scores(width: int, height: int, anchors: Sequence[Sequence[int]], size: int) -> torch.Tensor:
    """``100 * shape_iou + iou`` of each ``(rows, cols)`` anchor for a ``width x height`` image (module docstring),
    in the official code's arithmetic: integer boxes, the shape box's height truncated, float32 IoUs."""
    boxes = torch.tensor(
        [[c * size, r * size] for r, c in anchors], dtype=torch.int64
    )  # (w, h) at the origin
    areas = boxes[:, 0] * boxes[:, 1]
    shape = boxes.clone()
    shape[:, 1] = height / width * boxes[:, 0]  # float32 product, truncated into the int64 box

    def iou(other: torch.Tensor) -> torch.Tensor:
        inter = torch.minimum(boxes[:, 0], other[:, 0]) * torch.minimum(boxes[:, 1], other[:, 1])
        return inter / (areas + other[:, 0] * other[:, 1] - inter + 1e-5)

    image = torch.tensor([[width, height]], dtype=torch.int64).expand_as(boxes)
    return iou(shape) * 100 + iou(image)


def select_anchor(width: int, height: int, anchors: Sequence[Sequence[int]], size: int) -> tuple[int, int]:
    """The ``(rows, cols)`` anchor of highest :func:`anchor_scores` (the first on ties, as ``torch.argmax``)."""
    best = int(torch.argmax(anchor_scores(width, height, anchors, size)))
    return tuple(anchors[best])  # type: ignore[return-value]


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
