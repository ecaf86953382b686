"""Chat templates for hub models whose tokenizer ships none, applied only where the tokenizer has no template of its
own (``sources[].chat_template`` / ``target.chat_template`` name the fallback).

* ``vicuna_v1.1``: FastChat's ``vicuna_v1.1`` conversation (what lmsys/vicuna-7b-v1.5 was trained on; its
  tokenizer_config.json has no ``chat_template``): the system prompt, a space, ``USER: <msg> ASSISTANT:``, each answer
  closed by ``</s>``. No BOS in the text: the Llama tokenizer adds it (:func:`profuser.generate.encode_prompt`).
* ``chatml``: ``<|im_start|>role\\n...<|im_end|>\\n`` (MosaicML's MPT chat models were tuned on ChatML).
"""

from __future__ import annotations

from typing import Any

from paperlab.config import ConfigError

VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the user's questions."
)

VICUNA_V1_1 = (
    "{% if messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] %}"
    '{% set turns = messages[1:] %}{% else %}{% set system = "' + VICUNA_SYSTEM + '" %}'
    "{% set turns = messages %}{% endif %}{{ system }}"
    "{% for m in turns %}{% if m['role'] == 'user' %}{{ ' USER: ' + m['content'] }}"
    "{% else %}{{ ' ASSISTANT: ' + m['content'] + eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ ' ASSISTANT:' }}{% endif %}"
)

CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

TEMPLATES = {"vicuna_v1.1": VICUNA_V1_1, "chatml": CHATML}


def ensure_chat_template(tokenizer: Any, fallback: str, name: str) -> Any:
    """Give ``tokenizer`` the template ``fallback`` (a key of :data:`TEMPLATES`) when it has none; a tokenizer with
    its own template keeps it. No template and no fallback raises :class:`~paperlab.config.ConfigError` naming the model and the field."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer
    if fallback not in TEMPLATES:
        raise ConfigError(
            f"{name}: the tokenizer has no chat template and chat_template={fallback!r}; set the model's "
            f"chat_template to one of {sorted(TEMPLATES)} (or chat: false)"
        )
    tokenizer.chat_template = TEMPLATES[fallback]
    return tokenizer
