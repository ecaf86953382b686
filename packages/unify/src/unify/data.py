"""Video-text data: a synthetic world of moving coloured shapes (the tiny default) and real frame folders.

Synthetic videos (``make_synthetic_split``): ``frames`` coloured shapes on black, each object moving in one
direction; the caption names every object's colour, shape and motion ("red circle moving left and blue square
moving up"). A set of (colour, shape) combinations is held out of training: every test video shows at least one of
them, so test retrieval measures compositional generalisation to rare concept combinations (issue 13).

Real data (``FrameFolderDataset``): MSR-VTT/DiDeMo-style annotations (a JSON list of ``{"video_id", "caption"}``)
over pre-extracted frames ``<frames_root>/<video_id>/*.jpg|png``, sampled uniformly to ``num_frames`` as
CLIP4Clip does. Decoding videos to frames is left to ffmpeg, outside the package.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import torch

from paperlab.config import require
from paperlab.io import DataError, MissingFileError, existing_file, read_json

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 80, 240),
    "yellow": (235, 225, 40),
    "magenta": (220, 50, 220),
    "cyan": (40, 220, 230),
    "white": (240, 240, 240),
    "orange": (245, 140, 30),
}
SHAPES = ("circle", "square", "triangle", "cross")
MOTIONS: dict[str, tuple[int, int]] = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}
STOP_WORDS = frozenset({"moving", "and"})
#: English function words never used as activation targets on real captions
_STOP = (
    "a an the and or of in on at to with by for from is are was were be being been it its this that these those "
    "there here he she they his her their them someone something while as into onto over under up down out"
)
ENGLISH_STOP_WORDS = frozenset(_STOP.split())


@dataclasses.dataclass
class SyntheticVideoConfig:
    """The synthetic world. ``heldout_fraction`` of the (colour, shape) pairs never appear in training."""

    image_size: int = 32
    num_frames: int = 3
    objects_per_video: int = 2
    object_size: int = 8
    step_px: int = 8
    heldout_fraction: float = 0.25
    train_videos: int = 3000
    test_videos: int = 500
    align: int = (
        8  # > 0: positions snap to multiples of `align` px (e.g. the patch size: one object per patch)
    )

    def __post_init__(self) -> None:
        require(self.image_size >= 16, "data.image_size", self.image_size, "an int >= 16")
        require(self.num_frames >= 1, "data.num_frames", self.num_frames, "at least 1 frame")
        require(1 <= self.objects_per_video <= 3, "data.objects_per_video", self.objects_per_video, "1 to 3")
        span = self.object_size + self.step_px * (self.num_frames - 1)
        require(
            span < self.image_size,
            "data.object_size",
            self.object_size,
            f"object + motion < {self.image_size}",
        )
        require(
            0 < self.heldout_fraction < 1, "data.heldout_fraction", self.heldout_fraction, "a float in (0, 1)"
        )
        require(self.train_videos > 0 and self.test_videos > 0, "data.train_videos", self.train_videos, "> 0")
        require(self.align >= 0, "data.align", self.align, "an int >= 0 (0: free placement)")


@dataclasses.dataclass
class VideoTextSet:
    """``frames``: uint8 ``(N, F, 3, H, W)``; ``captions[i]`` describes video i; ``concepts[i]`` its content words."""

    frames: torch.Tensor
    captions: list[str]
    concepts: list[list[str]]

    def __post_init__(self) -> None:
        validate_frames(self.frames)
        if not (len(self.captions) == len(self.concepts) == self.frames.shape[0]):
            raise ValueError(
                f"{self.frames.shape[0]} videos but {len(self.captions)} captions and {len(self.concepts)} concept lists"
            )

    def __len__(self) -> int:
        return len(self.captions)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, list[str], list[list[str]]]:
        """``(frames float in [0, 1] (B, F, 3, H, W), captions, concept words)`` of the given items."""
        rows = index.tolist()
        return (
            self.frames[index].float() / 255.0,
            [self.captions[i] for i in rows],
            [self.concepts[i] for i in rows],
        )


def validate_frames(frames: torch.Tensor, image_size: int | None = None) -> None:
    """Check a video batch ``(N, F, 3, H, W)``: at least one frame, three channels, square frames of the
    expected size. Raises ValueError saying which dimension is wrong."""
    if frames.ndim != 5:
        raise ValueError(f"video batch must be (videos, frames, 3, H, W), got shape {tuple(frames.shape)}")
    if frames.shape[1] == 0:
        raise ValueError("a video with zero frames: every video needs at least one frame")
    if frames.shape[2] != 3:
        raise ValueError(f"frames must have 3 channels, got {frames.shape[2]}")
    if image_size is not None and tuple(frames.shape[-2:]) != (image_size, image_size):
        raise ValueError(
            f"frame size {tuple(frames.shape[-2:])} does not match the model's {image_size}x{image_size}"
        )


def heldout_pairs(cfg: SyntheticVideoConfig, seed: int = 0) -> set[tuple[str, str]]:
    """The (colour, shape) pairs kept out of training: for each colour about ``heldout_fraction`` of the shapes,
    so that every colour and every shape is still seen in training."""
    rng = np.random.default_rng(seed)
    per_colour = max(1, round(cfg.heldout_fraction * len(SHAPES)))
    pairs = set()
    for i, colour in enumerate(COLOURS):
        offset = int(rng.integers(len(SHAPES)))
        for j in range(per_colour):
            pairs.add((colour, SHAPES[(i + offset + j) % len(SHAPES)]))
    return pairs


def _mask(shape: str, size: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    c = (size - 1) / 2
    if shape == "circle":
        return (yy - c) ** 2 + (xx - c) ** 2 <= (size / 2) ** 2
    if shape == "square":
        return np.ones((size, size), dtype=bool)
    if shape == "triangle":
        return np.abs(xx - c) <= yy / 2
    if shape == "cross":
        return (np.abs(yy - c) <= size // 6) | (np.abs(xx - c) <= size // 6)
    raise ValueError(f"unknown shape {shape!r}; known: {SHAPES}")


def render_video(
    objects: list[tuple[str, str, str]], starts: list[tuple[int, int]], cfg: SyntheticVideoConfig
) -> np.ndarray:
    """Draw ``objects`` = [(colour, shape, motion)] starting at ``starts`` [(row, col)]: uint8 (F, 3, H, W)."""
    video = np.zeros((cfg.num_frames, 3, cfg.image_size, cfg.image_size), dtype=np.uint8)
    s = cfg.object_size
    for (colour, shape, motion), (r0, c0) in zip(objects, starts):
        mask = _mask(shape, s)
        dr, dc = MOTIONS[motion]
        for f in range(cfg.num_frames):
            r, c = r0 + dr * cfg.step_px * f, c0 + dc * cfg.step_px * f
            for ch, value in enumerate(COLOURS[colour]):
                video[f, ch, r : r + s, c : c + s][mask] = value
    return video


def _start(motion: str, cfg: SyntheticVideoConfig, rng: np.random.Generator) -> tuple[int, int]:
    travel = cfg.step_px * (cfg.num_frames - 1)
    dr, dc = MOTIONS[motion]
    lo_r, hi_r = (
        (travel, cfg.image_size - cfg.object_size)
        if dr < 0
        else (0, cfg.image_size - cfg.object_size - travel * abs(dr))
    )
    lo_c, hi_c = (
        (travel, cfg.image_size - cfg.object_size)
        if dc < 0
        else (0, cfg.image_size - cfg.object_size - travel * abs(dc))
    )
    if cfg.align > 0:  # snap to the grid, staying inside the frame for the whole motion
        lo_r, hi_r = -(-lo_r // cfg.align) * cfg.align, hi_r // cfg.align * cfg.align
        lo_c, hi_c = -(-lo_c // cfg.align) * cfg.align, hi_c // cfg.align * cfg.align
        rows, cols = range(lo_r, hi_r + 1, cfg.align), range(lo_c, hi_c + 1, cfg.align)
        return int(rows[rng.integers(len(rows))]), int(cols[rng.integers(len(cols))])
    return int(rng.integers(lo_r, hi_r + 1)), int(rng.integers(lo_c, hi_c + 1))


def _collide(
    objects: list[tuple[str, str, str]], starts: list[tuple[int, int]], cfg: SyntheticVideoConfig
) -> bool:
    """True when two objects' boxes intersect in some frame."""
    s = cfg.object_size
    for f in range(cfg.num_frames):
        boxes = []
        for (_, _, motion), (r0, c0) in zip(objects, starts):
            dr, dc = MOTIONS[motion]
            boxes.append((r0 + dr * cfg.step_px * f, c0 + dc * cfg.step_px * f))
        for i in range(len(boxes)):
            for j in range(i):
                if abs(boxes[i][0] - boxes[j][0]) < s and abs(boxes[i][1] - boxes[j][1]) < s:
                    return True
    return False


def caption_of(objects: list[tuple[str, str, str]]) -> str:
    return " and ".join(f"{colour} {shape} moving {motion}" for colour, shape, motion in objects)


def make_synthetic_split(cfg: SyntheticVideoConfig, split: str, seed: int = 0) -> VideoTextSet:
    """``split="train"``: only seen (colour, shape) pairs; ``"test"``: every video holds >= 1 held-out pair.

    Objects in one video differ in colour and in shape, so a caption never names a colour or shape twice.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    held = heldout_pairs(cfg)
    seen = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in held]
    heldl = sorted(held)
    rng = np.random.default_rng(seed + (0 if split == "train" else 10_000))
    n = cfg.train_videos if split == "train" else cfg.test_videos
    frames, captions, concepts = [], [], []
    while len(captions) < n:
        first = heldl[rng.integers(len(heldl))] if split == "test" else seen[rng.integers(len(seen))]
        pairs = [first]
        while len(pairs) < cfg.objects_per_video:
            pool = seen if split == "train" else seen + heldl
            cand = pool[rng.integers(len(pool))]
            if all(cand[0] != p[0] and cand[1] != p[1] for p in pairs):
                pairs.append(cand)
        order = rng.permutation(len(pairs))
        objects = [(*pairs[i], list(MOTIONS)[rng.integers(len(MOTIONS))]) for i in order]
        starts = [_start(m, cfg, rng) for _, _, m in objects]
        for _ in range(100):  # objects never overlap in any frame (a caption names every object fully)
            if not _collide(objects, starts, cfg):
                break
            starts = [_start(m, cfg, rng) for _, _, m in objects]
        else:
            continue
        frames.append(render_video(objects, starts, cfg))
        captions.append(caption_of(objects))
        concepts.append([w for o in objects for w in o])
    return VideoTextSet(torch.from_numpy(np.stack(frames)), captions, concepts)


def synthetic_vocabulary() -> list[str]:
    """Every word a synthetic caption can use (the lexicon space of the tiny model)."""
    return [*COLOURS, *SHAPES, *MOTIONS, *sorted(STOP_WORDS)]


def caption_concepts(caption: str) -> list[str]:
    """Content words of a real caption: alphabetic words minus English stop words (activation targets)."""
    return [w for w in re.findall(r"[a-z]+", caption.lower()) if w not in ENGLISH_STOP_WORDS]


FRAME_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})


class FrameFolderDataset(torch.utils.data.Dataset):
    """Real video-text pairs from pre-extracted frames.

    ``annotations``: JSON list of ``{"video_id": str, "caption": str}`` (MSR-VTT 1k-A / DiDeMo style).
    ``frames_root/<video_id>/`` holds the frames (jpg/png, sorted by name); ``num_frames`` are sampled uniformly
    (only their paths are kept, as strings). Items: ``(frames float (F, 3, S, S) in [0, 1], caption)``, each frame
    preprocessed as CLIP's ``_transform`` does (openai/CLIP ``clip/clip.py``): the short side resized to
    ``image_size`` (bicubic), then the centre ``image_size`` x ``image_size`` crop; never squashed. Frames are
    decoded lazily in ``__getitem__`` (a ``DataLoader``'s workers in training, see ``unify.train.batches``).

    Everything is checked when the set is built, before any model or training: a missing or malformed file, an
    item without a string ``video_id`` / non-empty ``caption``, a video without frames is a
    :class:`~paperlab.io.DataError` naming the annotation file, the item (1-based) and the field; ``field``: the
    config field the annotation path came from (named when the file is missing).
    """

    def __init__(
        self,
        annotations: str | Path,
        frames_root: str | Path,
        num_frames: int,
        image_size: int,
        field: str = "data.annotations",
    ) -> None:
        self.path = existing_file(annotations, field)
        self.root = Path(frames_root).expanduser()
        self.num_frames = num_frames
        self.image_size = image_size
        if not self.root.is_dir():
            raise MissingFileError(f"data.frames_root: {self.root}: no such folder (frames/<video_id>/*.jpg)")
        rows = read_json(self.path)
        if not isinstance(rows, list):
            raise DataError(
                f"{self.path}: expected a JSON list of {{video_id, caption}} objects, got {type(rows).__name__}"
            )
        if not rows:
            raise DataError(f"{self.path}: no items (expected a JSON list of {{video_id, caption}} objects)")
        self.items: list[tuple[str, str]] = []
        self.files: dict[str, list[str]] = {}
        for i, row in enumerate(rows, start=1):
            where = f"{self.path}: item {i}"
            if not isinstance(row, dict):
                raise DataError(f"{where}: expected a {{video_id, caption}} object, got {type(row).__name__}")
            for field_name in ("video_id", "caption"):
                if field_name not in row:
                    raise DataError(f"{where} has no {field_name!r} field")
            video_id, caption = row["video_id"], row["caption"]
            if isinstance(video_id, bool) or not isinstance(video_id, str | int) or not str(video_id).strip():
                raise DataError(f"{where}: 'video_id' must be a non-empty string, got {video_id!r:.60}")
            if not isinstance(caption, str):
                raise DataError(f"{where}: 'caption' must be a string, got {type(caption).__name__}")
            if not caption.strip():
                raise DataError(f"{where} ({video_id}) has an empty caption")
            video_id = str(video_id)
            if video_id not in self.files:
                found = self._frames_of(video_id, where)
                picks = np.linspace(0, len(found) - 1, self.num_frames).round().astype(int)
                self.files[video_id] = [str(found[p]) for p in picks]
            self.items.append((video_id, caption))

    def _frames_of(self, video_id: str, where: str) -> list[Path]:
        folder = self.root / video_id
        try:
            inside = folder.resolve().is_relative_to(self.root.resolve())
            files = (
                sorted(p for p in folder.glob("*") if p.suffix.lower() in FRAME_SUFFIXES) if inside else []
            )
        except (OSError, ValueError):  # a video_id no folder can have (NUL, too long)
            inside, files = False, []
        if not inside:
            raise DataError(f"{where}: 'video_id' {video_id!r:.60} is not a folder name under {self.root}")
        if not files:
            raise DataError(
                f"{where}: video {video_id!r:.60} has zero frames ({folder}: expected *.jpg or *.png)"
            )
        return files

    def __len__(self) -> int:
        return len(self.items)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, list[str], list[list[str]]]:
        """Like :meth:`VideoTextSet.batch`; concept words are the caption's words minus English stop words."""
        items = [self[i] for i in index.tolist()]
        captions = [c for _, c in items]
        return torch.stack([f for f, _ in items]), captions, [caption_concepts(c) for c in captions]

    @property
    def captions(self) -> list[str]:
        return [c for _, c in self.items]

    @property
    def concepts(self) -> list[list[str]]:
        return [caption_concepts(c) for _, c in self.items]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        from PIL import UnidentifiedImageError

        video_id, caption = self.items[index]
        frames = []
        for path in self.files[video_id]:
            try:
                frames.append(load_frame(path, self.image_size))
            except (UnidentifiedImageError, OSError) as err:
                raise DataError(f"{path}: not a readable image ({err})") from None
        return torch.stack(frames).float() / 255.0, caption


def clip_resize_crop(image, size: int):
    """CLIP's geometry (``Resize(size, BICUBIC)`` + ``CenterCrop(size)``): the short side to ``size``, aspect kept,
    then the centre square. ``image``: a PIL image; returns a ``size`` x ``size`` PIL image."""
    from PIL import Image

    w, h = image.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = round((nw - size) / 2.0), round((nh - size) / 2.0)
    return image.crop((left, top, left + size, top + size))


def load_frame(path: str | Path, size: int) -> torch.Tensor:
    """One frame file as uint8 (3, size, size), CLIP-preprocessed (:func:`clip_resize_crop`)."""
    from PIL import Image

    with Image.open(path) as image:
        image = clip_resize_crop(image.convert("RGB"), size)
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
