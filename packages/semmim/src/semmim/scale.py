"""Paper-scale estimates: ``python -m paperlab.dryrun semmim experiment=paper`` (``make semmim-paper-dry``).

Every paper experiment of the package on the GPU its config names: the SemMIM pretraining step of
``conf/experiment/paper.yaml`` (ViT-B/16 + BERT-base split 6 text + 6 fusion layers, the momentum copy, the
65,536-feature queues; ITC + ITM with hard negatives + MLM + text-guided semantic MIM + the agreement loss on a
second view) and the four fine-tunings of ``conf/task/{coco,flickr}_retrieval, vqa, coco_caption`` (each from
``conf/finetune_paper.yaml``): one training step at the per-GPU batch, 224 px and 30 tokens, under the configured
precision, and one evaluation step (retrieval: ITM re-ranking of ``rerank_k`` candidates for a batch of queries;
VQA: a batch of answers; captioning: a beam-search step of the decoder). The model is the package's own
(:class:`semmim.vlp.SemMIMModel` through ``ModelShape.builder``), BERT-base's shape built here from
``transformers.BertConfig`` (bert-base-uncased's config.json: 768 wide, 12 heads, 3072 FFN, 30,522 words).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from paperlab.config import compose, from_config
from paperlab.dryrun import DryRunSpec, ModelShape

BERT_VOCAB = 30522  # bert-base-uncased
FINETUNE_TASKS = ("coco_retrieval", "flickr_retrieval", "vqa", "coco_caption")
SPECIALS = (0, 101, 102, 103, 100)  # [PAD] [CLS] [SEP] [MASK] [UNK] of bert-base-uncased


def _offline(model_cfg):
    """The config's model with BERT built from its sizes (no hub) and no weight download."""
    text = "bert" if model_cfg.text != "tiny" else "tiny"
    return dataclasses.replace(model_cfg, text=text, pretrained=False)


def _vocab(model_cfg) -> int:
    return BERT_VOCAB if model_cfg.text != "tiny" else 23


def _pretrain_model(model_cfg, loss_cfg):
    from semmim.vlp import SemMIMModel

    return SemMIMModel(_offline(model_cfg), loss_cfg, _vocab(model_cfg), SPECIALS, 103)


def _inputs(model_cfg, batch: int, vocab: int) -> dict[str, Any]:
    s, length = model_cfg.image_size, model_cfg.max_text_len
    return {
        "images": torch.rand(batch, 3, s, s),
        "ids": torch.randint(5, vocab, (batch, length)),
        "attention": torch.ones(batch, length, dtype=torch.bool),
    }


def _itm_eval(model_cfg, vlp, queries: int, rerank_k: int) -> None:
    """ALBEF's retrieval evaluation step: ``queries`` texts re-ranked against their top ``rerank_k`` images by ITM
    (the fused pairs of one query batch at once; image / text tokens as the stored embeddings)."""
    b = _inputs(model_cfg, queries, _vocab(model_cfg))
    img, txt, _, _ = vlp.encode(b["images"], b["ids"], b["attention"])
    pairs = queries * rerank_k
    img = img[:1].expand(pairs, -1, -1)
    txt = txt.repeat_interleave(rerank_k, 0)
    vlp.itm_logits(txt, img, b["attention"].repeat_interleave(rerank_k, 0))


def pretrain_spec(cfg) -> DryRunSpec:
    from semmim.experiment import ExperimentConfig, method_loss

    exp = from_config(ExperimentConfig, cfg)
    loss = method_loss(exp.loss, exp.methods[0])
    m = exp.model

    def build(dtype, scale):
        return _pretrain_model(m, loss).to(dtype)

    def batch(model, batch_size):
        b = _inputs(m, batch_size, _vocab(m))
        # the second view (semmim.views, made in the data pipeline) enters the step as a tensor of the same size
        b["view2"] = torch.rand_like(b["images"]) if loss.mim.enabled and loss.mim.agreement else None
        if b["view2"] is not None and loss.mim.local_crops:  # multi-crop: the local crops at their own size
            side = loss.mim.local_crop_size
            b["local_views"] = [torch.rand(batch_size, 3, side, side) for _ in range(loss.mim.local_crops)]
        return b

    return DryRunSpec(
        label=f"{exp.name}: SemMIM pretraining ({exp.methods[0]})",
        model=_shape(m, "pretraining", build),
        scale=exp.scale,
        batch_size=exp.train.batch,
        seq_len=m.max_text_len,
        batch=batch,
        loss=lambda model, b: model(**b)["loss"],
        eval_batch_size=16,
        eval_step=lambda model, spec: _itm_eval(m, model, spec.eval_batch_size, exp.rerank_k),
    )


def finetune_spec(task: str, overrides: list[str] = ()) -> DryRunSpec:
    from semmim.finetune import FinetuneConfig, build_vlp
    from semmim.finetune_models import CaptionDecoder, RetrievalFinetuner, VQAClassifier

    ft = from_config(FinetuneConfig, compose("semmim", [f"task={task}", *overrides], config_name="finetune"))
    m, t = ft.model, ft.task
    vocab = _vocab(m)

    class _Tok:  # the tokenizer fields build_vlp and the heads read
        vocab_size, special_ids, mask_id = vocab, SPECIALS, 103
        max_len, cls_id, sep_id, pad_id = m.max_text_len, 101, 102, 0

    def build(dtype, scale):
        vlp = build_vlp(dataclasses.replace(ft, model=_offline(m)), _Tok)
        if t.kind == "retrieval":
            return RetrievalFinetuner(vlp).to(dtype)
        if t.kind == "vqa":
            return VQAClassifier(vlp, t.answers).to(dtype)
        d = t.decoder
        return CaptionDecoder(vlp, d.width, d.depth, d.heads, m.max_text_len, 101, 102, 0).to(dtype)

    def batch(model, batch_size):
        b = _inputs(m, batch_size, vocab)
        if t.kind == "retrieval":
            b["image_ids"] = torch.arange(batch_size)
        elif t.kind == "vqa":
            b["targets"] = torch.rand(batch_size, t.answers)
        return b

    def evaluate(model, spec):
        n = spec.eval_batch_size
        if t.kind == "retrieval":
            _itm_eval(m, model.vlp, n, t.rerank_k)
        elif t.kind == "vqa":
            b = _inputs(m, n, vocab)
            model.logits(b["images"], b["ids"], b["attention"])
        else:  # one decoding step of every beam over the full caption length
            memory = model.image_memory(_inputs(m, n, vocab)["images"])
            memory = memory.repeat_interleave(t.decoder.beams, 0)
            model.logits(memory, torch.randint(5, vocab, (n * t.decoder.beams, m.max_text_len)))

    return DryRunSpec(
        label=f"finetune {task} ({t.kind})",
        model=_shape(m, f"fine-tuning {task}", build),
        scale=ft.scale,
        batch_size=ft.train.batch,
        seq_len=m.max_text_len,
        batch=batch,
        loss=lambda model, b: model(**b)["loss"],
        eval_batch_size=16 if t.kind == "retrieval" else ft.train.batch,
        eval_step=evaluate,
    )


def _shape(m, what: str, builder=None) -> ModelShape:
    return ModelShape(
        name=f"SemMIM {m.vision} + {m.text} ({m.text_depth} text + {m.fusion_depth} fusion layers)",
        model_type="custom",
        config={"vocab_size": _vocab(m), **dataclasses.asdict(m)},
        source="conf/experiment/paper.yaml; ALBEF configs/config_bert.json (fusion_layer 6); " + what,
        builder=builder,
    )


def dry_run_specs(cfg) -> list[DryRunSpec]:
    """The pretraining step of ``cfg`` (a composed ``semmim`` experiment) and, for ``experiment=paper``, every
    paper fine-tuning task."""
    specs = [pretrain_spec(cfg)]
    if cfg.name == "paper":
        specs += [finetune_spec(task) for task in FINETUNE_TASKS]
    return specs
