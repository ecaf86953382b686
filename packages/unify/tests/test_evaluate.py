import math

import torch

from unify.evaluate import concept_auc, oracle_r1


def test_concept_auc_by_hand():
    concepts = [["red"], ["blue"], ["red"], ["blue"]]
    perfect = torch.tensor([[0.9], [0.1], [0.8], [0.2]])
    assert concept_auc(perfect, concepts, 0, "red") == 1.0
    assert concept_auc(-perfect, concepts, 0, "red") == 0.0
    assert concept_auc(torch.zeros(4, 1), concepts, 0, "red") == 0.5  # a dead dimension: ties count half
    # pairs (pos, neg): 0.9>0.1, 0.9>0.85, 0.3>0.1, 0.3<0.85 -> 3 of 4
    assert concept_auc(torch.tensor([[0.9], [0.1], [0.3], [0.85]]), concepts, 0, "red") == 0.75
    assert math.isnan(concept_auc(perfect, concepts, 0, "green"))


def test_oracle_r1_counts_ties_at_random():
    concepts = [
        ["red", "circle", "left"],
        ["red", "circle", "right"],
        ["blue", "square", "up"],
    ]
    # colours and shapes only: videos 0 and 1 tie for queries 0 and 1 (1/2 each), query 2 is unique
    assert abs(oracle_r1(concepts, {"red", "blue", "circle", "square"}) - 100 * (0.5 + 0.5 + 1) / 3) < 1e-9
    # with the motions every query has a unique best video
    assert oracle_r1(concepts, {"red", "blue", "circle", "square", "left", "right", "up"}) == 100.0
