"""Generation-heavy steps on an OpenAI-compatible server (vLLM, TGI, SGLang, llama.cpp's server ...).

:class:`OpenAIServer` sends ``/v1/completions`` (raw prompts) or ``/v1/chat/completions`` (one user turn) requests
with bounded concurrency, a timeout per request, retries with exponential backoff on connection errors, time-outs,
429 and 5xx answers, and an on-disk JSONL cache (:class:`paperlab.io.JsonlCache`) keyed by everything that decides
the answer, so an interrupted run resumes where it stopped and a repeated run sends nothing. A 4xx answer other
than 429 is not retried: it raises with the URL and the server's message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from typing import Any

from paperlab.config import require
from paperlab.io import JsonlCache

log = logging.getLogger(__name__)

_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


class ServerError(RuntimeError):
    """A request the server refused, or that still failed after every retry; the message names the URL."""


@dataclass
class ServerConfig:
    """``base_url`` up to and including ``/v1`` (``http://127.0.0.1:8000/v1``); ``model`` as the server names it."""

    base_url: str
    model: str
    chat: bool = False
    max_tokens: int = 256
    temperature: float = 0.0
    stop: list[str] = field(default_factory=list)
    timeout_s: float = 120.0
    concurrency: int = 8
    retries: int = 4
    backoff_s: float = 1.0
    cache_path: str | None = None

    def __post_init__(self) -> None:
        require(
            self.base_url.startswith(("http://", "https://")),
            "server.base_url",
            self.base_url,
            "an http(s) URL",
        )
        require(self.max_tokens > 0, "server.max_tokens", self.max_tokens, "a positive number of tokens")
        require(self.timeout_s > 0, "server.timeout_s", self.timeout_s, "a positive number of seconds")
        require(self.concurrency >= 1, "server.concurrency", self.concurrency, "at least 1")
        require(self.retries >= 0, "server.retries", self.retries, "0 or more")


class OpenAIServer:
    """``complete(prompts) -> texts`` against an OpenAI-compatible server (see the module docstring)."""

    def __init__(self, cfg: ServerConfig) -> None:
        self.cfg = cfg
        self.url = cfg.base_url.rstrip("/") + ("/chat/completions" if cfg.chat else "/completions")
        self.cache = JsonlCache(cfg.cache_path) if cfg.cache_path else None
        self.requests_sent = 0
        self._lock = threading.Lock()

    def key(self, prompt: str) -> str:
        settings = {
            k: v
            for k, v in asdict(self.cfg).items()
            if k in ("model", "chat", "max_tokens", "temperature", "stop")
        }
        return hashlib.sha256(json.dumps([settings, prompt], sort_keys=True).encode()).hexdigest()

    def complete(self, prompts: Sequence[str]) -> list[str]:
        """One answer per prompt, in order; cached answers are not asked again."""
        answers: dict[int, str] = {}
        todo: list[int] = []
        for i, prompt in enumerate(prompts):
            hit = self.cache.get(self.key(prompt)) if self.cache is not None else None
            if hit is not None:
                answers[i] = hit["text"]
            else:
                todo.append(i)
        if todo:
            with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
                futures = {pool.submit(self._ask, prompts[i]): i for i in todo}
                for future in as_completed(futures):
                    i = futures[future]
                    answers[i] = future.result()
                    if self.cache is not None:  # written as each answer arrives: an interruption loses none
                        self.cache.append({"key": self.key(prompts[i]), "text": answers[i]})
        return [answers[i] for i in range(len(prompts))]

    def _body(self, prompt: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.cfg.model,
            "max_tokens": self.cfg.max_tokens,
            "temperature": self.cfg.temperature,
        }
        if self.cfg.stop:
            body["stop"] = list(self.cfg.stop)
        if self.cfg.chat:
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        return body

    def _ask(self, prompt: str) -> str:
        data = json.dumps(self._body(prompt)).encode()
        last = ""
        for attempt in range(self.cfg.retries + 1):
            if attempt:
                time.sleep(self.cfg.backoff_s * 2 ** (attempt - 1))
            with self._lock:
                self.requests_sent += 1
            request = urllib.request.Request(
                self.url, data=data, headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=self.cfg.timeout_s) as response:
                    payload = json.loads(response.read().decode())
                choice = payload["choices"][0]
                return choice["message"]["content"] if self.cfg.chat else choice["text"]
            except urllib.error.HTTPError as err:
                message = err.read().decode(errors="replace")[:500]
                if err.code not in _RETRY_STATUS:
                    raise ServerError(f"{self.url}: HTTP {err.code}: {message}") from err
                last = f"HTTP {err.code}: {message}"
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                last = f"{type(err).__name__}: {err}"
            except (KeyError, IndexError, json.JSONDecodeError) as err:
                raise ServerError(f"{self.url}: unexpected answer ({err!r})") from err
            log.warning("%s: attempt %d failed (%s)", self.url, attempt + 1, last)
        raise ServerError(f"{self.url}: no answer after {self.cfg.retries + 1} attempts; last: {last}")
