"""Token alignment and vocabulary mapping on hand cases (whitespace, unicode, splits and merges)."""

import numpy as np
import pytest

from paperlab.models import train_tiny_tokenizer
from profuser.align import (
    Tokenized,
    VocabMapping,
    VocabMappingError,
    align_tokens,
    dtw_path,
    one_to_one_sources,
    token_text,
    tokenize,
    vocab_texts,
)


def _tok(texts: list[str], spans: list[tuple[int, int]] | None = None) -> Tokenized:
    return Tokenized(list(range(len(texts))), texts, None if spans is None else np.asarray(spans))


def test_dtw_path_on_a_hand_matrix():
    cost = np.array([[0, 5, 5], [5, 0, 0], [5, 5, 0]], dtype=float)
    assert dtw_path(cost) == [(0, 0), (1, 1), (2, 2)]  # ties go to the diagonal
    cost[1, 1], cost[2, 1] = 9, 0
    path = dtw_path(cost)  # the expensive middle cell is avoided at the least total cost (5)
    assert (1, 1) not in path and sum(cost[i, j] for i, j in path) == 5
    assert dtw_path(np.array([[1.0, 0.0, 0.0]])) == [(0, 0), (0, 1), (0, 2)]


def test_alignment_by_text_when_no_offsets():
    # target "hello world" as [hello][ world]; source as [hel][lo][ wor][ld]
    tgt = _tok(["hello", " world"])
    src = _tok(["hel", "lo", " wor", "ld"])
    assert align_tokens(src, tgt) == [[0, 1], [2, 3]]
    assert one_to_one_sources(align_tokens(src, tgt)).tolist() == [0, 2]
    # the other way round: a source token split by the target -> only the first target piece gets it
    assert align_tokens(tgt, src) == [[0], [0], [1], [1]]
    assert one_to_one_sources(align_tokens(tgt, src)).tolist() == [0, -1, 1, -1]


def test_alignment_follows_spans_where_text_is_ambiguous():
    # "aaaa": target [a][a][a][a], source [aa][aa]; every token costs the same by text alone
    tgt = _tok(["a", "a", "a", "a"], [(0, 1), (1, 2), (2, 3), (3, 4)])
    src = _tok(["aa", "aa"], [(0, 2), (2, 4)])
    assert align_tokens(src, tgt) == [[0], [0], [1], [1]]


@pytest.mark.parametrize(
    "text",
    ["héllo wörld  12 + 34", "  leading and  double  spaces ", "naïve café ☕ 東京 tokyo", "a\nb\tc"],
)
def test_real_tokenizers_map_every_target_token_to_overlapping_source_spans(text):
    corpus = [text, "hello world 12 34 + spaces", "café 東京 ☕ naïve"] * 3
    small = train_tiny_tokenizer(corpus, vocab_size=260)  # about one token per byte
    large = train_tiny_tokenizer(corpus, vocab_size=420)  # whole words
    src, tgt = tokenize(small, text), tokenize(large, text)
    assert len(src.ids) >= len(tgt.ids)
    aligned = align_tokens(src, tgt)
    for i, js in enumerate(aligned):
        a, b = tgt.spans[i]
        for j in js:
            c, d = src.spans[j]
            assert min(b, d) > max(a, c), (text, i, tgt.texts[i], j, src.texts[j])
    # every source token is used, in order
    flat = [j for js in aligned for j in js]
    assert sorted(set(flat)) == list(range(len(src.ids))) and flat == sorted(flat)


def test_token_text_undoes_markers():
    assert token_text("Ġhello", byte_level=True) == " hello"
    assert token_text("hÃ©", byte_level=True) == "hé"
    assert token_text("Ċ", byte_level=True) == "\n"
    assert token_text("▁world", byte_level=False) == " world"
    assert token_text("<0x0A>", byte_level=False) == "\n"
    assert token_text("##ing", byte_level=False) == "ing"


def test_vocab_texts_of_a_byte_level_tokenizer_round_trip():
    tok = train_tiny_tokenizer(["héllo wörld"] * 3, vocab_size=280)
    texts = vocab_texts(tok)
    ids = tok("héllo wörld", add_special_tokens=False)["input_ids"]
    assert "".join(texts[i] for i in ids) == "héllo wörld"


def test_mined_mapping_hand_cases():
    target = [" hello", " world", " help", "a", "b"]
    source = [" hello", " hell", " worlds", "a", " wor"]
    m = VocabMapping(source, target)
    assert m.table.tolist() == [0, 0, 1, 3, 1]  # exact, then minimum edit distance (first on ties)
    assert m.distance.tolist() == [0, 1, 1, 0, 2]
    assert m(np.array([[1, 3]])).tolist() == [[0, 3]]
    assert m(np.array([4, 99])).tolist() == [
        1,
        -1,
    ]  # an id past the tokenizer (padded embeddings) is unmapped


def test_special_tokens_map_onto_each_other():
    a = train_tiny_tokenizer(["one two three"] * 2, vocab_size=270)
    b = train_tiny_tokenizer(["one two three four"] * 2, vocab_size=300)
    m = VocabMapping.between(a, b)
    assert m.table[a.eos_token_id] == b.eos_token_id and m.table[a.pad_token_id] == b.pad_token_id


def test_a_vocabulary_that_cannot_be_mapped_is_refused_with_its_name():
    with pytest.raises(VocabMappingError, match=r"greek-source.*no target token"):
        VocabMapping(["αβγ", "δεζ", "ηθι", " hello"], [" hello", " world", "abc"], source_name="greek-source")
    with pytest.raises(VocabMappingError, match="empty vocabulary"):
        VocabMapping([], ["a"])
