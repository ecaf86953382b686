"""Paper-scale estimates for ``python -m paperlab.dryrun unify experiment=<exp>_paper`` (``make unify-paper-dry``).

Each paper config's UNIFY model is built at its real shape by the package's own code (:func:`unify.model.build_model`:
open_clip's ViT-B/32 or B/16 tower with QuickGELU for the OpenAI weights, the shared stem, both tops, the
CLIP4Clip temporal transformer, the two 49,408-way lexicon heads), under the meta device and then fake tensors
(``paperlab.dryrun``): nothing is downloaded or allocated. One training step is the ``unify`` variant's loss in
stage 2 (every term: latent and lexicon InfoNCE, activation, FLOPS, mutual self-distillation) on one rank's
micro-batch ``train.batch_size / scale.num_gpus`` of videos of ``data.num_frames`` frames at ``model.image_size``
and captions of ``model.context_length`` tokens, forward, backward and AdamW, in ``scale.precision`` (bf16
autocast over fp32 weights); the evaluation step encodes ``eval_batch_size`` videos and captions without
gradients. ``tokens/step`` counts video tokens (frames x patches+1) over all GPUs.
"""

from __future__ import annotations

from typing import Any

import torch

from paperlab.dryrun import DryRunSpec, ModelShape
from paperlab.scale import ScaleConfig


def _frames(cfg: Any) -> int:
    return cfg.data.synthetic.num_frames if cfg.data.kind == "synthetic" else cfg.data.num_frames


def shape_of(cfg: Any) -> ModelShape:
    """The model of experiment ``cfg`` (an :class:`~unify.experiment.ExperimentConfig`) as a dry-run shape."""
    from unify.experiment import build_tokenizer
    from unify.model import build_model, open_clip_args

    tokenizer = build_tokenizer(cfg)
    vocab, special = tokenizer.vocab_size, tokenizer.special_ids

    def builder(dtype: torch.dtype, scale: ScaleConfig) -> torch.nn.Module:
        model_cfg = cfg.model
        if (
            model_cfg.backbone != "tiny"
        ):  # the paper tower without its weights (same modules as load_open_clip)
            import open_clip

            name, kwargs = open_clip_args(model_cfg)
            clip = open_clip.create_model(name, pretrained=None, device="meta", **kwargs)
            from unify.model import UnifyModel

            m = model_cfg
            model = UnifyModel(
                clip, vocab, m.shared_layers, special, max(_frames(cfg), m.max_frames),
                m.temporal_init_std, m.temporal_layers, m.lexicon_chunk,
            )  # fmt: skip
        else:
            model = build_model(model_cfg, vocab, special, _frames(cfg))
        return model.to(dtype)

    m = cfg.model
    source = (
        f"open_clip {m.backbone} ({m.pretrained or 'random'}; QuickGELU for openai) + UNIFY branches "
        "(unify.model); CLIP4Clip README for batch / frames / words / GPUs"
        if m.backbone != "tiny"
        else "tiny open_clip (paperlab.models.tiny_open_clip) + UNIFY branches"
    )
    config = {
        "backbone": m.backbone,
        "image_size": m.image_size,
        "patch_size": m.patch_size,
        "shared_layers": m.shared_layers,
        "temporal_layers": m.temporal_layers,
        "vocab_size": vocab,
        "context_length": m.context_length,
    }
    return ModelShape(f"UNIFY {m.backbone}", "custom", config, source=source, builder=builder)


def make_batch(cfg: Any, batch_size: int) -> dict[str, torch.Tensor]:
    """Fake inputs of one micro-batch: frames in [0, 1], full-length captions, 5 activation targets each."""
    from unify.experiment import build_tokenizer

    vocab = build_tokenizer(cfg).vocab_size
    size, length = cfg.model.image_size, cfg.model.context_length
    frames = torch.rand(batch_size, _frames(cfg), 3, size, size)
    ids = torch.randint(0, vocab, (batch_size, length))
    lengths = torch.full((batch_size,), length, dtype=torch.long)
    targets = torch.zeros(batch_size, vocab)
    targets[:, :5] = 1.0
    return {"frames": frames, "ids": ids, "lengths": lengths, "targets": targets}


def dry_run_specs(raw: Any) -> list[DryRunSpec]:
    """One spec per experiment: UNIFY's training step and evaluation step at the config's scale."""
    from unify.experiment import load_config
    from unify.train import unify_loss

    cfg = load_config(raw)
    scale = cfg.scale
    if cfg.train.batch_size % scale.num_gpus:
        from paperlab.config import ConfigError

        raise ConfigError(
            f"train.batch_size={cfg.train.batch_size}: the global batch must split evenly over "
            f"scale.num_gpus={scale.num_gpus}"
        )
    per_gpu = cfg.train.batch_size // scale.num_gpus
    patches = (cfg.model.image_size // cfg.model.patch_size) ** 2 + 1
    stage2 = cfg.train.stage1_steps  # the first step of stage 2: every loss term

    def loss(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        total, _ = unify_loss(
            model,
            batch["frames"],
            batch["ids"],
            batch["lengths"],
            batch["targets"],
            "unify",
            stage2,
            cfg.train,
        )
        return total

    def eval_step(model: Any, spec: DryRunSpec) -> Any:
        b = make_batch(cfg, spec.eval_batch_size)
        return model(b["frames"], b["ids"], b["lengths"])

    return [
        DryRunSpec(
            label=f"{cfg.name}: UNIFY train step ({per_gpu} videos x {_frames(cfg)} frames per GPU) + encode",
            model=shape_of(cfg),
            scale=scale,
            batch_size=per_gpu,
            seq_len=_frames(cfg) * patches,
            batch=lambda model, batch_size: make_batch(cfg, batch_size),
            loss=loss,
            eval_batch_size=cfg.eval_batch_size,
            eval_step=eval_step,
        )
    ]
