"""Samples -> model inputs: prompt template, ``<image>`` expansion, answer-only labels, batching.

Loss on answers only (mPLUG-Owl/DocOwl instruction tuning): every prompt token is labelled -100. Each ``<image>``
in a prompt becomes ``views x (num_queries + 1)`` copies of the ``<image>`` id, where ``views`` = 1 global view + the
shape-adaptive crops of that image (:mod:`paperowl.cropping`).
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from paperlab.io import DataError, existing_file, scan_jsonl
from paperowl.cropping import crop_views
from paperowl.model import IMAGE_TOKEN

#: mPLUG-Owl's conversation format, used when the tokenizer has no chat template (LLaMA-7B).
OWL_SYSTEM = "The following is a conversation between a curious human and AI assistant. "


@dataclass
class Sample:
    """One instruction sample: images (in ``<image>`` order), the user prompt, the answer."""

    images: list[Image.Image]
    prompt: str
    answer: str
    task_type: str = ""
    id: str = ""


def prompt_ids(tokenizer: Any, prompt: str) -> list[int]:
    """Token ids of the user turn up to where the assistant's answer starts."""
    if tokenizer.chat_template:
        return list(
            tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}],
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
            )["input_ids"]
        )
    return tokenizer(OWL_SYSTEM + f"Human: {prompt}\nAI: ", add_special_tokens=True)["input_ids"]


def answer_ids(tokenizer: Any, answer: str) -> list[int]:
    return tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def encode(
    sample: Sample, tokenizer: Any, image_size: int, anchors, tokens_per_view: int, with_answer: bool = True
) -> dict[str, Any]:
    """``input_ids``/``labels`` lists with expanded image tokens, plus the views and positions of every image.

    Raises ``ValueError`` when the number of ``<image>`` placeholders differs from the number of images.
    """
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    prompt = prompt_ids(tokenizer, sample.prompt)
    n_placeholders = prompt.count(image_id)
    if n_placeholders != len(sample.images):
        raise ValueError(
            f"sample {sample.id!r}: {n_placeholders} <image> placeholders but {len(sample.images)} images"
        )
    views, positions, expanded = [], [], []
    image_index = 0
    for token in prompt:
        if token != image_id:
            expanded.append(token)
            continue
        v, p = crop_views(sample.images[image_index], image_size, anchors)
        views.append(v)
        positions.append(p)
        expanded.extend([image_id] * (v.shape[0] * tokens_per_view))
        image_index += 1
    answer = answer_ids(tokenizer, sample.answer) if with_answer else []
    return {
        "input_ids": expanded + answer,
        "labels": [-100] * len(expanded) + answer,
        "views": torch.cat(views) if views else torch.zeros(0, 3, image_size, image_size),
        "positions": torch.cat(positions) if positions else torch.zeros(0, dtype=torch.long),
    }


def collate(encoded: list[dict[str, Any]], pad_id: int, left_pad: bool = False) -> dict[str, torch.Tensor]:
    """Pad a list of :func:`encode` outputs into a batch (right padding for training, left for generation)."""
    length = max(len(e["input_ids"]) for e in encoded)
    ids, labels, mask = [], [], []
    for e in encoded:
        pad = length - len(e["input_ids"])
        if left_pad:
            ids.append([pad_id] * pad + e["input_ids"])
            labels.append([-100] * pad + e["labels"])
            mask.append([0] * pad + [1] * len(e["input_ids"]))
        else:
            ids.append(e["input_ids"] + [pad_id] * pad)
            labels.append(e["labels"] + [-100] * pad)
            mask.append([1] * len(e["input_ids"]) + [0] * pad)
    return {
        "input_ids": torch.tensor(ids),
        "labels": torch.tensor(labels),
        "attention_mask": torch.tensor(mask),
        "pixel_values": torch.cat([e["views"] for e in encoded]),
        "view_positions": torch.cat([e["positions"] for e in encoded]),
    }


def check_row(row: dict[str, Any], path: Path, number: int, required: tuple[str, ...]) -> None:
    """A builder JSONL row has the ``required`` fields with the builder's types (``conversations``: a user and an
    assistant turn ``{from, value}``, ``image``: a list of paths); else a :class:`DataError` naming the file, line
    and field."""
    for key in required:
        if key not in row:
            raise DataError(f"{path}:{number}: missing field {key!r}")

    def wrong(field: str, expected: str) -> DataError:
        shown = repr(row.get(field))
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return DataError(f"{path}:{number}: field {field!r}: expected {expected}, got {shown}")

    for key in ("id", "task_type", "task", "split"):
        if key in row and not isinstance(row[key], str):
            raise wrong(key, "a string")
    if "image" in row:
        images = row["image"]
        if not isinstance(images, list) or not all(isinstance(p, str) and p for p in images):
            raise wrong("image", "a list of image paths (relative to the output folder)")
    if "conversations" in row:
        turns = row["conversations"]
        if (
            not isinstance(turns, list)
            or len(turns) < 2
            or not all(isinstance(t, dict) and isinstance(t.get("value"), str) for t in turns)
        ):
            raise wrong("conversations", "a user and an assistant turn, each {from, value} with string value")


def _open_image(path: Path, number: int, image: Path) -> Image.Image:
    try:
        with Image.open(image) as opened:
            return opened.convert("RGB")
    except FileNotFoundError:
        raise DataError(f"{path}:{number}: image {image}: no such file") from None
    except Exception as err:  # PIL: not an image, truncated, too large
        raise DataError(
            f"{path}:{number}: image {image}: cannot read it ({type(err).__name__}: {err})"
        ) from None


class JsonlSamples(Sequence[Sample]):
    """The samples of a builder JSONL, streamed: the file is checked once on opening (every row's fields and
    types, every image file present with an image header) keeping only each row's byte offset; ``samples[i]`` reads its line again and
    decodes its images then. Memory: 16 bytes per row, whatever the images (690k M-Paper rows: ~11 MB)."""

    def __init__(self, path: str | Path, root: str | Path | None = None, task: str | None = None) -> None:
        self.path = existing_file(path)
        self.root = Path(root) if root is not None else self.path.parent.parent
        self._numbers = array("q")
        self._offsets = array("q")
        for number, offset, row in scan_jsonl(self.path):
            check_row(row, self.path, number, ("conversations", "image"))
            if task is not None and row.get("task") != task:
                continue
            for p in row["image"]:
                _check_image(self.path, number, self.root / p)
            self._numbers.append(number)
            self._offsets.append(offset)

    def __len__(self) -> int:
        return len(self._offsets)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        if isinstance(index, slice):
            raise TypeError("JsonlSamples: index with an integer")
        number = self._numbers[index]
        with self.path.open("rb") as f:
            f.seek(self._offsets[index])
            row = json.loads(f.readline().decode("utf-8-sig"))
        turns = row["conversations"]
        images = [_open_image(self.path, number, self.root / p) for p in row["image"]]
        return Sample(
            images, turns[0]["value"], turns[1]["value"], row.get("task_type", ""), row.get("id", "")
        )


def samples_from_jsonl(
    path: str | Path, root: str | Path | None = None, task: str | None = None
) -> JsonlSamples:
    """The :class:`Sample` objects of a builder JSONL (image paths relative to ``root``, default the folder
    above ``sft/``), streamed (:class:`JsonlSamples`): checked on opening, images decoded when a sample is read.
    Errors (a :class:`paperlab.io.DataError`) name the file, line and field or image; an image whose header is
    not an image's is refused on opening, one broken further on when it is read."""
    return JsonlSamples(path, root, task)


def _check_image(path: Path, number: int, image: Path) -> None:
    """The image's header is read (``Image.open`` decodes no pixels): a missing file or one that is not an image
    is refused."""
    if not image.is_file():
        raise DataError(f"{path}:{number}: image {image}: no such file")
    try:
        with Image.open(image) as opened:
            opened.size  # noqa: B018
    except Exception as err:
        raise DataError(
            f"{path}:{number}: image {image}: cannot read it ({type(err).__name__}: {err})"
        ) from None
