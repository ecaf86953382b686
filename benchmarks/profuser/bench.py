"""profuser benchmark: the source-representation build (FuseLLM/ProFuser's offline pass), one run on CPU.

For each source setting, the same responses are represented for the target (teacher-forced forward, top-k,
alignment, vocabulary mapping, shards on disk):

- tokens/s of the whole build and the share of time in the forward pass vs alignment + mapping;
- bytes per target token of the sparse top-k store on disk vs dense logits (fp16 and fp32) of the source's vocab.

Two settings: a tiny source with a 300-token vocabulary (the tiny world's) and a Llama-shaped source with a 32,000
vocabulary (Llama-2's size; 2 x 128, random weights), where dense logits are what FuseLLM would otherwise keep.

    .venv/bin/python benchmarks/profuser/bench.py        # writes results/bench/profuser.{json,md}

The paper makes no speed claim; the storage ratio is why FuseLLM stores top-k at all.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from paperlab.models import random_words, tiny_causal_lm, train_tiny_tokenizer
from paperlab.report import write_bench
from profuser import align, represent
from profuser.align import VocabMapping
from profuser.represent import ModelSide, RepresentationStore, Sample

N_SAMPLES = 256
K = 10


def samples() -> list[Sample]:
    g = torch.Generator().manual_seed(0)
    return [Sample(f"b{i}", random_words(g, 8).strip() + " =", random_words(g, 48)) for i in range(N_SAMPLES)]


def one_setting(label: str, vocab: int, hidden: int, data: list[Sample], tmp: Path) -> dict:
    texts = [s.prompt + s.response for s in data]
    src_tok = train_tiny_tokenizer(texts, vocab_size=280)
    tgt_tok = train_tiny_tokenizer(texts, vocab_size=400)
    model = tiny_causal_lm(vocab, layers=2, hidden=hidden, seed=0)
    model.config.pad_token_id = src_tok.pad_token_id
    source = ModelSide(label, model, src_tok)
    target = ModelSide("target", None, tgt_tok)
    mapping = VocabMapping.between(src_tok, tgt_tok)
    timers = {"forward": 0.0, "align": 0.0}
    forward, align_tokens = model.forward, align.align_tokens

    def timed_forward(*a, **kw):
        t0 = time.perf_counter()
        out = forward(*a, **kw)
        timers["forward"] += time.perf_counter() - t0
        return out

    def timed_align(*a, **kw):
        t0 = time.perf_counter()
        out = align_tokens(*a, **kw)
        timers["align"] += time.perf_counter() - t0
        return out

    model.forward, represent.align_tokens = timed_forward, timed_align
    try:
        start = time.perf_counter()
        store = RepresentationStore(tmp / label).build(
            source, target, data, k=K, mapping=mapping, progress=False
        )
        seconds = time.perf_counter() - start
    finally:
        represent.align_tokens = align_tokens
    reps = store.load()
    tokens = sum(r.topk_ids.shape[0] for r in reps.values())
    disk = sum(p.stat().st_size for p in (tmp / label).glob("shard-*.npz"))
    return {
        "source": label,
        "vocab": vocab,
        "target tokens": tokens,
        "tokens/s": tokens / seconds,
        "forward %": 100 * timers["forward"] / seconds,
        "align+map %": 100 * timers["align"] / seconds,
        "sparse B/token": disk / tokens,
        "dense fp16 B/token": 2 * vocab,
        "dense fp32 B/token": 4 * vocab,
        "dense fp16 / sparse": 2 * vocab * tokens / disk,
    }


def main() -> None:
    torch.set_num_threads(2)
    data = samples()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [
            one_setting("tiny-300", 300, 64, data, Path(tmp)),
            one_setting("llama-shaped-32k", 32000, 128, data, Path(tmp)),
        ]
    write_bench(
        "profuser",
        rows,
        title=f"profuser: source-representation build, {N_SAMPLES} responses of 48 words, top-{K}, CPU (2 threads)",
        extra={"k": K, "n_samples": N_SAMPLES},
    )


if __name__ == "__main__":
    main()
