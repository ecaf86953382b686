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
