"""Start from the mPLUG-Owl checkpoint, as the official PaperOwl run does (mPLUG-DocOwl ``PaperOwl/scripts/train_it.sh``:
``--pretrained-ckpt checkpoints/mplug-owl-llama-7b``, i.e. the hub's ``MAGAer13/mplug-owl-llama-7b``).

The checkpoint (``config.json`` + ``*.safetensors`` / ``pytorch_model*.bin``) holds ``MplugOwlForConditionalGeneration``
(X-PLUG/mPLUG-Owl ``mplug_owl/modeling_mplug_owl.py``): ``vision_model.*`` (CLIP ViT-L/14), ``query_tokens`` and
``abstractor.*`` (the pretrained visual abstractor) and ``language_model.*`` (LLaMA-7B). Here the ViT is timm's
``VisionTransformer`` at the checkpoint's shape (QuickGELU, pre-norm, no patch bias: CLIP's), the abstractor is
:class:`paperowl.abstractor.VisualAbstractor` (same module names) and the LM a transformers ``LlamaForCausalLM``
built from the checkpoint's ``text_config``. :func:`map_owl_keys` renames every tensor (the ViT's fused
``query_key_value`` is per head ``[q, k, v]``, timm's ``qkv`` is ``[q; k; v]``: rows are permuted), every shape is
checked, and a checkpoint of another layout is refused with the keys it lacks / has in excess.
"""

from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from paperlab.config import ConfigError

FIELD = "model.init_from"
#: keys of the checkpoint that have no counterpart and are not needed (RoPE caches of old transformers versions)
IGNORED = re.compile(r"(^|\.)rotary_emb\.inv_freq$")
_VISION = {
    "embeddings.cls_token": "cls_token",
    "embeddings.patch_embed.weight": "patch_embed.proj.weight",
    "embeddings.position_embedding": "pos_embed",
    "embeddings.pre_layernorm.weight": "norm_pre.weight",
    "embeddings.pre_layernorm.bias": "norm_pre.bias",
    "post_layernorm.weight": "norm.weight",
    "post_layernorm.bias": "norm.bias",
}
_VISION_LAYER = {
    "input_layernorm": "norm1",
    "self_attn.query_key_value": "attn.qkv",
    "self_attn.dense": "attn.proj",
    "post_attention_layernorm": "norm2",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}


def resolve(path_or_id: str) -> Path:
    """A local checkpoint folder, or a hub id downloaded with ``huggingface_hub`` (config, weights, tokenizer)."""
    local = Path(path_or_id).expanduser()
    if local.is_dir():
        return local
    if local.exists() or path_or_id.startswith((".", "/", "~")):
        raise ConfigError(f"{FIELD}={path_or_id!r}: not a checkpoint folder")
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.bin", "*.model", "*.txt"]
    return Path(snapshot_download(path_or_id, allow_patterns=patterns))


def read_config(folder: Path) -> dict[str, Any]:
    """``config.json`` with its ``vision_config``, abstractor (``visual_abstractor_config`` or
    ``abstractor_config``) and ``text_config`` parts; a missing part is a :class:`ConfigError`."""
    path = folder / "config.json"
    if not path.is_file():
        raise ConfigError(
            f"{FIELD}={str(folder)!r}: no config.json (expected an mPLUG-Owl checkpoint folder)"
        )
    cfg = json.loads(path.read_text())
    cfg.setdefault("visual_abstractor_config", cfg.get("abstractor_config") or {})
    missing = [k for k in ("vision_config", "text_config") if not isinstance(cfg.get(k), dict)]
    if missing:
        raise ConfigError(f"{FIELD}={str(folder)!r}: config.json lacks {missing}: not an mPLUG-Owl config")
    return cfg


def read_state(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the checkpoint's weight files (safetensors preferred; ``.bin`` memory-mapped)."""
    files = sorted(folder.glob("*.safetensors"))
    state: dict[str, torch.Tensor] = {}
    if files:
        from safetensors.torch import load_file

        for f in files:
            state.update(load_file(str(f)))
        return state
    files = sorted(folder.glob("pytorch_model*.bin"))
    if not files:
        raise ConfigError(f"{FIELD}={str(folder)!r}: no *.safetensors or pytorch_model*.bin weight files")
    for f in files:
        state.update(torch.load(f, map_location="cpu", weights_only=True, mmap=True))
    return state


def owl_vision_tower(vision: dict[str, Any]) -> nn.Module:
    """timm ``VisionTransformer`` of the checkpoint's ``vision_config`` (mPLUG-Owl defaults: ViT-L/14 224)."""
    from timm.models.vision_transformer import VisionTransformer

    hidden = vision.get("hidden_size", 1024)
    return VisionTransformer(
        img_size=vision.get("image_size", 224),
        patch_size=vision.get("patch_size", 14),
        embed_dim=hidden,
        depth=vision.get("num_hidden_layers", 24),
        num_heads=vision.get("num_attention_heads", 16),
        mlp_ratio=vision.get("intermediate_size", 4096) / hidden,
        qkv_bias=True,
        pre_norm=True,  # CLIP: pre_layernorm, and no patch-embedding bias
        num_classes=0,
        global_pool="token",
        act_layer="quick_gelu",
        norm_layer=partial(nn.LayerNorm, eps=vision.get("layer_norm_eps", 1e-6)),
    )


def owl_language_model(text: dict[str, Any], dtype: torch.dtype) -> nn.Module:
    """The checkpoint's LM (``text_config``, LLaMA-7B) built at its shape, weights loaded later."""
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = {
        k: v for k, v in text.items() if k not in ("model_type", "architectures", "transformers_version")
    }
    config = AutoConfig.for_model(text.get("model_type", "llama"), **fields)
    return AutoModelForCausalLM.from_config(config, dtype=dtype)


def _qkv_rows(tensor: torch.Tensor, heads: int) -> torch.Tensor:
    """mPLUG-Owl's fused projection is laid out ``(heads, 3, head_dim)`` (it reshapes its output to
    ``(..., heads, 3, head_dim)``); timm's is ``(3, heads, head_dim)``."""
    rest = tensor.shape[1:]
    head_dim = tensor.shape[0] // (3 * heads)
    return tensor.reshape(heads, 3, head_dim, *rest).transpose(0, 1).reshape(3 * heads * head_dim, *rest)


def map_owl_keys(state: dict[str, torch.Tensor], vision_heads: int) -> dict[str, torch.Tensor]:
    """mPLUG-Owl checkpoint names -> ``vision.*``, ``abstractor.*``, ``lm.*`` (the LM before LoRA) of
    :class:`paperowl.model.PaperOwlModel`; unknown keys keep their name (and are reported as unexpected)."""
    out: dict[str, torch.Tensor] = {}
    layer = re.compile(r"^vision_model\.encoder\.layers\.(\d+)\.(.+)\.(weight|bias)$")
    for key, value in state.items():
        if IGNORED.search(key):
            continue
        if key == "query_tokens":
            out["abstractor.query_tokens"] = value
        elif key.startswith("abstractor."):
            out[key] = value
        elif key.startswith("language_model."):
            out["lm." + key[len("language_model.") :]] = value
        elif key.startswith("vision_model."):
            rest = key[len("vision_model.") :]
            m = layer.match(key)
            if rest in _VISION:
                out["vision." + _VISION[rest]] = value
            elif m and m.group(2) in _VISION_LAYER:
                i, name, kind = m.groups()
                if name == "self_attn.query_key_value":
                    value = _qkv_rows(value, vision_heads)
                out[f"vision.blocks.{i}.{_VISION_LAYER[name]}.{kind}"] = value
            else:
                out[key] = value
        else:
            out[key] = value
    return out


def load_owl_weights(
    modules: dict[str, nn.Module], state: dict[str, torch.Tensor], vision_heads: int, source: str
) -> int:
    """Copy the checkpoint into ``modules`` (``{"vision": ..., "abstractor": ..., "lm": ...}``). Every parameter
    and persistent buffer of the modules must come from the checkpoint with its shape, and every checkpoint
    tensor must land somewhere; else a :class:`ConfigError` naming ``model.init_from``, the counts and examples.
    Returns the number of tensors copied."""
    mapped = map_owl_keys(state, vision_heads)
    targets = {
        f"{prefix}.{name}": t
        for prefix, module in modules.items()
        for name, t in module.state_dict(keep_vars=True).items()
    }
    tied = getattr(modules.get("lm"), "config", None)
    if tied is not None and getattr(tied, "tie_word_embeddings", False):
        targets.pop("lm.lm_head.weight", None)
    missing = sorted(set(targets) - set(mapped))
    unexpected = sorted(set(mapped) - set(targets))
    if missing or unexpected:
        raise ConfigError(
            f"{FIELD}={source!r}: not the mPLUG-Owl checkpoint layout: {len(missing)} weight(s) missing "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}); expected "
            "MplugOwlForConditionalGeneration keys vision_model.*, query_tokens, abstractor.*, language_model.*"
        )
    wrong = [
        f"{k}: checkpoint {tuple(mapped[k].shape)}, model {tuple(t.shape)}"
        for k, t in targets.items()
        if tuple(mapped[k].shape) != tuple(t.shape)
    ]
    if wrong:
        raise ConfigError(f"{FIELD}={source!r}: {len(wrong)} weight(s) of another shape, e.g. {wrong[:2]}")
    with torch.no_grad():
        for k, t in targets.items():
            t.copy_(mapped[k].to(t.dtype))
    return len(targets)
