"""Dry run of the paper model (``make paperowl-paper-dry``; :mod:`paperlab.dryrun`): the mPLUG-Owl shape of
``experiment=tiny_paper`` -- CLIP ViT-L/14 224 (frozen, bf16), the visual abstractor (64 queries, 6 x 1024, SwiGLU
2816; trained), LLaMA-7B in bf16 with LoRA r 8 on q/v and gradient checkpointing -- built by this package's own
:class:`paperowl.model.PaperOwlModel` on fake tensors, at the paper's micro-batch (4 per GPU, official
``train_it.sh``) of 2,304-token sequences holding the visual tokens of 4 diagrams x 5 views (global + release.yaml's
2x2 crops) x 65 tokens; one training step and one evaluation step (a prompt of 2,304 - ``max_new_tokens`` tokens and
its generation's last decode step with the full KV cache), on 8 x A100-80GB under DDP.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from paperlab.dryrun import DryRunSpec, ModelShape
from paperlab.scale import LoraSpec, ScaleConfig
from paperowl.model import PaperOwlModel

#: mPLUG-Owl 7B's config.json parts (X-PLUG/mPLUG-Owl configuration_mplug_owl.py defaults: ViT-L/14 224, abstractor
#: 6 x 1024 x 16 heads; SwiGLU 2816 per mplug_owl_video/modeling_mplug_owl.py; LLaMA-7B: huggyllama/llama-7b)
OWL_7B: dict[str, Any] = {
    "num_query_tokens": 64,
    "vision_config": {
        "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
        "image_size": 224, "patch_size": 14, "layer_norm_eps": 1e-6,
    },
    "visual_abstractor_config": {
        "hidden_size": 1024, "num_hidden_layers": 6, "num_attention_heads": 16, "intermediate_size": 2816,
    },
    "text_config": {
        "model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
        "num_attention_heads": 32, "vocab_size": 32000, "max_position_embeddings": 2048, "rms_norm_eps": 1e-6,
    },
}  # fmt: skip
SOURCE = (
    "mPLUG-Owl (MAGAer13/mplug-owl-llama-7b; X-PLUG/mPLUG-Owl mplug_owl/configuration_mplug_owl.py), "
    "mPLUG-DocOwl PaperOwl/scripts/train_it.sh (micro-batch 4, global 256, seq 2304, LoRA, checkpointing, bf16)"
)
#: the official run: 8 GPUs (A100 80G, train_it.sh's comment), DDP, a frozen bf16 base with an fp32 LoRA adapter
PAPER_SCALE = ScaleConfig(
    launch="ddp", num_gpus=8, gpu="A100-80GB", gpu_memory_gib=80.0, precision="bf16-lora",
    lora=LoraSpec(r=8, alpha=32, dropout=0.05, target_modules=["q_proj", "v_proj"]), gradient_checkpointing=True,
)  # fmt: skip
VIEWS_PER_SAMPLE = 4 * 5  # max_diagrams 4 x (global + 2x2 crops)


class _ShapeTokenizer:
    """What :class:`PaperOwlModel` asks of a tokenizer, for a model built only for its shape."""

    pad_token_id, eos_token_id = 0, 2

    def __init__(self, vocab: int) -> None:
        self.vocab = vocab

    def convert_tokens_to_ids(self, token: str) -> int:
        return self.vocab

    def __len__(self) -> int:
        return self.vocab + 1


def build_model(model_config, owl: dict[str, Any], dtype: torch.dtype) -> torch.nn.Module:
    """The paper model as training prepares it (frozen ViT, LoRA on the frozen LM, checkpointing), no weights."""
    config = replace(model_config, dtype=str(dtype).removeprefix("torch."), lora_dropout=0.0)
    return PaperOwlModel(config, _ShapeTokenizer(owl["text_config"]["vocab_size"]), owl_config=owl)


def _embeds(model, ids: torch.Tensor, views: int) -> torch.Tensor:
    """Visual tokens of ``views`` views per sample followed by the text tokens (as ``PaperOwlModel.embed``
    splices them, without its data-dependent masking, which fake tensors cannot run)."""
    b = ids.shape[0]
    size = model.config.image_size
    pixels = torch.randn(b * views, 3, size, size)
    visual = model.encode_images(pixels, torch.zeros(b * views, dtype=torch.long))
    text = model.lm.get_input_embeddings()(ids)
    return torch.cat([visual.reshape(b, -1, text.shape[-1]).to(text.dtype), text], dim=1)


def dry_run_specs(
    cfg: Any, owl: dict[str, Any] | None = None, views: int = VIEWS_PER_SAMPLE
) -> list[DryRunSpec]:
    from paperlab.config import from_config
    from paperowl.experiments import ExperimentConfig

    exp = from_config(ExperimentConfig, cfg.experiment, "experiment")
    owl = owl or OWL_7B
    model_config = replace(exp.model, init_from=exp.model.init_from or "mplug-owl (shape only)")
    seq, vocab = model_config.max_length, owl["text_config"]["vocab_size"]
    text_len = seq - views * (model_config.num_queries + 1)

    def loss(model, batch):
        embeds = _embeds(model, batch["input_ids"], views)
        labels = torch.cat([torch.full((embeds.shape[0], seq - text_len), -100), batch["input_ids"]], dim=1)
        return model.lm(inputs_embeds=embeds, attention_mask=torch.ones(labels.shape), labels=labels).loss

    def eval_step(model, spec):
        new = exp.max_new_tokens
        ids = torch.randint(0, vocab, (spec.eval_batch_size, text_len - 1))
        out = model.lm(inputs_embeds=_embeds(model, ids, views), use_cache=True, logits_to_keep=1)
        nxt = torch.randint(0, vocab, (spec.eval_batch_size, 1))
        mask = torch.ones(spec.eval_batch_size, seq, dtype=torch.long)
        model.lm(input_ids=nxt, attention_mask=mask, past_key_values=out.past_key_values, use_cache=True)
        return new

    shape = ModelShape(
        name="mPLUG-Owl 7B (ViT-L/14 + abstractor + LLaMA-7B, LoRA)",
        model_type="custom",
        config={"seq_len": seq, "views_per_sample": views, **owl["text_config"]},
        source=SOURCE,
        builder=lambda dtype, scale: build_model(model_config, owl, dtype),
    )
    micro = exp.train.micro_batch_size or exp.train.batch_size
    accumulation = max(1, exp.train.batch_size // (micro * PAPER_SCALE.num_gpus))
    return [
        DryRunSpec(
            "instruction tuning (3 tasks)",
            shape,
            PAPER_SCALE,
            batch_size=micro,
            seq_len=seq,
            grad_accum=accumulation,
            eval_batch_size=micro,
            eval_prompt_len=seq - exp.max_new_tokens,
            eval_new_tokens=exp.max_new_tokens,
            batch=lambda model, b: {"input_ids": torch.randint(0, vocab, (b, text_len))},
            loss=loss,
            eval_step=eval_step,
        )
    ]
