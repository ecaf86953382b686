"""Metrics against numbers worked by hand and against the libraries' own values."""

import math

import numpy as np
import pytest

from paperlab import metrics as M


def test_rank_of_target_counts_ties_against_or_averaged_never_for_the_target():
    scores = np.array([[0.1, 0.9, 0.5, 0.5], [3.0, 2.0, 1.0, 0.0]])
    # row 0: 0.9 is above 0.5 and item 3 ties with it -> rank 2 or 3, expected 2.5; row 1 has no tie
    assert M.rank_of_target(scores, [2, 3]).tolist() == [2.5, 4.0]
    assert M.rank_of_target(scores, [2, 3], ties="pessimistic").tolist() == [3, 4]
    assert M.rank_of_target(scores, [2, 3], ties="optimistic").tolist() == [2, 4]
    with pytest.raises(ValueError, match="ties="):
        M.rank_of_target(scores, [2, 3], ties="best")


def test_constant_scores_give_chance_and_nan_raises():
    """Issue 31: with the old optimistic rule a constant (or all -inf) similarity scored R@1 = 100."""
    n = 50
    out = M.retrieval_metrics(np.zeros((n, n)), ks=(1, 5, 10))
    assert out["R@1"] == pytest.approx(100 / n) and out["R@10"] == pytest.approx(100 * 10 / n)
    assert out["MnR"] == pytest.approx((n + 1) / 2)
    bad = np.eye(4)
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="row 2: NaN"):
        M.retrieval_metrics(bad)
    with pytest.raises(ValueError, match="NaN"):
        M.rank_of_target(np.array([[np.nan, 1.0]]), [1])


def test_reranked_scores_with_minus_inf_outside_the_shortlist():
    """A re-ranker scores its top 2 and leaves -inf elsewhere (semmim's ITM): a target outside the shortlist
    ties with the other left-out items and sits on average in the middle of them, not at rank 3."""
    s = np.full((1, 10), -np.inf)
    s[0, [4, 7]] = [2.0, 1.0]
    higher, ties = M.rank_counts(s, [0])
    assert (higher.tolist(), ties.tolist()) == ([2], [7])
    assert M.rank_of_target(s, [0]).tolist() == [2 + 1 + 3.5]
    assert M.expected_hit_rate(higher, ties, 5) == pytest.approx(3 / 8)  # ranks 3..10 equally likely
    assert M.rank_of_target(s, [4]).tolist() == [1.0]


def test_rank_of_target_mask_removes_candidates():
    scores = np.array([[5.0, 1.0, 2.0]])  # item 0 is padding
    assert M.rank_of_target(scores, [2]).tolist() == [2]
    assert M.rank_of_target(scores, [2], mask=np.array([[True, False, False]])).tolist() == [1]
    with pytest.raises(ValueError, match="target is masked"):
        M.rank_of_target(scores, [0], mask=np.array([[True, False, False]]))


def test_hit_mrr_ndcg_by_hand():
    ranks = np.array([1, 3, 11])
    assert M.hit_rate_at_k(ranks, 10) == pytest.approx(2 / 3)
    assert M.mrr_at_k(ranks, 10) == pytest.approx((1 + 1 / 3 + 0) / 3)
    # NDCG@3 of ranks 1 and 3: (1/log2(2) + 1/log2(4)) / 2 over two queries = (1 + 0.5) / 2
    assert M.ndcg_at_k(np.array([1, 3]), 3) == pytest.approx(0.75)
    assert M.ndcg_at_k(np.array([4]), 3) == 0.0
    out = M.ranking_metrics(ranks, ks=(10,))
    assert set(out) == {"HR@10", "MRR@10", "NDCG@10"}


def test_ndcg_graded_hand_value():
    # ranked relevances [3, 2, 3, 0, 1, 2] (the classic Wikipedia example), k=6, gains 2^rel - 1
    rel = [3, 2, 3, 0, 1, 2]
    dcg = sum((2**r - 1) / math.log2(i + 2) for i, r in enumerate(rel))
    ideal = sorted(rel, reverse=True)
    idcg = sum((2**r - 1) / math.log2(i + 2) for i, r in enumerate(ideal))
    assert M.ndcg_graded(rel, 6) == pytest.approx(dcg / idcg)
    assert M.ndcg_graded([0, 0, 1], 3) == pytest.approx(1 / math.log2(4))
    assert M.ndcg_graded([0, 0], 2) == 0.0


def test_ndcg_matches_sklearn_style_binary_case():
    # one relevant item at rank r: NDCG = 1/log2(r+1); check r=1..5
    for r in range(1, 6):
        assert M.ndcg_at_k(np.array([r]), 10) == pytest.approx(1 / math.log2(r + 1))


def test_retrieval_metrics_on_a_hand_matrix():
    sim = np.array(
        [
            [0.9, 0.1, 0.0],  # query 0: rank 1
            [0.8, 0.5, 0.1],  # query 1: rank 2
            [0.7, 0.6, 0.2],  # query 2: rank 3
        ]
    )
    out = M.retrieval_metrics(sim, ks=(1, 2))
    assert out["R@1"] == pytest.approx(100 / 3)
    assert out["R@2"] == pytest.approx(200 / 3)
    assert out["MdR"] == 2.0
    assert out["MnR"] == 2.0
    both = M.bidirectional_retrieval_metrics(sim, ks=(1,))
    # columns as queries: [.9,.8,.7] -> rank 1; [.1,.5,.6] -> rank 2; [.0,.1,.2] -> rank 1
    assert both["v2t_R@1"] == pytest.approx(200 / 3)
    assert both["t2v_R@1"] == pytest.approx(100 / 3)
    with pytest.raises(ValueError, match="square"):
        M.retrieval_metrics(np.zeros((2, 3)))


def test_rank_accepts_torch_tensors():
    import torch

    ranks = M.rank_of_target(torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([0]))
    assert ranks.tolist() == [3]


def test_bleu_and_rouge_against_library_and_hand():
    import sacrebleu
    from rouge_score import rouge_scorer

    preds = ["the cat sat on the mat", "a dog barks"]
    refs = ["the cat sat on the mat", "the dog barks loudly"]
    assert M.bleu(preds, refs) == pytest.approx(sacrebleu.corpus_bleu(preds, [refs]).score)
    assert M.bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100.0)
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    expected = np.mean([scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(preds, refs)])
    assert M.rouge_l(preds, refs) == pytest.approx(expected)
    # hand: "a dog barks" vs "the dog barks loudly": LCS=2, P=2/3, R=2/4, F=2PR/(P+R)=4/7
    assert M.rouge_l(["a dog barks"], ["the dog barks loudly"]) == pytest.approx(4 / 7)


def test_coco_caption_scores_identity_is_max_and_empty_is_zero():
    refs = {"a": ["a red circle above a blue square"], "b": ["two green triangles side by side"]}
    same = M.coco_caption_scores(
        {k: v[0] for k, v in refs.items()}, refs, metrics=("BLEU-4", "ROUGE-L", "CIDEr")
    )
    assert same["BLEU-4"] == pytest.approx(1.0, abs=1e-6)
    assert same["ROUGE-L"] == pytest.approx(1.0)
    empty = M.coco_caption_scores({"a": "", "b": ""}, refs, metrics=("BLEU-4", "ROUGE-L", "CIDEr"))
    assert empty["BLEU-4"] == pytest.approx(0.0, abs=1e-6)
    assert empty["ROUGE-L"] == 0.0
    assert empty["CIDEr"] == 0.0
    with pytest.raises(ValueError, match="unknown caption metric"):
        M.coco_caption_scores(["x"], [["x"]], metrics=("SPICE",))


def test_caption_tokenize():
    assert M.caption_tokenize("A Cat, on the MAT!") == "a cat on the mat"


def test_qa_f1_and_exact_match_by_hand() -> None:
    from paperlab.metrics import exact_match, normalize_answer, qa_f1

    assert normalize_answer("The  Eiffel-Tower!") == "eiffel tower"
    assert qa_f1("the Eiffel Tower", ["Eiffel Tower"]) == 1.0
    # pred [paris, capital, of, france] vs gold [paris]: P = 1/4, R = 1, F1 = 2 * (1/4) / (5/4) = 0.4
    assert abs(qa_f1("Paris, capital of France", "Paris") - 0.4) < 1e-12
    assert qa_f1("London", ["Paris", "london"]) == 1.0  # the best reference counts
    assert qa_f1("Berlin", "Paris") == 0.0
    assert exact_match("An apple.", ["apple"]) == 1.0 and exact_match("apples", "apple") == 0.0
