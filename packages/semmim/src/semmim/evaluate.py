"""Evaluation: image-text retrieval (ITC ranking, then ITM re-ranking of the top candidates as in ALBEF), what the
wrong top-1 images get wrong, and zero-shot fine-grained probes (the colour or the shape of a named object)."""

from __future__ import annotations

import dataclasses

import torch

from paperlab.config import require
from paperlab.metrics import bidirectional_retrieval_metrics
from semmim.data import COLOURS, SHAPES, CaptionSet, SceneObject
from semmim.vlp import SemMIMModel

#: the attribute probes: attribute -> its values
PROBE_VALUES: dict[str, tuple[str, ...]] = {"colour": tuple(COLOURS), "shape": SHAPES}


@torch.no_grad()
def embed(model: SemMIMModel, data: CaptionSet, tokenizer, batch: int = 128):
    """``(image tokens, text tokens, attention, image emb, text emb)`` for every item of ``data``."""
    parts: list[tuple] = []
    for start in range(0, len(data), batch):
        images, captions = data.batch(torch.arange(start, min(start + batch, len(data))))
        ids, attention = tokenizer(captions)
        img, txt, ie, te = model.encode(images, ids, attention)
        parts.append((img, txt, attention, ie, te))
    return tuple(torch.cat([p[i] for p in parts]) for i in range(5))


@torch.no_grad()
def itm_scores(model: SemMIMModel, txt, img, attention, batch: int = 256) -> torch.Tensor:
    """Match log-odds ``logit[1] - logit[0]`` for aligned rows of text and image tokens: the order of the match
    probability ``softmax(logits)[1]``, without its saturation (in fp32 the probability is exactly 1.0 once the
    log-odds pass ~17, so confident candidates would tie)."""
    out = []
    for s in range(0, txt.shape[0], batch):
        logits = model.itm_logits(txt[s : s + batch], img[s : s + batch], attention[s : s + batch]).double()
        out.append(logits[:, 1] - logits[:, 0])
    return torch.cat(out)


def rerank(sim: torch.Tensor, top: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """Scores that put each row's ``top`` candidates ``(Q, k)`` first, ordered by ``score`` ``(Q, k)`` (ITM log-odds,
    any real), and keep the ITC order ``sim`` (cosines in [-1, 1]) below them, so ranks past k stay honest. In
    float64, so that shifting the ITM scores above the cosines merges none of them into ties."""
    score = score.double()
    lifted = 2.0 + score - score.min(dim=1, keepdim=True).values  # >= 2 > every cosine
    return sim.double().scatter_(1, top, lifted)


@torch.no_grad()
def itm_rerank(
    model: SemMIMModel, sim, txt, img, attention, rerank_k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """ALBEF's protocol on an ITC score matrix ``sim`` ``(texts, images)``: each query's top ``rerank_k``
    candidates re-ranked by the ITM score (:func:`rerank`). Returns ``(t2i (texts, images), i2t (images, texts))``
    scores; ``txt`` / ``attention`` are per text, ``img`` per image."""
    out = []
    for queries_are_texts, s in ((True, sim), (False, sim.T)):
        top = s.topk(min(rerank_k, s.shape[1]), dim=1).indices  # (queries, k)
        rows = torch.arange(s.shape[0]).unsqueeze(1).expand_as(top).reshape(-1)
        t_idx, i_idx = (rows, top.reshape(-1)) if queries_are_texts else (top.reshape(-1), rows)
        score = itm_scores(model, txt[t_idx], img[i_idx], attention[t_idx]).reshape(top.shape)
        out.append(rerank(s, top, score))
    return out[0], out[1]


@torch.no_grad()
def retrieval(model: SemMIMModel, data: CaptionSet, tokenizer, rerank_k: int = 8) -> dict[str, float]:
    """R@1/5/10 both ways (``t2i_``, ``i2t_``): ``itc_`` from embedding similarity, ``itm_`` after re-ranking each
    query's top ``rerank_k`` ITC candidates by the ITM score (the others keep their ITC order below them)."""
    model.eval()
    img, txt, attention, ie, te = embed(model, data, tokenizer)
    sim = te @ ie.T  # (texts, images)
    out = {f"itc_{k}": v for k, v in bidirectional_retrieval_metrics(sim.numpy()).items()}
    t2i, i2t = itm_rerank(model, sim, txt, img, attention, rerank_k)
    reranked = {"t2v": t2i, "v2t": i2t.T}
    out.update(
        {
            f"itm_{k}": v
            for k, v in bidirectional_retrieval_metrics(reranked["t2v"].numpy()).items()
            if k.startswith("t2v_")
        }
    )
    out.update(
        {
            f"itm_{k}": v
            for k, v in bidirectional_retrieval_metrics(reranked["v2t"].numpy()).items()
            if k.startswith("v2t_")
        }
    )
    if data.scenes and data.scenes[0]:
        top1 = reranked["t2v"].argmax(1).tolist()
        out.update({f"itm_t2i_err_{k}": v for k, v in error_kinds(top1, data).items()})
    return {k.replace("t2v", "t2i").replace("v2t", "i2t"): v for k, v in out.items()}


def _bag(scene: list[SceneObject], *fields: str) -> list[tuple[str, ...]]:
    """The scene's objects as a sorted list of their ``fields`` (a multiset, places ignored)."""
    return sorted(tuple(getattr(o, f) for f in fields) for o in scene)


def error_kinds(top1: list[int], data: CaptionSet) -> dict[str, float]:
    """What the wrong text-to-image top-1 answers get wrong, in % of all queries (query i's gold image is i):

    ``same``: the retrieved image has the same caption (an unavoidable tie); ``place``: the same objects (size,
    colour, shape) in other places; ``bind``: the same sizes, colours and shapes overall, paired differently (e.g. a
    blue circle and a red square for a red circle and a blue square); ``attr``: some other object."""
    counts = dict.fromkeys(("place", "bind", "attr", "same"), 0)
    fields = ("size", "colour", "shape")
    for query, hit in enumerate(top1):
        if hit == query:
            continue
        gold, got = data.scenes[query], data.scenes[hit]
        if data.captions[hit] == data.captions[query]:
            counts["same"] += 1
        elif _bag(gold, *fields) == _bag(got, *fields):
            counts["place"] += 1
        elif all(_bag(gold, f) == _bag(got, f) for f in fields):
            counts["bind"] += 1
        else:
            counts["attr"] += 1
    return {k: 100.0 * v / max(len(top1), 1) for k, v in counts.items()}


def attribute_variants(scene: list[SceneObject], which: int, attribute: str = "colour") -> list[str]:
    """The caption of ``scene`` once per value of ``attribute`` (``colour``: COLOURS order, ``shape``: SHAPES
    order) of object ``which``, the true value included; every other word unchanged."""
    values = PROBE_VALUES[attribute]
    return [
        " and ".join(
            (dataclasses.replace(o, **{attribute: value}) if j == which else o).phrase()
            for j, o in enumerate(scene)
        )
        for value in values
    ]


def colour_variants(scene: list[SceneObject], which: int) -> list[str]:
    """The caption of ``scene`` once per colour of object ``which`` (the true one included), in COLOURS order."""
    return attribute_variants(scene, which, "colour")


@torch.no_grad()
def attribute_probes(
    model: SemMIMModel, data: CaptionSet, tokenizer, attributes: tuple[str, ...] = ("colour", "shape")
) -> dict[str, float]:
    """Zero-shot fine-grained probes: for every object of every image and every attribute (colour, shape), rank
    the captions that differ only in that object's attribute by the ITM score; ``{attribute: accuracy (%)}`` of
    choosing the true value (chance 100 / number of values: 16.7 % for colour, 25 % for shape). Each batch of
    images is encoded once for all attributes."""
    for attribute in attributes:
        require(attribute in PROBE_VALUES, "attribute", attribute, f"one of {sorted(PROBE_VALUES)}")
    model.eval()
    correct, total = dict.fromkeys(attributes, 0), dict.fromkeys(attributes, 0)
    for start in range(0, len(data), 32):
        index = torch.arange(start, min(start + 32, len(data)))
        images, captions = data.batch(index)
        img = model.encode(images, *tokenizer(captions))[0]
        for attribute in attributes:
            values = list(PROBE_VALUES[attribute])
            variants, rows, truth = [], [], []
            for row, i in enumerate(index.tolist()):
                for which, obj in enumerate(data.scenes[i]):
                    variants += attribute_variants(data.scenes[i], which, attribute)
                    rows += [row] * len(values)
                    truth.append(values.index(getattr(obj, attribute)))
            ids, attention = tokenizer(variants)
            score = itm_scores(model, model.text(ids, attention), img[torch.tensor(rows)], attention)
            pred = score.reshape(-1, len(values)).argmax(1)
            correct[attribute] += int((pred == torch.tensor(truth)).sum())
            total[attribute] += len(truth)
    return {a: 100.0 * correct[a] / max(total[a], 1) for a in attributes}


def attribute_probe(model: SemMIMModel, data: CaptionSet, tokenizer, attribute: str = "colour") -> float:
    """One of :func:`attribute_probes`: accuracy (%) of the ``attribute`` probe."""
    return attribute_probes(model, data, tokenizer, (attribute,))[attribute]
