"""Fixtures: a tiny base model whose tokenizer adds a BOS, as Llama-2's does."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def bos_base(tmp_path) -> tuple[Path, dict]:
    """(base model dir, role datasets of 4 world tasks): a 1 x 32 Llama saved in fp16 (as Llama-2's checkpoint)
    whose tokenizer prepends ``<bos>`` to every text, like Llama-2's."""
    import torch
    from tokenizers import processors

    from alpha_umi.data import role_datasets, training_text
    from alpha_umi.world import make_split
    from paperlab.models import tiny_causal_lm, train_tiny_tokenizer

    data = role_datasets([t for _, t in make_split(4, seed=0)])
    tok = train_tiny_tokenizer(
        [training_text(s, "")["prompt"] + s["target"] for r in data for s in data[r]], vocab_size=500
    )
    bos = tok.bos_token
    tok._tokenizer.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, tok.bos_token_id)]),
        ]
    )
    model = tiny_causal_lm(tokenizer=tok, layers=1, hidden=32, heads=2, seed=0).to(torch.float16)
    model.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    return tmp_path / "base", data
