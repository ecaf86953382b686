"""Text-guided masking picks the most relevant patches; random masking is uniform; bad ratios name the field."""

import math

import pytest
import torch

from paperlab.config import ConfigError
from semmim.masking import masked_count, patch_relevance, random_mask, text_guided_mask


def test_text_guided_mask_takes_exactly_the_most_relevant_patches():
    relevance = torch.tensor([[0.05, 0.40, 0.10, 0.30, 0.00, 0.15], [0.9, 0.0, 0.01, 0.02, 0.03, 0.04]])
    mask = text_guided_mask(relevance, 0.5)
    assert mask.sum(1).tolist() == [3, 3]
    assert mask[0].nonzero().flatten().tolist() == [1, 3, 5]
    assert mask[1].nonzero().flatten().tolist() == [0, 4, 5]
    assert text_guided_mask(relevance, 0.2).sum(1).tolist() == [2, 2]  # ceil(0.2 * 6) = 2


def test_relevance_averages_heads_and_valid_words_and_drops_the_image_cls():
    attn = torch.zeros(1, 2, 3, 5)  # (B, heads, L=3 words, 1 + N=4 patches)
    attn[0, 0, 0] = torch.tensor([0.2, 0.8, 0.0, 0.0, 0.0])
    attn[0, 1, 0] = torch.tensor([0.2, 0.0, 0.8, 0.0, 0.0])
    attn[0, :, 1] = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0])
    attn[0, :, 2] = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0])  # a padding position: must not count
    valid = torch.tensor([[True, True, False]])
    rel = patch_relevance(attn, valid)
    assert torch.allclose(rel, torch.tensor([[0.2, 0.2, 0.5, 0.0]]))
    assert text_guided_mask(rel, 0.25).nonzero()[:, 1].tolist() == [2]


def test_sampled_guided_mask_prefers_relevant_patches():
    torch.manual_seed(0)
    relevance = torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]).expand(500, -1)
    mask = text_guided_mask(relevance, 0.25, mode="sample", temperature=0.2)
    assert (mask.sum(1) == 2).all()
    assert mask[:, 0].float().mean() > 0.95


def test_random_mask_is_uniform_chi_square():
    torch.manual_seed(0)
    draws, n, ratio = 4000, 16, 0.5
    mask = random_mask(draws, n, ratio)
    assert (mask.sum(1) == 8).all()
    counts = mask.sum(0).double()
    expected = draws * 8 / n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 37.7  # chi-square, 15 degrees of freedom, p = 0.001


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1, 1.5])
def test_mask_ratio_outside_unit_interval_names_the_field(ratio):
    with pytest.raises(ConfigError, match=r"mim\.mask_ratio"):
        masked_count(16, ratio)
    with pytest.raises(ConfigError, match=r"mim\.mask_ratio"):
        random_mask(2, 16, ratio)


def test_masked_count_is_ceil_and_clipped():
    assert masked_count(16, 0.3) == math.ceil(4.8)
    assert masked_count(4, 0.01) == 1 and masked_count(4, 0.99) == 3
