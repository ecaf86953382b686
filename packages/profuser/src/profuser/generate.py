"""Greedy generation and response log-likelihood for any causal LM (batched, left padded for generation).

Used by the inference mode (each source answers every prompt; :mod:`profuser.advantage`), by the evaluation of the
tiny experiment, and by the source training of the tiny world (:func:`response_loss`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm


def format_prompt(tokenizer, prompt: str, chat: bool) -> str:
    """``chat=True``: the tokenizer's chat template with one user turn and the generation prompt (hub chat models);
    ``False``: the raw prompt (the tiny world)."""
    if not chat:
        return prompt
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )


def encode_prompt(tokenizer, prompt: str, chat: bool) -> list[int]:
    """Token ids of :func:`format_prompt` with exactly one BOS at chat scale: the tokenizer's special tokens are
    added unless the template's text already starts with BOS (Llama-2-chat's template writes ``<s>`` itself, and
    Llama's tokenizer would add a second). The raw prompt (``chat=False``) gets no special tokens."""
    text = format_prompt(tokenizer, prompt, chat)
    bos = getattr(tokenizer, "bos_token", None)
    add = chat and not (bos and text.startswith(bos))
    return list(tokenizer(text, add_special_tokens=add)["input_ids"])


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` of ``rows`` padded on the left (for generation)."""
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad_id] * (width - len(r)) + list(r) for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return {"input_ids": ids, "attention_mask": mask}


@torch.no_grad()
def greedy_responses(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 16,
    batch_size: int = 64,
    chat: bool = False,
    progress: bool = False,
    desc: str = "generate",
) -> list[str]:
    """One greedy response per prompt, special tokens dropped, cut at the first EOS."""
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    was_training = model.training
    model.eval()
    out: list[str] = []
    try:
        starts = range(0, len(prompts), batch_size)
        for start in tqdm(starts, desc=desc, disable=not progress, leave=False):
            rows = [encode_prompt(tokenizer, p, chat) for p in prompts[start : start + batch_size]]
            batch = left_pad(rows, tokenizer.pad_token_id)
            batch = {k: v.to(model.device) for k, v in batch.items()}
            ids = model.generate(
                **batch,
                do_sample=False,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            out.extend(
                tokenizer.batch_decode(ids[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
            )
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return out


def encode_pairs(tokenizer, pairs: Sequence[tuple[str, str]], *, eos: bool = True) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 on the prompt and padding) for
    (prompt, response) pairs; the response is followed by EOS when ``eos``."""
    rows, labels = [], []
    for prompt, response in pairs:
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        r = tokenizer(response, add_special_tokens=False)["input_ids"]
        if eos:
            r = [*r, tokenizer.eos_token_id]
        rows.append(p + r)
        labels.append([-100] * len(p) + r)
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    lab = torch.tensor([r + [-100] * (width - len(r)) for r in labels])
    return {"input_ids": input_ids, "attention_mask": mask, "labels": lab}


def response_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross entropy over the response tokens (labels != -100), shifted inside: logits at
    position t are scored against the label at t + 1."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
        batch["labels"][:, 1:].reshape(-1),
        ignore_index=-100,
    )


def server_responses(
    base_url: str,
    model: str,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 16,
    chat: bool = True,
    workers: int = 8,
    timeout_s: float = 120.0,
    retries: int = 4,
    backoff_s: float = 1.0,
) -> list[str | None]:
    """Greedy answers from an OpenAI-compatible server (vLLM, TGI, ...) through :class:`paperlab.serving.OpenAIServer`:
    ``/v1/chat/completions`` with one user turn when ``chat``, else ``/v1/completions`` on the raw prompt;
    temperature 0; at most ``workers`` requests in flight, each retried with backoff; answers in prompt order.
    ``base_url`` with or without the ``/v1``. A prompt that still fails answers None (its error logged) and the
    others are kept: the caller counts it and asks again on the next run."""
    from paperlab.serving import OpenAIServer, ServerConfig

    base = base_url.rstrip("/")
    cfg = ServerConfig(
        base if base.endswith("/v1") else base + "/v1",
        model,
        chat=chat,
        max_tokens=max_new_tokens,
        temperature=0.0,
        timeout_s=timeout_s,
        concurrency=workers,
        retries=retries,
        backoff_s=backoff_s,
    )
    return [c.text if c.ok else None for c in OpenAIServer(cfg).complete(prompts)]
