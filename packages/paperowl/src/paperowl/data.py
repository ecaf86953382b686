"""Samples -> model inputs: prompt template, ``<image>`` expansion, answer-only labels, batching.

Loss on answers only (mPLUG-Owl/DocOwl instruction tuning): every prompt token is labelled -100. Each ``<image>``
in a prompt becomes ``views x num_queries`` copies of the ``<image>`` id, where ``views`` = 1 global view + the
shape-adaptive crops of that image (:mod:`paperowl.cropping`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from paperlab.io import DataError, existing_file, iter_jsonl
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
    sample: Sample, tokenizer: Any, image_size: int, anchors, num_queries: int, with_answer: bool = True
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
        expanded.extend([image_id] * (v.shape[0] * num_queries))
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


def samples_from_jsonl(
    path: str | Path, root: str | Path | None = None, task: str | None = None
) -> list[Sample]:
    """:class:`Sample` objects from a builder JSONL (image paths relative to ``root``, default the folder above
    ``sft/``). Errors (a :class:`paperlab.io.DataError`) name the file, line and field or image."""
    path = existing_file(path)
    root = Path(root) if root is not None else path.parent.parent
    out = []
    for number, row in iter_jsonl(path):
        check_row(row, path, number, ("conversations", "image"))
        if task is not None and row.get("task") != task:
            continue
        turns = row["conversations"]
        images = [_open_image(path, number, root / p) for p in row["image"]]
        out.append(
            Sample(images, turns[0]["value"], turns[1]["value"], row.get("task_type", ""), row.get("id", ""))
        )
    return out
