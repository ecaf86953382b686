"""Downstream data: VQA question files and their soft scores, the image of each caption row (retrieval positives,
caption references), and the tiny synthetic versions built from the scene corpus of :mod:`semmim.data`.

VQA files are a JSON list of ``{"image": path relative to the file, "question": str, "answers": [str, ...]}``
(VQA v2 gives ten answers per question). Caption files are those of :func:`semmim.data.read_caption_file`, read
here with each distinct image listed once (:func:`read_caption_images`). Images of a file are decoded only when a
batch asks for them, in :func:`item_batches`' ``DataLoader`` workers during fine-tuning, so memory does not grow with
the file.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from paperlab.io import DataError
from paperlab.metrics import normalize_answer
from semmim.data import SceneConfig, SceneObject, caption_loader, load_image, make_split, read_rows

#: the words of the synthetic questions, appended to :func:`semmim.data.vocabulary` (ids of the caption words stay)
QUESTION_WORDS = ("what", "colour", "shape", "is", "the", "object", "how", "many", "objects")
#: VQA v2 collected ten answers per question; the synthetic questions repeat their one answer as often
ANNOTATORS = 10


@dataclasses.dataclass
class VQASet:
    """``images`` uint8 ``(M, 3, H, W)`` (synthetic) or the lazy :class:`ImageFiles` of a VQA file; question i asks
    about ``images[image_of[i]]`` and has the annotators' ``answers[i]`` (normalised)."""

    images: torch.Tensor | ImageFiles
    image_of: torch.Tensor
    questions: list[str]
    answers: list[list[str]]

    def __len__(self) -> int:
        return len(self.questions)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, list[str], list[list[str]]]:
        """``(images float in [0, 1] (B, 3, H, W), questions, answers)`` of the given questions."""
        rows = index.tolist()
        images = self.images[self.image_of[index]].float() / 255.0
        return images, [self.questions[i] for i in rows], [self.answers[i] for i in rows]


def soft_score(answer: str, answers: Sequence[str]) -> float:
    """VQA accuracy of one predicted answer (the open-ended accuracy of Antol et al., "VQA: Visual Question
    Answering", ICCV 2015; kept for VQA v2 by Goyal et al., CVPR 2017): ``min(1, #annotators who gave the answer / 3)`` after answer normalisation
    (lower case, punctuation and articles dropped, :func:`paperlab.metrics.normalize_answer`). The official script
    also averages this over the ten leave-one-annotator-out subsets; we use the closed form that ViLT / METER and
    the bottom-up-attention code train on."""
    target = normalize_answer(answer)
    return min(1.0, sum(normalize_answer(a) == target for a in answers) / 3.0)


def vqa_accuracy(predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> float:
    """VQA accuracy in %: the mean :func:`soft_score` of the predicted answers (Antol et al., 2015)."""
    if len(predictions) != len(answers):
        raise ValueError(f"{len(predictions)} predictions but {len(answers)} answer lists")
    return 100.0 * float(np.mean([soft_score(p, a) for p, a in zip(predictions, answers, strict=True)]))


def answer_vocabulary(answers: Sequence[Sequence[str]], size: int) -> list[str]:
    """The ``size`` most frequent normalised answers over every annotator answer of the training questions (VQA v2
    convention of the bottom-up-attention pipeline, Anderson et al. / Teney et al., CVPR 2018, used by ViLT and
    METER: 3129 answers); ties in alphabetical order."""
    counts = Counter(normalize_answer(a) for row in answers for a in row)
    return [a for a, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size]]


def soft_targets(answers: Sequence[Sequence[str]], vocabulary: Sequence[str]) -> torch.Tensor:
    """``(N, A)`` float: the :func:`soft_score` of every vocabulary answer for every question (0 outside)."""
    index = {a: j for j, a in enumerate(vocabulary)}
    out = torch.zeros(len(answers), len(vocabulary))
    for i, row in enumerate(answers):
        for a, n in Counter(normalize_answer(a) for a in row).items():
            if a in index:
                out[i, index[a]] = min(1.0, n / 3.0)
    return out


class ImageFiles(torch.utils.data.Dataset):
    """The distinct images of a task file, decoded (and resized to ``image_size``) only when indexed: an ``int`` gives
    uint8 ``(3, S, S)``, a tensor or list of indices a stacked ``(B, 3, S, S)`` -- the interface of the in-memory
    uint8 tensor of the synthetic sets, so 123k COCO or 82k VQA images are never held at once. A missing or
    unreadable image is a :class:`paperlab.io.DataError` naming the list file, the first item that uses it and the
    image, when it is decoded."""

    def __init__(self, path: Path, image_size: int, files: list[str], first_item: list[int]) -> None:
        self.path, self.image_size, self.files, self.first_item = path, image_size, files, first_item

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index):
        if isinstance(index, int | np.integer) or (torch.is_tensor(index) and index.ndim == 0):
            i = int(index)
            where = f"{self.path}: item {self.first_item[i]}"
            return load_image(self.path.parent / self.files[i], self.image_size, where)
        return torch.stack([self[int(i)] for i in index])


def _distinct_images(path: Path, rows: list[dict], image_size: int) -> tuple[ImageFiles, torch.Tensor]:
    """``(lazy images, image_of (N,))``: every distinct ``image`` path once, in order of first use; each is checked
    to exist (a missing one is a :class:`paperlab.io.DataError` naming the file, the item and the image), none is
    decoded here."""
    slots: dict[str, int] = {}
    files, first_item = [], []
    for i, row in enumerate(rows, start=1):
        if row["image"] not in slots:
            if not (path.parent / row["image"]).is_file():  # one stat per image: fail before training starts
                raise DataError(f"{path}: item {i}: image {path.parent / row['image']} not found")
            slots[row["image"]] = len(files)
            files.append(row["image"])
            first_item.append(i)
    return ImageFiles(path, image_size, files, first_item), torch.tensor(
        [slots[row["image"]] for row in rows]
    )


class ItemImages(torch.utils.data.Dataset):
    """``(uint8 image, item index)`` of every item of a :class:`VQASet` / :class:`CaptionImages`: what
    :func:`item_batches`' workers decode."""

    def __init__(self, data) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.data.images[int(self.data.image_of[i])], i


def _collate_items(items: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([im for im, _ in items]).float() / 255.0, torch.tensor([i for _, i in items])


def item_batches(data, batch_size: int, steps: int, workers: int):
    """A generator of ``steps`` batches ``(images float in [0, 1] (B, 3, S, S), item indices (B,))`` drawn uniformly
    with replacement. In-memory images (the synthetic sets): indexed here from the global torch RNG, one
    ``torch.randint`` per batch, so a resumed fine-tuning continues exactly. Image files (:class:`ImageFiles`):
    decoded by ``workers`` ``DataLoader`` processes at most ``2 x workers`` batches ahead, the sampler seeded from
    the global torch RNG at the first batch (after a resume has restored it)."""
    if not isinstance(data.images, ImageFiles):
        for _ in range(steps):
            index = torch.randint(len(data), (batch_size,))
            yield data.batch(index)[0], index
        return
    seed = int(torch.randint(2**31 - 1, ()))
    items = ItemImages(data)
    yield from caption_loader(
        items, batch_size, workers, samples=batch_size * steps, seed=seed, collate_fn=_collate_items
    )


def read_vqa_file(path: str | Path, image_size: int) -> VQASet:
    """Load a VQA JSON file (see the module docstring): the rows are checked here, each distinct image is decoded
    only when asked for (:class:`ImageFiles`). A missing file, a row without ``image`` / ``question`` /
    ``answers`` or with an empty answer list raises an error naming the file, the row index and the field."""
    path = Path(path)
    rows = read_rows(path, "VQA", (("image", str), ("question", str), ("answers", list)))
    for i, row in enumerate(rows, start=1):
        if not row["answers"] or not all(isinstance(a, str | int | float) for a in row["answers"]):
            raise DataError(f"{path}: item {i}: field 'answers' must be a non-empty list of strings")
    images, image_of = _distinct_images(path, rows, image_size)
    questions = [row["question"].lower().rstrip("?").strip() for row in rows]
    return VQASet(
        images, image_of, questions, [[normalize_answer(str(a)) for a in r["answers"]] for r in rows]
    )


@dataclasses.dataclass
class CaptionImages:
    """Caption rows over distinct images (COCO / Flickr30K: 5 rows per image): caption i describes
    ``images[image_of[i]]``; the interface of :class:`semmim.data.CaptionSet` (``batch``, ``captions``,
    ``scenes``) with each image decoded when asked for (:class:`ImageFiles`)."""

    images: torch.Tensor | ImageFiles
    image_of: torch.Tensor
    captions: list[str]

    def __len__(self) -> int:
        return len(self.captions)

    @property
    def scenes(self) -> list[list[SceneObject]]:
        return [[] for _ in self.captions]

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
        return self.images[self.image_of[index]].float() / 255.0, [self.captions[i] for i in index.tolist()]


def read_caption_images(path: str | Path, image_size: int) -> CaptionImages:
    """A caption JSON file (``[{"image": path relative to the file, "caption": str}]``, the format of
    :func:`semmim.data.read_caption_file`) with each distinct image decoded only when asked for
    (:class:`ImageFiles`); a missing file or a row without ``image`` / ``caption`` raises an error naming the file,
    the row index and the field."""
    path = Path(path)
    rows = read_rows(path, "caption", (("image", str), ("caption", str)))
    images, image_of = _distinct_images(path, rows, image_size)
    return CaptionImages(images, image_of, [row["caption"] for row in rows])


def scene_questions(scene: list[SceneObject]) -> list[tuple[str, str]]:
    """The synthetic questions about one scene and their answers: the colour of every shape that occurs once, the
    shape of every colour that occurs once, and the number of objects."""
    shapes = Counter(o.shape for o in scene)
    colours = Counter(o.colour for o in scene)
    out = [(f"what colour is the {o.shape}", o.colour) for o in scene if shapes[o.shape] == 1]
    out += [(f"what shape is the {o.colour} object", o.shape) for o in scene if colours[o.colour] == 1]
    return [*out, ("how many objects", str(len(scene)))]


def synthetic_vqa(cfg: SceneConfig, split: str, counts: Sequence[int] = (1, 2, 3)) -> VQASet:
    """Questions about scenes with ``counts`` objects (an equal share of ``cfg``'s images each, from
    :func:`semmim.data.make_split`, so test images hold held-out colour-shape pairs); every answer is given by
    :data:`ANNOTATORS` annotators."""
    n = cfg.train_images if split == "train" else cfg.test_images
    parts = [
        make_split(
            dataclasses.replace(
                cfg, objects=k, train_images=max(1, n // len(counts)), test_images=max(1, n // len(counts))
            ),
            split,
        )
        for k in counts
    ]
    images = torch.cat([p.images for p in parts])
    image_of, questions, answers = [], [], []
    for i, scene in enumerate(s for p in parts for s in p.scenes):
        for question, answer in scene_questions(scene):
            image_of.append(i)
            questions.append(question)
            answers.append([answer] * ANNOTATORS)
    return VQASet(images, torch.tensor(image_of), questions, answers)
