"""Starting from the mPLUG-Owl checkpoint (issue 29): a tiny checkpoint written in the layout of
``MplugOwlForConditionalGeneration`` (X-PLUG/mPLUG-Owl ``mplug_owl/modeling_mplug_owl.py``: ``vision_model.*``,
``query_tokens``, ``abstractor.*``, ``language_model.*``) loads into every part of the model, the ViT's fused
per-head ``query_key_value`` computes the official attention after the row permutation, and checkpoints of another
layout or shape are refused naming ``model.init_from``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from paperlab.config import ConfigError
from paperlab.models import tiny_causal_lm
from paperowl.model import ModelConfig, PaperOwlModel, build_tokenizer
from paperowl.synthetic import caption_vocabulary

W, LAYERS, HEADS, MLP, PATCHES, QUERIES, FFN = 64, 2, 4, 256, 16, 4, 96


def _tokenizer():
    return build_tokenizer(
        ModelConfig(tokenizer_kind="word", vocab_size=200), [*caption_vocabulary(), "caption"]
    )


def _official_state(tokenizer, seed: int = 0) -> tuple[dict[str, torch.Tensor], dict]:
    """Names and shapes as the official modeling file creates them (not derived from this package's model)."""
    g = torch.Generator().manual_seed(seed)

    def t(*shape):
        return torch.randn(*shape, generator=g) * 0.05

    s = {
        "vision_model.embeddings.cls_token": t(1, 1, W),
        "vision_model.embeddings.patch_embed.weight": t(W, 3, 8, 8),
        "vision_model.embeddings.position_embedding": t(1, PATCHES + 1, W),
        "vision_model.embeddings.pre_layernorm.weight": 1 + t(W),
        "vision_model.embeddings.pre_layernorm.bias": t(W),
        "vision_model.post_layernorm.weight": 1 + t(W),
        "vision_model.post_layernorm.bias": t(W),
        "query_tokens": t(1, QUERIES, W),
    }
    for i in range(LAYERS):
        p = f"vision_model.encoder.layers.{i}."
        for name, shape in [("input_layernorm", (W,)), ("post_attention_layernorm", (W,))]:
            s[p + name + ".weight"], s[p + name + ".bias"] = 1 + t(*shape), t(*shape)
        for name, (out, inp) in {
            "self_attn.query_key_value": (3 * W, W),
            "self_attn.dense": (W, W),
            "mlp.fc1": (MLP, W),
            "mlp.fc2": (W, MLP),
        }.items():
            s[p + name + ".weight"], s[p + name + ".bias"] = t(out, inp), t(out)
        a = f"abstractor.encoder.layers.{i}.crossattention."
        for name, size in [("norm1", W), ("normk", W), ("output.norm2", W), ("output.mlp.ffn_ln", FFN)]:
            s[a + name + ".weight"], s[a + name + ".bias"] = 1 + t(size), t(size)
        for name, (out, inp) in {
            "attention.query": (W, W),
            "attention.key": (W, W),
            "attention.value": (W, W),
            "output.out_proj": (W, W),
            "output.mlp.w1": (FFN, W),
            "output.mlp.w3": (FFN, W),
            "output.mlp.w2": (W, FFN),
        }.items():
            s[a + name + ".weight"], s[a + name + ".bias"] = t(out, inp), t(out)
    lm = tiny_causal_lm(tokenizer=tokenizer, layers=2, hidden=48, heads=4, seed=seed)
    s["abstractor.visual_fc.weight"], s["abstractor.visual_fc.bias"] = t(48, W), t(48)
    s["abstractor.vit_eos"] = t(1, 1, 48)
    s.update({f"language_model.{k}": v.clone() for k, v in lm.state_dict().items()})
    config = {
        "model_type": "mplug-owl",
        "num_query_tokens": QUERIES,
        "vision_config": {
            "hidden_size": W, "intermediate_size": MLP, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
            "image_size": 32, "patch_size": 8, "layer_norm_eps": 1e-6,
        },
        "visual_abstractor_config": {
            "hidden_size": W, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "intermediate_size": FFN,
            "encoder_hidden_size": W, "layer_norm_eps": 1e-6,
        },
        "text_config": lm.config.to_dict(),
    }  # fmt: skip
    return s, config


def write_owl_checkpoint(folder: Path, tokenizer, state=None, config=None) -> Path:
    """A tiny mPLUG-Owl checkpoint folder: config.json, model.safetensors and the tokenizer."""
    from safetensors.torch import save_file

    official, official_config = _official_state(tokenizer)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config or official_config))
    save_file({k: v.contiguous() for k, v in (state or official).items()}, str(folder / "model.safetensors"))
    tokenizer.save_pretrained(folder)
    return folder


def owl_config(folder: Path, **overrides) -> ModelConfig:
    options = dict(
        init_from=str(folder), image_size=32, patch_size=8, num_queries=QUERIES, abstractor_dim=W,
        abstractor_layers=LAYERS, abstractor_heads=HEADS, abstractor_ffn=FFN, anchors=[[1, 1]], lora_dropout=0.0,
    )  # fmt: skip
    return ModelConfig(**{**options, **overrides})


def test_every_part_starts_from_the_mplug_owl_checkpoint(tmp_path: Path) -> None:
    tokenizer = _tokenizer()
    folder = write_owl_checkpoint(tmp_path / "owl", tokenizer)
    state, _ = _official_state(tokenizer)
    model = PaperOwlModel(owl_config(folder), build_tokenizer(owl_config(folder)))
    v = model.vision
    assert torch.equal(v.cls_token, state["vision_model.embeddings.cls_token"])
    assert torch.equal(v.pos_embed, state["vision_model.embeddings.position_embedding"])
    assert torch.equal(v.patch_embed.proj.weight, state["vision_model.embeddings.patch_embed.weight"])
    assert v.patch_embed.proj.bias is None  # CLIP's patch embedding has no bias
    assert torch.equal(v.norm_pre.weight, state["vision_model.embeddings.pre_layernorm.weight"])
    assert torch.equal(v.blocks[1].mlp.fc2.weight, state["vision_model.encoder.layers.1.mlp.fc2.weight"])
    assert torch.equal(v.norm.bias, state["vision_model.post_layernorm.bias"])
    a = model.abstractor
    assert torch.equal(a.query_tokens, state["query_tokens"])  # the *pretrained* abstractor, not a random one
    layer = a.encoder.layers[1].crossattention
    assert torch.equal(layer.output.mlp.w3.weight, state["abstractor.encoder.layers.1.crossattention.output.mlp.w3.weight"])  # fmt: skip
    assert torch.equal(a.vit_eos, state["abstractor.vit_eos"])
    llama = model.lm.base_model.model.model
    q = llama.layers[0].self_attn.q_proj.base_layer.weight  # under LoRA
    assert torch.equal(q, state["language_model.model.layers.0.self_attn.q_proj.weight"])
    assert torch.equal(llama.layers[1].mlp.down_proj.weight, state["language_model.model.layers.1.mlp.down_proj.weight"])  # fmt: skip
    # the ViT's fused projection: the official attention (output reshaped to (heads, 3, head_dim)) == timm's
    x = torch.randn(2, PATCHES + 1, W)
    p = "vision_model.encoder.layers.0.self_attn."
    mixed = x @ state[p + "query_key_value.weight"].T + state[p + "query_key_value.bias"]
    qkv = mixed.reshape(2, PATCHES + 1, HEADS, 3, W // HEADS).permute(3, 0, 2, 1, 4)
    attn = torch.softmax(qkv[0] @ qkv[1].transpose(-1, -2) * (W // HEADS) ** -0.5, dim=-1) @ qkv[2]
    official = attn.permute(0, 2, 1, 3).reshape(2, PATCHES + 1, W) @ state[p + "dense.weight"].T
    official = official + state[p + "dense.bias"]
    assert torch.allclose(v.blocks[0].attn(x), official, atol=1e-5)
    assert type(v.blocks[0].mlp.act).__name__ == "QuickGELU"
    # visual tokens per view: 4 queries + vit_eos
    assert model.encode_images(torch.randn(1, 3, 32, 32), torch.zeros(1, dtype=torch.long)).shape == (
        1,
        5,
        48,
    )


def test_a_checkpoint_of_another_layout_or_shape_is_refused(tmp_path: Path) -> None:
    tokenizer = _tokenizer()
    state, config = _official_state(tokenizer)
    # a plain LLaMA checkpoint (no vision_model / abstractor): refused with counts and examples
    plain = {k[len("language_model.") :]: v for k, v in state.items() if k.startswith("language_model.")}
    folder = write_owl_checkpoint(tmp_path / "llama", tokenizer, state=plain, config=config)
    with pytest.raises(
        ConfigError, match=r"model\.init_from=.*not the mPLUG-Owl checkpoint layout: \d+ weight"
    ):
        PaperOwlModel(owl_config(folder), tokenizer)
    # the right names, one tensor of another shape
    wrong = dict(state)
    key = "abstractor.encoder.layers.0.crossattention.output.mlp.w1.weight"
    wrong[key] = torch.zeros(FFN + 1, W)
    folder = write_owl_checkpoint(tmp_path / "shape", tokenizer, state=wrong, config=config)
    with pytest.raises(
        ConfigError, match=r"another shape.*mlp\.w1\.weight: checkpoint \(97, 64\), model \(96, 64\)"
    ):
        PaperOwlModel(owl_config(folder), tokenizer)
    # the config names a shape the checkpoint does not have
    folder = write_owl_checkpoint(tmp_path / "owl", tokenizer)
    with pytest.raises(ConfigError, match=r"num_queries=8: expected 4 \(the checkpoint"):
        PaperOwlModel(owl_config(folder, num_queries=8), tokenizer)
    with pytest.raises(ConfigError, match=r"model\.init_from=.*no config\.json"):
        PaperOwlModel(owl_config(tmp_path), tokenizer)
