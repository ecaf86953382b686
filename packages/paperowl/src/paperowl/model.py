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
from paperowl.abstractor import VisualAbstractor
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
    # SwiGLU width of the abstractor's feed-forward (2816 in mPLUG-Owl 7B: mplug_owl_video/modeling_mplug_owl.py)
    abstractor_ffn: int = 256
    lm: str | None = None
    # an mPLUG-Owl checkpoint (folder or hub id, e.g. MAGAer13/mplug-owl-llama-7b): ViT, abstractor and LM start
    # from it (paperowl.owl_weights), as the official run; vision_tower / lm are then not used
    init_from: str | None = None
    # recompute the LM's (and a trained ViT's) activations in the backward (official --gradient-checkpointing)
    gradient_checkpointing: bool = False
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
        require(self.abstractor_ffn > 0, "abstractor_ffn", self.abstractor_ffn, "a positive integer")
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


def build_tokenizer(config: ModelConfig, texts: list[str] | None = None) -> Any:
    """The LM's tokenizer with ``<image>`` as one special token: trained on ``texts`` for a tiny LM, else
    loaded from ``config.init_from`` (the mPLUG-Owl checkpoint) or ``config.lm``."""
    from paperlab.models import load_tokenizer, train_tiny_tokenizer

    if config.lm is None and config.init_from is None:
        # a word vocabulary needs the chat template's role names, else both turns start with <unk>
        if config.tokenizer_kind == "word":
            texts = [*(texts or []), "system user assistant"]
        return train_tiny_tokenizer(
            texts,
            vocab_size=config.vocab_size,
            kind=config.tokenizer_kind,
            extra_special_tokens=(IMAGE_TOKEN,),
        )
    if config.init_from is not None:  # mPLUG-Owl ships its LLaMA tokenizer
        from paperowl.owl_weights import resolve

        tokenizer = load_tokenizer(resolve(config.init_from))
    else:
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

    def __init__(self, config: ModelConfig, tokenizer: Any, owl_config: dict | None = None) -> None:
        """``owl_config``: the mPLUG-Owl ``config.json`` to build its shape without reading any weight (the dry
        run, :mod:`paperowl.scale`); else ``init_from`` is read and loaded."""
        super().__init__()
        from peft import LoraConfig, get_peft_model

        self.config = config
        self.tokenizer = tokenizer
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        torch.manual_seed(config.seed)
        state = None
        if config.init_from is not None:
            self.vision, lm, state, heads = _owl_parts(config, owl_config)
        else:
            self.vision, lm = _vision_tower(config), _language_model(config, tokenizer)
        width = getattr(self.vision, "num_features", config.vision_width)
        require(
            width == config.abstractor_dim,
            "abstractor_dim",
            config.abstractor_dim,
            f"the vision tower's width {width} (mPLUG-Owl's abstractor normalises the ViT features at its width)",
        )
        hidden = lm.get_input_embeddings().embedding_dim
        self.abstractor = VisualAbstractor(
            config.abstractor_dim,
            hidden,
            config.num_queries,
            config.abstractor_layers,
            config.abstractor_heads,
            config.abstractor_ffn,
        )
        if state is not None:
            from paperowl.owl_weights import load_owl_weights

            modules = {"vision": self.vision, "abstractor": self.abstractor, "lm": lm}
            n = load_owl_weights(modules, state, heads, config.init_from)
            log.info("loaded %d tensors of the mPLUG-Owl checkpoint %s", n, config.init_from)
            del state
            lm.resize_token_embeddings(len(tokenizer))
        self.vision.requires_grad_(config.train_vision)
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
        if config.gradient_checkpointing:
            # as the official train.py: the LM (inputs made to require grad) and the ViT, not the abstractor
            self.lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            self.lm.enable_input_require_grads()
            if config.train_vision and hasattr(self.vision, "set_grad_checkpointing"):
                self.vision.set_grad_checkpointing(True)

    @property
    def tokens_per_view(self) -> int:
        """Visual tokens of one view in the LM sequence: the queries and mPLUG-Owl's ``vit_eos``."""
        return self.config.num_queries + 1

    def encode_images(self, pixel_values: torch.Tensor, view_positions: torch.Tensor) -> torch.Tensor:
        """``(views, 3, S, S)`` -> visual tokens ``(views, num_queries + 1, lm_hidden)``; a frozen ViT runs
        without autograd (its activations are not kept)."""
        dtype = next(self.vision.parameters()).dtype
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.config.train_vision):
            features = self.vision.forward_features(pixel_values.to(dtype))
        tokens = self.abstractor(features.to(self.abstractor.query_tokens.dtype))
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
                f"({pixel_values.shape[0]} views x {self.tokens_per_view} tokens)"
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


def _vision_tower(config: ModelConfig) -> nn.Module:
    from paperlab.models import load_vision_tower, tiny_vision_tower

    if config.vision_tower is None:
        return tiny_vision_tower(
            config.image_size,
            config.patch_size,
            config.vision_width,
            config.vision_depth,
            config.vision_heads,
            seed=config.seed,
        )
    return load_vision_tower(
        config.vision_tower, pretrained=config.vision_pretrained, num_classes=0, img_size=config.image_size
    )


def _language_model(config: ModelConfig, tokenizer: Any) -> nn.Module:
    from paperlab.models import load_causal_lm, tiny_causal_lm

    if config.lm is None:
        return tiny_causal_lm(
            tokenizer=tokenizer,
            layers=config.lm_layers,
            hidden=config.lm_hidden,
            heads=config.lm_heads,
            seed=config.seed,
        )
    lm = load_causal_lm(config.lm, dtype=config.dtype, device="cpu")
    lm.resize_token_embeddings(len(tokenizer))
    return lm


def _owl_parts(config: ModelConfig, cfg: dict | None = None) -> tuple[nn.Module, nn.Module, dict | None, int]:
    """ViT and LM at the mPLUG-Owl checkpoint's shape, its tensors, its ViT heads; the model config's shape
    fields must agree with the checkpoint's ``config.json`` (a :class:`ConfigError` naming the field)."""
    from paperowl.owl_weights import owl_language_model, owl_vision_tower, read_config, read_state, resolve

    folder = resolve(config.init_from) if cfg is None else None
    cfg = read_config(folder) if folder is not None else cfg
    vision, abstractor = cfg["vision_config"], cfg["visual_abstractor_config"]
    expected = {
        "image_size": vision.get("image_size", 224),
        "patch_size": vision.get("patch_size", 14),
        "num_queries": cfg.get("num_query_tokens", 64),
        "abstractor_dim": abstractor.get("hidden_size", 1024),
        "abstractor_layers": abstractor.get("num_hidden_layers", 6),
        "abstractor_heads": abstractor.get("num_attention_heads", 16),
    }
    for key, value in expected.items():
        require(
            getattr(config, key) == value,
            key,
            getattr(config, key),
            f"{value} (the checkpoint {config.init_from})",
        )
    dtype = getattr(torch, config.dtype)
    tower = owl_vision_tower(vision).to(dtype)
    state = read_state(folder) if folder is not None else None
    return tower, owl_language_model(cfg["text_config"], dtype), state, vision.get("num_attention_heads", 16)
