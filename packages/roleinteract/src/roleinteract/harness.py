"""Asking a backend every question once, with a JSONL answer cache that makes runs resumable.

Every answer is appended (and flushed) to the cache the moment it arrives, under the key
``(model, settings key, item id, prompt hash)``. A rerun asks only what is missing, so an interrupted run resumes
without asking anything twice, and re-scoring a cache (:func:`replies_from_cache`) needs no model at all. A changed
prompt (another template or data version) changes the hash, and a changed setting that changes the answers
(generation budget, dtype, temperature, the tiny model's tokenizer texts: a backend's ``settings``, keyed by
:func:`paperlab.io.derived_key`) changes the settings key, so stale answers are never reused.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from paperlab.io import DataError, JsonlCache, atomic_write_json, derived_key
from roleinteract.backends import Backend, Failed, Query
from roleinteract.data import GROUP_CATEGORIES, Item
from roleinteract.prompts import build_prompt, prompt_hash
from roleinteract.scoring import extract_options, score_reply

log = logging.getLogger(__name__)


class CacheMissError(DataError, LookupError):
    """Re-scoring asked for an answer the cache does not hold (a data error naming the cache file)."""


def settings_key(settings: Any) -> str:
    """The part of the cache key for a backend's answer-changing ``settings`` ("" when it has none)."""
    if settings is None:
        return ""
    return derived_key(settings.get("settings"), settings.get("inputs", ()))


def cache_key(model: str, item_id: str, prompt: str, variant: str = "") -> str:
    if variant:
        return f"{model}|{variant}|{item_id}|{prompt_hash(prompt)}"
    return f"{model}|{item_id}|{prompt_hash(prompt)}"


#: answers between two writes of the progress file
PROGRESS_EVERY = 8


def _reply(record: dict[str, Any]) -> str | None:
    """A cached record's reply; None for a failed question (scored as unparsed)."""
    return None if "error" in record else record["reply"]


def ask_all(
    backend: Backend,
    items: Sequence[Item],
    cache_path: str | Path,
    *,
    progress: bool = True,
    progress_file: str | Path | None = None,
    retry_failed: bool = False,
) -> dict[str, str | None]:
    """Replies of ``backend`` to every item (item id -> reply text, None for a failed question), asking only what
    the cache lacks. A question the backend failed (:class:`roleinteract.backends.Failed`) is cached as failed
    (its error text kept) and asked again only with ``retry_failed``.

    With ``progress_file``, ``{"model", "answered", "of"}`` is written there (atomically) every
    :data:`PROGRESS_EVERY` answers and at the end: how far an interrupted run got (the cache holds the answers)."""
    cache = JsonlCache(cache_path)
    queries = [Query(item, build_prompt(item)) for item in items]
    variant = settings_key(getattr(backend, "settings", None))
    keys = [cache_key(backend.name, q.item.item_id, q.prompt, variant) for q in queries]
    pending = [
        i for i, key in enumerate(keys) if key not in cache or (retry_failed and "error" in cache.get(key))
    ]
    if len(pending) < len(queries):
        log.info(
            "%s: %d of %d answers found in %s",
            backend.name,
            len(queries) - len(pending),
            len(queries),
            cache_path,
        )
    if pending:
        bar = tqdm(total=len(pending), desc=backend.name, unit="q", disable=not progress, leave=False)

        def note(done: int) -> None:
            if progress_file is not None:
                answered = len(queries) - len(pending) + done
                atomic_write_json(
                    progress_file, {"model": backend.name, "answered": answered, "of": len(queries)}
                )

        for j, reply in backend.iter_answers([queries[i] for i in pending]):
            i = pending[j]
            record = {
                "key": keys[i],
                "model": backend.name,
                "settings": variant,
                "item_id": queries[i].item.item_id,
                "prompt_hash": prompt_hash(queries[i].prompt),
                "reply": "" if isinstance(reply, Failed) else reply,
            }
            cache.append({**record, "error": reply.error} if isinstance(reply, Failed) else record)
            bar.update(1)
            if bar.n % PROGRESS_EVERY == 0 and bar.n < len(pending):
                note(bar.n)
        note(len(pending))
        bar.close()
    records = [cache.get(key) for key in keys]
    failed = [(q.item.item_id, r["error"]) for q, r in zip(queries, records, strict=True) if "error" in r]
    if failed:
        log.warning(
            "%s: %d of %d questions failed (scored as unparsed; retry_failed=true asks them again); %s: %s",
            backend.name, len(failed), len(queries), *failed[0],
        )  # fmt: skip
    return {q.item.item_id: _reply(r) for q, r in zip(queries, records, strict=True)}


def replies_from_cache(
    cache_path: str | Path, model: str, items: Sequence[Item], settings: dict[str, Any] | None = None
) -> dict[str, str | None]:
    """The cached replies of ``model`` (run with ``settings``, as its backend's) to ``items`` without any
    backend; a missing answer is an error naming it."""
    cache = JsonlCache(cache_path)
    variant = settings_key(settings)
    out = {}
    for item in items:
        key = cache_key(model, item.item_id, build_prompt(item), variant)
        record = cache.get(key)
        if record is None:
            have = ", ".join(cached_models(cache_path)) or "none"
            raise CacheMissError(
                f"{cache_path}: no answer of {model!r} to {item.item_id} (key {key}); models in this cache: "
                f"{have}. Run without rescore_only=true to ask the missing questions."
            )
        out[item.item_id] = _reply(record)
    return out


def cached_models(cache_path: str | Path) -> list[str]:
    return sorted({record["model"] for record in JsonlCache(cache_path)})


def score_replies(items: Sequence[Item], replies: dict[str, str | None]) -> dict[str, float | None]:
    return {item.item_id: score_reply(replies[item.item_id], item) for item in items}


# ----------------------------------------------------------------------------------------- group level


def without_group_context(item: Item) -> Item:
    """The same group question with the other characters' conversation removed: only the last turn (the one
    the agent must answer) stays. Used to measure how much the group moves the agent's choice."""
    return replace(item, item_id=f"{item.item_id}#solo", dialogue=item.dialogue[-1:])


def preference_drift(
    backend: Backend,
    items: Sequence[Item],
    cache_path: str | Path,
    *,
    progress: bool = True,
    progress_file: str | Path | None = None,
    retry_failed: bool = False,
) -> dict[str, dict[str, float | int]]:
    """Group-level drift per social-preference polarity.

    Each group item is asked twice: with the full multi-character conversation and with only its last turn
    (:func:`without_group_context`). Reports, per category, ``n``, the score with and without the group (x 100),
    ``drift`` = with - without, and ``flip_rate`` = % of items whose first chosen option changes.
    """
    group = [it for it in items if it.category in GROUP_CATEGORIES]
    if not group:
        return {}
    solo = [without_group_context(it) for it in group]
    options = {"progress": progress, "progress_file": progress_file, "retry_failed": retry_failed}
    with_group = ask_all(backend, group, cache_path, **options)
    alone = ask_all(backend, solo, cache_path, **options)
    out: dict[str, dict[str, float | int]] = {}
    for category in GROUP_CATEGORIES:
        pairs = [(g, s) for g, s in zip(group, solo, strict=True) if g.category == category]
        if not pairs:
            continue
        sg = [score_reply(with_group[g.item_id], g) or 0.0 for g, _ in pairs]
        ss = [score_reply(alone[s.item_id], s) or 0.0 for _, s in pairs]
        flips = sum(
            (extract_options(with_group[g.item_id])[:1] != extract_options(alone[s.item_id])[:1])
            for g, s in pairs
        )
        out[category] = {
            "n": len(pairs),
            "with_group": 100.0 * sum(sg) / len(pairs),
            "without_group": 100.0 * sum(ss) / len(pairs),
            "drift": 100.0 * (sum(sg) - sum(ss)) / len(pairs),
            "flip_rate": 100.0 * flips / len(pairs),
        }
    return out
