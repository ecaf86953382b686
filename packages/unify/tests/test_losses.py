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
    expected = (-math.log(0.5) + -math.log(1 - 1e-6)) / 2
    assert float(activation_loss(lexicon, targets, mask)) == pytest.approx(expected, rel=1e-5)


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
