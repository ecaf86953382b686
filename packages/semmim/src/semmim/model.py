"""Building blocks of the ALBEF-style backbone: ViT image encoder (timm), text encoder, co-attention fusion
encoder, and the semantic head (projection + K prototypes) that defines SemMIM's shared encoding space.

Shapes: images ``(B, 3, H, W)``; image tokens ``(B, 1 + N, D_v)`` with the [CLS] first and ``N`` patches; text
tokens ``(B, L, D_t)``; the fusion encoder works at the text width ``D_t`` (image tokens are projected to it).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from paperlab.config import require


@dataclasses.dataclass
class ModelConfig:
    """Sizes of every part. ``vision``/``text``: ``tiny`` (random init, built here) or a timm / hub name."""

    vision: str = "tiny"
    text: str = "tiny"
    image_size: int = 32
    patch_size: int = 8
    vision_width: int = 64
    vision_depth: int = 2
    vision_heads: int = 4
    text_width: int = 64
    text_depth: int = 2
    text_heads: int = 4
    max_text_len: int = 24
    fusion_depth: int = 2
    fusion_heads: int = 4
    embed_dim: int = 64  # ITC projection (ALBEF: 256)
    prototypes: int = 32  # K, the size of the learnable encoding space
    head_hidden: int = 128
    head_bottleneck: int = 32
    momentum: float = 0.99  # EMA m: theta_bar <- m theta_bar + (1 - m) theta
    temperature: float = 0.07  # ITC initial temperature (learnable, ALBEF)
    pretrained: bool = False  # load hub weights for named vision/text models
    # fusion layers: "random" (fresh co-attention layers, the tiny default) or "text" (ALBEF's shape: BERT-form
    # layers initialised from the text encoder's layers text_depth .. text_depth + fusion_depth - 1, i.e. BERT-base
    # split into 6 text + 6 fusion layers; needs a BERT text encoder: text "bert" or a hub name)
    fusion_init: str = "random"
    # pixel normalisation before the ViT, per RGB channel; [] = the tower's own constants (timm's pretrained_cfg
    # mean / std for a named tower; none for the tiny tower, which is trained from scratch on [0, 1] pixels)
    pixel_mean: list[float] = dataclasses.field(default_factory=list)
    pixel_std: list[float] = dataclasses.field(default_factory=list)
    seed: int = 0

    def __post_init__(self) -> None:
        require(
            self.image_size > 0 and self.patch_size > 0 and self.image_size % self.patch_size == 0,
            "model.image_size",
            self.image_size,
            f"a positive multiple of model.patch_size={self.patch_size}",
        )
        require(self.max_text_len >= 3, "model.max_text_len", self.max_text_len, "an int >= 3")
        require(0.0 <= self.momentum < 1.0, "model.momentum", self.momentum, "in [0, 1)")
        require(self.prototypes >= 2, "model.prototypes", self.prototypes, "an int >= 2 (K)")
        require(self.fusion_depth >= 1, "model.fusion_depth", self.fusion_depth, "an int >= 1")
        require(self.temperature > 0, "model.temperature", self.temperature, "> 0")
        require(
            self.fusion_init in ("random", "text"), "model.fusion_init", self.fusion_init, "random or text"
        )
        if self.fusion_init == "text":
            require(
                self.text != "tiny",
                "model.text",
                self.text,
                "bert or a hub BERT name with model.fusion_init=text (the fusion layers start from its layers)",
            )
        for name in ("pixel_mean", "pixel_std"):
            value = list(getattr(self, name))
            require(len(value) in (0, 3), f"model.{name}", value, "[] (the tower's own) or 3 floats (RGB)")
        require(all(v > 0 for v in self.pixel_std), "model.pixel_std", self.pixel_std, "positive")
        for name in ("vision_width", "text_width", "embed_dim", "head_hidden", "head_bottleneck"):
            require(getattr(self, name) > 0, f"model.{name}", getattr(self, name), "> 0")
        require(
            self.text_width % self.fusion_heads == 0,
            "model.fusion_heads",
            self.fusion_heads,
            f"a divisor of model.text_width={self.text_width}",
        )

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


def pixel_constants(cfg: ModelConfig, vit: nn.Module) -> tuple[list[float], list[float]]:
    """``(mean, std)`` per RGB channel for pixels in [0, 1]: ``model.pixel_mean`` / ``pixel_std`` when set, else the
    named tower's own (timm ``pretrained_cfg``: e.g. 0.5 / 0.5 for ``vit_base_patch16_224``'s augreg weights,
    ImageNet's for DeiT, OpenAI's for CLIP towers), else none (0 / 1) for the tiny tower."""
    if cfg.pixel_mean and cfg.pixel_std:
        return list(cfg.pixel_mean), list(cfg.pixel_std)
    own = getattr(vit, "pretrained_cfg", None) or {}
    if cfg.vision != "tiny" and "mean" in own and "std" in own:
        mean, std = list(own["mean"]), list(own["std"])
    else:
        mean, std = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    return list(cfg.pixel_mean) or mean, list(cfg.pixel_std) or std


def build_vision(cfg: ModelConfig) -> nn.Module:
    """A timm ViT: :func:`paperlab.models.tiny_vision_tower` for ``tiny``, else ``timm.create_model(name)``; its
    pixel normalisation (:func:`pixel_constants`) rides along as non-persistent buffers ``pixel_mean`` /
    ``pixel_std`` that :func:`encode_image` applies."""
    from paperlab.models import load_vision_tower, tiny_vision_tower

    if cfg.vision == "tiny":
        vit = tiny_vision_tower(
            cfg.image_size,
            cfg.patch_size,
            cfg.vision_width,
            cfg.vision_depth,
            cfg.vision_heads,
            seed=cfg.seed,
        )
    else:
        vit = load_vision_tower(cfg.vision, pretrained=cfg.pretrained, num_classes=0, img_size=cfg.image_size)
    mean, std = pixel_constants(cfg, vit)
    vit.register_buffer("pixel_mean", torch.tensor(mean).view(3, 1, 1), persistent=False)
    vit.register_buffer("pixel_std", torch.tensor(std).view(3, 1, 1), persistent=False)
    return vit


def encode_image(vit: nn.Module, images: torch.Tensor, mask: torch.Tensor | None = None, mask_token=None):
    """ViT tokens ``(B, 1 + N, D_v)`` of pixels in [0, 1], normalised by the tower's ``pixel_mean`` /
    ``pixel_std``; patches where ``mask`` ``(B, N)`` is True are replaced by ``mask_token`` ``(D_v,)`` before
    the position embedding (BEiT-style masked input)."""
    expected = vit.patch_embed.img_size
    if tuple(images.shape[-2:]) != tuple(expected):
        raise ValueError(
            f"images are {tuple(images.shape[-2:])} but model.image_size gives {tuple(expected)}"
        )
    if hasattr(vit, "pixel_mean"):
        images = (images - vit.pixel_mean.to(images.dtype)) / vit.pixel_std.to(images.dtype)
    x = vit.patch_embed(images)
    if mask is not None:
        x = torch.where(mask.unsqueeze(-1), mask_token.to(x.dtype).expand_as(x), x)
    x = vit.norm_pre(vit.patch_drop(vit._pos_embed(x)))
    return vit.norm(vit.blocks(x))


def encode_crops(vit: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """ViT tokens of images at a size other than the model's (DINO's small local crops, e.g. 96 px for a 224 px
    model): the patch grid follows the image and the position embedding is resampled to it (bicubic,
    ``timm.layers.resample_abs_pos_embed``, what timm does for ``dynamic_img_size``). At the model's own size this
    is :func:`encode_image`. The side must be a multiple of the patch size."""
    from timm.layers import resample_abs_pos_embed

    if tuple(images.shape[-2:]) == tuple(vit.patch_embed.img_size):
        return encode_image(vit, images)
    patch = vit.patch_embed.patch_size
    if images.shape[-2] % patch[0] or images.shape[-1] % patch[1]:
        raise ValueError(
            f"crops of {tuple(images.shape[-2:])} px are not a multiple of the patch size {patch}"
        )
    if hasattr(vit, "pixel_mean"):
        images = (images - vit.pixel_mean.to(images.dtype)) / vit.pixel_std.to(images.dtype)
    x = vit.patch_embed.proj(images)  # (B, D, h, w)
    grid = x.shape[-2:]
    x = vit.patch_embed.norm(x.flatten(2).transpose(1, 2))
    prefix = [t.expand(x.shape[0], -1, -1) for t in (vit.cls_token, vit.reg_token) if t is not None]
    pos = resample_abs_pos_embed(
        vit.pos_embed,
        new_size=tuple(grid),
        old_size=vit.patch_embed.grid_size,
        num_prefix_tokens=0 if vit.no_embed_class else vit.num_prefix_tokens,
    )
    x = torch.cat([*prefix, x + pos], 1) if vit.no_embed_class else torch.cat([*prefix, x], 1) + pos
    x = vit.norm_pre(vit.patch_drop(vit.pos_drop(x)))
    return vit.norm(vit.blocks(x))


class TinyTextEncoder(nn.Module):
    """A pre-LN Transformer encoder over word ids (the tiny stand-in for BERT): ``(B, L)`` -> ``(B, L, D_t)``."""

    def __init__(self, vocab_size: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, cfg.text_width)
        self.positions = nn.Parameter(torch.randn(cfg.max_text_len, cfg.text_width) * 0.02)
        layer = nn.TransformerEncoderLayer(
            cfg.text_width, cfg.text_heads, 4 * cfg.text_width, 0.0, "gelu", batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(layer, cfg.text_depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.text_width)

    def forward(self, ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        x = self.tokens(ids) + self.positions[: ids.shape[1]]
        return self.norm(self.layers(x, src_key_padding_mask=~attention))


class HubTextEncoder(nn.Module):
    """A BERT encoder, ``last_hidden_state`` as the text tokens: a hub name (``bert-base-uncased``; hub config,
    weights when ``pretrained``) or ``config`` (a ``transformers.BertConfig`` built here: random init).
    ``layers`` keeps only the first ``layers`` layers (ALBEF's 6-layer text encoder); the rest are
    :attr:`spare_layers`, from which the fusion layers are initialised (``model.fusion_init=text``)."""

    def __init__(self, name: str, pretrained: bool, layers: int | None = None, config=None) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel

        if config is not None:
            self.model = AutoModel.from_config(config, add_pooling_layer=False)
        elif pretrained:
            self.model = AutoModel.from_pretrained(name, add_pooling_layer=False)
        else:
            self.model = AutoModel.from_config(AutoConfig.from_pretrained(name), add_pooling_layer=False)
        self.spare_layers: list[nn.Module] = []
        if layers is not None:
            total = len(self.model.encoder.layer)
            require(0 < layers <= total, "model.text_depth", layers, f"in [1, {total}] ({name} has {total})")
            self.spare_layers = list(self.model.encoder.layer[layers:])  # not submodules: not trained
            self.model.encoder.layer = nn.ModuleList(self.model.encoder.layer[:layers])
            self.model.config.num_hidden_layers = layers

    def forward(self, ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids, attention_mask=attention.long()).last_hidden_state


def local_bert_config(cfg: ModelConfig, vocab_size: int, layers: int):
    """A ``transformers.BertConfig`` of the ``model.text_*`` sizes (``text: bert``; BERT-base at 768 / 12 heads:
    intermediate 4 x width, 512 positions, as ``bert-base-uncased``'s config.json)."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=cfg.text_width,
        num_hidden_layers=layers,
        num_attention_heads=cfg.text_heads,
        intermediate_size=4 * cfg.text_width,
        max_position_embeddings=max(512, cfg.max_text_len),
    )


def build_text(cfg: ModelConfig, vocab_size: int) -> nn.Module:
    """``tiny``: :class:`TinyTextEncoder`; ``bert``: a randomly initialised BERT of the ``text_*`` sizes; else a hub
    BERT. A BERT keeps ``text_depth`` layers, and ``text_depth + fusion_depth`` are built when the fusion layers
    start from its top layers (``fusion_init=text``: BERT-base = 6 text + 6 fusion layers, ALBEF)."""
    if cfg.text == "tiny":
        return TinyTextEncoder(vocab_size, cfg)
    total = cfg.text_depth + (cfg.fusion_depth if cfg.fusion_init == "text" else 0)
    if cfg.text == "bert":
        return HubTextEncoder("bert", False, cfg.text_depth, local_bert_config(cfg, vocab_size, total))
    if cfg.pretrained or cfg.fusion_init != "text":
        return HubTextEncoder(cfg.text, cfg.pretrained, cfg.text_depth)
    from transformers import AutoConfig

    hub = AutoConfig.from_pretrained(cfg.text)
    require(
        hub.num_hidden_layers >= total,
        "model.fusion_depth",
        cfg.fusion_depth,
        f"text_depth + fusion_depth <= {hub.num_hidden_layers} ({cfg.text}'s layers)",
    )
    return HubTextEncoder(cfg.text, False, cfg.text_depth, hub)


def build_fusion(cfg: ModelConfig, text: nn.Module) -> nn.Module:
    """The fusion encoder: fresh co-attention layers (``fusion_init=random``) or :class:`BertFusionEncoder` from
    the text encoder's spare top layers (``fusion_init=text``)."""
    if cfg.fusion_init == "random":
        return FusionEncoder(cfg.text_width, cfg.fusion_heads, cfg.fusion_depth)
    spare = getattr(text, "spare_layers", [])
    require(
        len(spare) >= cfg.fusion_depth,
        "model.fusion_depth",
        cfg.fusion_depth,
        f"at most the {len(spare)} BERT layers above model.text_depth={cfg.text_depth}",
    )
    from semmim.fusion_bert import BertFusionEncoder

    fusion = BertFusionEncoder(cfg.text_width, cfg.fusion_heads, cfg.fusion_depth)
    fusion.init_from_bert(spare[: cfg.fusion_depth])
    text.spare_layers = []  # copied: the source layers are dropped
    return fusion


class FusionLayer(nn.Module):
    """One co-attention layer: each stream self-attends, then cross-attends to the other, then an MLP (pre-LN).

    The text stream's cross-attention weights ``(B, heads, L, 1 + N)`` are returned: the text-to-patch relevance
    used by text-guided masking.
    """

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(8))
        self.text_self = nn.MultiheadAttention(width, heads, batch_first=True)
        self.image_self = nn.MultiheadAttention(width, heads, batch_first=True)
        self.text_cross = nn.MultiheadAttention(width, heads, batch_first=True)
        self.image_cross = nn.MultiheadAttention(width, heads, batch_first=True)
        self.text_mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.image_mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, text: torch.Tensor, image: torch.Tensor, attention: torch.Tensor):
        n = self.norms
        pad = ~attention
        t = n[0](text)
        text = text + self.text_self(t, t, t, key_padding_mask=pad, need_weights=False)[0]
        v = n[1](image)
        image = image + self.image_self(v, v, v, need_weights=False)[0]
        t, v = n[2](text), n[3](image)
        cross, weights = self.text_cross(t, v, v, need_weights=True, average_attn_weights=False)
        t2, v2 = n[4](text), n[5](image)
        image = image + self.image_cross(v2, t2, t2, key_padding_mask=pad, need_weights=False)[0]
        text = text + cross
        text = text + self.text_mlp(n[6](text))
        image = image + self.image_mlp(n[7](image))
        return text, image, weights


class FusionEncoder(nn.Module):
    """A stack of :class:`FusionLayer`: ``(text (B, L, D), image (B, 1 + N, D), attention (B, L))`` ->
    ``(text, image, last layer's text-to-image attention (B, heads, L, 1 + N))``."""

    def __init__(self, width: int, heads: int, depth: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(FusionLayer(width, heads) for _ in range(depth))
        self.text_norm = nn.LayerNorm(width)
        self.image_norm = nn.LayerNorm(width)

    def forward(self, text: torch.Tensor, image: torch.Tensor, attention: torch.Tensor):
        weights = None
        for layer in self.layers:
            text, image, weights = layer(text, image, attention)
        return self.text_norm(text), self.image_norm(image), weights


class SemanticHead(nn.Module):
    """The shared K-dimensional encoding space: an MLP projection ``p`` to a bottleneck, L2 normalisation, and
    K L2-normalised prototypes ``C``; ``forward(z)`` gives cosine logits ``norm(p(z)) norm(C)^T`` in [-1, 1]
    (the DINO head's weight-normalised last layer with g = 1). The temperature is applied by the losses."""

    def __init__(self, width: int, hidden: int, bottleneck: int, prototypes: int) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, bottleneck))
        self.prototypes = nn.Parameter(torch.randn(prototypes, bottleneck) * 0.5)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.project(z), dim=-1) @ F.normalize(self.prototypes, dim=-1).T


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """``(B, 3, H, W)`` -> ``(B, N, 3 * patch**2)`` in raster order (the ViT's patch order)."""
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch) * (w // patch), patch * patch * c)
