"""ALBEF's model shape for SemMIM: BERT-base split into a 6-layer text encoder and 6 fusion layers that start from
BERT's top 6 layers (ALBEF, Li et al. 2021, Sec. 3.1: "the text encoder with the first 6 layers of BERT-base and
the multimodal encoder with the last 6 layers"; ``configs/config_bert.json`` ``fusion_layer: 6`` in
salesforce/ALBEF, where ``models/xbert.py`` adds a fresh cross-attention to each fusion layer).

Each :class:`BertFusionLayer` keeps BERT's post-LN form: self-attention, add & LayerNorm, cross-attention (fresh,
as ALBEF's ``crossattention``), add & LayerNorm, feed-forward, add & LayerNorm. ALBEF's fusion layers update the
text stream only; SemMIM also needs text-fused *image* features (its MIM predicts and targets patch encodings with
the text fused in), so an image stream of the same form runs beside it, its self-attention and feed-forward also
initialised from the same BERT layer and its cross-attention (to the text) fresh. This two-stream form is our
reading of the paper, not ALBEF's code.
"""

from __future__ import annotations

import torch
from torch import nn

LN_EPS = 1e-12  # BERT's layer_norm_eps


class _Block(nn.Module):
    """One stream of a fusion layer: self-attention, cross-attention to the other stream, feed-forward (post-LN)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.self_norm = nn.LayerNorm(width, eps=LN_EPS)
        self.cross_attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.cross_norm = nn.LayerNorm(width, eps=LN_EPS)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.mlp_norm = nn.LayerNorm(width, eps=LN_EPS)

    def attend_self(self, x: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
        return self.self_norm(x + self.self_attn(x, x, x, key_padding_mask=pad, need_weights=False)[0])

    def attend_other(self, x, other, other_pad, weights: bool):
        out, w = self.cross_attn(
            x, other, other, key_padding_mask=other_pad, need_weights=weights, average_attn_weights=False
        )
        x = self.cross_norm(x + out)
        return self.mlp_norm(x + self.mlp(x)), w

    @torch.no_grad()
    def init_from_bert(self, layer: nn.Module) -> None:
        """Self-attention, its output LayerNorm and the feed-forward from a ``transformers`` ``BertLayer``."""
        att = layer.attention
        q, k, v = att.self.query, att.self.key, att.self.value
        self.self_attn.in_proj_weight.copy_(torch.cat([q.weight, k.weight, v.weight]))
        self.self_attn.in_proj_bias.copy_(torch.cat([q.bias, k.bias, v.bias]))
        self.self_attn.out_proj.weight.copy_(att.output.dense.weight)
        self.self_attn.out_proj.bias.copy_(att.output.dense.bias)
        self.self_norm.load_state_dict(att.output.LayerNorm.state_dict())
        self.mlp[0].load_state_dict(layer.intermediate.dense.state_dict())
        self.mlp[2].load_state_dict(layer.output.dense.state_dict())
        self.mlp_norm.load_state_dict(layer.output.LayerNorm.state_dict())


class BertFusionLayer(nn.Module):
    """Text and image streams (``(B, L, D)``, ``(B, 1 + N, D)``); returns ``(text, image, text-to-image
    cross-attention (B, heads, L, 1 + N))``, the weights text-guided masking reads."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.text = _Block(width, heads)
        self.image = _Block(width, heads)

    def forward(self, text: torch.Tensor, image: torch.Tensor, attention: torch.Tensor):
        pad = ~attention
        t, v = self.text.attend_self(text, pad), self.image.attend_self(image, None)
        text_out, weights = self.text.attend_other(t, v, None, True)
        image_out, _ = self.image.attend_other(v, t, pad, False)
        return text_out, image_out, weights


class BertFusionEncoder(nn.Module):
    """A stack of :class:`BertFusionLayer` (post-LN: no final norm, as BERT), the interface of
    :class:`semmim.model.FusionEncoder`."""

    def __init__(self, width: int, heads: int, depth: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(BertFusionLayer(width, heads) for _ in range(depth))

    def init_from_bert(self, layers: list[nn.Module]) -> None:
        """Layer i's streams from BERT layer ``layers[i]`` (the text encoder's layers above its ``text_depth``)."""
        for mine, theirs in zip(self.layers, layers, strict=True):
            mine.text.init_from_bert(theirs)
            mine.image.init_from_bert(theirs)

    def forward(self, text: torch.Tensor, image: torch.Tensor, attention: torch.Tensor):
        weights = None
        for layer in self.layers:
            text, image, weights = layer(text, image, attention)
        return text, image, weights
