"""Retrieval evaluation of a trained model on a held-out set, both directions, plus lexicon diagnostics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from paperlab.metrics import bidirectional_retrieval_metrics
from unify.data import FrameFolderDataset, VideoTextSet
from unify.model import UnifyModel
from unify.retrieval import combined_similarity, latent_similarity, lexicon_similarity, top_dimensions
from unify.text import CaptionTokenizer


@torch.no_grad()
def encode_set(
    model: UnifyModel,
    data: VideoTextSet | FrameFolderDataset,
    tokenizer: CaptionTokenizer,
    batch_size: int = 128,
    num_workers: int = 2,
    precision: str = "bf16-mixed",
) -> dict[str, torch.Tensor]:
    """Latent and lexicon vectors of every video and caption of ``data``, ``batch_size`` pairs at a time (frame
    folders decoded by a ``DataLoader`` with ``num_workers`` workers; bf16 autocast on CUDA unless ``fp32``)."""
    import contextlib

    from unify.train import video_loader

    model.eval()
    device = next(model.parameters()).device
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda" and precision != "fp32"
        else contextlib.nullcontext()
    )
    chunks = [list(range(i, min(i + batch_size, len(data)))) for i in range(0, len(data), batch_size)]
    if isinstance(data, FrameFolderDataset):
        source = video_loader(data, chunks, num_workers)
    else:
        source = (data.batch(torch.tensor(rows)) for rows in chunks)
    out: dict[str, list[torch.Tensor]] = {"v_lat": [], "v_lex": [], "t_lat": [], "t_lex": []}
    for frames, captions, _ in source:
        ids, lengths = tokenizer.encode(captions)
        with autocast:
            encoded = model(frames.to(device), ids.to(device), lengths.to(device))
        for key, value in zip(("v_lat", "v_lex", "t_lat", "t_lex"), encoded):
            out[key].append(value.float().cpu())
    return {k: torch.cat(v) for k, v in out.items()}


def lexicon_precision_at_k(
    lexicon: torch.Tensor, concepts: list[list[str]], tokenizer: CaptionTokenizer, k: int = 5
) -> float:
    """Mean fraction of the top-k lexicon dimensions that are content words of the item's own caption."""
    tops = top_dimensions(lexicon, k)
    hits = []
    for row, words in zip(tops.tolist(), concepts):
        own = set(tokenizer.word_ids(words))
        hits.append(sum(d in own for d in row) / k)
    return float(sum(hits) / len(hits))


def concept_auc(lexicon: torch.Tensor, concepts: list[list[str]], word_id: int, word: str) -> float:
    """ROC AUC of one lexicon dimension as a detector of ``word`` among the items (ties count half);
    NaN when every item, or none, has the word."""
    has = torch.tensor([word in c for c in concepts])
    pos, neg = lexicon[has, word_id], lexicon[~has, word_id]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    wins = (pos[:, None] > neg[None, :]).float() + 0.5 * (pos[:, None] == neg[None, :]).float()
    return float(wins.mean())


def oracle_r1(concepts: list[list[str]], words: set[str]) -> float:
    """Expected t2v R@1 (%) of a ranker that knows every video's true concepts and scores a caption-video pair by
    the number of shared words drawn from ``words``, ties broken at random: how far the given words alone go on this
    test set (e.g. colours and shapes only, without the motions). It ignores which object does what, so a learned
    model that binds words to objects can pass it."""
    sets = [{w for w in c if w in words} for c in concepts]
    total = 0.0
    for i, query in enumerate(sets):
        scores = [len(query & other) for other in sets]
        best = max(scores)
        if scores[i] == best:
            total += 1.0 / scores.count(best)
    return 100.0 * total / len(sets)


def evaluate(
    model: UnifyModel,
    data: VideoTextSet,
    tokenizer: CaptionTokenizer,
    latent_weight: float = 0.5,
    word_groups: Mapping[str, Sequence[str]] | None = None,
    batch_size: int = 128,
) -> dict[str, dict[str, float]]:
    """Retrieval metrics (R@1/5/10, MdR, MnR, both directions) for latent, lexicon and combined scores, and the
    lexicon diagnostics (precision@5 of caption top dimensions, mean non-zeros per vector). With ``word_groups``
    (name -> words) also ``video_lexicon_auc``: per group, the mean :func:`concept_auc` of its words' video lexicon
    dimensions (0.5 = the branch cannot see the concept in the video)."""
    enc = encode_set(model, data, tokenizer, batch_size)
    s_lat = latent_similarity(enc["t_lat"], enc["v_lat"])
    s_lex = lexicon_similarity(enc["t_lex"], enc["v_lex"])
    result = {
        "latent": bidirectional_retrieval_metrics(s_lat),
        "lexicon": bidirectional_retrieval_metrics(s_lex),
        "combined": bidirectional_retrieval_metrics(combined_similarity(s_lat, s_lex, latent_weight)),
        "lexicon_stats": {
            "text_precision@5": lexicon_precision_at_k(enc["t_lex"], data.concepts, tokenizer, 5),
            "video_precision@5": lexicon_precision_at_k(enc["v_lex"], data.concepts, tokenizer, 5),
            "text_nnz": float((enc["t_lex"] > 0).sum(1).float().mean()),
            "video_nnz": float((enc["v_lex"] > 0).sum(1).float().mean()),
        },
    }
    if word_groups:
        result["video_lexicon_auc"] = {
            group: sum(concept_auc(enc["v_lex"], data.concepts, tokenizer.word_ids([w])[0], w) for w in words)
            / len(words)
            for group, words in word_groups.items()
        }
    return result
