"""Ranking and text metrics shared by the packages.

Ranking metrics work on 1-based ranks of the (single) relevant item, which is how session-based
recommendation (HR/MRR/NDCG@K over the full item set) and cross-modal retrieval (R@K, MdR, MnR over a
similarity matrix whose diagonal holds the pairs) are scored. Ties never help the target: by default the rank
is its expectation over a uniformly random order of the candidates tied with it, ``1 + higher + ties / 2``, and
:func:`retrieval_metrics` counts R@K as the expected hit over that order (constant scores give chance, K / N);
``ties="pessimistic"`` counts every tie above the target, ``"optimistic"`` (the old rule: 1 + strictly higher)
none. A NaN score is an error. (RecBole and SR-GNN rank with ``topk``, which breaks ties by index: neither rule.)

Text metrics wrap well-kept libraries: ``sacrebleu`` (BLEU), ``rouge-score`` (ROUGE-L) and, for
captioning, ``pycocoevalcap`` (BLEU-4, METEOR, ROUGE-L, CIDEr as in the COCO caption server).
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

ArrayLike = Any  # numpy array or torch tensor


def _to_numpy(x: ArrayLike) -> np.ndarray:
    """A numpy array of ``x``; torch tensors keep float64 (scores that differ below fp32's step stay apart),
    other dtypes (bf16, fp16, ints) become fp32."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        x = (x if x.dtype == _torch_float64() else x.float()).numpy()
    return np.asarray(x)


def _torch_float64() -> Any:
    import torch

    return torch.float64


# ----------------------------------------------------------------------------------------------- ranking


TIES = ("average", "pessimistic", "optimistic")


def rank_counts(
    scores: ArrayLike, targets: ArrayLike, mask: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(higher, ties)`` per row of ``scores`` (``(n, num_candidates)``): how many candidates score strictly above
    ``targets[i]`` and how many others score exactly the same. ``mask`` (same shape, True = excluded, e.g. the
    padding item) removes candidates; the target itself must not be masked. ``-inf`` is a score (a candidate a
    re-ranker left out); NaN raises ``ValueError`` naming the first bad row."""
    s = _to_numpy(scores).astype(np.float64)
    t = _to_numpy(targets).astype(np.int64).reshape(-1)
    if s.ndim != 2 or s.shape[0] != t.shape[0]:
        raise ValueError(
            f"scores must be (n, candidates) with n == len(targets); got {s.shape} and {t.shape}"
        )
    if t.min(initial=0) < 0 or t.max(initial=0) >= s.shape[1]:
        raise ValueError(f"targets must lie in [0, {s.shape[1]}), got range [{t.min()}, {t.max()}]")
    keep = np.ones(s.shape, dtype=bool)
    if mask is not None:
        m = _to_numpy(mask).astype(bool)
        if m[np.arange(len(t)), t].any():
            raise ValueError("a target is masked out of its own ranking")
        keep = ~m
    nan = np.isnan(s) & keep
    if nan.any():
        row = int(np.flatnonzero(nan.any(axis=1))[0])
        raise ValueError(f"scores row {row}: NaN ({int(nan.sum())} in all); expected numbers to rank")
    target_scores = s[np.arange(len(t)), t][:, None]
    higher = ((s > target_scores) & keep).sum(axis=1)
    ties = ((s == target_scores) & keep).sum(axis=1) - 1
    return higher, ties


def rank_of_target(
    scores: ArrayLike, targets: ArrayLike, mask: ArrayLike | None = None, ties: str = "average"
) -> np.ndarray:
    """1-based rank of ``targets[i]`` among ``scores[i]`` (shape ``(n, num_candidates)``; ``mask`` as in
    :func:`rank_counts`). ``ties``: ``average`` (default) = ``1 + higher + ties / 2``, the expected rank when the
    tied candidates are in random order; ``pessimistic`` = ``1 + higher + ties``; ``optimistic`` = ``1 + higher``.
    Without ties all three are ``1 + higher``."""
    if ties not in TIES:
        raise ValueError(f"ties={ties!r}: expected one of {TIES}")
    higher, tied = rank_counts(scores, targets, mask)
    if ties == "optimistic":
        return 1 + higher
    if ties == "pessimistic":
        return 1 + higher + tied
    return 1.0 + higher + tied / 2.0


def expected_hit_rate(higher: ArrayLike, ties: ArrayLike, k: int) -> float:
    """HR@K over a uniformly random order of each target's ties: the target sits at ``higher + 1 .. higher + ties
    + 1`` with equal chance, so a row counts ``#{those ranks <= k} / (ties + 1)``."""
    h = np.asarray(higher, dtype=np.float64)
    t = np.asarray(ties, dtype=np.float64)
    if h.size == 0:
        return 0.0
    inside = np.clip(k - h, 0.0, t + 1.0)
    return float(np.mean(inside / (t + 1.0)))


def hit_rate_at_k(ranks: ArrayLike, k: int) -> float:
    """HR@K (= Recall@K, = SR-GNN's P@K with one target): fraction of ranks <= k."""
    r = _to_numpy(ranks)
    return float(np.mean(r <= k)) if r.size else 0.0


recall_at_k = hit_rate_at_k


def mrr_at_k(ranks: ArrayLike, k: int) -> float:
    """MRR@K: mean of 1/rank where rank <= k, else 0."""
    r = _to_numpy(ranks).astype(np.float64)
    return float(np.mean(np.where(r <= k, 1.0 / r, 0.0))) if r.size else 0.0


def ndcg_at_k(ranks: ArrayLike, k: int) -> float:
    """NDCG@K with one relevant item: mean of 1/log2(rank + 1) where rank <= k, else 0 (IDCG = 1)."""
    r = _to_numpy(ranks).astype(np.float64)
    return float(np.mean(np.where(r <= k, 1.0 / np.log2(r + 1.0), 0.0))) if r.size else 0.0


def ndcg_graded(relevance_in_ranked_order: Sequence[float], k: int) -> float:
    """NDCG@K for graded relevance of one ranked list: DCG = sum (2^rel - 1) / log2(i + 1), i 1-based,
    divided by the DCG of the ideal order."""
    rel = np.asarray(relevance_in_ranked_order, dtype=np.float64)
    discounts = 1.0 / np.log2(np.arange(2, rel.size + 2))
    dcg = float(np.sum((2.0 ** rel[:k] - 1.0) * discounts[:k]))
    ideal = np.sort(rel)[::-1]
    idcg = float(np.sum((2.0 ** ideal[:k] - 1.0) * discounts[:k]))
    return dcg / idcg if idcg > 0 else 0.0


def ranking_metrics(ranks: ArrayLike, ks: Sequence[int] = (10, 20)) -> dict[str, float]:
    """``{"HR@k", "MRR@k", "NDCG@k"}`` for every k, as fractions in [0, 1]."""
    out: dict[str, float] = {}
    for k in ks:
        out[f"HR@{k}"] = hit_rate_at_k(ranks, k)
        out[f"MRR@{k}"] = mrr_at_k(ranks, k)
        out[f"NDCG@{k}"] = ndcg_at_k(ranks, k)
    return out


def _square(similarity: ArrayLike) -> np.ndarray:
    s = _to_numpy(similarity)
    if s.ndim != 2 or s.shape[0] != s.shape[1]:
        raise ValueError(f"similarity must be square (query i matches item i), got shape {s.shape}")
    return s


def retrieval_ranks(similarity: ArrayLike, ties: str = "average") -> np.ndarray:
    """Ranks of the diagonal in a square ``(queries, gallery)`` similarity matrix: query i matches item i
    (``ties`` as in :func:`rank_of_target`)."""
    s = _square(similarity)
    return rank_of_target(s, np.arange(s.shape[0]), ties=ties)


def retrieval_metrics(
    similarity: ArrayLike, ks: Sequence[int] = (1, 5, 10), prefix: str = ""
) -> dict[str, float]:
    """R@K (in percent, as retrieval papers report), MdR and MnR of the diagonal ranks of ``similarity``; ties
    never help: R@K is the expected hit over a random order of the tied items, MdR / MnR use the expected rank.

    For text-to-video pass ``sim[text, video]``; for video-to-text pass its transpose, or use
    :func:`bidirectional_retrieval_metrics`.
    """
    s = _square(similarity)
    higher, ties = rank_counts(s, np.arange(s.shape[0]))
    ranks = 1.0 + higher + ties / 2.0
    out = {f"{prefix}R@{k}": 100.0 * expected_hit_rate(higher, ties, k) for k in ks}
    out[f"{prefix}MdR"] = float(np.median(ranks))
    out[f"{prefix}MnR"] = float(np.mean(ranks))
    return out


def bidirectional_retrieval_metrics(
    sim_text_to_item: ArrayLike, ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    """:func:`retrieval_metrics` both ways: keys prefixed ``t2v_`` (rows are texts) and ``v2t_``."""
    s = _to_numpy(sim_text_to_item)
    return {**retrieval_metrics(s, ks, "t2v_"), **retrieval_metrics(s.T, ks, "v2t_")}


# ----------------------------------------------------------------------------------------------- text


def bleu(
    predictions: Sequence[str], references: Sequence[Sequence[str]] | Sequence[str], tokenize: str = "13a"
) -> float:
    """Corpus BLEU (0-100) with sacrebleu. ``references[i]`` is one string or a list of strings for
    prediction i."""
    import sacrebleu

    refs = [[r] if isinstance(r, str) else list(r) for r in references]
    if len(refs) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions but {len(refs)} reference sets")
    width = max(len(r) for r in refs) if refs else 1
    streams = [[r[i] if i < len(r) else r[0] for r in refs] for i in range(width)]
    return float(sacrebleu.corpus_bleu(list(predictions), streams, tokenize=tokenize).score)


def rouge_l(predictions: Sequence[str], references: Sequence[Sequence[str]] | Sequence[str]) -> float:
    """Mean ROUGE-L F-measure (0-1) with ``rouge-score``; with several references the best one counts."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    refs = [[r] if isinstance(r, str) else list(r) for r in references]
    if len(refs) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions but {len(refs)} reference sets")
    if not refs:
        return 0.0
    scores = [
        max(scorer.score(ref, pred)["rougeL"].fmeasure for ref in rs) for pred, rs in zip(predictions, refs)
    ]
    return float(np.mean(scores))


_PUNCT = re.compile(r"[^\w\s]", flags=re.UNICODE)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD / LongBench answer normalisation: lowercase, drop punctuation and the articles a/an/the, squeeze
    whitespace."""
    text = _PUNCT.sub(" ", text.lower())
    return " ".join(_ARTICLES.sub(" ", text).split())


def qa_f1(prediction: str, answers: Sequence[str] | str) -> float:
    """Token-level F1 (0-1) of ``prediction`` against the best of ``answers`` after :func:`normalize_answer`
    (the SQuAD / LongBench ``qa_f1_score``)."""
    from collections import Counter

    refs = [answers] if isinstance(answers, str) else list(answers)
    if not refs:
        raise ValueError("qa_f1: no reference answers")
    pred = normalize_answer(prediction).split()
    best = 0.0
    for ref in refs:
        gold = normalize_answer(ref).split()
        common = sum((Counter(pred) & Counter(gold)).values())
        if common:
            precision, recall = common / len(pred), common / len(gold)
            best = max(best, 2 * precision * recall / (precision + recall))
        elif not pred and not gold:
            best = 1.0
    return best


def exact_match(prediction: str, answers: Sequence[str] | str) -> float:
    """1.0 if ``prediction`` equals one of ``answers`` after :func:`normalize_answer`, else 0.0."""
    refs = [answers] if isinstance(answers, str) else list(answers)
    return float(any(normalize_answer(prediction) == normalize_answer(r) for r in refs))


def caption_tokenize(text: str) -> str:
    """Lowercase and drop punctuation (what COCO's PTB tokenizer does for scoring, without Java)."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def coco_caption_scores(
    predictions: Mapping[str, str] | Sequence[str],
    references: Mapping[str, Sequence[str]] | Sequence[Sequence[str]],
    metrics: Sequence[str] = ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr"),
) -> dict[str, float | None]:
    """COCO caption metrics with ``pycocoevalcap`` (BLEU-4, METEOR, ROUGE-L, CIDEr; values as the library
    returns them, BLEU/METEOR/ROUGE-L in [0, 1], CIDEr unbounded).

    METEOR runs the library's Java jar; without ``java`` on PATH it is reported as None with a warning. An
    empty prediction is scored as a single placeholder token that matches nothing.
    """
    if isinstance(predictions, Mapping):
        keys = list(predictions)
        preds = {str(k): predictions[k] for k in keys}
        refs = {str(k): list(references[k]) for k in keys}  # type: ignore[index]
    else:
        if len(predictions) != len(references):
            raise ValueError(f"{len(predictions)} predictions but {len(references)} reference sets")
        preds = {str(i): p for i, p in enumerate(predictions)}
        refs = {str(i): list(r) for i, r in enumerate(references)}  # type: ignore[arg-type]
    if not preds:
        raise ValueError("coco_caption_scores: no predictions")
    gts = {k: [caption_tokenize(r) or "<empty>" for r in v] for k, v in refs.items()}
    res = {k: [caption_tokenize(v) or "<empty-prediction>"] for k, v in preds.items()}
    out: dict[str, float | None] = {}
    for name in metrics:
        if name == "BLEU-4":
            from pycocoevalcap.bleu.bleu import Bleu

            out[name] = float(Bleu(4).compute_score(gts, res, verbose=0)[0][3])
        elif name == "METEOR":
            if shutil.which("java") is None:
                log.warning("METEOR needs Java on PATH (pycocoevalcap runs a jar); reporting None")
                out[name] = None
                continue
            from pycocoevalcap.meteor.meteor import Meteor

            out[name] = float(Meteor().compute_score(gts, res)[0])
        elif name == "ROUGE-L":
            from pycocoevalcap.rouge.rouge import Rouge

            out[name] = float(Rouge().compute_score(gts, res)[0])
        elif name == "CIDEr":
            from pycocoevalcap.cider.cider import Cider

            out[name] = float(Cider().compute_score(gts, res)[0])
        else:
            raise ValueError(f"unknown caption metric {name!r}; choose from BLEU-4, METEOR, ROUGE-L, CIDEr")
    return out
