import pytest
import torch

from paperlab.metrics import bidirectional_retrieval_metrics
from unify.retrieval import (
    LexiconIndex,
    combined_similarity,
    explain_match,
    latent_similarity,
    lexicon_similarity,
)


def test_combined_weight_one_and_zero_are_exactly_the_branches():
    torch.manual_seed(0)
    s_lat, s_lex = torch.randn(5, 5), torch.rand(5, 5)
    assert torch.equal(combined_similarity(s_lat, s_lex, 1.0), s_lat)
    assert torch.equal(combined_similarity(s_lat, s_lex, 0.0), s_lex)
    assert torch.allclose(combined_similarity(s_lat, s_lex, 0.25), 0.25 * s_lat + 0.75 * s_lex)
    with pytest.raises(ValueError, match="latent_weight"):
        combined_similarity(s_lat, s_lex, 1.5)


def test_metrics_on_hand_rankings():
    identity = bidirectional_retrieval_metrics(torch.eye(4))
    assert identity["t2v_R@1"] == 100.0 and identity["t2v_MdR"] == 1.0 and identity["v2t_MnR"] == 1.0
    reversed_ = bidirectional_retrieval_metrics(torch.eye(3).flip(0) * 2 + torch.eye(3))
    # query 1 (middle) ranks its match first (score 3); queries 0 and 2 rank it second
    assert reversed_["t2v_R@1"] == pytest.approx(100 / 3)


def test_inverted_index_equals_dense_lexicon_similarity():
    torch.manual_seed(0)
    videos = torch.relu(torch.randn(50, 30) - 1.0)  # sparse, non-negative
    queries = torch.relu(torch.randn(4, 30) - 1.0)
    index = LexiconIndex(videos)
    dense = lexicon_similarity(queries, videos)
    for q in range(4):
        assert torch.allclose(index.scores(queries[q]), dense[q], atol=1e-6)
        _, ids = index.search(queries[q], k=3)
        assert ids.tolist() == torch.topk(dense[q], 3).indices.tolist()
    assert index.nnz == int((videos > 0).sum())
    with pytest.raises(ValueError, match="non-negative"):
        LexiconIndex(-videos - 1)


def test_explain_match_lists_shared_words_first():
    words = ["pad", "red", "blue", "circle", "square"]
    text = torch.tensor([0.0, 2.0, 0.0, 1.0, 0.0])
    video = torch.tensor([0.0, 1.5, 3.0, 0.5, 0.0])
    assert explain_match(text, video, words, k=3) == [("red", 3.0), ("circle", 0.5)]


def test_latent_similarity_is_cosine_of_unit_vectors():
    a = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    assert torch.allclose(latent_similarity(a, a).diagonal(), torch.ones(3), atol=1e-6)
