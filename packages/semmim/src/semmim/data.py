"""Image-caption data: a synthetic scene corpus made by code (the tiny default) and a word-level caption tokenizer.

Synthetic scenes (:func:`make_split`): ``objects`` coloured shapes of two sizes on a dark background, each in its
own cell of a ``grid x grid`` layout (one cell = one ViT patch by default). The caption names every object's size,
colour, shape and quadrant, e.g. ``"a small red circle top left and a large blue square bottom right"``. A fixed
share of the (colour, shape) pairs is held out: no training image contains one and every test image contains at
least one, so test retrieval measures generalisation to unseen combinations of known words.

Real data (paper scale) is a JSON list of ``{"image": path, "caption": str}``, read lazily (:func:`read_caption_file`:
images decoded on demand, in a ``DataLoader``'s workers during pretraining, :func:`caption_loader`).
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import torch

from paperlab.config import require
from paperlab.io import DataError, read_json

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 80, 240),
    "yellow": (235, 225, 40),
    "magenta": (220, 50, 220),
    "cyan": (40, 220, 230),
}
SHAPES = ("circle", "square", "triangle", "cross")
SIZES = ("small", "large")
QUADRANTS = ("top left", "top right", "bottom left", "bottom right")
SPECIALS = ("[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]")


@dataclasses.dataclass
class SceneConfig:
    """The synthetic world; ``heldout_pairs`` (colour, shape) pairs never appear in training images."""

    image_size: int = 32
    grid: int = 4  # cells per side; image_size / grid = the cell width in pixels
    objects: int = 2
    heldout_pairs: int = 6
    train_images: int = 3000
    test_images: int = 300
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.grid >= 2 and self.grid % 2 == 0, "data.grid", self.grid, "an even int >= 2")
        require(
            self.image_size % self.grid == 0 and self.image_size // self.grid >= 6,
            "data.image_size",
            self.image_size,
            f"a multiple of data.grid={self.grid} with cells of at least 6 px",
        )
        require(1 <= self.objects <= 4, "data.objects", self.objects, "1 to 4 (one per quadrant)")
        n_pairs = len(COLOURS) * len(SHAPES)
        require(
            0 < self.heldout_pairs < n_pairs // 2,
            "data.heldout_pairs",
            self.heldout_pairs,
            f"in [1, {n_pairs // 2 - 1}]",
        )
        require(self.train_images > 0 and self.test_images > 0, "data.train_images", self.train_images, "> 0")


@dataclasses.dataclass
class SceneObject:
    size: str
    colour: str
    shape: str
    quadrant: int

    def phrase(self, colour: str | None = None) -> str:
        return f"a {self.size} {colour or self.colour} {self.shape} {QUADRANTS[self.quadrant]}"


@dataclasses.dataclass
class CaptionSet:
    """``images``: uint8 ``(N, 3, H, W)``; ``captions[i]`` describes image i; ``scenes[i]`` its objects."""

    images: torch.Tensor
    captions: list[str]
    scenes: list[list[SceneObject]]

    def __len__(self) -> int:
        return len(self.captions)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
        """``(images float in [0, 1] (B, 3, H, W), captions)`` of the given items."""
        return self.images[index].float() / 255.0, [self.captions[i] for i in index.tolist()]


def heldout_pairs(cfg: SceneConfig) -> list[tuple[str, str]]:
    """The held-out (colour, shape) pairs: a seeded choice in which every colour and shape keeps a training pair."""
    rng = np.random.default_rng(10_000 + cfg.seed)
    pairs = list(itertools.product(COLOURS, SHAPES))
    while True:
        chosen = [pairs[i] for i in rng.choice(len(pairs), cfg.heldout_pairs, replace=False)]
        kept = set(pairs) - set(chosen)
        if {c for c, _ in kept} == set(COLOURS) and {s for _, s in kept} == set(SHAPES):
            return sorted(chosen)


def caption_of(scene: list[SceneObject]) -> str:
    return " and ".join(o.phrase() for o in scene)


def _draw(canvas: np.ndarray, obj: SceneObject, top: int, left: int, cell: int) -> None:
    radius = (cell - 1) / 2 if obj.size == "large" else cell / 4
    yy, xx = np.mgrid[0:cell, 0:cell].astype(np.float32)
    cy = cx = (cell - 1) / 2
    dy, dx = yy - cy, xx - cx
    if obj.shape == "circle":
        inside = dy**2 + dx**2 <= radius**2 + 0.25
    elif obj.shape == "square":
        inside = (np.abs(dy) <= radius * 0.8) & (np.abs(dx) <= radius * 0.8)
    elif obj.shape == "triangle":
        inside = (dy >= -radius) & (dy <= radius) & (np.abs(dx) <= (dy + radius) / 2 + 0.3)
    else:  # cross
        bar = max(radius / 3, 0.6)
        inside = ((np.abs(dy) <= bar) | (np.abs(dx) <= bar)) & (np.abs(dy) <= radius) & (np.abs(dx) <= radius)
    patch = canvas[:, top : top + cell, left : left + cell]
    patch[:, inside] = np.array(COLOURS[obj.colour], dtype=np.uint8)[:, None]


def make_split(cfg: SceneConfig, split: str) -> CaptionSet:
    """Draw the train or test split of the synthetic corpus (deterministic in ``cfg.seed`` and ``split``)."""
    require(split in ("train", "test"), "split", split, "train or test")
    held = set(heldout_pairs(cfg))
    pairs = list(itertools.product(COLOURS, SHAPES))
    seen = [p for p in pairs if p not in held]
    rng = np.random.default_rng(cfg.seed * 2 + (split == "test"))
    n = cfg.train_images if split == "train" else cfg.test_images
    cell = cfg.image_size // cfg.grid
    half = cfg.grid // 2
    images = np.full((n, 3, cfg.image_size, cfg.image_size), 16, dtype=np.uint8)
    scenes: list[list[SceneObject]] = []
    for i in range(n):
        quadrants = sorted(rng.choice(4, cfg.objects, replace=False).tolist())
        scene = []
        for j, q in enumerate(quadrants):
            # sorted: a set's order varies from process to process (string hashing)
            pool = sorted(held) if (split == "test" and j == 0) else seen
            if split == "test" and j > 0:
                pool = pairs
            colour, shape = pool[rng.integers(len(pool))]
            scene.append(SceneObject(SIZES[rng.integers(2)], colour, shape, q))
        if split == "test":  # the held-out pair sits at a random object, not always the first
            order = rng.permutation(len(scene))
            pairs_in = [(scene[k].colour, scene[k].shape) for k in order]
            for k, (c, s) in zip(range(len(scene)), pairs_in, strict=True):
                scene[k] = dataclasses.replace(scene[k], colour=c, shape=s)
        for obj in scene:
            row = (obj.quadrant // 2) * half + rng.integers(half)
            col = (obj.quadrant % 2) * half + rng.integers(half)
            _draw(images[i], obj, row * cell, col * cell, cell)
        scenes.append(scene)
    captions = [caption_of(s) for s in scenes]
    return CaptionSet(torch.from_numpy(images), captions, scenes)


def vocabulary() -> list[str]:
    """Every word of the synthetic captions after the special tokens (fixed order, so ids are stable)."""
    words = ["a", "and", *SIZES, *COLOURS, *SHAPES, "top", "bottom", "left", "right"]
    return [*SPECIALS, *words]


class WordTokenizer:
    """Whitespace word-level tokenizer: ``[CLS] w1 .. wn [SEP] [PAD]..`` of fixed length ``max_len``.

    A caption longer than ``max_len - 2`` words raises ValueError naming the caption and ``model.max_text_len``.
    """

    def __init__(self, words: list[str], max_len: int) -> None:
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.max_len = max_len
        self.pad_id, self.cls_id, self.sep_id, self.mask_id, self.unk_id = (self.index[s] for s in SPECIALS)

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def __call__(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ids (B, max_len) long, attention mask (B, max_len) bool)``."""
        ids = torch.full((len(captions), self.max_len), self.pad_id, dtype=torch.long)
        for row, caption in enumerate(captions):
            tokens = caption.split()
            if len(tokens) + 2 > self.max_len:
                raise ValueError(
                    f"caption {caption!r} has {len(tokens)} words but model.max_text_len={self.max_len} "
                    f"allows {self.max_len - 2} (2 places go to [CLS] and [SEP])"
                )
            seq = [self.cls_id, *(self.index.get(t, self.unk_id) for t in tokens), self.sep_id]
            ids[row, : len(seq)] = torch.tensor(seq)
        return ids, ids != self.pad_id

    @property
    def special_ids(self) -> tuple[int, ...]:
        return (self.pad_id, self.cls_id, self.sep_id, self.mask_id, self.unk_id)


class HubTokenizer:
    """A hub tokenizer (``bert-base-uncased``) with the :class:`WordTokenizer` interface (paper scale)."""

    def __init__(self, name: str, max_len: int) -> None:
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(name)
        self.max_len = max_len
        self.pad_id, self.cls_id = self.tok.pad_token_id, self.tok.cls_token_id
        self.sep_id, self.mask_id = self.tok.sep_token_id, self.tok.mask_token_id
        self.special_ids = tuple(self.tok.all_special_ids)
        self.vocab_size = len(self.tok)

    def __call__(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.tok(
            captions, padding="max_length", truncation=True, max_length=self.max_len, return_tensors="pt"
        )
        return enc["input_ids"], enc["attention_mask"].bool()


def load_image(path: Path, image_size: int, where: str) -> torch.Tensor:
    """An RGB image file as uint8 ``(3, image_size, image_size)``; a missing or unreadable one is a
    :class:`paperlab.io.DataError` naming ``where`` (the list file and item) and the image file."""
    from PIL import Image

    try:
        if not path.is_file():
            raise DataError(f"{where}: image {path} not found")
        with Image.open(path) as img:
            rgb = img.convert("RGB").resize((image_size, image_size))
    except DataError:
        raise
    except (
        Exception
    ) as err:  # PIL reports a broken file as OSError, SyntaxError, ValueError, struct.error, ...
        raise DataError(f"{where}: image {path} cannot be read ({type(err).__name__}: {err})") from None
    return torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1)


def read_rows(path: str | Path, what: str, fields: tuple[tuple[str, type], ...]) -> list[dict]:
    """The rows of a JSON list file, each checked for ``fields`` (name, type) before anything else is read; a
    missing, malformed or empty file or a row without a field is a :class:`paperlab.io.DataError` naming the file,
    the item (from 1) and the field."""
    rows = read_json(path)
    if not isinstance(rows, list) or not rows:
        found = "an empty list" if isinstance(rows, list) else type(rows).__name__
        raise DataError(f"{path}: expected a JSON list of {what} rows, got {found}")
    for i, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise DataError(f"{path}: item {i} is {type(row).__name__}; expected an object")
        for name, kind in fields:
            value = row.get(name)
            if not isinstance(value, kind) or isinstance(value, bool) or (kind is str and not value.strip()):
                found = "missing" if name not in row else f"{type(value).__name__} {value!r}"[:60]
                raise DataError(
                    f"{path}: item {i}: field {name!r} is {found}; expected a non-empty {kind.__name__}"
                )
    return rows


class CaptionFile(torch.utils.data.Dataset):
    """A JSON caption file read lazily: only the image paths and captions are held; an image is decoded (and
    resized to ``image_size``) when an item is asked for, by :meth:`__getitem__` (in a ``DataLoader``'s workers:
    :func:`caption_loader`) or :meth:`batch` (the :class:`CaptionSet` interface, for evaluation). A missing or
    unreadable image is a :class:`paperlab.io.DataError` naming the file, the item and the image when it is
    decoded. ``scenes`` is empty (real captions have no scene annotations)."""

    def __init__(self, path: Path, image_size: int, images: list[str], captions: list[str]) -> None:
        self.path, self.image_size = path, image_size
        self.images, self.captions = images, captions
        self.scenes: list[list[SceneObject]] = []

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        """``(uint8 image (3, S, S), caption)`` of item ``i`` (0-based), decoded now."""
        where = f"{self.path}: item {i + 1}"
        return load_image(self.path.parent / self.images[i], self.image_size, where), self.captions[i]

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
        """``(images float in [0, 1] (B, 3, H, W), captions)`` of the given items, decoded here."""
        items = [self[i] for i in index.tolist()]
        return torch.stack([im for im, _ in items]).float() / 255.0, [c for _, c in items]


def collate_captions(items: list[tuple[torch.Tensor, str]]) -> tuple[torch.Tensor, list[str]]:
    """``(images float in [0, 1] (B, 3, H, W), captions)``: what :meth:`CaptionSet.batch` gives."""
    return torch.stack([im for im, _ in items]).float() / 255.0, [c for _, c in items]


def caption_loader(
    data: torch.utils.data.Dataset,
    batch_size: int,
    workers: int,
    *,
    samples: int | None = None,
    seed: int = 0,
    collate_fn=collate_captions,
) -> torch.utils.data.DataLoader:
    """Batches of ``data`` (a :class:`CaptionFile`, or any dataset with its ``collate_fn``) decoded by ``workers``
    processes (0: in this one), at most ``2 x workers`` batches ahead: memory does not grow with the file.
    ``samples``: that many items drawn uniformly with replacement (pretraining: each rank its own stream from
    ``seed``); ``None``: every item once, in order (evaluation)."""
    sampler = None
    if samples is not None:
        generator = torch.Generator().manual_seed(seed)
        sampler = torch.utils.data.RandomSampler(
            data, replacement=True, num_samples=samples, generator=generator
        )
    return torch.utils.data.DataLoader(
        data,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_fn,
        persistent_workers=workers > 0,
        drop_last=samples is not None,
    )


def read_caption_file(path: str | Path, image_size: int) -> CaptionFile:
    """A JSON list of ``{"image": path (relative to the file), "caption": str}`` as a lazy :class:`CaptionFile`:
    the rows are checked here (:func:`read_rows`); images are decoded only when asked for (:func:`load_image`
    errors then), so the 4M-image pretraining corpus streams through :func:`caption_loader`'s workers."""
    path = Path(path)
    rows = read_rows(path, "image/caption", (("image", str), ("caption", str)))
    images, captions = [r["image"] for r in rows], [r["caption"] for r in rows]
    del rows
    return CaptionFile(path, image_size, images, captions)


def augment(
    images: torch.Tensor,
    max_shift: int = 2,
    brightness: float = 0.15,
    hue_p: float = 0.0,
    gray_p: float = 0.0,
) -> torch.Tensor:
    """A second view for the global agreement loss: a random shift of up to ``max_shift`` px (zero fill) and a
    random brightness scale in ``[1 - brightness, 1 + brightness]``; with probability ``hue_p`` a random
    permutation of the colour channels (a hue change of the synthetic palette, e.g. red -> green), and with
    probability ``gray_p`` the channel mean instead (DINO's colour jitter and grayscale). Captions never see this
    view, so changing colours is safe. ``images`` float ``(B, 3, H, W)``."""
    b = images.shape[0]
    padded = torch.nn.functional.pad(images, (max_shift,) * 4)
    h, w = images.shape[-2:]
    dy = torch.randint(0, 2 * max_shift + 1, (b,)).tolist()
    dx = torch.randint(0, 2 * max_shift + 1, (b,)).tolist()
    out = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)])
    scale = 1 + brightness * (2 * torch.rand(b, 1, 1, 1) - 1)
    out = out * scale
    if hue_p > 0:
        perms = torch.stack([torch.randperm(3) for _ in range(b)])  # (B, 3)
        permuted = torch.gather(out, 1, perms[:, :, None, None].expand(-1, -1, h, w))
        out = torch.where(torch.rand(b, 1, 1, 1) < hue_p, permuted, out)
    if gray_p > 0:
        out = torch.where(torch.rand(b, 1, 1, 1) < gray_p, out.mean(1, keepdim=True).expand_as(out), out)
    return out.clamp(0, 1)
