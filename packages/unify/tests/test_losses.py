"""Each loss against a hand computation on a 2-element example."""

import math

import pytest
import torch

from unify.losses import activation_loss, contrastive_loss, flops_loss, self_distillation_loss


def test_contrastive_loss_by_hand():
    logits = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    rows = (-math.log(math.e**2 / (math.e**2 + 1)) - math.log(0.5)) / 2
    # columns: col0 = [2, 1] target 0; col1 = [0, 1] target 1
    cols = (-math.log(math.e**2 / (math.e**2 + math.e)) - math.log(math.e / (1 + math.e))) / 2
    assert float(contrastive_loss(logits)) == pytest.approx((rows + cols) / 2, abs=1e-6)
    with pytest.raises(ValueError, match="square"):
        contrastive_loss(torch.zeros(2, 3))


def test_activation_loss_by_hand():
    lexicon = torch.tensor([[math.log(2.0), 0.0, 5.0]])  # p = [0.5, 0, 1 - e^-5]
    targets = torch.tensor([[1.0, 0.0, 0.0]])
    mask = torch.tensor([True, True, False])  # third dimension is a special token: ignored
    # class-balanced: mean BCE over the positives (dim 0) + mean over the negatives (dim 1, p clamped to 1e-6)
    expected = -math.log(0.5) + -math.log(1 - 1e-6)
    assert float(activation_loss(lexicon, targets, mask)) == pytest.approx(expected, rel=1e-5)


def test_activation_loss_positives_are_not_swamped_by_the_clip_vocabulary():
    """5 positives among 49,408 dimensions, every lexicon weight at 0.1 (p = 0.095): the plain mean over V gave
    the positives ~1e-3 of the gradient mass (a suppression loss); class-balanced, they get ~90%."""
    v, positives = 49408, [10, 200, 3000, 40000, 49000]
    lexicon = torch.full((2, v), 0.1, requires_grad=True)
    targets = torch.zeros(2, v)
    targets[:, positives] = 1.0
    mask = torch.ones(v, dtype=torch.bool)
    mask[[0, 1, 2]] = False  # specials
    activation_loss(lexicon, targets, mask).backward()
    g = lexicon.grad
    pos_mass = g[:, positives].abs().sum()
    neg = torch.ones(v, dtype=torch.bool)
    neg[positives] = False
    neg_mass = g[:, neg].abs().sum()
    share = float(pos_mass / (pos_mass + neg_mass))
    # -dBCE/de on a positive = e^-0.1 / p = 9.51, on a negative = 1: 9.51 / (9.51 + 1) = 0.905
    assert share == pytest.approx(0.905, abs=0.005)
    assert (g[:, positives] < 0).all()  # gradient descent raises every positive
    # a gradient step of size 1 moves a positive by ~1.9 (of a mean-over-V loss: ~2e-4)
    assert float(-g[0, positives[0]]) == pytest.approx(9.51 / 5 / 2, rel=0.01)


def test_flops_loss_by_hand_and_zero_at_zero():
    lexicon = torch.tensor([[1.0, 0.0], [3.0, 2.0]])  # column means [2, 1] -> 4 + 1
    assert float(flops_loss(lexicon)) == pytest.approx(5.0)
    assert float(flops_loss(torch.zeros(3, 4))) == 0.0


def test_self_distillation_by_hand_and_stop_gradient():
    student = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    teacher = torch.tensor([[2.0, 0.0], [0.0, 0.0]], requires_grad=True)

    def kl(t_row, s_row):
        p, q = torch.softmax(t_row, 0), torch.softmax(s_row, 0)
        return float((p * (p.log() - q.log())).sum())

    rows = (kl(teacher[0], student[0]) + kl(teacher[1], student[1])) / 2
    cols = (kl(teacher[:, 0], student[:, 0]) + kl(teacher[:, 1], student[:, 1])) / 2
    loss = self_distillation_loss(student, teacher, tau=1.0)
    assert float(loss) == pytest.approx((rows + cols) / 2, abs=1e-6)
    loss.backward()
    assert teacher.grad is None and student.grad is not None
    same = torch.randn(3, 3)
    assert float(self_distillation_loss(same, same)) == pytest.approx(0.0, abs=1e-6)
