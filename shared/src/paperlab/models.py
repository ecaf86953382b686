"""Model and tokenizer loading: real hub/local checkpoints, and tiny ones built offline in about a second.

Real loading (:func:`load_causal_lm`, :func:`load_tokenizer`, :func:`load_vision_tower`, :func:`load_open_clip`)
is what a researcher with a GPU and the hub uses; it works the same on a local directory, which is how tests
exercise it (:func:`save_tiny_checkpoint` writes one). Tiny builders (:func:`train_tiny_tokenizer`,
:func:`tiny_causal_lm`, :func:`tiny_sequence_classifier`, :func:`tiny_vision_tower`, :func:`tiny_open_clip`)
are randomly initialised and need no network.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from paperlab.device import pick_device, pick_dtype

log = logging.getLogger(__name__)

#: ChatML-style template with ``{% generation %}`` marks, so TRL's assistant-only loss works on tiny models.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}"
    "{{ '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS = {"pad": "<pad>", "bos": "<s>", "eos": "<|im_end|>", "unk": "<unk>"}
CHAT_MARKERS = ["<|im_start|>", "<|im_end|>"]

#: A few sentences of English, enough to train a tokenizer that round-trips ordinary text.
SAMPLE_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "A tiny language model is built offline so that every test runs without the hub.",
    "Researchers point the same code at a real model when a GPU is available.",
    'Numbers like 0 1 2 3 4 5 6 7 8 9 and punctuation, such as commas; colons: and quotes "x" appear too.',
    "Session-based recommendation, key-value caches, alignment and retrieval are among the topics.",
    "She reads the paper, writes the loss, and checks it against a value worked out by hand.",
]

_FAMILIES = ("llama", "qwen2", "mistral")

SAMPLE_WORDS = (
    "the", "a", "cat", "dog", "sun", "moon", "bird", "fish", "sat", "ran",
    "sang", "slept", "on", "under", "near", "far", "away", "quickly", "slowly",
)  # fmt: skip


def random_words(generator: torch.Generator, n: int, words: Sequence[str] = SAMPLE_WORDS) -> str:
    """``n`` words drawn uniformly (with a leading space: a completion-ready text), for throughput benchmarks and
    tests that need text of a given length."""
    return " " + " ".join(words[int(i)] for i in torch.randint(len(words), (n,), generator=generator))


# ----------------------------------------------------------------------------------------------- loading


def load_tokenizer(name_or_path: str | Path, *, padding_side: str = "right", **kwargs: Any) -> Any:
    """Load a tokenizer from the hub or a local directory; a missing pad token falls back to EOS."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(name_or_path), **kwargs)
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def load_causal_lm(
    name_or_path: str | Path,
    *,
    dtype: str = "auto",
    device: str = "auto",
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
    **kwargs: Any,
) -> Any:
    """Load a causal LM from the hub (``meta-llama/Llama-2-7b-chat-hf``) or a local directory.

    ``dtype``/``device`` as in :func:`paperlab.device.pick_dtype`/:func:`~paperlab.device.pick_device`.
    ``device="auto"`` with several GPUs in *one* process uses ``device_map="auto"`` (inference over GPUs). Under a
    distributed launch (``WORLD_SIZE > 1``) the whole model goes on the rank's own GPU instead: each rank would
    otherwise split it over every GPU, and accelerate refuses to train such a model. Models to train load through
    :func:`paperlab.scale.load_for_training`.
    """
    from transformers import AutoModelForCausalLM

    from paperlab.scale import rank_device, world_size

    distributed = world_size() > 1
    target = rank_device() if (distributed and device == "auto") else pick_device(device)
    torch_dtype = pick_dtype(dtype, target)
    options: dict[str, Any] = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code, **kwargs}
    if attn_implementation is not None:
        options["attn_implementation"] = attn_implementation
    multi_gpu = (
        device == "auto" and not distributed and target.type == "cuda" and torch.cuda.device_count() > 1
    )
    if multi_gpu:
        options.setdefault("device_map", "auto")
    model = AutoModelForCausalLM.from_pretrained(str(name_or_path), **options)
    if not multi_gpu:
        model = model.to(target)
    log.info("loaded %s (%s, %s)", name_or_path, torch_dtype, target)
    return model


# ----------------------------------------------------------------------------------------------- tiny text


def train_tiny_tokenizer(
    texts: Iterable[str] | None = None,
    vocab_size: int = 512,
    *,
    kind: str = "bpe",
    extra_special_tokens: Sequence[str] = (),
    chat_template: str | None = CHAT_TEMPLATE,
    model_max_length: int = 2048,
) -> Any:
    """Train a tokenizer on ``texts`` in well under a second and wrap it as a ``PreTrainedTokenizerFast``.

    ``kind="bpe"``: byte-level BPE (round-trips any Unicode text, Chinese included);
    ``kind="word"``: whitespace word-level (one id per word; unknown words map to ``<unk>``), handy for
    synthetic languages where a token should be a symbol. Special tokens: ``<pad>`` (id 0), ``<s>``, ``<unk>``,
    ``<|im_start|>``, ``<|im_end|>`` (the EOS, so chat generation stops at the end of a turn), then
    ``extra_special_tokens``. A ChatML chat template with ``{% generation %}`` marks is attached.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = list(texts) if texts is not None else list(SAMPLE_TEXTS)
    if not corpus:
        raise ValueError("train_tiny_tokenizer: texts is empty; give at least one string")
    specials = [SPECIAL_TOKENS["pad"], SPECIAL_TOKENS["bos"], SPECIAL_TOKENS["unk"], *CHAT_MARKERS]
    specials += [t for t in extra_special_tokens if t not in specials]
    if kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=max(vocab_size, 256 + len(specials)),
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    elif kind == "word":
        tok = Tokenizer(models.WordLevel(unk_token=SPECIAL_TOKENS["unk"]))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
        trainer = trainers.WordLevelTrainer(
            vocab_size=vocab_size, special_tokens=specials, show_progress=False
        )
    else:
        raise ValueError(f"train_tiny_tokenizer: kind must be 'bpe' or 'word', got {kind!r}")
    tok.train_from_iterator(corpus, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=SPECIAL_TOKENS["pad"],
        bos_token=SPECIAL_TOKENS["bos"],
        eos_token=SPECIAL_TOKENS["eos"],
        unk_token=SPECIAL_TOKENS["unk"],
        additional_special_tokens=[CHAT_MARKERS[0], *[t for t in specials[5:]]],
        model_max_length=model_max_length,
    )
    if chat_template is not None:
        wrapped.chat_template = chat_template
    return wrapped


def tiny_causal_lm(
    vocab_size: int | None = None,
    *,
    tokenizer: Any = None,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 4,
    kv_heads: int | None = None,
    intermediate: int | None = None,
    max_position: int = 1024,
    family: str = "llama",
    seed: int = 0,
    attn_implementation: str = "sdpa",
    **overrides: Any,
) -> Any:
    """A randomly initialised decoder-only LM of a real family (``llama``, ``qwen2``, ``mistral``), fp32, CPU.

    Give ``tokenizer`` (its length sets ``vocab_size`` and its pad/bos/eos ids are copied) or ``vocab_size``.
    ``overrides`` go to the config (``rope_theta=...``, ``tie_word_embeddings=True``, ...).
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    config = _tiny_text_config(
        AutoConfig,
        vocab_size,
        tokenizer,
        layers,
        hidden,
        heads,
        kv_heads,
        intermediate,
        max_position,
        family,
        attn_implementation,
        overrides,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    return model.eval()


def tiny_sequence_classifier(
    vocab_size: int | None = None,
    *,
    tokenizer: Any = None,
    num_labels: int = 1,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 4,
    max_position: int = 1024,
    family: str = "llama",
    seed: int = 0,
    **overrides: Any,
) -> Any:
    """A tiny ``*ForSequenceClassification`` (a reward model when ``num_labels=1``) with the pad id set, so
    it scores the last non-pad token as a hub reward model does."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = _tiny_text_config(
        AutoConfig,
        vocab_size,
        tokenizer,
        layers,
        hidden,
        heads,
        None,
        None,
        max_position,
        family,
        "sdpa",
        {"num_labels": num_labels, **overrides},
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_config(config)
    return model.eval()


def _tiny_text_config(
    auto_config: Any,
    vocab_size: int | None,
    tokenizer: Any,
    layers: int,
    hidden: int,
    heads: int,
    kv_heads: int | None,
    intermediate: int | None,
    max_position: int,
    family: str,
    attn_implementation: str,
    overrides: dict[str, Any],
) -> Any:
    if family not in _FAMILIES:
        raise ValueError(f"family must be one of {_FAMILIES}, got {family!r}")
    if tokenizer is not None:
        vocab_size = len(tokenizer)
    if vocab_size is None or vocab_size <= 0:
        raise ValueError(f"give a tokenizer or a positive vocab_size, got vocab_size={vocab_size!r}")
    if hidden % heads:
        raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads})")
    kv_heads = kv_heads or heads
    if heads % kv_heads:
        raise ValueError(f"heads ({heads}) must be divisible by kv_heads ({kv_heads})")
    ids: dict[str, Any] = {}
    if tokenizer is not None:
        ids = {
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        }
    config = auto_config.for_model(
        family,
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=intermediate or 4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_position,
        tie_word_embeddings=overrides.pop("tie_word_embeddings", False),
        **ids,
        **overrides,
    )
    config._attn_implementation = attn_implementation
    return config


def tiny_model_and_tokenizer(
    texts: Iterable[str] | None = None, vocab_size: int = 512, **model_kwargs: Any
) -> tuple[Any, Any]:
    """Tokenizer trained on ``texts`` (default :data:`SAMPLE_TEXTS`) and a tiny Llama sized to it."""
    tokenizer = train_tiny_tokenizer(texts, vocab_size=vocab_size)
    return tiny_causal_lm(tokenizer=tokenizer, **model_kwargs), tokenizer


def save_tiny_checkpoint(
    out_dir: str | Path, texts: Iterable[str] | None = None, **model_kwargs: Any
) -> Path:
    """Write a tiny model + tokenizer with ``save_pretrained`` so that :func:`load_causal_lm` (the real loader)
    can open it like any hub checkout. Returns ``out_dir``."""
    out = Path(out_dir)
    model, tokenizer = tiny_model_and_tokenizer(texts, **model_kwargs)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


# ----------------------------------------------------------------------------------------------- vision


def tiny_vision_tower(
    image_size: int = 32,
    patch_size: int = 8,
    width: int = 64,
    depth: int = 2,
    heads: int = 4,
    *,
    in_chans: int = 3,
    num_classes: int = 0,
    global_pool: str = "token",
    seed: int = 0,
) -> Any:
    """A randomly initialised timm ``VisionTransformer`` (class token, learned positions).

    ``model.forward_features(x)`` gives ``(batch, 1 + (image_size/patch_size)**2, width)``.
    """
    from timm.models.vision_transformer import VisionTransformer

    if image_size % patch_size:
        raise ValueError(f"image_size ({image_size}) must be divisible by patch_size ({patch_size})")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return VisionTransformer(
            img_size=image_size,
            patch_size=patch_size,
            in_chans=in_chans,
            num_classes=num_classes,
            global_pool=global_pool,
            embed_dim=width,
            depth=depth,
            num_heads=heads,
        )


def load_vision_tower(name: str, *, pretrained: bool = True, **kwargs: Any) -> Any:
    """A timm model by name (``vit_base_patch16_224``); ``pretrained=True`` downloads weights from the hub."""
    import timm

    return timm.create_model(name, pretrained=pretrained, **kwargs)


def tiny_open_clip(
    embed_dim: int = 64,
    *,
    image_size: int = 32,
    patch_size: int = 8,
    vision_width: int = 64,
    vision_layers: int = 2,
    text_width: int = 64,
    text_layers: int = 2,
    heads: int = 4,
    vocab_size: int = 49408,
    context_length: int = 32,
    seed: int = 0,
) -> Any:
    """A randomly initialised open_clip ``CLIP`` (ViT image tower + transformer text tower)."""
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    if image_size % patch_size:
        raise ValueError(f"image_size ({image_size}) must be divisible by patch_size ({patch_size})")
    vision = CLIPVisionCfg(
        layers=vision_layers,
        width=vision_width,
        head_width=vision_width // heads,
        patch_size=patch_size,
        image_size=image_size,
    )
    text = CLIPTextCfg(
        context_length=context_length,
        vocab_size=vocab_size,
        width=text_width,
        heads=heads,
        layers=text_layers,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return CLIP(embed_dim=embed_dim, vision_cfg=vision, text_cfg=text)


def load_open_clip(
    name: str = "ViT-B-32", pretrained: str | None = "openai", **kwargs: Any
) -> tuple[Any, Any, Any]:
    """``(model, preprocess, tokenizer)`` from open_clip by config name and pretrained tag (downloads weights)."""
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained, **kwargs)
    return model, preprocess, open_clip.get_tokenizer(name)


# ----------------------------------------------------------------------------------------------- sampling


@torch.no_grad()
def policy_and_tokenizer(
    model: str, texts: Iterable[str] = (), *, dtype: str = "auto", seed: int = 0, vocab_size: int = 512
) -> tuple[Any, Any]:
    """The policy of an alignment run and its tokenizer: ``"tiny"`` builds a tiny Llama with a tokenizer trained on
    ``texts`` (:func:`tiny_model_and_tokenizer`), anything else is a hub name or directory (:func:`load_causal_lm`,
    :func:`load_tokenizer`). The tokenizer always has a pad token (its EOS when it had none)."""
    if model == "tiny":
        policy, tok = tiny_model_and_tokenizer(list(texts) or None, vocab_size=vocab_size, seed=seed)
    else:
        policy, tok = load_causal_lm(model, dtype=dtype), load_tokenizer(model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return policy, tok


def sample_completions(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    batch_size: int = 16,
) -> list[str]:
    """One sampled completion per prompt (left-padded batches, special tokens dropped); an empty completion becomes
    the EOS text (or ``"."``) so that it can still be tokenised as a training target. The model's train/eval mode
    and the tokenizer's padding side are restored afterwards."""
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    out: list[str] = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(prompts), batch_size):
            batch = tokenizer(list(prompts[start : start + batch_size]), return_tensors="pt", padding=True)
            batch = {k: v.to(model.device) for k, v in batch.items()}
            ids = model.generate(
                **batch,
                do_sample=True,
                temperature=temperature,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
            )
            texts = tokenizer.batch_decode(ids[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
            out.extend(t if t.strip() else tokenizer.eos_token or "." for t in texts)
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return out
