"""Who answers the questions: a local ``transformers`` model, an OpenAI-compatible endpoint, or a calibration
backend (``oracle`` gives the gold answer, ``random`` a uniform option).

A backend has a ``name`` (the model part of the answer-cache key) and ``iter_answers(queries)``, which yields
``(index, reply)`` pairs as answers arrive (in any order), so the harness can store each one at once and an
interrupted run loses nothing it already received.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol

from paperlab.config import UserError, require
from roleinteract.data import MEMORY, Item
from roleinteract.prompts import chat_messages

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Query:
    item: Item
    prompt: str


class Backend(Protocol):
    name: str

    def iter_answers(self, queries: Sequence[Query]) -> Iterator[tuple[int, str]]: ...


class OracleBackend:
    """Answers with the gold: the gold letters (``"A, C"``) or, for memory questions, the gold keywords."""

    name = "oracle"

    def iter_answers(self, queries: Sequence[Query]) -> Iterator[tuple[int, str]]:
        for i, q in enumerate(queries):
            yield i, ("; ".join(q.item.label) if q.item.category == MEMORY else ", ".join(q.item.label))


class RandomBackend:
    """A uniformly random option letter per choice question; for a memory question, one utterance of the
    dialogue chosen uniformly. The draw depends only on ``(seed, item id)``, so it does not change with the order
    of the items or with a resumed run."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.name = f"random-seed{seed}"

    def iter_answers(self, queries: Sequence[Query]) -> Iterator[tuple[int, str]]:
        for i, q in enumerate(queries):
            rng = random.Random(f"{self.seed}:{q.item.item_id}")
            if q.item.category == MEMORY:
                yield i, rng.choice(q.item.dialogue).text
            else:
                yield i, rng.choice(sorted(q.item.choices or {}))


# ------------------------------------------------------------------------------------------ transformers


@dataclass
class GenerationConfig:
    """Greedy decoding budget. ``max_new_tokens_open`` is for the open-ended memory questions."""

    max_new_tokens: int = 32
    max_new_tokens_open: int = 128
    batch_size: int = 4
    max_input_tokens: int | None = None  # default: the model's context minus the new tokens

    def __post_init__(self) -> None:
        require(self.max_new_tokens >= 1, "max_new_tokens", self.max_new_tokens, ">= 1")
        require(self.max_new_tokens_open >= 1, "max_new_tokens_open", self.max_new_tokens_open, ">= 1")
        require(self.batch_size >= 1, "batch_size", self.batch_size, ">= 1")


class TransformersBackend:
    """A local causal LM (any hub name or path) generating greedily from the chat-templated prompt.

    The prompt becomes one user turn and the tokenizer's own chat template is applied (a tokenizer without one
    gets the raw prompt). Prompts longer than the context are cut from the left, keeping the question and the
    options, which come last.
    """

    def __init__(self, model: Any, tokenizer: Any, name: str, gen: GenerationConfig | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.gen = gen or GenerationConfig()
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @classmethod
    def from_pretrained(
        cls, name_or_path: str, gen: GenerationConfig | None = None, dtype: str = "auto", device: str = "auto"
    ) -> TransformersBackend:
        from paperlab.models import load_causal_lm, load_tokenizer

        model = load_causal_lm(name_or_path, dtype=dtype, device=device)
        return cls(model, load_tokenizer(name_or_path), name=f"hf:{name_or_path}", gen=gen)

    @classmethod
    def tiny(
        cls, texts: Sequence[str], seed: int = 0, gen: GenerationConfig | None = None
    ) -> TransformersBackend:
        """A randomly initialised 2-layer Llama with a BPE tokenizer trained on ``texts``, built offline."""
        from paperlab.models import tiny_causal_lm, train_tiny_tokenizer

        tokenizer = train_tiny_tokenizer(texts, vocab_size=1024)
        model = tiny_causal_lm(
            tokenizer=tokenizer, layers=2, hidden=64, heads=4, max_position=1024, seed=seed
        )
        return cls(model, tokenizer, name=f"hf:tiny-seed{seed}", gen=gen)

    def _text(self, prompt: str) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                chat_messages(prompt), add_generation_prompt=True, tokenize=False
            )
        return prompt

    def _context(self) -> int:
        config = self.model.config
        return int(getattr(config, "max_position_embeddings", None) or self.tokenizer.model_max_length)

    def _generate(self, texts: list[str], max_new_tokens: int) -> list[str]:
        import torch

        budget = self.gen.max_input_tokens or max(8, self._context() - max_new_tokens)
        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"][-budget:] for t in texts]
        width = max(len(x) for x in ids)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids])  # left padding
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
            )
        return self.tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)

    def iter_answers(self, queries: Sequence[Query]) -> Iterator[tuple[int, str]]:
        # Length-sorted batches waste less padding; answers are yielded with their original index.
        order = sorted(range(len(queries)), key=lambda i: len(queries[i].prompt))
        for open_ended in (False, True):
            todo = [i for i in order if (queries[i].item.category == MEMORY) == open_ended]
            new = self.gen.max_new_tokens_open if open_ended else self.gen.max_new_tokens
            for start in range(0, len(todo), self.gen.batch_size):
                batch = todo[start : start + self.gen.batch_size]
                replies = self._generate([self._text(queries[i].prompt) for i in batch], new)
                yield from zip(batch, (r.strip() for r in replies), strict=True)


# ------------------------------------------------------------------------------------------ HTTP endpoint


@dataclass
class EndpointConfig:
    """An OpenAI-compatible ``/chat/completions`` server (vLLM, TGI, llama.cpp, a hosted API).

    The key is read from the environment variable ``api_key_env`` (none sent when it is unset). Transport
    errors and HTTP 429/5xx are retried up to ``max_retries`` times with exponential backoff
    (``backoff_s * 2**attempt``, or the server's ``Retry-After``); at most ``max_concurrency`` requests are in
    flight.
    """

    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "default"
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = 4
    max_retries: int = 5
    backoff_s: float = 1.0
    timeout_s: float = 120.0
    temperature: float = 0.0
    max_tokens: int = 32
    max_tokens_open: int = 128
    system: str | None = None

    def __post_init__(self) -> None:
        require(
            self.base_url.startswith(("http://", "https://")), "base_url", self.base_url, "an http(s) URL"
        )
        require(bool(self.model), "model", self.model, "the served model name")
        require(self.max_concurrency >= 1, "max_concurrency", self.max_concurrency, ">= 1")
        require(self.max_retries >= 0, "max_retries", self.max_retries, ">= 0")
        require(self.backoff_s >= 0, "backoff_s", self.backoff_s, ">= 0")
        require(self.timeout_s > 0, "timeout_s", self.timeout_s, "> 0")


class EndpointError(UserError, RuntimeError):
    """The server refused a request for good (a 4xx other than 429, or retries exhausted): a
    :class:`~paperlab.config.UserError` (the configured ``endpoint.*`` is wrong or down), one line and exit 2 from
    the command line; the answers already cached are kept."""


_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class EndpointBackend:
    def __init__(self, cfg: EndpointConfig) -> None:
        import httpx

        self.cfg = cfg
        self.name = f"endpoint:{cfg.model}"
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(cfg.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(
            base_url=cfg.base_url.rstrip("/"),
            headers=headers,
            timeout=cfg.timeout_s,
            limits=httpx.Limits(max_connections=cfg.max_concurrency),
        )

    def ask(self, query: Query) -> str:
        """One chat completion, with retries; returns the message content."""
        import httpx

        body = {
            "model": self.cfg.model,
            "messages": chat_messages(query.prompt, self.cfg.system),
            "temperature": self.cfg.temperature,
            "max_tokens": self.cfg.max_tokens_open if query.item.category == MEMORY else self.cfg.max_tokens,
        }
        last = ""
        for attempt in range(self.cfg.max_retries + 1):
            wait_s = self.cfg.backoff_s * 2**attempt
            try:
                response = self._client.post("/chat/completions", json=body)
            except httpx.TransportError as err:
                last = f"{type(err).__name__}: {err}"
            else:
                if response.status_code == 200:
                    try:
                        content = response.json()["choices"][0]["message"]["content"]
                    except (ValueError, KeyError, IndexError, TypeError) as err:
                        raise EndpointError(
                            f"{self.cfg.base_url}: malformed completion for {query.item.item_id}: {response.text[:200]}"
                        ) from err
                    return content or ""
                if response.status_code not in _RETRY_STATUS:
                    raise EndpointError(
                        f"{self.cfg.base_url}: HTTP {response.status_code} for {query.item.item_id}: {response.text[:200]}"
                    )
                last = f"HTTP {response.status_code}"
                retry_after = response.headers.get("retry-after")
                if retry_after and retry_after.replace(".", "", 1).isdigit():
                    wait_s = float(retry_after)
            if attempt < self.cfg.max_retries:
                log.warning(
                    "%s: %s (attempt %d), retrying in %.1fs", self.cfg.base_url, last, attempt + 1, wait_s
                )
                time.sleep(wait_s)
        raise EndpointError(
            f"{self.cfg.base_url}: gave up on {query.item.item_id} after {self.cfg.max_retries + 1} tries: {last}"
        )

    def iter_answers(self, queries: Sequence[Query]) -> Iterator[tuple[int, str]]:
        pool = ThreadPoolExecutor(max_workers=self.cfg.max_concurrency)
        pending = {}
        todo = iter(range(len(queries)))
        try:
            for i in todo:  # fill the window, then keep it full as answers arrive
                pending[pool.submit(self.ask, queries[i])] = i
                if len(pending) >= self.cfg.max_concurrency:
                    break
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    i = pending.pop(future)
                    yield i, future.result()
                    nxt = next(todo, None)
                    if nxt is not None:
                        pending[pool.submit(self.ask, queries[nxt])] = nxt
        finally:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self._client.close()
