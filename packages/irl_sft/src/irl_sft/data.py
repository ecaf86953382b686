"""Demonstrations and preference pairs for the LLM pipeline, checked row by row, and the stage plan.

Data: JSONL files or hub datasets (``hub:<name>[:<split>]``), ``format``:

- ``columns``: a prompt and a completion field (names configurable);
- ``chat``: a list of ``{role, content}`` messages (ultrachat_200k's ``messages``, SPIN_iter0's ``real``).
  ``prompt_turns: all``: the last message must be the assistant's and is the demonstration, the ones before it make
  the prompt through the tokenizer's chat template. ``prompt_turns: first`` (the official ``generate_split_data.py``
  and ``run_IRFT.py``): the first user turn is the prompt (after the row's system message, else an empty one), the
  first assistant reply after it the demonstration; the turn's raw text is kept as ``instruction`` for
  :func:`irl_sft.generation.generation_prompt`.

A prompt whose tokens leave fewer than ``min_completion_tokens`` of ``max_length`` for the completion is an error
naming the file and row (``long_prompts: error``), or is dropped (``long_prompts: drop``); completions are truncated
to ``max_length`` (TRL's ``keep_start``). :func:`stage_plan` counts what survives before anything is generated or
trained and refuses a schedule the rows cannot fill, naming the numbers.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paperlab.config import require
from paperlab.io import DataError, iter_jsonl

log = logging.getLogger(__name__)


@dataclass
class DataConfig:
    demos: str = ""  # JSONL path or hub:<name>[:<split>]
    format: str = "columns"  # columns | chat
    prompt_field: str = "prompt"
    completion_field: str = "completion"
    messages_field: str = "messages"
    prompt_turns: str = "all"  # chat: all (every turn before the last reply) | first (the first user turn)
    shuffle_seed: int = -1  # >= 0: shuffle the rows with this seed before slicing (the official script: 42)
    # held-out demonstrations: "" the last eval_demos usable rows of `demos`; else a source of their own (the first
    # eval_demos usable rows of it), e.g. the test split of the same data set
    heldout: str = ""
    eval_demos: int = 64
    # preference pairs ranked by the implicit reward log pi - log pi_0 at every stage (the official
    # test_reward_accuracy.py on ultrafeedback_binarized test_prefs): "" none | "synthetic" | JSONL | hub:<name>[:<split>]
    # with prompt/chosen/rejected strings (format columns) or chosen/rejected message lists (format chat)
    eval_prefs: str = ""
    eval_prefs_limit: int = 0  # 0: all pairs

    def __post_init__(self) -> None:
        require(self.format in ("columns", "chat"), "data.format", self.format, "columns or chat")
        require(self.prompt_turns in ("all", "first"), "data.prompt_turns", self.prompt_turns, "all or first")
        require(self.eval_demos >= 1, "data.eval_demos", self.eval_demos, ">= 1")
        require(self.eval_prefs_limit >= 0, "data.eval_prefs_limit", self.eval_prefs_limit, ">= 0")


def synthetic_demos(n: int = 240, seed: int = 0) -> list[dict[str, str]]:
    """``demos: synthetic``: prompts "count from a by k:" with the demonstration continuing the arithmetic sequence
    (the tiny default, so that the pipeline runs with no file and no hub)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, k = rng.randint(0, 20), rng.randint(1, 3)
        rows.append(
            {
                "prompt": f"count from {a} by {k}:",
                "completion": " " + " ".join(str(a + k * i) for i in range(1, 6)),
            }
        )
    return rows


def synthetic_prefs(n: int = 48, seed: int = 1) -> list[dict[str, str]]:
    """``eval_prefs: synthetic``: the correct continuation of "count from a by k:" preferred to one with a wrong step."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, k = rng.randint(0, 20), rng.randint(1, 3)
        wrong = k + rng.choice([1, 2])
        chosen, rejected = (" " + " ".join(str(a + step * i) for i in range(1, 6)) for step in (k, wrong))
        rows.append({"prompt": f"count from {a} by {k}:", "chosen": chosen, "rejected": rejected})
    return rows


def source_file(source: str) -> Path | None:
    """The local file a data source names; None for ``""``, ``synthetic`` and ``hub:`` sources."""
    if source in ("", "synthetic") or source.startswith("hub:"):
        return None
    return Path(source)


def located_rows(source: str) -> list[tuple[str, dict[str, Any]]]:
    """``[(where, row)]`` of ``synthetic``, a JSONL file (``where``: the file and its 1-based line, blank lines
    counted; a missing file or a line that is not a JSON object is a :class:`paperlab.io.DataError` naming them) or
    ``hub:<name>[:<split>]`` (``where``: the row, from 1)."""
    if source == "synthetic":
        return [(f"{source}: row {i}", r) for i, r in enumerate(synthetic_demos(), start=1)]
    if source.startswith("hub:"):
        from datasets import load_dataset

        name, _, split = source[4:].partition(":")
        rows = load_dataset(name, split=split or "train")
        return [(f"{source}: row {i}", dict(r)) for i, r in enumerate(rows, start=1)]
    return [(f"{source}: line {n}", row) for n, row in iter_jsonl(source)]


def load_rows(source: str) -> list[dict[str, Any]]:
    """The raw rows of ``synthetic``, a JSONL file or ``hub:<name>[:<split>]`` (:func:`located_rows`)."""
    return [row for _, row in located_rows(source)]


def _text(row: dict[str, Any], key: str, where: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        found = "missing" if key not in row else f"{type(value).__name__} {value!r}"[:60]
        raise DataError(f"{where}: field {key!r} is {found}; expected a non-empty string")
    return value


def _messages(row: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    messages = row.get(key)
    if not isinstance(messages, list) or len(messages) < 2:
        size = f" of length {len(messages)}" if isinstance(messages, list) else ""
        found = "missing" if key not in row else f"{type(messages).__name__}{size}"
        raise DataError(
            f"{where}: field {key!r} is {found}; expected a list of >= 2 {{role, content}} messages"
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise DataError(
                f"{where}: {key}[{i}] is {type(message).__name__}; expected a {{role, content}} object"
            )
        for name in ("role", "content"):
            if not isinstance(message.get(name), str):
                found = "missing" if name not in message else type(message[name]).__name__
                raise DataError(f"{where}: {key}[{i}]: field {name!r} is {found}; expected a string")
    return messages


def _chat(row: dict[str, Any], key: str, where: str, tokenizer: Any) -> tuple[str, str]:
    """(prompt through the chat template, demonstration): every turn before the last (assistant) message."""
    messages = _messages(row, key, where)
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "assistant":
        raise DataError(
            f"{where}: the last message of {key!r} is not the assistant's; it is the demonstration"
        )
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    return prompt, _text(last, "content", f"{where}: {key}[-1]")


def _first_turn(row: dict[str, Any], key: str, where: str, tokenizer: Any) -> tuple[str, str, str]:
    """(prompt, demonstration, instruction) from the first user turn and the first assistant reply after it, the
    prompt as the official ``run_IRFT.py`` builds it: the row's system message (else an empty one) and that turn."""
    messages = _messages(row, key, where)
    roles = [m.get("role") if isinstance(m, dict) else None for m in messages]
    if "user" not in roles:
        raise DataError(f"{where}: {key!r} has no user message; expected the first user turn as the prompt")
    i = roles.index("user")
    if "assistant" not in roles[i + 1 :]:
        raise DataError(
            f"{where}: {key!r} has no assistant reply after the first user turn (the demonstration)"
        )
    j = roles.index("assistant", i + 1)
    instruction = _text(messages[i], "content", f"{where}: {key}[{i}]")
    system = messages[0] if roles[0] == "system" else {"role": "system", "content": ""}
    prompt = tokenizer.apply_chat_template(
        [system, {"role": "user", "content": instruction}], tokenize=False, add_generation_prompt=True
    )
    return prompt, _text(messages[j], "content", f"{where}: {key}[{j}]"), instruction


def _demos(cfg: Any, tokenizer: Any, source: str) -> tuple[list[dict[str, str]], int, int]:
    """(usable demonstrations of ``source``, rows read, rows dropped for a long prompt)."""
    data = cfg.data
    rows = located_rows(source)
    if data.shuffle_seed >= 0:
        random.Random(data.shuffle_seed).shuffle(rows)
    out, dropped = [], 0
    budget = cfg.max_length - cfg.min_completion_tokens
    for where, row in rows:
        demo: dict[str, str]
        if data.format == "chat" and data.prompt_turns == "first":
            prompt, completion, instruction = _first_turn(row, data.messages_field, where, tokenizer)
            demo = {"prompt": prompt, "completion": completion, "instruction": instruction}
        elif data.format == "chat":
            prompt, completion = _chat(row, data.messages_field, where, tokenizer)
            demo = {"prompt": prompt, "completion": completion}
        else:
            prompt = _text(row, data.prompt_field, where)
            demo = {"prompt": prompt, "completion": _text(row, data.completion_field, where)}
        n = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        if n > budget:
            if cfg.long_prompts == "error":
                raise DataError(
                    f"{where}: the prompt has {n} tokens; max_length {cfg.max_length} leaves room for at most "
                    f"{budget} (min_completion_tokens {cfg.min_completion_tokens}). Raise max_length, or set "
                    "long_prompts=drop to skip such rows"
                )
            dropped += 1
            continue
        out.append(demo)
    if dropped:
        log.warning(
            "%s: dropped %d of %d rows whose prompt exceeds %d tokens", source, dropped, len(rows), budget
        )
    return out, len(rows), dropped


def load_demos(cfg: Any, tokenizer: Any) -> list[dict[str, str]]:
    """``[{prompt, completion[, instruction]}]`` from ``cfg.data.demos`` (module docstring); more rows than
    ``data.eval_demos`` must survive when the held-out ones come from the same source."""
    out, _, _ = _demos(cfg, tokenizer, cfg.data.demos)
    if not cfg.data.heldout and len(out) <= cfg.data.eval_demos:
        raise DataError(
            f"{cfg.data.demos}: {len(out)} usable demonstrations; expected more than data.eval_demos = "
            f"{cfg.data.eval_demos} (the held-out ones) plus at least one per stage"
        )
    return out


@dataclass
class StagePlan:
    """The training slices' source and the held-out demonstrations: stage t trains on
    ``train[(t-1) * per_stage : t * per_stage]``."""

    train: list[dict[str, str]]
    held: list[dict[str, str]]
    per_stage: int


def stage_plan(cfg: Any, tokenizer: Any) -> StagePlan:
    """Count the usable demonstrations (after ``long_prompts``) before anything runs and split them into the held-out
    ones and ``stages`` slices of ``prompts_per_stage`` (0: an even split); a schedule the rows cannot fill is a
    :class:`DataError` naming rows read, dropped, held out and needed."""
    data = cfg.data
    demos, n_rows, dropped = _demos(cfg, tokenizer, data.demos)
    if data.heldout:
        held_rows, n_held_rows, held_dropped = _demos(cfg, tokenizer, data.heldout)
        if len(held_rows) < data.eval_demos:
            raise DataError(
                f"{data.heldout}: {len(held_rows)} usable held-out demonstrations of {n_held_rows} rows "
                f"({held_dropped} dropped); expected data.eval_demos = {data.eval_demos}"
            )
        held, train = held_rows[: data.eval_demos], demos
        held_note = f"held out from {data.heldout}"
    else:
        held, train = demos[-data.eval_demos :], demos[: -data.eval_demos]
        held_note = f"{data.eval_demos} held out"
    per_stage = cfg.prompts_per_stage or len(train) // cfg.stages
    need = per_stage * cfg.stages
    if per_stage < 1 or need > len(train) or (not data.heldout and len(demos) <= data.eval_demos):
        budget = cfg.max_length - cfg.min_completion_tokens
        raise DataError(
            f"{data.demos}: {n_rows} rows, {dropped} dropped (prompt over {budget} tokens, long_prompts="
            f"{cfg.long_prompts}), {held_note}, {max(len(train), 0)} left for training; the schedule needs "
            f"{cfg.stages} stages x {per_stage} = {need}. Lower prompts_per_stage or stages, raise max_length "
            "(or lower min_completion_tokens), or add rows"
        )
    return StagePlan(train=train[:need], held=held, per_stage=per_stage)


def load_prefs(cfg: Any, tokenizer: Any) -> list[dict[str, str]]:
    """``[{prompt, chosen, rejected}]`` from ``cfg.data.eval_prefs``, checked row by row (file, row, field)."""
    source = cfg.data.eval_prefs
    if source == "synthetic":
        rows = [(f"{source}: row {i}", r) for i, r in enumerate(synthetic_prefs(), start=1)]
    else:
        rows = located_rows(source)
    if cfg.data.eval_prefs_limit:
        rows = rows[: cfg.data.eval_prefs_limit]
    out = []
    for where, row in rows:
        if cfg.data.format == "chat" and source != "synthetic":
            prompt, chosen = _chat(row, "chosen", where, tokenizer)
            prompt_r, rejected = _chat(row, "rejected", where, tokenizer)
            if prompt_r != prompt:
                raise DataError(
                    f"{where}: 'chosen' and 'rejected' differ before the last (assistant) message"
                )
        else:
            prompt, chosen, rejected = (_text(row, k, where) for k in ("prompt", "chosen", "rejected"))
        out.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    if not out:
        raise DataError(f"{source}: no preference pairs; expected rows with prompt, chosen and rejected")
    return out
