"""Every loss equals a hand computation on a tiny batch; targets are distributions; invariants of the MIM losses."""

import math

import pytest
import torch

from semmim import losses


def test_itc_matches_hand_computation():
    sim = torch.tensor([[2.0, 0.0], [1.0, 3.0]])
    row0 = -math.log(math.exp(2) / (math.exp(2) + 1))
    row1 = -math.log(math.exp(3) / (math.exp(1) + math.exp(3)))
    col0 = -math.log(math.exp(2) / (math.exp(2) + math.exp(1)))
    col1 = -math.log(math.exp(3) / (1 + math.exp(3)))
    expected = ((row0 + row1) / 2 + (col0 + col1) / 2) / 2
    assert losses.itc_loss(sim, sim.T).item() == pytest.approx(expected, rel=1e-6)


def test_itm_and_mlm_match_hand_computation():
    logits = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    labels = torch.tensor([1, 0])
    expected = (math.log(1 + math.exp(-1)) + math.log(1 + math.exp(-2))) / 2
    assert losses.itm_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    mlm_logits = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    mlm_labels = torch.tensor([[-100, 0]])  # only the second place counts
    assert losses.mlm_loss(mlm_logits, mlm_labels).item() == pytest.approx(
        -math.log(math.e / (math.e + 2)), rel=1e-6
    )
    assert losses.mlm_loss(mlm_logits, torch.full((1, 2), -100)).item() == 0.0


def test_teacher_targets_sum_to_one_and_are_sharper_than_the_student():
    torch.manual_seed(0)
    logits = torch.rand(4, 5, 16) * 2 - 1
    center = torch.rand(16) * 0.1
    t = losses.teacher_distribution(logits, center, 0.04)
    assert torch.allclose(t.sum(-1), torch.ones(4, 5))
    s = torch.softmax(logits / 0.1, -1)
    entropy = lambda p: -(p * p.clamp_min(1e-12).log()).sum(-1).mean()  # noqa: E731
    assert entropy(t) < entropy(s)


def test_agreement_loss_matches_hand_computation():
    s1, s2 = torch.tensor([[0.2, -0.1]]), torch.tensor([[0.0, 0.3]])
    t1, t2 = torch.tensor([[0.5, 0.1]]), torch.tensor([[-0.2, 0.4]])
    c = torch.tensor([0.1, 0.0])
    tau_s, tau_t = 0.1, 0.05

    def softmax(v):
        e = [math.exp(x) for x in v]
        return [x / sum(e) for x in e]

    def h(p, q):
        return -sum(a * math.log(b) for a, b in zip(p, q, strict=True))

    p1 = softmax([(0.5 - 0.1) / tau_t, 0.1 / tau_t])
    p2 = softmax([(-0.2 - 0.1) / tau_t, 0.4 / tau_t])
    q1, q2 = softmax([0.2 / tau_s, -0.1 / tau_s]), softmax([0.0, 0.3 / tau_s])
    expected = (h(p1, q2) + h(p2, q1)) / 2
    got = losses.agreement_loss((s1, s2), (t1, t2), c, tau_s, tau_t)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_center_update_is_the_ema_of_the_batch_mean():
    c = torch.tensor([1.0, 0.0])
    losses.update_center(c, torch.tensor([[[0.0, 2.0]], [[2.0, 4.0]]]), 0.9)
    assert torch.allclose(c, torch.tensor([0.9 + 0.1 * 1.0, 0.1 * 3.0]))


def test_semantic_mim_loss_is_the_cross_entropy_on_masked_patches_only():
    targets = torch.tensor([[[0.75, 0.25], [0.5, 0.5]]])
    logits = torch.tensor([[[0.1, -0.1], [5.0, -5.0]]])
    mask = torch.tensor([[True, False]])
    q = torch.softmax(torch.tensor([0.1, -0.1]) / 0.1, 0)
    expected = -(0.75 * q[0].log() + 0.25 * q[1].log())
    got = losses.semantic_mim_loss(targets, logits, mask, 0.1)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    perturbed = logits.clone()
    perturbed[0, 1] = torch.tensor([-9.0, 9.0])  # an unmasked patch: the loss must not change
    assert losses.semantic_mim_loss(targets, perturbed, mask, 0.1).item() == pytest.approx(got.item())


def test_pixel_and_feature_mim_losses_match_hand_computation():
    patches = torch.tensor([[[1.0, 3.0], [0.0, 0.0]]])
    mask = torch.tensor([[True, False]])
    std = math.sqrt(2.0 + 1e-6)  # unbiased variance of (1, 3) is 2
    target = [(1 - 2) / std, (3 - 2) / std]
    pred = torch.tensor([[[0.0, 0.0], [7.0, 7.0]]])
    assert losses.pixel_mim_loss(patches, pred, mask).item() == pytest.approx(
        (target[0] ** 2 + target[1] ** 2) / 2, rel=1e-5
    )
    feats = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])
    preds = torch.tensor([[[0.0, 2.0], [1.0, 1.0]]])
    assert losses.feature_mim_loss(feats, preds, mask).item() == pytest.approx(2.0)


def test_hard_negatives_are_never_the_positive():
    torch.manual_seed(0)
    sim = torch.randn(6, 6) * 5 + torch.eye(6) * 20
    same = torch.eye(6, dtype=torch.bool)
    same[0, 1] = same[1, 0] = True  # a duplicate caption counts as a positive
    for _ in range(50):
        neg = losses.hard_negative_index(sim, same)
        assert not same[torch.arange(6), neg].any()


def test_mlm_masking_never_touches_special_tokens():
    torch.manual_seed(0)
    ids = torch.tensor([[1, 7, 8, 9, 2, 0, 0]] * 200)
    out, labels = losses.mask_tokens(ids, (0, 1, 2, 3, 4), 3, 20, prob=0.5)
    special = (ids == 0) | (ids == 1) | (ids == 2)
    assert (out[special] == ids[special]).all() and (labels[special] == -100).all()
    chosen = labels != -100
    assert 0.4 < chosen[:, 1:4].float().mean() < 0.6
    assert 0.7 < (out[chosen] == 3).float().mean() < 0.9  # ~80% become [MASK]


def test_sinkhorn_targets_are_equipartitioned_distributions():
    torch.manual_seed(0)
    logits = torch.rand(2, 6, 4) * 2 - 1
    q = losses.sinkhorn_distribution(logits, 0.05, iterations=50)
    assert q.shape == logits.shape
    assert torch.allclose(q.sum(-1), torch.ones(2, 6), atol=1e-4)
    assert torch.allclose(q.reshape(-1, 4).sum(0), torch.full((4,), 12 / 4), atol=0.05)  # M / K each
