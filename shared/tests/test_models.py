import pytest
import torch

from paperlab.models import (
    SAMPLE_TEXTS,
    load_causal_lm,
    load_tokenizer,
    save_tiny_checkpoint,
    tiny_causal_lm,
    tiny_model_and_tokenizer,
    tiny_open_clip,
    tiny_sequence_classifier,
    tiny_vision_tower,
    train_tiny_tokenizer,
)


def test_bpe_tokenizer_round_trips_any_text_and_has_specials():
    tok = train_tiny_tokenizer(SAMPLE_TEXTS, vocab_size=400)
    for text in ["The quick brown fox.", "你好，世界 — émigré 42"]:
        assert tok.decode(tok(text)["input_ids"]) == text
    assert tok.pad_token_id == 0
    assert tok.eos_token == "<|im_end|>"
    assert 256 < len(tok) <= 400


def test_chat_template_marks_assistant_tokens():
    tok = train_tiny_tokenizer(SAMPLE_TEXTS, vocab_size=400)
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    text = tok.apply_chat_template(chat, tokenize=False)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n"
    enc = tok.apply_chat_template(chat, return_dict=True, return_assistant_tokens_mask=True)
    marked = [i for i, m in zip(enc["input_ids"], enc["assistant_masks"]) if m]
    assert tok.decode(marked) == "yo<|im_end|>"
    prompt = tok.apply_chat_template(chat[:1], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")


def test_word_tokenizer_maps_words_to_single_ids():
    tok = train_tiny_tokenizer(["a b c", "b c d"], vocab_size=50, kind="word")
    ids = tok("a b zz")["input_ids"]
    assert len(ids) == 3 and ids[2] == tok.unk_token_id
    assert tok.decode(tok("a b c")["input_ids"]) == "a b c"
    with pytest.raises(ValueError, match="kind must be"):
        train_tiny_tokenizer(["x"], kind="unigram")


def test_tiny_llama_generates_20_tokens_deterministically():
    model, tok = tiny_model_and_tokenizer()
    assert model.config.model_type == "llama"
    ids = tok("The quick brown", return_tensors="pt")
    out1 = model.generate(**ids, max_new_tokens=20, min_new_tokens=20, do_sample=False)
    out2 = model.generate(**ids, max_new_tokens=20, min_new_tokens=20, do_sample=False)
    assert out1.shape[1] == ids["input_ids"].shape[1] + 20
    assert torch.equal(out1, out2)


@pytest.mark.parametrize("family", ["qwen2", "mistral"])
def test_other_families_and_gqa(family):
    model = tiny_causal_lm(vocab_size=100, family=family, heads=4, kv_heads=2)
    logits = model(torch.randint(0, 100, (2, 7))).logits
    assert logits.shape == (2, 7, 100)


def test_tiny_causal_lm_bad_input():
    with pytest.raises(ValueError, match="family must be"):
        tiny_causal_lm(vocab_size=10, family="gpt9")
    with pytest.raises(ValueError, match="divisible by heads"):
        tiny_causal_lm(vocab_size=10, hidden=30, heads=4)
    with pytest.raises(ValueError, match="positive vocab_size"):
        tiny_causal_lm()


def test_same_seed_same_weights_and_no_global_rng_side_effect():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = tiny_causal_lm(vocab_size=50, seed=1)
    after = torch.rand(1)
    b = tiny_causal_lm(vocab_size=50, seed=1)
    assert torch.equal(before, after)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_real_loader_opens_a_local_checkpoint(tmp_path):
    out = save_tiny_checkpoint(tmp_path / "tiny")
    model = load_causal_lm(out, dtype="float32", device="cpu")
    tok = load_tokenizer(out)
    ids = tok("The quick", return_tensors="pt")
    assert model(**ids).logits.shape[-1] == len(tok)
    assert tok.chat_template is not None


def test_reward_model_scores_last_non_pad_token():
    tok = train_tiny_tokenizer(SAMPLE_TEXTS, vocab_size=300)
    rm = tiny_sequence_classifier(tokenizer=tok)
    tok.padding_side = "right"
    single = rm(**tok(["The quick brown fox"], return_tensors="pt")).logits
    batch = rm(**tok(["The quick brown fox", "A"], return_tensors="pt", padding=True)).logits
    assert batch.shape == (2, 1)
    assert torch.allclose(single[0], batch[0], atol=1e-5)


def test_vision_towers_shapes():
    vit = tiny_vision_tower(image_size=32, patch_size=8, width=48, depth=1, heads=4)
    assert vit.forward_features(torch.zeros(2, 3, 32, 32)).shape == (2, 1 + 16, 48)
    with pytest.raises(ValueError, match="divisible"):
        tiny_vision_tower(image_size=30, patch_size=8)
    clip = tiny_open_clip(embed_dim=32, context_length=16, vocab_size=100)
    assert clip.encode_image(torch.zeros(3, 3, 32, 32)).shape == (3, 32)
    assert clip.encode_text(torch.zeros(3, 16, dtype=torch.long)).shape == (3, 32)


def test_random_words_and_the_policy_loader() -> None:
    import torch

    from paperlab.models import SAMPLE_WORDS, policy_and_tokenizer, random_words

    a = random_words(torch.Generator().manual_seed(0), 12)
    assert a == random_words(torch.Generator().manual_seed(0), 12) and a.startswith(" ")
    assert len(a.split()) == 12 and set(a.split()) <= set(SAMPLE_WORDS)
    policy, tok = policy_and_tokenizer("tiny", ["count from 1 by 2: 3 5 7"], seed=0)
    assert tok.pad_token is not None and policy.config.vocab_size == len(tok)
