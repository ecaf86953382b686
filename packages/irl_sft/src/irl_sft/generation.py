"""Self-generated completions y~ ~ pi_t (paper Algorithm 2, line 3), sharded over the ranks of a launch.

As the official ``generate_split_data.py`` (paper configs): greedy decoding (``do_sample: false``), 256 new tokens,
the prompt "### Instruction: <first user turn>\\n\\n### Response: " (``generation_template``) tokenized without
special tokens, left-padded batches, the text after the prompt with special tokens dropped and leading whitespace
stripped. The tiny configs sample at ``temperature``. :func:`sharded_completions` splits the prompts over the
ranks (:func:`paperlab.scale.map_sharded`) and returns every completion, in order, on every rank.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from paperlab.scale import map_sharded, rank

log = logging.getLogger(__name__)


def generation_kwargs(cfg: Any) -> dict[str, Any]:
    """``generate()`` arguments of a config: greedy, or sampling at ``cfg.temperature``."""
    out: dict[str, Any] = {"do_sample": cfg.do_sample, "max_new_tokens": cfg.max_new_tokens}
    if cfg.do_sample:
        out["temperature"] = cfg.temperature
    return out


def generation_prompt(cfg: Any, demo: dict[str, str]) -> str:
    """The text pi_t continues for a demonstration row: its training prompt, or ``cfg.generation_template`` filled
    with the row's ``instruction`` (the first user turn, ``data.prompt_turns: first``) or ``prompt``."""
    if not cfg.generation_template:
        return demo["prompt"]
    return cfg.generation_template.format(instruction=demo.get("instruction", demo["prompt"]))


@torch.no_grad()
def generate_completions(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    do_sample: bool = True,
    temperature: float = 1.0,
    batch_size: int = 16,
) -> list[str]:
    """One completion per prompt (left-padded batches, prompts tokenized without special tokens as TRL does, special
    tokens dropped from the output). Greedy output is left-stripped as the official script does; an empty completion
    becomes the EOS text (or ``"."``) so that it can still be a training target. Mode and padding side restored."""
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    was_training = model.training
    model.eval()
    options: dict[str, Any] = {"do_sample": do_sample, "max_new_tokens": max_new_tokens}
    if do_sample:
        options["temperature"] = temperature
    else:  # the model's own generation config may name sampling settings; greedy ignores them
        options.update(temperature=None, top_p=None, top_k=None)
    out: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            batch = tokenizer(
                list(prompts[start : start + batch_size]),
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            )
            batch = {k: v.to(model.device) for k, v in batch.items()}
            ids = model.generate(**batch, pad_token_id=tokenizer.pad_token_id, **options)
            texts = tokenizer.batch_decode(ids[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
            if not do_sample:
                texts = [t.lstrip() for t in texts]
            out.extend(t if t.strip() else tokenizer.eos_token or "." for t in texts)
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return out


def sharded_completions(cfg: Any, model: Any, tokenizer: Any, prompts: Sequence[str]) -> list[str]:
    """:func:`generate_completions` of ``prompts`` split over the ranks; every rank gets all of them, in order."""

    def shard(part: list[str]) -> list[str]:
        log.info("rank %d: generating %d of %d completions", rank(), len(part), len(prompts))
        return generate_completions(
            model, tokenizer, part, batch_size=cfg.generation_batch, **generation_kwargs(cfg)
        )

    return map_sharded(shard, list(prompts))
