"""One runner per downstream task: build the task model around the pretrained SemMIM model, score it before
fine-tuning (or a baseline), fine-tune with :func:`semmim.train.fit` (checkpointed every ``train.checkpoint_every``
steps and resumed from there, :func:`finetune_checkpoint`), score it again. Each returns
``{"rows": table rows, "metrics": {...}, "history": logged losses, "train": the schedule used}``."""

from __future__ import annotations

import dataclasses
import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from paperlab.io import derived_key
from paperlab.metrics import coco_caption_scores, hit_rate_at_k
from paperlab.report import results_dir
from semmim.data import CaptionSet
from semmim.evaluate import itm_rerank, retrieval
from semmim.finetune_data import (
    CaptionImages,
    VQASet,
    answer_vocabulary,
    item_batches,
    soft_targets,
    vqa_accuracy,
)
from semmim.finetune_models import CaptionDecoder, RetrievalFinetuner, VQAClassifier
from semmim.model import encode_image
from semmim.train import TrainConfig, fit
from semmim.vlp import SemMIMModel

if TYPE_CHECKING:
    from semmim.finetune import FinetuneConfig

CAPTION_METRICS = ("BLEU-4", "ROUGE-L", "CIDEr")


@dataclass
class TaskData:
    train: CaptionSet | CaptionImages | VQASet
    test: CaptionSet | CaptionImages | VQASet
    tokenizer: object
    train_images: (
        torch.Tensor
    )  # image id per training item: captions of one image are ITC positives of each other
    test_images: torch.Tensor  # image id per test item: captions of one image are one prediction's references


def schedule(cfg: FinetuneConfig, items: int) -> TrainConfig:
    """``cfg.train``, with steps and warm-up from ``task.epochs`` / ``task.warmup_epochs`` when set (batch per GPU
    x ``WORLD_SIZE`` items per step)."""
    if not cfg.task.epochs:
        return cfg.train
    per_step = cfg.train.batch * int(os.environ.get("WORLD_SIZE", "1"))
    steps = max(2, math.ceil(cfg.task.epochs * items / per_step))
    warmup = min(steps - 1, math.ceil(cfg.task.warmup_epochs * items / per_step))
    return dataclasses.replace(cfg.train, steps=steps, warmup=warmup)


def head_groups(model: torch.nn.Module, cfg: FinetuneConfig) -> list[dict]:
    """AdamW groups: weight decay on matrices only; parameters outside ``vlp`` (the new head or decoder) at
    ``train.lr x task.head_lr_mult``."""
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups.setdefault((name.startswith("vlp."), p.ndim > 1), []).append(p)
    return [
        {
            "params": params,
            "weight_decay": cfg.train.weight_decay if decay else 0.0,
            "lr": cfg.train.lr * (1.0 if backbone else cfg.task.head_lr_mult),
        }
        for (backbone, decay), params in groups.items()
    ]


def finetune_checkpoint(cfg: FinetuneConfig, train: TrainConfig) -> Path | None:
    """With ``train.checkpoint_every``: the checkpoint the fine-tuning saves to (atomically, every N steps) and
    resumes from, ``results/semmim/finetune_<task>/checkpoint-<key>.pt``, keyed by every setting and the init
    weights' and task files' path, size and modification time (:func:`paperlab.io.derived_key`)."""
    if not train.checkpoint_every:
        return None
    settings = dataclasses.asdict(cfg)
    skip = ("checkpoint_every", "workers")
    settings["train"] = {k: v for k, v in dataclasses.asdict(train).items() if k not in skip}
    files = [cfg.task.train_file, cfg.task.test_file] if cfg.task.source == "files" else []
    files += [cfg.init] if cfg.init not in ("", "scratch") else []
    key = derived_key(settings, files, drop=("progress",))
    return results_dir("semmim", f"finetune_{cfg.task.name}") / f"checkpoint-{key}.pt"


def _fit(model, cfg: FinetuneConfig, train: TrainConfig, inputs, device, after_step=None) -> list[dict]:
    history = fit(
        model,
        train,
        inputs,
        after_step=after_step,
        param_groups=head_groups(model, cfg),
        checkpoint=finetune_checkpoint(cfg, train),
        progress=cfg.progress,
        description=f"finetune {cfg.task.name}",
        device=device,
        precision=cfg.scale.precision,
    )
    model.to("cpu")
    return history


# ----------------------------------------------------------------------------------------------- retrieval
RETRIEVAL_COLUMNS = (
    "itm_t2i_R@1",
    "itm_t2i_R@5",
    "itm_t2i_R@10",
    "itm_i2t_R@1",
    "itm_i2t_R@5",
    "itm_i2t_R@10",
)


def _first_rows(groups: torch.Tensor) -> torch.Tensor:
    """The first row of every group id ``0 .. G-1``, in id order."""
    first = torch.full((int(groups.max()) + 1,), -1, dtype=torch.long)
    for row, g in reversed(list(enumerate(groups.tolist()))):
        first[g] = row
    return first


def grouped_ranks(sim: torch.Tensor, groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """1-based ranks for a ``(texts, images)`` score matrix where text t describes image ``groups[t]``: text to
    image, the rank of its image; image to text, the best rank among its captions (COCO / Flickr30K protocol,
    as ALBEF's ``itm_eval``); rank = 1 + the strictly higher scores + half the other items tied with it (the
    expected rank in a random order of the ties, as :func:`paperlab.metrics.rank_of_target`: ties never help)."""
    target = sim.gather(1, groups[:, None])
    t2i = 1 + (sim > target).sum(1) + ((sim == target).sum(1) - 1) / 2
    own = groups[None, :] == torch.arange(sim.shape[1])[:, None]  # (images, texts)
    best = sim.T.masked_fill(~own, float("-inf")).max(1, keepdim=True).values
    others_tied = ((best == sim.T) & ~own).sum(1)
    return t2i, 1 + (best < sim.T).sum(1) + others_tied / 2


@torch.no_grad()
def grouped_retrieval(model: SemMIMModel, data, groups: torch.Tensor, tokenizer, rerank_k: int) -> dict:
    """R@1/5/10 both ways over distinct images (rows with the same ``groups`` id are captions of one image): ITC
    ranking (``itc_``) and the top ``rerank_k`` re-ranked by ITM (``itm_``), as :func:`semmim.evaluate.retrieval`
    but with every caption of an image counting as its match (5 per image in COCO / Flickr30K)."""
    model.eval()
    first = _first_rows(groups)
    img = torch.cat([encode_image(model.vision, data.batch(rows)[0]) for rows in first.split(128)])
    txt, att = [], []
    for rows in torch.arange(len(data)).split(128):
        ids, attention = tokenizer([data.captions[i] for i in rows.tolist()])
        txt.append(model.text(ids, attention))
        att.append(attention)
    txt, att = torch.cat(txt), torch.cat(att)
    sim = (
        F.normalize(model.text_proj(txt[:, 0]), dim=-1) @ F.normalize(model.vision_proj(img[:, 0]), dim=-1).T
    )
    t2i, i2t = itm_rerank(model, sim, txt, img, att, rerank_k)
    out = {}
    for prefix, t2i_sim, i2t_sim in (("itc", sim, sim), ("itm", t2i, i2t.T)):
        ranks = {"t2i": grouped_ranks(t2i_sim, groups)[0], "i2t": grouped_ranks(i2t_sim, groups)[1]}
        for way, r in ranks.items():
            out.update({f"{prefix}_{way}_R@{k}": 100.0 * hit_rate_at_k(r.numpy(), k) for k in (1, 5, 10)})
    return out


def run_retrieval(cfg: FinetuneConfig, data: TaskData, vlp: SemMIMModel, device) -> dict:
    """ALBEF's retrieval fine-tuning (:class:`RetrievalFinetuner`), scored before (the pretrained model,
    zero-shot) and after by :func:`semmim.evaluate.retrieval`, or by :func:`grouped_retrieval` when test images
    have several captions."""
    tok, k = data.tokenizer, cfg.task.rerank_k
    distinct = len(set(data.test_images.tolist())) == len(data.test_images)

    def evaluate() -> dict:
        if distinct:
            return retrieval(vlp, data.test, tok, k)
        return grouped_retrieval(vlp, data.test, data.test_images, tok, k)

    before = evaluate()
    model = RetrievalFinetuner(vlp)
    train = schedule(cfg, len(data.train))

    batches = item_batches(data.train, train.batch, train.steps, train.workers)

    def inputs() -> tuple:
        images, index = next(batches)
        ids, attention = tok([data.train.captions[i] for i in index.tolist()])
        return images.to(device), ids.to(device), attention.to(device), data.train_images[index].to(device)

    history = _fit(model, cfg, train, inputs, device, after_step=vlp.ema_update)
    after = evaluate()
    rows = [
        {"model": "before fine-tuning (init)", **{c: before[c] for c in RETRIEVAL_COLUMNS}},
        {"model": "fine-tuned", **{c: after[c] for c in RETRIEVAL_COLUMNS}},
    ]
    return {
        "rows": rows,
        "metrics": {"pretrained": before, "finetuned": after},
        "history": history,
        "train": train,
    }


# ----------------------------------------------------------------------------------------------- VQA
def question_type(question: str) -> str:
    """The first two words (VQA v2 groups questions by their opening words)."""
    return " ".join(question.split()[:2])


@torch.no_grad()
def predict_answers(model: VQAClassifier, data: VQASet, tokenizer, vocabulary: list[str], batch: int = 128):
    """The top-scoring vocabulary answer of every question."""
    model.eval()
    out = []
    for start in range(0, len(data), batch):
        images, questions, _ = data.batch(torch.arange(start, min(start + batch, len(data))))
        out += [vocabulary[j] for j in model.logits(images, *tokenizer(questions)).argmax(1).tolist()]
    return out


def prior_baselines(train: VQASet, test: VQASet) -> dict[str, list[str]]:
    """Blind baselines' predictions: the most frequent training answer for every question (``majority``), and per
    question type (``type prior``)."""
    majority = answer_vocabulary(train.answers, 1)[0]
    by_type: dict[str, Counter] = {}
    for question, answers in zip(train.questions, train.answers, strict=True):
        by_type.setdefault(question_type(question), Counter()).update(answers)
    prior = {t: sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] for t, c in by_type.items()}
    return {
        "majority answer": [majority] * len(test),
        "question-type prior": [prior.get(question_type(q), majority) for q in test.questions],
    }


def _vqa_row(name: str, predictions: list[str], test: VQASet) -> dict:
    row = {"model": name, "VQA acc": vqa_accuracy(predictions, test.answers)}
    for t in sorted({question_type(q) for q in test.questions}):
        keep = [i for i, q in enumerate(test.questions) if question_type(q) == t]
        row[t] = vqa_accuracy([predictions[i] for i in keep], [test.answers[i] for i in keep])
    return row


def run_vqa(cfg: FinetuneConfig, data: TaskData, vlp: SemMIMModel, device) -> dict:
    """Answer classification (:class:`VQAClassifier`) over the ``task.answers`` most frequent training answers,
    scored by VQA accuracy against the blind baselines of :func:`prior_baselines`."""
    tok, train_set, test = data.tokenizer, data.train, data.test
    vocabulary = answer_vocabulary(train_set.answers, cfg.task.answers)
    targets = soft_targets(train_set.answers, vocabulary)
    model = VQAClassifier(vlp, len(vocabulary))
    train = schedule(cfg, len(train_set))

    batches = item_batches(train_set, train.batch, train.steps, train.workers)

    def inputs() -> tuple:
        images, index = next(batches)
        ids, attention = tok([train_set.questions[i] for i in index.tolist()])
        return images.to(device), ids.to(device), attention.to(device), targets[index].to(device)

    history = _fit(model, cfg, train, inputs, device)
    rows = [_vqa_row(name, pred, test) for name, pred in prior_baselines(train_set, test).items()]
    rows.append(_vqa_row("fine-tuned", predict_answers(model, test, tok, vocabulary), test))
    metrics = {row["model"]: row for row in rows} | {"answers": len(vocabulary)}
    return {"rows": rows, "metrics": metrics, "history": history, "train": train}


# ----------------------------------------------------------------------------------------------- captioning
def decode(tokenizer, ids: list[int]) -> str:
    """Caption text of token ids (word tokenizer or hub tokenizer)."""
    if hasattr(tokenizer, "words"):
        return " ".join(tokenizer.words[i] for i in ids)
    return tokenizer.tok.decode(ids, skip_special_tokens=True)


@torch.no_grad()
def caption_scores(model: CaptionDecoder, data, groups: torch.Tensor, tokenizer, beams: int) -> dict:
    """BLEU-4, ROUGE-L, CIDEr (:func:`paperlab.metrics.coco_caption_scores`, pycocoevalcap) of one generated caption
    per distinct test image (rows with the same ``groups`` id) against all of its captions; plus two examples."""
    model.eval()
    refs: dict[int, list[str]] = {}
    for row, g in enumerate(groups.tolist()):
        refs.setdefault(g, []).append(data.captions[row])
    first = _first_rows(groups)
    preds: dict[int, str] = {}
    for chunk in torch.arange(len(first)).split(64):
        images, _ = data.batch(first[chunk])
        for g, ids in zip(chunk.tolist(), model.generate(images, tokenizer.max_len, beams), strict=True):
            preds[g] = decode(tokenizer, ids)
    scores = coco_caption_scores(preds, refs, CAPTION_METRICS)
    return {
        **scores,
        "examples": [{"generated": preds[g], "reference": refs[g][0]} for g in (0, 1) if g in preds],
    }


def run_caption(cfg: FinetuneConfig, data: TaskData, vlp: SemMIMModel, device) -> dict:
    """A caption decoder on the pretrained image encoder (:class:`CaptionDecoder`), teacher-forced, scored before
    (untrained decoder) and after fine-tuning."""
    tok, d = data.tokenizer, cfg.task.decoder
    model = CaptionDecoder(vlp, d.width, d.depth, d.heads, tok.max_len, tok.cls_id, tok.sep_id, tok.pad_id)
    train = schedule(cfg, len(data.train))
    before = caption_scores(model, data.test, data.test_images, tok, d.beams)

    batches = item_batches(data.train, train.batch, train.steps, train.workers)

    def inputs() -> tuple:
        images, index = next(batches)
        ids, attention = tok([data.train.captions[i] for i in index.tolist()])
        return images.to(device), ids.to(device), attention.to(device)

    history = _fit(model, cfg, train, inputs, device)
    after = caption_scores(model, data.test, data.test_images, tok, d.beams)
    rows = [
        {"model": "untrained decoder", **{m: before[m] for m in CAPTION_METRICS}},
        {"model": "fine-tuned", **{m: after[m] for m in CAPTION_METRICS}},
    ]
    metrics = {"untrained": before, "finetuned": after, "embedding_from_text": model.embedding_from_text}
    return {"rows": rows, "metrics": metrics, "history": history, "train": train}


RUNNERS = {"retrieval": run_retrieval, "vqa": run_vqa, "caption": run_caption}
