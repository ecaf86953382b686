"""mPLUG-Owl's visual abstractor, with the module names of its checkpoint (so that the pretrained abstractor of
``MAGAer13/mplug-owl-llama-7b`` loads by name; :mod:`paperowl.owl_weights`).

Architecture as in X-PLUG/mPLUG-Owl ``mplug_owl/modeling_mplug_owl.py`` (``MplugOwlVisualAbstractor*``; the same file
ships in mPLUG-DocOwl/PaperOwl): ``num_queries`` learned queries; each layer layer-normalises the queries
(``norm1``) and the ViT features (``normk``), attends from the queries to ``[queries; features]``, adds the output
projection to the *normalised* queries, then a SwiGLU feed-forward (``w1``, ``w3``, SiLU, ``ffn_ln``, ``w2``) behind
``norm2``. ``visual_fc`` maps to the LM width and a learned ``vit_eos`` token is appended: ``num_queries + 1`` visual
tokens per view (65 in the paper).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AbstractorMLP(nn.Module):
    def __init__(self, dim: int, ffn: int, eps: float) -> None:
        super().__init__()
        self.w1, self.w2, self.w3 = nn.Linear(dim, ffn), nn.Linear(ffn, dim), nn.Linear(dim, ffn)
        self.ffn_ln = nn.LayerNorm(ffn, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(self.ffn_ln(F.silu(self.w1(x)) * self.w3(x)))


class AbstractorCrossAttention(nn.Module):
    def __init__(self, dim: int, heads: int, encoder_dim: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key, self.value = nn.Linear(encoder_dim, dim), nn.Linear(encoder_dim, dim)

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, n, d = queries.shape

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, x.shape[1], self.heads, d // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            split(self.query(queries)), split(self.key(context)), split(self.value(context))
        )
        return out.transpose(1, 2).reshape(b, n, d)


class AbstractorOutput(nn.Module):
    def __init__(self, dim: int, ffn: int, eps: float) -> None:
        super().__init__()
        self.out_proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = AbstractorMLP(dim, ffn, eps)

    def forward(self, attended: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        x = residual + self.out_proj(attended)
        return x + self.mlp(self.norm2(x))


class AbstractorAttention(nn.Module):
    def __init__(self, dim: int, heads: int, ffn: int, eps: float) -> None:
        super().__init__()
        self.attention = AbstractorCrossAttention(dim, heads, dim)
        self.output = AbstractorOutput(dim, ffn, eps)
        self.norm1, self.normk = nn.LayerNorm(dim, eps=eps), nn.LayerNorm(dim, eps=eps)

    def forward(self, queries: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        q = self.norm1(queries)
        context = torch.cat([q, self.normk(features)], dim=1)
        return self.output(self.attention(q, context), q)


class AbstractorLayer(nn.Module):
    def __init__(self, dim: int, heads: int, ffn: int, eps: float) -> None:
        super().__init__()
        self.crossattention = AbstractorAttention(dim, heads, ffn, eps)

    def forward(self, queries: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return self.crossattention(queries, features)


class AbstractorEncoder(nn.Module):
    def __init__(self, dim: int, heads: int, ffn: int, layers: int, eps: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(AbstractorLayer(dim, heads, ffn, eps) for _ in range(layers))


class VisualAbstractor(nn.Module):
    """``(views, tokens, dim)`` ViT features (class token included, as mPLUG-Owl feeds them) ->
    ``(views, num_queries + 1, out_dim)``. The features' width must equal ``dim`` (mPLUG-Owl normalises them with
    ``normk`` of the abstractor's width: ViT-L and the abstractor are both 1024 wide)."""

    def __init__(
        self,
        dim: int,
        out_dim: int,
        num_queries: int = 64,
        layers: int = 6,
        heads: int = 16,
        ffn: int = 2816,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.query_tokens = nn.Parameter(torch.randn(1, num_queries, dim) * 0.02)
        self.encoder = AbstractorEncoder(dim, heads, ffn, layers, eps)
        self.visual_fc = nn.Linear(dim, out_dim)
        self.vit_eos = nn.Parameter(torch.randn(1, 1, out_dim) * 0.02)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # repeat, not expand: under no_grad a view of a parameter still "requires grad" (MemTracker refuses it)
        queries = self.query_tokens.to(features.dtype).repeat(features.shape[0], 1, 1)
        for layer in self.encoder.layers:
            queries = layer(queries, features)
        out = self.visual_fc(queries)
        return torch.cat([out, self.vit_eos.expand(out.shape[0], -1, -1).to(out.dtype)], dim=1)
