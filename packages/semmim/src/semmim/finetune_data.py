"""Downstream data: VQA question files and their soft scores, the image of each caption row (retrieval positives,
caption references), and the tiny synthetic versions built from the scene corpus of :mod:`semmim.data`.

VQA files are a JSON list of ``{"image": path relative to the file, "question": str, "answers": [str, ...]}``
(VQA v2 gives ten answers per question). Caption files are those of :func:`semmim.data.read_caption_file`, read
here with each distinct image held once (:func:`read_caption_images`).
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
from semmim.data import SceneConfig, SceneObject, load_image, make_split, read_rows

#: the words of the synthetic questions, appended to :func:`semmim.data.vocabulary` (ids of the caption words stay)
QUESTION_WORDS = ("what", "colour", "shape", "is", "the", "object", "how", "many", "objects")
#: VQA v2 collected ten answers per question; the synthetic questions repeat their one answer as often
ANNOTATORS = 10


@dataclasses.dataclass
class VQASet:
    """``images`` uint8 ``(M, 3, H, W)``; question i asks about ``images[image_of[i]]`` and has the annotators'
    ``answers[i]`` (normalised)."""

    images: torch.Tensor
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


def _distinct_images(path: Path, rows: list[dict], image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images (M, 3, S, S) uint8, image_of (N,))``: every distinct ``image`` path read once."""
    slots: dict[str, int] = {}
    images = []
    for i, row in enumerate(rows, start=1):
        if row["image"] not in slots:
            slots[row["image"]] = len(images)
            images.append(load_image(path.parent / row["image"], image_size, f"{path}: item {i}"))
    return torch.stack(images), torch.tensor([slots[row["image"]] for row in rows])


def read_vqa_file(path: str | Path, image_size: int) -> VQASet:
    """Load a VQA JSON file (see the module docstring); each distinct image is read once. A missing file, a row
    without ``image`` / ``question`` / ``answers`` or with an empty answer list raises an error naming the file, the
    row index and the field."""
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
    ``scenes``) with each image held once."""

    images: torch.Tensor
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
    :func:`semmim.data.read_caption_file`) with each distinct image read once; a missing file or a row without
    ``image`` / ``caption`` raises an error naming the file, the row index and the field."""
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
