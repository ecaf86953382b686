"""The multimodal LLM of PaperOwl (mPLUG-DocOwl architecture, arXiv 2311.18248 Sec. 4; mPLUG-Owl arXiv 2304.14178).

image views -> ViT (patch features) -> visual abstractor (``num_queries`` learned queries, 64 in the paper,
cross-attending to the patch features) -> linear projection to the LM width -> spliced into the LM's input
embeddings at ``<image>`` placeholders -> causal LM with LoRA (r 8, alpha 32 on q/v projections).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from paperlab.config import require
from paperowl.cropping import DEFAULT_ANCHORS, num_positions

log = logging.getLogger(__name__)
IMAGE_TOKEN = "<image>"


@dataclass
class ModelConfig:
    """Model settings. ``vision_tower``/``lm`` None -> tiny random models from :mod:`paperlab.models`
    (``image_size``, ``patch_size``, ``vision_*``, ``lm_*`` size them); names -> timm / hub checkpoints.
    ``lm_modules_to_save`` are LM modules trained in full next to LoRA (tiny runs, whose LM is random, need
    ``embed_tokens``/``lm_head``; the paper trains LoRA only)."""

    image_size: int = 32
    patch_size: int = 8
    vision_width: int = 64
    vision_depth: int = 2
    vision_heads: int = 4
    vision_tower: str | None = None
    vision_pretrained: bool = False
    train_vision: bool = False
    # tiny tower only: steps of CLIP-style pre-training on the training pairs before instruction tuning (the
    # stand-in for the paper's pretrained CLIP ViT; paperowl.pretrain); 0 = none
    vision_clip_steps: int = 0
    num_queries: int = 64
    abstractor_layers: int = 2
    abstractor_heads: int = 4
    abstractor_dim: int = 64
    lm: str | None = None
    lm_layers: int = 2
    lm_hidden: int = 64
    lm_heads: int = 4
    tokenizer_kind: str = "bpe"
    vocab_size: int = 600
    lora_r: int = 8
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    lm_modules_to_save: list[str] = field(default_factory=list)
    anchors: list[list[int]] | None = field(default_factory=lambda: [list(a) for a in DEFAULT_ANCHORS])
    dtype: str = "float32"
    max_length: int = 1024
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.vision_clip_steps >= 0, "vision_clip_steps", self.vision_clip_steps, "an integer >= 0")
        require(self.num_queries > 0, "num_queries", self.num_queries, "a positive integer")
        require(self.abstractor_layers > 0, "abstractor_layers", self.abstractor_layers, "a positive integer")
        require(
            self.abstractor_dim % self.abstractor_heads == 0,
            "abstractor_dim",
            self.abstractor_dim,
            f"a multiple of abstractor_heads={self.abstractor_heads}",
        )
        require(
            self.image_size % self.patch_size == 0,
            "image_size",
            self.image_size,
            f"a multiple of patch_size={self.patch_size}",
        )
        require(self.max_length >= 16, "max_length", self.max_length, "an integer >= 16")
        require(self.lora_r > 0, "lora_r", self.lora_r, "a positive integer")
        require(self.lora_alpha > 0, "lora_alpha", self.lora_alpha, "a positive number")
        require(
            self.tokenizer_kind in ("bpe", "word"), "tokenizer_kind", self.tokenizer_kind, "'bpe' or 'word'"
        )
        require(
            self.dtype in ("float32", "bfloat16", "float16"), "dtype", self.dtype, "float32/bfloat16/float16"
        )
        if self.anchors is not None:
            require(
                all(len(a) == 2 and a[0] > 0 and a[1] > 0 for a in self.anchors),
                "anchors",
                self.anchors,
                "a list of [rows, cols] pairs of positive integers",
            )


class AbstractorLayer(nn.Module):
    """Queries attend to ``[patch features; queries]`` (mPLUG-Owl's abstractor concatenates the queries to
    the keys/values), then a feed-forward block; pre-norm residuals."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, queries: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        q = self.norm_q(queries)
        kv = self.norm_kv(torch.cat([features, queries], dim=1))
        queries = queries + self.attn(q, kv, kv, need_weights=False)[0]
        return queries + self.ff(self.norm_ff(queries))


class VisualAbstractor(nn.Module):
    """``num_queries`` learned queries summarise ``(batch, patches, vision_width)`` features into
    ``(batch, num_queries, out_dim)`` (mPLUG-Owl Sec. 3.1; 64 queries in PaperOwl)."""

    def __init__(
        self,
        vision_width: int,
        dim: int,
        out_dim: int,
        num_queries: int = 64,
        layers: int = 2,
        heads: int = 4,
    ) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(1, num_queries, dim) * 0.02)
        self.input_proj = nn.Linear(vision_width, dim)
        self.layers = nn.ModuleList(AbstractorLayer(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.output_proj = nn.Linear(dim, out_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        feats = self.input_proj(features)
        queries = self.queries.expand(features.shape[0], -1, -1)
        for layer in self.layers:
            queries = layer(queries, feats)
        return self.output_proj(self.norm(queries))


def build_tokenizer(config: ModelConfig, texts: list[str] | None = None) -> Any:
    """The LM's tokenizer with ``<image>`` as one special token: trained on ``texts`` for a tiny LM, else
    loaded from ``config.lm``."""
    from paperlab.models import load_tokenizer, train_tiny_tokenizer

    if config.lm is None:
        # a word vocabulary needs the chat template's role names, else both turns start with <unk>
        if config.tokenizer_kind == "word":
            texts = [*(texts or []), "system user assistant"]
        return train_tiny_tokenizer(
            texts,
            vocab_size=config.vocab_size,
            kind=config.tokenizer_kind,
            extra_special_tokens=(IMAGE_TOKEN,),
        )
    tokenizer = load_tokenizer(config.lm)
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    return tokenizer


class PaperOwlModel(nn.Module):
    """Vision tower + visual abstractor + causal LM with LoRA (module docstring).

    ``forward(input_ids, attention_mask, pixel_values, view_positions, labels)``: ``pixel_values`` is
    ``(views, 3, S, S)`` for all views of all images of the batch in reading order, ``view_positions``
    ``(views,)`` their crop positions; ``input_ids`` hold ``num_queries`` copies of the ``<image>`` id per view
    (:mod:`paperowl.data` expands them), replaced here by the abstracted visual tokens in the same order.
    """

    def __init__(self, config: ModelConfig, tokenizer: Any) -> None:
        super().__init__()
        from peft import LoraConfig, get_peft_model

        from paperlab.models import load_causal_lm, load_vision_tower, tiny_causal_lm, tiny_vision_tower

        self.config = config
        self.tokenizer = tokenizer
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        torch.manual_seed(config.seed)
        if config.vision_tower is None:
            self.vision = tiny_vision_tower(
                config.image_size,
                config.patch_size,
                config.vision_width,
                config.vision_depth,
                config.vision_heads,
                seed=config.seed,
            )
            width = config.vision_width
        else:
            self.vision = load_vision_tower(
                config.vision_tower,
                pretrained=config.vision_pretrained,
                num_classes=0,
                img_size=config.image_size,
            )
            width = self.vision.num_features
        self.vision.requires_grad_(config.train_vision)
        if config.lm is None:
            lm = tiny_causal_lm(
                tokenizer=tokenizer,
                layers=config.lm_layers,
                hidden=config.lm_hidden,
                heads=config.lm_heads,
                seed=config.seed,
            )
        else:
            lm = load_causal_lm(config.lm, dtype=config.dtype, device="cpu")
            lm.resize_token_embeddings(len(tokenizer))
        hidden = lm.get_input_embeddings().embedding_dim
        self.abstractor = VisualAbstractor(
            width,
            config.abstractor_dim,
            hidden,
            config.num_queries,
            config.abstractor_layers,
            config.abstractor_heads,
        )
        self.crop_position = nn.Embedding(num_positions(config.anchors), hidden)
        nn.init.zeros_(self.crop_position.weight)
        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=list(config.lora_targets),
            task_type="CAUSAL_LM",
            modules_to_save=list(config.lm_modules_to_save) or None,
        )
        self.lm = get_peft_model(lm, lora)

    def encode_images(self, pixel_values: torch.Tensor, view_positions: torch.Tensor) -> torch.Tensor:
        """``(views, 3, S, S)`` -> visual tokens ``(views, num_queries, lm_hidden)``."""
        features = self.vision.forward_features(pixel_values)
        prefix = getattr(self.vision, "num_prefix_tokens", 1)
        tokens = self.abstractor(features[:, prefix:])
        return tokens + self.crop_position(view_positions)[:, None, :]

    def embed(
        self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None, view_positions: torch.Tensor | None
    ) -> torch.Tensor:
        mask = input_ids == self.image_token_id
        ids = input_ids.masked_fill(mask, 0)
        embeds = self.lm.get_input_embeddings()(ids)
        if pixel_values is None or pixel_values.shape[0] == 0:
            if mask.any():
                raise ValueError("input_ids contain <image> tokens but no pixel_values were given")
            return embeds
        visual = (
            self.encode_images(pixel_values, view_positions).to(embeds.dtype).reshape(-1, embeds.shape[-1])
        )
        if visual.shape[0] != int(mask.sum()):
            raise ValueError(
                f"{int(mask.sum())} <image> positions in input_ids but {visual.shape[0]} visual tokens "
                f"({pixel_values.shape[0]} views x {self.config.num_queries} queries)"
            )
        embeds = embeds.clone()
        embeds[mask] = visual
        return embeds

    def forward(self, input_ids, attention_mask, pixel_values=None, view_positions=None, labels=None):
        embeds = self.embed(input_ids, pixel_values, view_positions)
        return self.lm(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels)

    @torch.no_grad()
    def generate(
        self, input_ids, attention_mask, pixel_values=None, view_positions=None, max_new_tokens: int = 32
    ) -> list[str]:
        """Greedy answers for a left-padded batch of prompts; returns decoded strings."""
        embeds = self.embed(input_ids, pixel_values, view_positions)
        out = self.lm.generate(
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
        )
        return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
