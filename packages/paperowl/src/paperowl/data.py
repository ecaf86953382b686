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

from paperlab.io import iter_jsonl
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


def samples_from_jsonl(
    path: str | Path, root: str | Path | None = None, task: str | None = None
) -> list[Sample]:
    """:class:`Sample` objects from a builder JSONL (image paths relative to ``root``, default the folder above
    ``sft/``). Errors name the file, line and missing field."""
    path = Path(path)
    root = Path(root) if root is not None else path.parent.parent
    out = []
    for number, row in iter_jsonl(path):
        for key in ("conversations", "image"):
            if key not in row:
                raise ValueError(f"{path}:{number}: missing field {key!r}")
        if task is not None and row.get("task") != task:
            continue
        turns = row["conversations"]
        if len(turns) < 2:
            raise ValueError(f"{path}:{number}: 'conversations' needs a user and an assistant turn")
        images = [Image.open(root / p).convert("RGB") for p in row["image"]]
        out.append(
            Sample(images, turns[0]["value"], turns[1]["value"], row.get("task_type", ""), row.get("id", ""))
        )
    return out
