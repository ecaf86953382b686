"""Cross-tokenizer alignment (FuseLLM, Wan et al. 2024, Sec. 3.3 "token alignment"; ProFuser reuses it).

Two steps make a source LM's next-token distributions usable by a target LM with another tokenizer:

* :func:`align_tokens` -- token alignment: a dynamic-programming (dynamic time warping) path between the source's
  and the target's tokenizations of the same text, with the edit distance between token surfaces as the cost
  (FuseLLM's choice). When both tokenizations carry character offsets (every fast tokenizer does), a token pair
  whose character spans do not overlap costs :data:`SPAN_PENALTY` more, so the path follows the text exactly where
  offsets are known and falls back to pure edit distance where they are not (or where normalisation moved text).
* :class:`VocabMapping` -- vocabulary mapping by minimum edit distance (MinED): each source token goes to the
  target token with the same text when there is one, else to the target token at the smallest edit distance.

Token surfaces are plain text: byte-level BPE symbols (``Ġ``, ``Ċ``, ``Ã©``) are turned back into bytes and
decoded (a token holding part of a multi-byte character keeps its byte symbols, which two byte-level vocabularies
spell alike), SentencePiece's ``▁`` becomes a space and WordPiece's ``##`` is dropped (:func:`vocab_texts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from paperlab.config import ConfigError

#: Extra cost of aligning two tokens whose character spans do not overlap (larger than any token edit distance).
SPAN_PENALTY = 1000.0


class VocabMappingError(ConfigError):
    """A source vocabulary that cannot be mapped onto the target's (names the source and gives examples): the
    configured models do not fit together, a :class:`paperlab.config.ConfigError` (one line, exit 2)."""


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's ``bytes_to_unicode``: the printable symbol of each byte -> the byte."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def _is_byte_level(tokenizer) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    decoder = getattr(backend, "decoder", None) if backend is not None else None
    return decoder is not None and "ByteLevel" in repr(decoder)


def token_text(token: str, byte_level: bool) -> str:
    """The plain text of one vocabulary entry (see the module docstring)."""
    if byte_level:
        table = _byte_decoder()
        if all(ch in table for ch in token):
            try:
                return bytes(table[ch] for ch in token).decode("utf-8")
            except UnicodeDecodeError:  # part of a multi-byte character: keep the byte symbols, unique per id
                return token
        return token
    if token.startswith("<0x") and token.endswith(">") and len(token) == 6:  # SentencePiece byte fallback
        return bytes([int(token[3:5], 16)]).decode("utf-8", errors="replace")
    if token.startswith("##"):
        return token[2:]
    return token.replace("▁", " ")


def vocab_texts(tokenizer) -> list[str]:
    """Plain text of every id ``0 .. len(tokenizer)-1`` (special tokens keep their own spelling)."""
    byte_level = _is_byte_level(tokenizer)
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    special = set(getattr(tokenizer, "all_special_tokens", []))
    return [t if t in special or t is None else token_text(t, byte_level) for t in tokens]


@dataclass
class Tokenized:
    """One text in one tokenizer: ``ids`` (n,), ``texts`` (n token surfaces) and ``spans`` (n, 2) character
    offsets into the text, or ``None`` when the tokenizer gives none."""

    ids: list[int]
    texts: list[str]
    spans: np.ndarray | None


def tokenize(tokenizer, text: str, *, add_special_tokens: bool = False) -> Tokenized:
    """Tokenise ``text`` with surfaces and (for fast tokenizers) character spans."""
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
        spans = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)
        texts = [text[a:b] for a, b in spans]
        ids = list(enc["input_ids"])
        # a special token (BOS) has an empty span: keep its own spelling so that it aligns with nothing textual
        for i, (a, b) in enumerate(spans):
            if a == b:
                texts[i] = tokenizer.convert_ids_to_tokens(ids[i])
        return Tokenized(ids, texts, spans)
    ids = list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])
    byte_level = _is_byte_level(tokenizer)
    return Tokenized(ids, [token_text(t, byte_level) for t in tokenizer.convert_ids_to_tokens(ids)], None)


def _cost_matrix(src: Tokenized, tgt: Tokenized) -> np.ndarray:
    from rapidfuzz.distance import Levenshtein
    from rapidfuzz.process import cdist

    cost = cdist(tgt.texts, src.texts, scorer=Levenshtein.distance, dtype=np.float64, workers=1)
    cost = np.asarray(cost, dtype=np.float64).reshape(len(tgt.texts), len(src.texts))
    if tgt.spans is not None and src.spans is not None and len(tgt.ids) and len(src.ids):
        t0, t1 = tgt.spans[:, :1], tgt.spans[:, 1:]
        s0, s1 = src.spans[:, 0][None, :], src.spans[:, 1][None, :]
        # overlap of [t0, t1) and [s0, s1); two empty spans at the same place also count (specials)
        overlap = (np.minimum(t1, s1) > np.maximum(t0, s0)) | ((t0 == t1) & (s0 == s1) & (t0 == s0))
        cost = cost + SPAN_PENALTY * (~overlap)
    return cost


def dtw_path(cost: np.ndarray) -> list[tuple[int, int]]:
    """Monotone path from (0, 0) to (n-1, m-1) of least total ``cost`` (n, m) with steps (1,0), (0,1), (1,1);
    ties prefer the diagonal. Filled one anti-diagonal at a time (vectorised), O(n m) memory."""
    n, m = cost.shape
    if n == 0 or m == 0:
        return []
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    move = np.zeros((n, m), dtype=np.int8)  # 0 diagonal, 1 from above (i-1), 2 from the left (j-1)
    for d in range(n + m - 1):
        i = np.arange(max(0, d - m + 1), min(n, d + 1))
        j = d - i
        options = np.stack([acc[i, j], acc[i, j + 1], acc[i + 1, j]])  # diag, up, left (acc is shifted by 1)
        best = np.argmin(options, axis=0)
        acc[i + 1, j + 1] = cost[i, j] + options[best, np.arange(len(i))]
        move[i, j] = best
    path = []
    i, j = n - 1, m - 1
    while True:
        path.append((i, j))
        if i == 0 and j == 0:
            break
        step = move[i, j]
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        elif step == 0:
            i, j = i - 1, j - 1
        elif step == 1:
            i -= 1
        else:
            j -= 1
    return path[::-1]


def align_tokens(src: Tokenized, tgt: Tokenized) -> list[list[int]]:
    """For each target token, the source tokens aligned with it (in order; at least one each), by
    :func:`dtw_path` over :func:`_cost_matrix`."""
    aligned: list[list[int]] = [[] for _ in tgt.ids]
    for i, j in dtw_path(_cost_matrix(src, tgt)):
        aligned[i].append(j)
    return aligned


def one_to_one_sources(aligned: Sequence[Sequence[int]]) -> np.ndarray:
    """Source index whose next-token distribution stands for each target token, or -1.

    A target token takes the distribution of the *first* source token aligned with it, unless that source token
    already started an earlier target token (the target split one source token into several: only the first of
    them gets the source's prediction; the others keep the ground truth alone). This is FuseLLM's rule in spirit:
    a source prediction is used once, where the two tokenizations start a unit at the same place.
    """
    out = np.full(len(aligned), -1, dtype=np.int64)
    used: set[int] = set()
    for i, js in enumerate(aligned):
        j = js[0]
        if j not in used:
            out[i] = j
            used.add(j)
    return out


class VocabMapping:
    """Source id -> target id by exact text, else minimum edit distance (MinED, FuseLLM Sec. 3.3).

    ``max_unmapped``: the largest share of source tokens allowed to have no target token within
    ``max_relative_distance`` x their length (such tokens map to -1 and their probability is dropped); beyond it the
    vocabularies do not describe the same text and :class:`VocabMappingError` is raised.
    """

    def __init__(
        self,
        source_texts: Sequence[str],
        target_texts: Sequence[str],
        *,
        source_name: str = "source",
        max_relative_distance: float = 0.5,
        max_unmapped: float = 0.2,
    ) -> None:
        from rapidfuzz.distance import Levenshtein
        from rapidfuzz.process import extractOne

        if not source_texts or not target_texts:
            raise VocabMappingError(
                f"{source_name}: empty vocabulary (source {len(source_texts)} tokens, "
                f"target {len(target_texts)})"
            )
        exact: dict[str, int] = {}
        for tid, text in enumerate(target_texts):
            exact.setdefault(text, tid)
        table = np.full(len(source_texts), -1, dtype=np.int64)
        distance = np.zeros(len(source_texts), dtype=np.int64)
        unmapped: list[str] = []
        for sid, text in enumerate(source_texts):
            if text in exact:
                table[sid] = exact[text]
                continue
            limit = max(1, int(max_relative_distance * max(len(text), 1)))
            hit = extractOne(text, target_texts, scorer=Levenshtein.distance, score_cutoff=limit)
            if hit is None:
                unmapped.append(text)
                continue
            table[sid], distance[sid] = hit[2], int(hit[1])
        share = len(unmapped) / len(source_texts)
        if share > max_unmapped:
            raise VocabMappingError(
                f"{source_name}: {len(unmapped)} of {len(source_texts)} tokens ({100 * share:.0f}%) have no target "
                f"token within edit distance {max_relative_distance} x length (allowed: {100 * max_unmapped:.0f}%), "
                f"e.g. {unmapped[:5]!r}; the two tokenizers do not spell the same text"
            )
        self.source_name = source_name
        self.table = table
        self.distance = distance
        self.exact_share = float(np.mean(distance[table >= 0] == 0)) if (table >= 0).any() else 0.0

    @classmethod
    def between(cls, source_tokenizer, target_tokenizer, **kwargs) -> VocabMapping:
        """The mapping of two tokenizers' vocabularies; their EOS, BOS, PAD and UNK map onto each other whatever
        their spelling (``</s>`` vs ``<|im_end|>``)."""
        mapping = cls(vocab_texts(source_tokenizer), vocab_texts(target_tokenizer), **kwargs)
        for role in ("eos_token_id", "bos_token_id", "pad_token_id", "unk_token_id"):
            src, tgt = getattr(source_tokenizer, role, None), getattr(target_tokenizer, role, None)
            if src is not None and tgt is not None:
                mapping.table[src], mapping.distance[src] = tgt, 0
        return mapping

    def __call__(self, source_ids: np.ndarray) -> np.ndarray:
        """Map an array of source ids (any shape) to target ids; -1 where unmapped, and for ids past the
        tokenizer's vocabulary (a model's embedding matrix is often padded beyond it)."""
        ids = np.asarray(source_ids, dtype=np.int64)
        inside = ids < len(self.table)
        return np.where(inside, self.table[np.where(inside, ids, 0)], -1)
