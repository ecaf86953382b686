"""Chat prompts at paper scale: Vicuna's v1.1 conversation template where the tokenizer ships none, and exactly one
BOS where a template writes its own (Llama-2-chat) and the tokenizer would add another."""

import pytest
import torch
from tokenizers import processors

from paperlab.models import tiny_causal_lm, train_tiny_tokenizer
from profuser.generate import greedy_responses
from profuser.represent import ModelSide, Sample, _encode

#: Llama-2-chat's template as its tokenizer_config.json has it (reduced to user / assistant turns): BOS written by
#: the template itself.
LLAMA2_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}{{ bos_token + '[INST] ' + m['content'].strip() + ' [/INST]' }}"
    "{% else %}{{ ' ' + m['content'].strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)


def _llama_like_tokenizer(chat_template):
    """A tokenizer that adds BOS itself (as Llama's does with add_special_tokens=True)."""
    tok = train_tiny_tokenizer(
        ["[INST] add 1 2 = [/INST] 3", "USER: ASSISTANT: hi"] * 3, vocab_size=300, chat_template=chat_template
    )
    tok._tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.bos_token_id)]
    )
    assert tok("add")["input_ids"][0] == tok.bos_token_id
    return tok


def test_llama2_chat_prompt_has_exactly_one_bos():
    tok = _llama_like_tokenizer(LLAMA2_TEMPLATE)
    side = ModelSide("llama-2-chat", None, tok, chat=True)
    prompt_ids, _ = _encode(side, Sample("s0", "add 1 2 =", " 3"))
    assert prompt_ids.count(tok.bos_token_id) == 1 and prompt_ids[0] == tok.bos_token_id
    model = tiny_causal_lm(tokenizer=tok, seed=0)
    seen = []
    generate = model.generate

    def record(**kwargs):
        seen.append(kwargs["input_ids"])
        return generate(**kwargs)

    model.generate = record
    greedy_responses(model, tok, ["add 1 2 =", "rev abc ="], max_new_tokens=2, chat=True)
    for row, mask in zip(seen[0], torch.ones_like(seen[0]), strict=True):
        real = [int(t) for t, m in zip(row, mask, strict=True) if m and int(t) != tok.pad_token_id]
        assert real.count(tok.bos_token_id) == 1 and real[0] == tok.bos_token_id


def test_vicuna_gets_the_v1_1_template_when_its_tokenizer_has_none():
    from profuser.chat import ensure_chat_template

    tok = _llama_like_tokenizer(None)
    assert not tok.chat_template
    with pytest.raises(ValueError, match="chat_template"):
        ensure_chat_template(tok, "", "vicuna-7b-v1.5")
    ensure_chat_template(tok, "vicuna_v1.1", "vicuna-7b-v1.5")
    text = tok.apply_chat_template(
        [{"role": "user", "content": "add 1 2 ="}], tokenize=False, add_generation_prompt=True
    )
    assert text == (
        "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
        "detailed, and polite answers to the user's questions. USER: add 1 2 = ASSISTANT:"
    )
    full = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], tokenize=False
    )
    assert full.endswith("USER: hi ASSISTANT: hello" + tok.eos_token)
    prompt_ids, _ = _encode(ModelSide("vicuna", None, tok, chat=True), Sample("s0", "add 1 2 =", " 3"))
    assert prompt_ids.count(tok.bos_token_id) == 1 and prompt_ids[0] == tok.bos_token_id
    # a tokenizer with its own template keeps it
    own = _llama_like_tokenizer(LLAMA2_TEMPLATE)
    ensure_chat_template(own, "vicuna_v1.1", "llama-2-chat")
    assert own.chat_template == LLAMA2_TEMPLATE
