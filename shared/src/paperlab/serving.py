"""Generation on an OpenAI-compatible server (vLLM, TGI, SGLang, llama.cpp's server, ``transformers serve`` ...):
the one client of every package that sends prompts to a served model.

:class:`OpenAIServer` sends ``/v1/completions`` (raw prompts) or ``/v1/chat/completions`` (an optional system turn
and one user turn) requests:

- at most ``concurrency`` requests in flight, a timeout per request;
- retries with exponential backoff (``backoff_s x 2^attempt``, capped at ``max_backoff_s``) on connection errors,
  time-outs, 408 / 409 / 425 / 429 and 5xx answers, waiting what a ``Retry-After`` header asks instead;
- a request that still fails, or that the server refuses (another 4xx), is a failed :class:`Completion` (its
  error text kept, counted in :attr:`OpenAIServer.failures`): the run goes on with the other prompts;
- an on-disk JSONL cache (:class:`paperlab.io.JsonlCache`) keyed by everything that decides the answer (server
  URL, model, chat or not, system turn, budget, sampling, stop strings, truncation) and the prompt, written as each
  answer arrives, so an interrupted run resumes where it stopped and a repeated run sends nothing. A failure is
  cached as failed and asked again only with ``retry_failed``;
- client-side truncation of each prompt to the served context (``context_tokens``, else what the server's
  ``/models`` says: vLLM's ``max_model_len``) minus the answer budget, counted with the served model's tokenizer
  (``tokenizer``); dropped from the start (``truncate="left"``, the usual choice for dialogues whose question comes
  last) or the end;
- the API key read from the environment variable ``api_key_env`` only: it is never a setting, never in the cache
  key, the cache, a log line or an error message.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any

from paperlab.config import require
from paperlab.io import JsonlCache

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
#: what ``/models`` entries call the served context length (vLLM, llama.cpp / LM Studio style servers)
CONTEXT_FIELDS = ("max_model_len", "context_length", "max_context_length")


class ServerError(RuntimeError):
    """A request the server refused, or that still failed after every retry; the message names the URL."""


@dataclass
class ServerConfig:
    """``base_url`` up to and including ``/v1`` (``http://127.0.0.1:8000/v1``); ``model`` as the server names it.

    ``context_tokens``: the served context length (None: ask the server's ``/models``; no truncation when neither
    says); ``tokenizer``: the served model's tokenizer (a local path or hub name) that counts prompt tokens for the
    truncation; ``chat_overhead_tokens``: what a chat template adds around the turns. ``api_key_env``: the
    environment variable holding the API key (sent as ``Authorization: Bearer``; absent: no key)."""

    base_url: str
    model: str
    chat: bool = False
    system: str | None = None
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    timeout_s: float = 120.0
    concurrency: int = 8
    retries: int = 4
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    cache_path: str | None = None
    retry_failed: bool = False
    context_tokens: int | None = None
    tokenizer: str | None = None
    truncate: str = "left"
    chat_overhead_tokens: int = 16
    api_key_env: str = "OPENAI_API_KEY"

    def __post_init__(self) -> None:
        require(
            self.base_url.startswith(("http://", "https://")),
            "server.base_url",
            self.base_url,
            "an http(s) URL",
        )
        require(bool(self.model), "server.model", self.model, "the served model's name")
        require(self.max_tokens > 0, "server.max_tokens", self.max_tokens, "a positive number of tokens")
        require(self.timeout_s > 0, "server.timeout_s", self.timeout_s, "a positive number of seconds")
        require(self.concurrency >= 1, "server.concurrency", self.concurrency, "at least 1")
        require(self.retries >= 0, "server.retries", self.retries, "0 or more")
        require(self.backoff_s >= 0, "server.backoff_s", self.backoff_s, "0 or more seconds")
        require(self.truncate in ("left", "right"), "server.truncate", self.truncate, "left or right")
        require(
            self.context_tokens is None or self.context_tokens > self.max_tokens,
            "server.context_tokens",
            self.context_tokens,
            f"more than server.max_tokens={self.max_tokens}",
        )


@dataclass
class Completion:
    """One prompt's outcome: ``text`` ("" when failed), ``error`` (None when answered), ``cached`` (served from the
    cache, no request), ``dropped_tokens`` (cut by the truncation)."""

    text: str
    error: str | None = None
    cached: bool = False
    dropped_tokens: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


def _retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (a number or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class OpenAIServer:
    """``complete(prompts) -> [Completion]`` against an OpenAI-compatible server (see the module docstring).

    Counters of this client's life: :attr:`requests_sent` (retries included), :attr:`failures` (prompts that ended
    failed, cached failures included), :attr:`cache_hits`."""

    def __init__(self, cfg: ServerConfig) -> None:
        self.cfg = cfg
        self.base = cfg.base_url.rstrip("/")
        self.url = self.base + ("/chat/completions" if cfg.chat else "/completions")
        self.cache = JsonlCache(cfg.cache_path) if cfg.cache_path else None
        self.requests_sent = self.failures = self.cache_hits = 0
        self._lock = threading.Lock()
        self._tokenizer: Any = None
        self._context: int | None = None
        self._asked = False  # the server's /models, once

    # ------------------------------------------------------------------------------------------- settings
    def key(self, prompt: str) -> str:
        """The cache key of ``prompt``: a digest of every setting that changes its answer and of the prompt."""
        answer_changing = (
            "base_url", "model", "chat", "system", "max_tokens", "temperature", "top_p", "seed", "stop",
            "context_tokens", "tokenizer", "truncate", "chat_overhead_tokens",
        )  # fmt: skip
        settings = {k: v for k, v in asdict(self.cfg).items() if k in answer_changing}
        settings["base_url"] = self.base
        return hashlib.sha256(json.dumps([settings, prompt], sort_keys=True).encode()).hexdigest()

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.cfg.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def served_context(self) -> int | None:
        """``context_tokens``, else the context length the server's ``/models`` gives for ``model``, else None."""
        if self.cfg.context_tokens is not None:
            return self.cfg.context_tokens
        if not self._asked:
            self._asked = True
            try:
                request = urllib.request.Request(self.base + "/models", headers=self._headers())
                with urllib.request.urlopen(request, timeout=self.cfg.timeout_s) as response:
                    entries = json.loads(response.read().decode()).get("data", [])
                for entry in entries:
                    if isinstance(entry, dict) and entry.get("id") == self.cfg.model:
                        found = [entry[f] for f in CONTEXT_FIELDS if isinstance(entry.get(f), int)]
                        self._context = found[0] if found else None
            except (urllib.error.URLError, TimeoutError, ConnectionError, ValueError, AttributeError) as err:
                log.warning("%s/models: no context length (%s)", self.base, type(err).__name__)
        return self._context

    def fit(self, prompt: str) -> tuple[str, int]:
        """``(prompt cut to the served context minus the answer budget, tokens dropped)``; unchanged when the
        context is unknown. Needs ``tokenizer`` to count tokens (a known context without it is a one-time
        warning)."""
        if self.cfg.tokenizer is None and self.cfg.context_tokens is None:
            return prompt, 0  # nothing to count with: the server is not asked for its context either
        context = self.served_context()
        if context is None:
            return prompt, 0
        if self.cfg.tokenizer is None:
            if self._tokenizer is None:
                log.warning(
                    "%s: context %d known but server.tokenizer unset: prompts are not cut", self.base, context
                )
                self._tokenizer = ""
            return prompt, 0
        if not self._tokenizer:
            from paperlab.models import load_tokenizer

            self._tokenizer = load_tokenizer(self.cfg.tokenizer)
        room = context - self.cfg.max_tokens - (self.cfg.chat_overhead_tokens if self.cfg.chat else 0)
        if self.cfg.chat and self.cfg.system:
            room -= len(self._tokenizer(self.cfg.system, add_special_tokens=False)["input_ids"])
        ids = self._tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if len(ids) <= room:
            return prompt, 0
        keep = ids[len(ids) - max(room, 0) :] if self.cfg.truncate == "left" else ids[: max(room, 0)]
        return self._tokenizer.decode(keep, skip_special_tokens=True), len(ids) - len(keep)

    # ------------------------------------------------------------------------------------------- asking
    def iter_complete(self, prompts: Sequence[str]) -> Iterator[tuple[int, Completion]]:
        """``(index, Completion)`` of every prompt as it is known: cached ones first, then answers as they arrive
        (any order); each new one is in the cache before it is yielded. Stopping the iteration (an interruption)
        cancels what has not been sent."""
        todo: list[int] = []
        for i, prompt in enumerate(prompts):
            hit = self.cache.get(self.key(prompt)) if self.cache is not None else None
            if hit is None or ("error" in hit and self.cfg.retry_failed):
                todo.append(i)
                continue
            self.cache_hits += 1
            done = Completion(hit.get("text", ""), hit.get("error"), True, hit.get("dropped_tokens", 0))
            self.failures += not done.ok
            yield i, done
        if not todo:
            return
        self.fit("")  # the served context and the tokenizer, once, before the threads need them
        pool = ThreadPoolExecutor(max_workers=self.cfg.concurrency)
        try:
            pending = {pool.submit(self._ask, prompts[i]): i for i in todo}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    i = pending.pop(future)
                    done = future.result()
                    if self.cache is not None:  # written as each answer arrives: an interruption loses none
                        record = {"key": self.key(prompts[i]), "text": done.text}
                        record.update({"error": done.error} if done.error else {})
                        record.update({"dropped_tokens": done.dropped_tokens} if done.dropped_tokens else {})
                        self.cache.append(record)
                    self.failures += not done.ok
                    yield i, done
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def complete(self, prompts: Sequence[str]) -> list[Completion]:
        """One :class:`Completion` per prompt, in order (failures included: see :attr:`Completion.error`)."""
        out: dict[int, Completion] = dict(self.iter_complete(prompts))
        errors = [c.error for c in out.values() if not c.ok]
        if errors:
            log.warning(
                "%s: %d of %d prompts failed (kept as failed); first: %s",
                self.url,
                len(errors),
                len(prompts),
                errors[0],
            )
        return [out[i] for i in range(len(prompts))]

    def texts(self, prompts: Sequence[str]) -> list[str]:
        """The answers' texts, in order; a failed prompt raises :class:`ServerError` after all were asked."""
        done = self.complete(prompts)
        errors = [c.error for c in done if not c.ok]
        if errors:
            raise ServerError(f"{self.url}: {len(errors)} of {len(done)} prompts failed; first: {errors[0]}")
        return [c.text for c in done]

    def _body(self, prompt: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.cfg.model,
            "max_tokens": self.cfg.max_tokens,
            "temperature": self.cfg.temperature,
        }
        body.update({"top_p": self.cfg.top_p} if self.cfg.top_p is not None else {})
        body.update({"seed": self.cfg.seed} if self.cfg.seed is not None else {})
        if self.cfg.stop:
            body["stop"] = list(self.cfg.stop)
        if self.cfg.chat:
            system = [{"role": "system", "content": self.cfg.system}] if self.cfg.system else []
            body["messages"] = [*system, {"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        return body

    def _ask(self, prompt: str) -> Completion:
        prompt, dropped = self.fit(prompt)
        data = json.dumps(self._body(prompt)).encode()
        last, wait_s = "", 0.0
        for attempt in range(self.cfg.retries + 1):
            if attempt:
                time.sleep(wait_s)
            wait_s = min(self.cfg.max_backoff_s, self.cfg.backoff_s * 2**attempt)
            with self._lock:
                self.requests_sent += 1
            request = urllib.request.Request(self.url, data=data, headers=self._headers())
            try:
                with urllib.request.urlopen(request, timeout=self.cfg.timeout_s) as response:
                    payload = json.loads(response.read().decode())
                choice = payload["choices"][0]
                text = choice["message"]["content"] if self.cfg.chat else choice["text"]
                return Completion(text or "", dropped_tokens=dropped)
            except urllib.error.HTTPError as err:
                message = err.read().decode(errors="replace")[:300]
                last = f"HTTP {err.code}: {message}"
                if err.code not in RETRY_STATUS:
                    return Completion("", f"{self.url}: {last}", dropped_tokens=dropped)
                asked = _retry_after(err.headers.get("Retry-After") if err.headers else None)
                wait_s = min(self.cfg.max_backoff_s, asked) if asked is not None else wait_s
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                last = f"{type(err).__name__}: {err}"
            except (KeyError, IndexError, TypeError, json.JSONDecodeError) as err:
                return Completion("", f"{self.url}: unexpected answer ({err!r})", dropped_tokens=dropped)
            if attempt < self.cfg.retries:
                log.warning(
                    "%s: attempt %d failed (%s); again in %.1f s", self.url, attempt + 1, last, wait_s
                )
        return Completion(
            "",
            f"{self.url}: no answer after {self.cfg.retries + 1} attempts; last: {last}",
            dropped_tokens=dropped,
        )
