"""Who answers the questions: a local ``transformers`` model, an OpenAI-compatible endpoint, or a calibration
backend (``oracle`` gives the gold answer, ``random`` a uniform option).

A backend has a ``name`` (the model part of the answer-cache key) and ``iter_answers(queries)``, which yields
``(index, reply)`` pairs as answers arrive (in any order), so the harness can store each one at once and an
interrupted run loses nothing it already received. A reply the backend could not get is a :class:`Failed` (the
endpoint's refused or exhausted requests): kept as failed, the run goes on.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from paperlab.config import require
from roleinteract.data import MEMORY, Item
from roleinteract.prompts import chat_messages

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Query:
    item: Item
    prompt: str


class Backend(Protocol):
    name: str

    def iter_answers(self, queries: Sequence[Query]) -> Iterator[tuple[int, str | Failed]]: ...


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


@dataclass(frozen=True)
class Failed:
    """A question the backend could not answer (the server refused it, or it still failed after the retries):
    stored as failed in the answer cache, scored as unparsed, asked again only with ``retry_failed=true``."""

    error: str


@dataclass
class EndpointConfig:
    """An OpenAI-compatible ``/chat/completions`` server (vLLM, TGI, llama.cpp, ``transformers serve``, a hosted
    API), asked through :class:`paperlab.serving.OpenAIServer`.

    The key is read from the environment variable ``api_key_env`` (none sent when it is unset). Transport
    errors, HTTP 408/409/425/429 and 5xx are retried up to ``max_retries`` times with exponential backoff
    (``backoff_s * 2**attempt``, or the server's ``Retry-After``); at most ``max_concurrency`` requests are in
    flight. A question that still fails is kept as failed and the run goes on. ``context_tokens`` (else the
    server's ``/models`` ``max_model_len``, as vLLM reports it) and ``tokenizer`` (the served model's, to count
    tokens) cut each prompt from the left to fit the served context with the answer budget, keeping the question
    and its options, which come last (as :class:`TransformersBackend` does).
    """

    base_url: str = "http://localhost:8000/v1"
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
    context_tokens: int | None = None
    tokenizer: str | None = None

    def __post_init__(self) -> None:
        require(
            self.base_url.startswith(("http://", "https://")), "base_url", self.base_url, "an http(s) URL"
        )
        require(bool(self.model), "model", self.model, "the served model name")
        require(self.max_concurrency >= 1, "max_concurrency", self.max_concurrency, ">= 1")
        require(self.max_retries >= 0, "max_retries", self.max_retries, ">= 0")
        require(self.backoff_s >= 0, "backoff_s", self.backoff_s, ">= 0")
        require(self.timeout_s > 0, "timeout_s", self.timeout_s, "> 0")
        require(
            self.context_tokens is None or self.context_tokens > self.max_tokens_open,
            "context_tokens",
            self.context_tokens,
            f"null or more than max_tokens_open={self.max_tokens_open}",
        )


class EndpointBackend:
    """Chat completions of a served model: one client per answer budget (choice questions: ``max_tokens``; the
    open memory questions: ``max_tokens_open``); yields a :class:`Failed` for a question that could not be
    answered instead of stopping the run."""

    def __init__(self, cfg: EndpointConfig) -> None:
        from paperlab.serving import OpenAIServer, ServerConfig

        self.cfg = cfg
        self.name = f"endpoint:{cfg.model}"

        def client(max_tokens: int) -> OpenAIServer:
            return OpenAIServer(
                ServerConfig(
                    base_url=cfg.base_url,
                    model=cfg.model,
                    chat=True,
                    system=cfg.system,
                    max_tokens=max_tokens,
                    temperature=cfg.temperature,
                    timeout_s=cfg.timeout_s,
                    concurrency=cfg.max_concurrency,
                    retries=cfg.max_retries,
                    backoff_s=cfg.backoff_s,
                    context_tokens=cfg.context_tokens,
                    tokenizer=cfg.tokenizer,
                    truncate="left",
                    api_key_env=cfg.api_key_env,
                )
            )

        self._clients = {False: client(cfg.max_tokens), True: client(cfg.max_tokens_open)}

    @property
    def requests_sent(self) -> int:
        """Requests sent so far (retries included)."""
        return sum(c.requests_sent for c in self._clients.values())

    def iter_answers(self, queries: Sequence[Query]) -> Iterator[tuple[int, str | Failed]]:
        for open_ended, client in self._clients.items():
            todo = [i for i, q in enumerate(queries) if (q.item.category == MEMORY) == open_ended]
            for j, done in client.iter_complete([queries[i].prompt for i in todo]):
                yield todo[j], (done.text if done.ok else Failed(done.error or "failed"))

    def close(self) -> None:
        """Nothing held open (each request has its own connection)."""
