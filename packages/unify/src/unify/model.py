"""The UNIFY dual encoder: a CLIP backbone split into a shared stem and two branch-specific tops.

For each modality the lower ``shared_layers`` transformer blocks form the stem (structure sharing, shared by both
branches); the remaining blocks are duplicated into a latent top and a lexicon top (Liu et al. 2024, UNIFY
"unified learning scheme ... structure sharing"; the split depth is our choice, see README).

- Latent branch (CLIP4Clip, ``modules/modeling.py`` of ArrowLuo/CLIP4Clip, ``_loose_similarity``): every frame goes
  through CLIP's image tower on its own ([CLS] -> ln_post -> proj), exactly as CLIP sees an image; a temporal
  transformer over the frames' features with a residual (CLIP4Clip's ``seqTransf``: frame position embedding +
  transformer + the original features) models time; each frame's feature is L2-normalised, averaged over frames
  and L2-normalised again. Every temporal block's output projections start at zero and the position embedding at
  ``temporal_init_std`` (0 by default), so at initialisation the temporal part is the identity and the video
  feature *is* CLIP4Clip's meanP (mean of the per-frame CLIP image features; tested to 1e-5).
  Text: the end-of-text token -> ln_final -> text_projection, L2-normalised.
- Lexicon branch: every token of every frame (video) or every real token (text) -> LayerNorm -> linear head onto the
  tokenizer vocabulary -> ``log(1 + ReLU(.))`` -> max-pool over tokens and frames. The video lexicon top attends
  jointly over space and time (a temporal embedding on the stem's tokens), so motion words can fire; it is a new
  branch with no pretrained output to keep. ``log(1 + ReLU(.))`` is monotone, so the max over tokens is taken on
  the head's logits, chunk by chunk (``lexicon_chunk`` tokens at a time, a running max, each chunk recomputed in the
  backward pass: activation checkpointing), and the activation is applied to the pooled (B, V) only: the
  (B, frames x tokens, V) tensor of the direct computation never exists. Special tokens are masked to zero.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from paperlab.config import require
from unify.data import validate_frames

IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)  # CLIP's normalisation
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclasses.dataclass
class ModelConfig:
    """Backbone and branch sizes. ``backbone="tiny"`` builds a random open_clip CLIP of the given sizes;
    any other value is an open_clip model name (``ViT-B-32``) loaded with ``pretrained`` (a hub download)."""

    backbone: str = "tiny"
    pretrained: str | None = None
    image_size: int = 32
    patch_size: int = 8
    width: int = 64
    layers: int = 3
    heads: int = 4
    embed_dim: int = 32
    context_length: int = 16
    shared_layers: int = 1
    max_frames: int = 16
    temporal_layers: int = 4  # CLIP4Clip seqTransf: cross_num_hidden_layers = 4
    temporal_init_std: float = 0.0  # position embeddings' init std (0: init == meanP exactly)
    lexicon_chunk: int = 64  # tokens per chunk of the lexicon head (a running max over chunks)
    seed: int = 0

    def __post_init__(self) -> None:
        require(
            self.image_size % self.patch_size == 0,
            "model.image_size",
            self.image_size,
            f"a multiple of patch_size={self.patch_size}",
        )
        require(
            0 <= self.shared_layers < self.layers or self.backbone != "tiny",
            "model.shared_layers",
            self.shared_layers,
            f"in [0, layers={self.layers}) so each branch keeps its own top",
        )
        require(self.width % self.heads == 0, "model.width", self.width, f"divisible by heads={self.heads}")
        require(self.context_length >= 4, "model.context_length", self.context_length, ">= 4")
        require(self.temporal_layers >= 0, "model.temporal_layers", self.temporal_layers, ">= 0")
        require(self.lexicon_chunk >= 1, "model.lexicon_chunk", self.lexicon_chunk, ">= 1 token")


class TemporalTransformer(nn.Module):
    """CLIP4Clip's ``seqTransf`` over per-frame features (B, F, D): ``x + blocks(x + position[:F])``.

    The blocks' attention and MLP output projections are zero-initialised, so every block starts as the identity
    and the module returns ``2 x + position``: after the per-frame L2 normalisation that is the input itself when
    the position embedding starts at zero (``init_std = 0``)."""

    def __init__(self, width: int, layers: int, max_frames: int, init_std: float = 0.0) -> None:
        super().__init__()
        from open_clip.transformer import QuickGELU, ResidualAttentionBlock

        self.position = nn.Parameter(torch.randn(max_frames, width) * init_std)
        heads = max(1, width // 64)
        self.blocks = nn.ModuleList(
            ResidualAttentionBlock(width, heads, act_layer=QuickGELU) for _ in range(layers)
        )
        for block in self.blocks:
            for proj in (block.attn.out_proj, block.mlp.c_proj):
                nn.init.zeros_(proj.weight)
                nn.init.zeros_(proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x + self.position[: x.shape[1]].to(x.dtype)
        for block in self.blocks:
            h = block(h)
        return h + x


def is_fake(t: torch.Tensor) -> bool:
    """True for a FakeTensor (the dry run's shape-only tensors, whose values cannot be read)."""
    from torch._subclasses.fake_tensor import is_fake as fake

    return bool(fake(t))


def _chunk_max(head: nn.Module, tokens: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    logits = head(tokens)
    if valid is not None:
        logits = logits.masked_fill(~valid[..., None], float("-inf"))
    return logits.amax(1)


def max_logits(
    head: nn.Module, tokens: torch.Tensor, valid: torch.Tensor | None = None, chunk: int = 64
) -> torch.Tensor:
    """``max_t head(tokens[:, t])`` (N, V) over the valid tokens of ``tokens`` (N, T, W), ``chunk`` tokens at a
    time with a running max; under autograd each chunk is checkpointed (recomputed in the backward pass), so at
    most one chunk's (N, chunk, V) logits exist at once, forward or backward."""
    out: torch.Tensor | None = None
    grad = torch.is_grad_enabled() and (
        tokens.requires_grad or any(p.requires_grad for p in head.parameters())
    )
    for start in range(0, tokens.shape[1], chunk):
        part = tokens[:, start : start + chunk]
        mask = valid[:, start : start + chunk] if valid is not None else None
        if grad:
            m = checkpoint(_chunk_max, head, part, mask, use_reentrant=False)
        else:
            m = _chunk_max(head, part, mask)
        out = m if out is None else torch.maximum(out, m)
    assert out is not None
    return out


class UnifyModel(nn.Module):
    """Shared stem + latent top + lexicon top, for video (frames) and text.

    ``encode_video(frames (B, F, 3, H, W) float in [0, 1])`` and ``encode_text(ids (B, L), lengths (B,))`` return
    ``(latent (B, D) unit-norm, lexicon (B, V) >= 0)``.
    """

    def __init__(
        self,
        clip: nn.Module,
        vocab_size: int,
        shared_layers: int,
        special_ids: Sequence[int],
        max_frames: int = 16,
        temporal_init_std: float = 0.0,
        temporal_layers: int = 4,
        lexicon_chunk: int = 64,
    ) -> None:
        super().__init__()
        visual = clip.visual
        v_blocks, t_blocks = list(visual.transformer.resblocks), list(clip.transformer.resblocks)
        if not (0 <= shared_layers < min(len(v_blocks), len(t_blocks))):
            raise ValueError(
                f"shared_layers={shared_layers} must leave at least one top block per branch "
                f"(vision has {len(v_blocks)}, text has {len(t_blocks)})"
            )
        self.image_size = int(
            visual.image_size[0] if isinstance(visual.image_size, tuple) else visual.image_size
        )
        self.lexicon_chunk = lexicon_chunk
        self.visual = visual
        self.v_stem = nn.ModuleList(v_blocks[:shared_layers])
        self.v_latent_top = nn.ModuleList(v_blocks[shared_layers:])
        self.v_lexicon_top = copy.deepcopy(self.v_latent_top)
        self.token_embedding = clip.token_embedding
        self.positional_embedding = clip.positional_embedding
        self.ln_final = clip.ln_final
        self.text_projection = clip.text_projection
        self.register_buffer("attn_mask", clip.attn_mask, persistent=False)
        self.t_stem = nn.ModuleList(t_blocks[:shared_layers])
        self.t_latent_top = nn.ModuleList(t_blocks[shared_layers:])
        self.t_lexicon_top = copy.deepcopy(self.t_latent_top)
        v_width, t_width = visual.conv1.out_channels, clip.token_embedding.embedding_dim
        # the video lexicon top's space-time embedding (the latent branch has its own temporal module below)
        self.temporal_embedding = nn.Parameter(torch.randn(max_frames, v_width) * temporal_init_std)
        self.v_lexicon_head = nn.Sequential(nn.LayerNorm(v_width), nn.Linear(v_width, vocab_size))
        self.t_lexicon_head = nn.Sequential(nn.LayerNorm(t_width), nn.Linear(t_width, vocab_size))
        concept = torch.ones(vocab_size, dtype=torch.bool)
        concept[list(special_ids)] = False
        self.register_buffer("concept_mask", concept, persistent=False)
        self.latent_logit_scale = nn.Parameter(torch.tensor(1 / 0.07).log())
        self.lexicon_logit_scale = nn.Parameter(torch.tensor(1 / 0.07).log())
        self.register_buffer("mean", torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGE_STD).view(1, 3, 1, 1), persistent=False)
        embed_dim = visual.proj.shape[1] if visual.proj is not None else v_width
        self.temporal = TemporalTransformer(embed_dim, temporal_layers, max_frames, temporal_init_std)

    @property
    def vocab_size(self) -> int:
        return int(self.concept_mask.numel())

    @property
    def max_frames(self) -> int:
        return int(self.temporal_embedding.shape[0])

    def shared_parameters(self) -> list[nn.Parameter]:
        return [*self.v_stem.parameters(), *self.t_stem.parameters()]

    def new_parameters(self) -> list[nn.Parameter]:
        """Parameters that are not CLIP's (lexicon heads, temporal parts, logit scales)."""
        return [
            *self.v_lexicon_head.parameters(),
            *self.t_lexicon_head.parameters(),
            *self.temporal.parameters(),
            self.temporal_embedding,
            self.latent_logit_scale,
            self.lexicon_logit_scale,
        ]

    def _lexicon(self, tokens: torch.Tensor, head: nn.Module, valid: torch.Tensor | None) -> torch.Tensor:
        """tokens (N, T, W) -> max over the valid tokens of log(1 + relu(head)) (N, V), specials zero."""
        pooled = max_logits(head, tokens, valid, self.lexicon_chunk)
        return torch.log1p(F.relu(pooled)) * self.concept_mask

    def forward(
        self, frames: torch.Tensor, ids: torch.Tensor, lengths: torch.Tensor, with_logit_scales: bool = False
    ) -> tuple[torch.Tensor, ...]:
        """``(video latent, video lexicon, text latent, text lexicon)`` of a batch of pairs, plus the two
        contrastive logit scales ``exp(s)`` clamped at 100 (latent, lexicon) as a (2,) tensor when
        ``with_logit_scales``. One call, so a DistributedDataParallel wrapper sees every parameter used."""
        v_lat, v_lex = self.encode_video(frames)
        t_lat, t_lex = self.encode_text(ids, lengths)
        if not with_logit_scales:
            return v_lat, v_lex, t_lat, t_lex
        scales = torch.stack([self.latent_logit_scale, self.lexicon_logit_scale]).exp().clamp(max=100)
        return v_lat, v_lex, t_lat, t_lex, scales

    def frame_features(self, stem: torch.Tensor, b: int, f: int) -> torch.Tensor:
        """The latent top per frame: stem tokens (B*F, T, W) -> projected [CLS] features (B, F, D)."""
        lat = stem
        for block in self.v_latent_top:
            lat = block(lat)
        pooled, _ = self.visual._pool(lat)
        if self.visual.proj is not None:
            pooled = pooled @ self.visual.proj
        return pooled.view(b, f, -1)

    def encode_video(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        validate_frames(frames, self.image_size)
        b, f = frames.shape[:2]
        if f > self.max_frames:
            raise ValueError(f"{f} frames per video but the model was built for at most {self.max_frames}")
        x = (frames.flatten(0, 1).to(self.mean.dtype) - self.mean) / self.std
        x = self.visual._embeds(x)
        for block in self.v_stem:  # per frame
            x = block(x)
        tokens = x.shape[1]
        per_frame = self.temporal(self.frame_features(x, b, f))  # CLIP4Clip seqTransf (identity at init)
        latent = F.normalize(F.normalize(per_frame, dim=-1).mean(1), dim=-1)  # CLIP4Clip meanP pooling
        # the lexicon top attends jointly over space and time, so motion is visible to the lexicon branch
        lex = (x.view(b, f, tokens, -1) + self.temporal_embedding[:f, None, :]).view(b, f * tokens, -1)
        for block in self.v_lexicon_top:
            lex = block(lex)
        return latent, self._lexicon(lex, self.v_lexicon_head, None)  # max over all tokens of all frames

    def encode_text(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not is_fake(lengths) and (lengths < 1).any():
            raise ValueError("empty caption: every caption needs at least one token")
        length = ids.shape[1]
        x = self.token_embedding(ids) + self.positional_embedding[:length]
        mask = self.attn_mask[:length, :length] if self.attn_mask is not None else None
        for block in self.t_stem:
            x = block(x, attn_mask=mask)
        lat = x
        for block in self.t_latent_top:
            lat = block(lat, attn_mask=mask)
        lat = self.ln_final(lat)
        pooled = lat[torch.arange(ids.shape[0]), lengths - 1]
        if self.text_projection is not None:
            pooled = (
                self.text_projection(pooled)
                if isinstance(self.text_projection, nn.Linear)
                else pooled @ self.text_projection
            )
        latent = F.normalize(pooled, dim=-1)
        lex = x
        for block in self.t_lexicon_top:
            lex = block(lex, attn_mask=mask)
        valid = torch.arange(length, device=ids.device)[None, :] < lengths[:, None]
        return latent, self._lexicon(lex, self.t_lexicon_head, valid)


def open_clip_args(cfg: ModelConfig) -> tuple[str, dict[str, Any]]:
    """``(open_clip model name, create_model keyword arguments)`` for a hub backbone. OpenAI's CLIP weights were
    trained with QuickGELU (``x * sigmoid(1.702 x)``); open_clip's plain ``ViT-B-32`` config uses ``nn.GELU`` and
    only warns when given ``pretrained="openai"``, so that tag forces QuickGELU (open_clip's ``-quickgelu`` configs
    are the same switch)."""
    kwargs: dict[str, Any] = {}
    if cfg.pretrained == "openai" and not cfg.backbone.endswith("-quickgelu"):
        kwargs["force_quick_gelu"] = True
    return cfg.backbone, kwargs


def build_clip(cfg: ModelConfig, vocab_size: int) -> nn.Module:
    """The open_clip backbone: a random tiny CLIP (``backbone="tiny"``) or ``open_clip`` by name + tag."""
    if cfg.backbone == "tiny":
        from paperlab.models import tiny_open_clip

        return tiny_open_clip(
            embed_dim=cfg.embed_dim,
            image_size=cfg.image_size,
            patch_size=cfg.patch_size,
            vision_width=cfg.width,
            vision_layers=cfg.layers,
            text_width=cfg.width,
            text_layers=cfg.layers,
            heads=cfg.heads,
            vocab_size=vocab_size,
            context_length=cfg.context_length,
            seed=cfg.seed,
        )
    from paperlab import models

    name, kwargs = open_clip_args(cfg)
    model, _, _ = models.load_open_clip(name, pretrained=cfg.pretrained, **kwargs)
    return model


def build_model(cfg: ModelConfig, vocab_size: int, special_ids: Sequence[int], frames: int) -> UnifyModel:
    """The UNIFY model of ``cfg`` for videos of up to ``max(frames, cfg.max_frames)`` frames."""
    return UnifyModel(
        build_clip(cfg, vocab_size),
        vocab_size,
        cfg.shared_layers,
        special_ids,
        max(frames, cfg.max_frames),
        cfg.temporal_init_std,
        cfg.temporal_layers,
        cfg.lexicon_chunk,
    )
