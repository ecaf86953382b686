"""Token ids that training and inference share: one prompt encoding for both (the tokenizer's own special tokens,
so a Llama BOS is there at training *and* at inference, as the official ``train.py`` encodes ``system: <input>``
with ``tokenizer.encode``), and the SFT rows of the official preprocessing: the completion follows the prompt, the
loss is on the completion only, and a sequence longer than ``max_length`` keeps its *end* (official
``preprocess``: ``input_ids[-model_max_length:]``), so the completion is never cut and no sample is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alpha_umi.data import prompt_text, training_text
from paperlab.io import DataError

log = logging.getLogger(__name__)


def load_tokenizer(path: str | Path) -> Any:
    """The model's tokenizer; one without a pad token pads with ``unk`` (official ``train.py``), else with EOS."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:
        tok.pad_token = tok.unk_token if tok.unk_token is not None else tok.eos_token
    return tok


def encode_prompt(tok: Any, input_: str) -> list[int]:
    """The ids a role model reads for the role input ``input_`` (``system: `` + input), special tokens included
    exactly as at training (:func:`encode_sample`)."""
    return list(tok(prompt_text(input_))["input_ids"])


def encode_sample(tok: Any, sample: dict[str, Any], max_length: int) -> tuple[dict[str, list[int]], bool]:
    """(``{"input_ids", "completion_mask"}``, truncated) for one role sample: prompt + completion tokenized together
    (the completion starts where the prompt's ids end), cut to the last ``max_length`` ids when longer."""
    pair = training_text(sample, tok.eos_token)
    prompt_ids = encode_prompt(tok, sample["input"])
    ids = list(tok(pair["prompt"] + pair["completion"])["input_ids"])
    start = 0
    while start < min(len(prompt_ids), len(ids)) and prompt_ids[start] == ids[start]:
        start += 1
    mask = [0] * start + [1] * (len(ids) - start)
    if start == len(ids):
        raise DataError(f"sample with target {sample['target'][:60]!r}: no completion token after the prompt")
    truncated = len(ids) > max_length
    return {"input_ids": ids[-max_length:], "completion_mask": mask[-max_length:]}, truncated


def sft_rows(
    tok: Any, samples: Sequence[dict[str, Any]], max_length: int
) -> tuple[list[dict[str, list[int]]], int]:
    """(one row per sample, how many were truncated on the left). Every sample is kept."""
    rows, cut = [], 0
    for s in samples:
        row, truncated = encode_sample(tok, s, max_length)
        rows.append(row)
        cut += truncated
    if cut:
        log.warning(
            "%d of %d samples longer than %d tokens: kept their end (official)", cut, len(rows), max_length
        )
    return rows, cut
