"""Caption tokenisation onto the lexicon vocabulary.

The lexicon space is the tokenizer's vocabulary (one dimension per entry). The tiny default is a word-level
vocabulary over the synthetic captions (paperlab's tiny tokenizer, ``kind="word"``); at paper scale the CLIP BPE
vocabulary of open_clip (49,408 entries), as the lexicon heads of the paper map onto the text encoder's vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class CaptionTokenizer:
    """``encode(captions) -> (ids (B, L), lengths (B,))`` with a start token, the words and an end token;
    ``words(ids)`` maps lexicon dimensions back to strings."""

    def __init__(
        self,
        kind: str = "word",
        vocabulary: Sequence[str] = (),
        context_length: int = 16,
        clip_name: str = "ViT-B-32",
    ) -> None:
        self.kind = kind
        self.context_length = context_length
        if kind == "word":
            from paperlab.models import train_tiny_tokenizer

            if not vocabulary:
                raise ValueError("a word-level caption tokenizer needs its vocabulary (list of words)")
            self._tok = train_tiny_tokenizer(
                [" ".join(vocabulary)], vocab_size=len(vocabulary) + 16, kind="word"
            )
            self.start_id, self.end_id, self.pad_id = (
                self._tok.bos_token_id,
                self._tok.eos_token_id,
                self._tok.pad_token_id,
            )
            self.special_ids = sorted(set(self._tok.all_special_ids))
            self.vocab_size = len(self._tok)
            inverse = {i: w for w, i in self._tok.get_vocab().items()}
            self._words = [inverse[i] for i in range(self.vocab_size)]
        elif kind == "clip":
            import open_clip

            self._tok = open_clip.get_tokenizer(clip_name)
            self.vocab_size = self._tok.vocab_size
            self.start_id, self.end_id, self.pad_id = self._tok.sot_token_id, self._tok.eot_token_id, 0
            self.special_ids = [0, self.start_id, self.end_id]
            self._words = [self._tok.decoder.get(i, "").replace("</w>", "") for i in range(self.vocab_size)]
        else:
            raise ValueError(f"tokenizer kind must be 'word' or 'clip', got {kind!r}")

    def encode(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.full((len(captions), self.context_length), self.pad_id, dtype=torch.long)
        lengths = torch.zeros(len(captions), dtype=torch.long)
        for i, caption in enumerate(captions):
            if not caption or not caption.strip():
                raise ValueError(f"caption {i} is empty: every caption must name at least one word")
            if self.kind == "word":
                body = self._tok(caption.lower(), add_special_tokens=False)["input_ids"]
            else:
                body = self._tok.encode(caption)
            seq = [*[self.start_id, *body][: self.context_length - 1], self.end_id]
            ids[i, : len(seq)] = torch.tensor(seq)
            lengths[i] = len(seq)
        return ids, lengths

    def word_ids(self, words: Sequence[str]) -> list[int]:
        """Lexicon dimensions of ``words`` (each word's first token)."""
        if self.kind == "word":
            return [self._tok.convert_tokens_to_ids(w) for w in words]
        return [self._tok.encode(w)[0] for w in words]

    def words(self, ids: Sequence[int]) -> list[str]:
        return [self._words[int(i)] for i in ids]
