"""UNIFY retrieval cost on CPU: sparse lexicon retrieval through an inverted index vs dense latent retrieval.

Galleries of 10k and 100k videos. Latent vectors: 512-d float32 (CLIP ViT-B/32). Lexicon vectors: the CLIP BPE
vocabulary (49,408 dims) with 64 non-zeros per video and 16 per query, dimensions drawn Zipf-like (frequent
concepts have long posting lists), the sparsity UNIFY's FLOPS penalty produces. Reports per-query latency (mean
of 50 queries), index/gallery memory and the ratio, in one run. Writes results/bench/unify.json and .md.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from paperlab.io import atomic_write_json, atomic_write_text
from paperlab.report import markdown_table, results_dir
from unify.retrieval import LexiconIndex

VOCAB, LATENT_DIM, NNZ_VIDEO, NNZ_QUERY, QUERIES = 49408, 512, 64, 16, 50


def sparse_vectors(n: int, nnz: int, rng: np.random.Generator) -> torch.Tensor:
    ranks = np.arange(1, VOCAB + 1)
    p = (1.0 / ranks) / (1.0 / ranks).sum()
    rows = np.repeat(np.arange(n), nnz)
    cols = rng.choice(VOCAB, size=n * nnz, p=p)  # a repeated dimension within a row is merged by coalesce()
    values = rng.random(n * nnz).astype(np.float32) + 0.1
    return torch.sparse_coo_tensor(np.stack([rows, cols]), values, (n, VOCAB)).coalesce()


def timed(fn, repeats: int) -> float:
    start = time.perf_counter()
    for i in range(repeats):
        fn(i)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    rows = []
    for n in (10_000, 100_000):
        latent = torch.nn.functional.normalize(torch.randn(n, LATENT_DIM), dim=-1)
        queries_lat = torch.nn.functional.normalize(torch.randn(QUERIES, LATENT_DIM), dim=-1)
        videos = sparse_vectors(n, NNZ_VIDEO, rng)
        queries = sparse_vectors(QUERIES, NNZ_QUERY, rng).to_dense()
        start = time.perf_counter()
        index = LexiconIndex(videos)
        build_s = time.perf_counter() - start
        dense_s = timed(lambda i, g=latent, q=queries_lat: torch.topk(g @ q[i], 10), QUERIES)
        sparse_s = timed(lambda i, ix=index, q=queries: ix.search(q[i], 10), QUERIES)
        rows.append(
            {
                "videos": n,
                "latent ms/query": dense_s * 1e3,
                "lexicon (inverted index) ms/query": sparse_s * 1e3,
                "latency ratio lexicon/latent": sparse_s / dense_s,
                "latent MiB": latent.numel() * 4 / 2**20,
                "lexicon index MiB": index.memory_bytes() / 2**20,
                "dense lexicon MiB (not built)": n * VOCAB * 4 / 2**20,
                "nnz/video": index.nnz / n,
                "index build s": build_s,
            }
        )
        print(rows[-1], flush=True)
    out = results_dir("bench", "")
    atomic_write_json(out / "unify.json", {"rows": rows, "vocab": VOCAB, "nnz_query": NNZ_QUERY})
    text = "# UNIFY: sparse lexicon vs dense latent retrieval (CPU, 2 threads)\n\n" + markdown_table(
        rows, floatfmt=".3g"
    )
    atomic_write_text(out / "unify.md", text)
    print(text)


if __name__ == "__main__":
    main()
