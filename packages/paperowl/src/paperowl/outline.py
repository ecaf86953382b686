"""Outlines: the control signal of diagram analysis (arXiv 2311.18248, Sec. 3, "outline" and Table 1).

The paper asks an LLM (GPT-3.5) to summarise each analysis paragraph into a *simple* outline (one sentence) and a
*detailed* outline (a few key points); the outline is then given to the model as the user's intention
(``outline_to_analysis``) or predicted from diagrams and context (``simple_outline``/``detailed_outline``).

Two generators share one interface (:class:`OutlineGenerator`): :class:`ExtractiveOutliner`, deterministic and
offline, the default; :class:`LLMOutliner`, backed by an OpenAI-compatible chat endpoint (vLLM, OpenAI) or a
local Hugging Face causal LM, which falls back to the extractive outline when the reply cannot be parsed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from paperlab.config import require

log = logging.getLogger(__name__)

_STOP = set(
    [
        "a",
        "an",
        "the",
        "of",
        "and",
        "or",
        "in",
        "on",
        "for",
        "to",
        "with",
        "by",
        "from",
        "as",
        "at",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "this",
        "that",
        "these",
        "those",
        "it",
        "its",
        "we",
        "our",
        "their",
        "which",
        "who",
        "than",
        "then",
        "also",
        "can",
        "may",
        "such",
        "each",
        "into",
        "over",
        "under",
        "between",
        "both",
        "not",
        "no",
        "all",
        "more",
        "most",
    ]
)
OUTLINE_PROMPT = (
    "Summarise the following paragraph of a scientific paper, which discusses the diagrams captioned below.\n"
    "Answer in exactly this form:\nSimple outline: <one short sentence>\nDetailed outline:\n- <point>\n- <point>\n\n"
    "Captions:\n{captions}\n\nParagraph:\n{paragraph}"
)


@dataclass(frozen=True)
class Outline:
    """``simple``: one sentence; ``detailed``: key points, one per line, each starting with ``- ``."""

    simple: str
    detailed: str


class OutlineGenerator(Protocol):
    def outline(self, paragraph: str, captions: Sequence[str]) -> Outline: ...


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (split after ``.``/``!``/``?`` followed by a space and a capital or digit;
    abbreviations such as ``Fig.``, ``e.g.`` and ``et al.`` do not end a sentence)."""
    protected = re.sub(
        r"\b(Fig|Figs|Tab|Sec|Eq|Eqs|e\.g|i\.e|et al|cf|vs|resp|approx|No)\.", r"\1<dot>", text
    )
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9(])", protected)
    return [p.replace("<dot>", ".").strip() for p in parts if p.strip()]


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z][a-z0-9-]+", text.lower()) if w not in _STOP}


def _truncate(sentence: str, max_words: int) -> str:
    words = sentence.split()
    return sentence if len(words) <= max_words else " ".join(words[:max_words]).rstrip(",;:") + " ..."


@dataclass
class ExtractiveOutliner:
    """Deterministic outline from the paragraph itself.

    simple: the sentence sharing most content words with the diagrams' captions (earliest on ties), cut to
    ``simple_words``; detailed: the first ``max_points`` sentences, each cut to ``point_words``, as ``- `` points.
    """

    simple_words: int = 25
    point_words: int = 12
    max_points: int = 4

    def __post_init__(self) -> None:
        require(self.simple_words > 0, "simple_words", self.simple_words, "a positive integer")
        require(self.point_words > 0, "point_words", self.point_words, "a positive integer")
        require(self.max_points > 0, "max_points", self.max_points, "a positive integer")

    def outline(self, paragraph: str, captions: Sequence[str]) -> Outline:
        sentences = split_sentences(paragraph) or [paragraph.strip()]
        caption_words = _content_words(" ".join(captions))
        scores = [len(_content_words(s) & caption_words) for s in sentences]
        best = max(range(len(sentences)), key=lambda i: (scores[i], -i))
        simple = _truncate(sentences[best], self.simple_words)
        points = [f"- {_truncate(s, self.point_words)}" for s in sentences[: self.max_points]]
        return Outline(simple=simple, detailed="\n".join(points))


def parse_outline_reply(reply: str) -> Outline | None:
    """Parse ``Simple outline: ...`` / ``Detailed outline:`` + ``- `` points from an LLM reply; None if absent."""
    simple = re.search(r"simple outline\s*:\s*(.+)", reply, flags=re.IGNORECASE)
    detailed = re.search(r"detailed outline\s*:\s*\n?((?:\s*[-*•].+\n?)+)", reply, flags=re.IGNORECASE)
    if not simple or not detailed:
        return None
    points = [re.sub(r"^\s*[-*•]\s*", "- ", p) for p in detailed.group(1).strip().splitlines() if p.strip()]
    return Outline(simple=simple.group(1).strip(), detailed="\n".join(points))


@dataclass
class LLMOutliner:
    """Outlines from an LLM: ``base_url`` set -> an OpenAI-compatible ``/chat/completions`` endpoint through
    :class:`paperlab.serving.OpenAIServer` (model ``model``; the API key from the environment variable
    ``api_key_env`` only; retries with backoff; answers cached in the JSONL ``cache_path`` when given, so a rebuilt
    corpus asks nothing twice); otherwise ``model`` is a local/hub causal LM loaded with
    :func:`paperlab.models.load_causal_lm`. Unparseable replies fall back to :class:`ExtractiveOutliner`, and so
    does a request that still fails: counted in :attr:`failures` (the build's ``summary.json``:
    ``outline_failures``), its error in :attr:`errors`."""

    model: str
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    max_new_tokens: int = 160
    temperature: float = 0.0
    timeout_s: float = 60.0
    retries: int = 4
    cache_path: str | None = None
    _local: Any = None
    _server: Any = None

    def __post_init__(self) -> None:
        require(bool(self.model), "model", self.model, "a model name or path")
        require(self.max_new_tokens > 0, "max_new_tokens", self.max_new_tokens, "a positive integer")
        self._fallback = ExtractiveOutliner()
        self.failures, self.errors = 0, []
        if self.base_url:
            from paperlab.serving import OpenAIServer, ServerConfig

            base = self.base_url.rstrip("/")
            self._server = OpenAIServer(
                ServerConfig(
                    base_url=base,
                    model=self.model,
                    chat=True,
                    max_tokens=self.max_new_tokens,
                    temperature=self.temperature,
                    timeout_s=self.timeout_s,
                    retries=self.retries,
                    cache_path=self.cache_path,
                    api_key_env=self.api_key_env,
                )
            )

    def prompt(self, paragraph: str, captions: Sequence[str]) -> str:
        return OUTLINE_PROMPT.format(captions="\n".join(f"- {c}" for c in captions), paragraph=paragraph)

    def complete(self, prompt: str) -> str:
        """The model's reply to one user message ("" when the server failed it)."""
        if self._server is not None:  # a failed request answers "" (counted): the outline falls back
            done = self._server.complete([prompt])[0]
            if not done.ok:
                self.failures += 1
                self.errors.append(done.error)
            return done.text
        if self._local is None:
            from paperlab.models import load_causal_lm, load_tokenizer

            self._local = (load_causal_lm(self.model), load_tokenizer(self.model, padding_side="left"))
        model, tokenizer = self._local
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
        ids = {k: v.to(model.device) for k, v in ids.items()}
        out = model.generate(**ids, max_new_tokens=self.max_new_tokens, do_sample=False)
        return tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)

    def outline(self, paragraph: str, captions: Sequence[str]) -> Outline:
        reply = self.complete(self.prompt(paragraph, captions))
        parsed = parse_outline_reply(reply)
        if parsed is None:
            log.warning("LLM outline reply could not be parsed; using the extractive outline")
            return self._fallback.outline(paragraph, captions)
        return parsed


def make_outliner(kind: str = "extractive", **options: Any) -> OutlineGenerator:
    """``"extractive"`` (default, offline) or ``"llm"`` (options as :class:`LLMOutliner`)."""
    if kind == "extractive":
        return ExtractiveOutliner(**options)
    if kind == "llm":
        return LLMOutliner(**options)
    raise ValueError(f"outliner={kind!r}: expected 'extractive' or 'llm'")
