"""Reward models for the inference mode: a sequence classifier (a tiny one built locally) and a wrapped rule."""

import pytest
import torch

from paperlab.models import tiny_sequence_classifier, train_tiny_tokenizer
from profuser.reward import ModelReward, RuleReward
from profuser.world import score


def test_model_reward_scores_the_last_token_of_prompt_plus_response_in_batches():
    tok = train_tiny_tokenizer(
        ["add 1 2 = 3", "how to make a kite = first"] * 3, vocab_size=280, chat_template=None
    )
    model = tiny_sequence_classifier(tokenizer=tok, seed=0)
    reward = ModelReward(model, tok, batch_size=2)
    prompts, responses = ["add 1 2 =", "add 1 2 =", "how to make a kite ="], [" 3", " 4", " first"]
    got = reward.score(prompts, responses)
    assert len(got) == 3
    for p, r, value in zip(prompts, responses, got, strict=True):
        one = tok(p + r, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            assert model(**one).logits[0, 0].item() == pytest.approx(value, abs=1e-4)
    with pytest.raises(ValueError, match="num_labels=1"):
        ModelReward(tiny_sequence_classifier(tokenizer=tok, num_labels=2), tok)


def test_rule_reward_is_the_world_checker():
    reward = RuleReward(score)
    assert reward.score(["add 2 3 =", "add 2 3 =", "rev abc ="], [" 5", " 6", "cba "]) == [1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="2 prompts but 1 responses"):
        reward.score(["a", "b"], ["x"])


def _deberta_like():
    """A tiny DeBERTa-v2 sequence classifier and a tokenizer with its pair encoding ``[CLS] A [SEP] B [SEP]``
    (token type 1 on B), as OpenAssistant's DeBERTa-v3 reward models are trained on ``tokenizer(prompt, answer)``."""
    from tokenizers import processors
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification

    tok = train_tiny_tokenizer(
        ["add 1 2 = 3", "how to make a kite = first"] * 3,
        vocab_size=280,
        chat_template=None,
        extra_special_tokens=["[CLS]", "[SEP]"],
    )
    cls, sep = tok.convert_tokens_to_ids(["[CLS]", "[SEP]"])
    tok._tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    tok.cls_token, tok.sep_token = "[CLS]", "[SEP]"
    tok.model_input_names = ["input_ids", "token_type_ids", "attention_mask"]  # as DebertaV2Tokenizer's
    config = DebertaV2Config(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, relative_attention=True, position_buckets=16, pos_att_type=["p2c", "c2p"],
        position_biased_input=False, type_vocab_size=2, num_labels=1, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    return DebertaV2ForSequenceClassification(config).eval(), tok, sep


def test_encoder_reward_model_reads_prompt_and_response_as_a_pair():
    model, tok, sep = _deberta_like()
    seen = []
    model.register_forward_pre_hook(lambda m, args, kwargs: seen.append(kwargs), with_kwargs=True)
    prompts, responses = ["add 1 2 =", "how to make a kite ="], [" 3", " first"]
    got = ModelReward(model, tok, batch_size=2).score(prompts, responses)
    batch = seen[0]
    for i, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        n_p = len(tok(p, add_special_tokens=False)["input_ids"])
        n_r = len(tok(r, add_special_tokens=False)["input_ids"])
        ids = batch["input_ids"][i].tolist()
        assert ids[0] == tok.cls_token_id and ids[1 + n_p] == sep and ids[2 + n_p + n_r] == sep
        types = batch["token_type_ids"][i].tolist()
        assert types[: 2 + n_p] == [0] * (2 + n_p) and types[2 + n_p : 3 + n_p + n_r] == [1] * (n_r + 1)
        one = tok(p, r, return_tensors="pt")
        with torch.no_grad():
            assert model(**one).logits[0, 0].item() == pytest.approx(got[i], abs=1e-4)
