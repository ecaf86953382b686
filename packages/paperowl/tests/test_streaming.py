"""Streaming (issue 29): a builder JSONL of 10,000 generated samples is iterated through the training data path
(``samples_from_jsonl`` -> ``EncodedSamples`` in a ``DataLoader``) with bounded resident memory. Today's path kept
every decoded image (``load_jsonl``) and every sample's fp32 views (``encode_all``): here the views alone are
10,000 x 3 x 32 x 32 x 4 B = 117 MiB, the bound on the growth is 24 MiB."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from PIL import Image

from paperowl.data import JsonlSamples, collate, samples_from_jsonl
from paperowl.model import ModelConfig, PaperOwlModel, build_tokenizer
from paperowl.train import EncodedSamples

N = 10_000
BOUND_MB = 24


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _write(root: Path) -> Path:
    (root / "imgs" / "p").mkdir(parents=True)
    rows = []
    for i in range(N):
        name = f"imgs/p/{i}.png"
        Image.new("RGB", (16, 16), (i % 251, (7 * i) % 253, (13 * i) % 255)).save(root / name)
        rows.append(
            {"id": f"p-{i}", "task": "cap", "task_type": "figure_cap", "image": [name],
             "conversations": [{"from": "user", "value": "<image>\nCaption?"},
                               {"from": "assistant", "value": f"plot number {i % 97}"}]}
        )  # fmt: skip
    path = root / "sft" / "3tasks.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_ten_thousand_samples_stream_with_bounded_memory(tmp_path: Path) -> None:
    path = _write(tmp_path)
    config = ModelConfig(image_size=32, patch_size=8, num_queries=4, tokenizer_kind="word", anchors=None)
    model = PaperOwlModel(
        config, build_tokenizer(config, ["Caption? plot number"] + [str(i) for i in range(97)])
    )
    samples = samples_from_jsonl(path)
    assert isinstance(samples, JsonlSamples) and len(samples) == N
    assert samples[123].answer == "plot number 26" and samples[123].images[0].getpixel((0, 0)) == (123, 861 % 253, 1599 % 255)  # fmt: skip
    loader = torch.utils.data.DataLoader(
        EncodedSamples(model, samples),
        batch_size=50,
        collate_fn=lambda e: collate(e, model.tokenizer.pad_token_id),
    )
    seen, views, start = 0, 0, None
    for i, batch in enumerate(loader):
        seen += batch["input_ids"].shape[0]
        views += batch["pixel_values"].shape[0]
        if i == 10:  # after warm-up (allocator pools, tokenizer caches)
            start = _rss_mb()
    growth = _rss_mb() - start
    held_by_old_path = N * 3 * 32 * 32 * 4 / 2**20
    print(
        f"RSS growth over {N} samples: {growth:.1f} MB (bound {BOUND_MB}; old path's views: {held_by_old_path:.0f} MB)"
    )
    assert seen == views == N
    assert growth < BOUND_MB < held_by_old_path / 4
