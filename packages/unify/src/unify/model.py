"""The UNIFY dual encoder: a CLIP backbone split into a shared stem and two branch-specific tops.

For each modality the lower ``shared_layers`` transformer blocks form the stem (structure sharing, shared by both
branches); the remaining blocks are duplicated into a latent top and a lexicon top (Liu et al. 2024, UNIFY
"unified learning scheme ... structure sharing"; the split depth is our choice, see README).

- Latent branch (CLIP4Clip mean-pooling): per-frame [CLS] -> ln_post -> proj, mean over frames, L2-normalised;
  text: the end-of-text token -> ln_final -> text_projection, L2-normalised.
- Lexicon branch: every token of every frame (video) or every real token (text) -> LayerNorm -> linear head onto the
  tokenizer vocabulary -> ``log(1 + ReLU(.))`` -> max-pool over tokens and frames. The result is non-negative,
  one dimension per vocabulary entry, and sparse once trained with the FLOPS penalty (SPLADE-style saturation).
  Special tokens (pad, start, end) are masked to zero: they are not concepts.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

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
    temporal_init_std: float = 0.0  # 0: zero-init (keeps a pretrained CLIP's per-frame features at the start)
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
        # zero-initialised by default, so a pretrained CLIP starts from its own per-frame features; a randomly
        # initialised backbone learns frame order faster from a random start (temporal_init_std > 0)
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

    @property
    def vocab_size(self) -> int:
        return int(self.concept_mask.numel())

    def shared_parameters(self) -> list[nn.Parameter]:
        return [*self.v_stem.parameters(), *self.t_stem.parameters()]

    def _lexicon(self, tokens: torch.Tensor, head: nn.Module, valid: torch.Tensor | None) -> torch.Tensor:
        """tokens (N, T, W) -> per-token weights log(1 + relu(head)) (N, T, V); invalid tokens -> 0."""
        weights = torch.log1p(F.relu(head(tokens)))
        if valid is not None:
            weights = weights * valid[..., None]
        return weights * self.concept_mask

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

    def encode_video(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        validate_frames(frames, self.image_size)
        b, f = frames.shape[:2]
        if f > self.temporal_embedding.shape[0]:
            raise ValueError(
                f"{f} frames per video but the model was built for at most {self.temporal_embedding.shape[0]}"
            )
        x = (frames.flatten(0, 1).float() - self.mean) / self.std
        x = self.visual._embeds(x)
        for block in self.v_stem:  # per frame
            x = block(x)
        tokens = x.shape[1]
        # branch tops attend jointly over space and time, so motion is visible to both branches
        x = (x.view(b, f, tokens, -1) + self.temporal_embedding[:f, None, :]).view(b, f * tokens, -1)
        lat = x
        for block in self.v_latent_top:
            lat = block(lat)
        pooled, _ = self.visual._pool(lat.view(b * f, tokens, -1))
        if self.visual.proj is not None:
            pooled = pooled @ self.visual.proj
        latent = F.normalize(pooled.view(b, f, -1).mean(1), dim=-1)  # CLIP4Clip mean pooling over frames
        lex = x
        for block in self.v_lexicon_top:
            lex = block(lex)
        lexicon = self._lexicon(lex, self.v_lexicon_head, None).amax(1)  # max over all tokens of all frames
        return latent, lexicon

    def encode_text(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if (lengths < 1).any():
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
        valid = (torch.arange(length, device=ids.device)[None, :] < lengths[:, None]).float()
        lexicon = self._lexicon(lex, self.t_lexicon_head, valid).amax(1)
        return latent, lexicon


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
    from paperlab.models import load_open_clip

    model, _, _ = load_open_clip(cfg.backbone, pretrained=cfg.pretrained)
    return model
