"""The synthetic corpus: held-out combinations only in test; captions name every object; tokenizer limits."""

import pytest
import torch

from semmim.data import SceneConfig, augment, caption_of, heldout_pairs, make_split, vocabulary
from semmim.evaluate import attribute_variants, colour_variants, rerank


def test_split_holds_out_colour_shape_combinations(corpus):
    train, test = corpus
    held = set(heldout_pairs(SceneConfig(train_images=256, test_images=48)))
    assert len(held) == 6
    assert not any((o.colour, o.shape) in held for scene in train.scenes for o in scene)
    assert all(any((o.colour, o.shape) in held for o in scene) for scene in test.scenes)
    assert train.images.shape == (256, 3, 32, 32) and train.images.dtype == torch.uint8
    assert all(c == caption_of(s) for c, s in zip(test.captions, test.scenes, strict=True))
    words = set(vocabulary())
    assert all(set(c.split()) <= words for c in train.captions + test.captions)


def test_objects_are_drawn_in_their_quadrant(corpus):
    train = corpus[0]
    for i in range(20):
        img = train.images[i].int()
        for obj in train.scenes[i]:
            top, left = (obj.quadrant // 2) * 16, (obj.quadrant % 2) * 16
            assert (img[:, top : top + 16, left : left + 16] > 16).any()


def test_split_is_deterministic_and_augment_keeps_shape():
    cfg = SceneConfig(train_images=10, test_images=5)
    assert make_split(cfg, "test").captions == make_split(cfg, "test").captions
    x = make_split(cfg, "train").batch(torch.arange(4))[0]
    y = augment(x)
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1


def test_colour_variants_change_only_the_named_object(corpus):
    scene = corpus[1].scenes[0]
    variants = colour_variants(scene, 1)
    assert len(variants) == 6 and corpus[1].captions[0] in variants
    assert all(v.split(" and ")[0] == corpus[1].captions[0].split(" and ")[0] for v in variants)


def test_shape_variants_change_only_the_named_object_s_shape(corpus):
    scene = corpus[1].scenes[0]
    variants = attribute_variants(scene, 0, "shape")
    assert len(variants) == 4 and corpus[1].captions[0] in variants
    first = [v.split(" and ")[0].split() for v in variants]
    assert sorted(words[3] for words in first) == sorted(["circle", "square", "triangle", "cross"])
    assert all(
        w[:3] == first[0][:3] and w[4:] == first[0][4:] for w in first
    )  # size, colour, place unchanged
    assert all(v.split(" and ")[1] == corpus[1].captions[0].split(" and ")[1] for v in variants)


def test_itm_rerank_keeps_honest_ranks_past_k():
    sim = torch.tensor([[0.9, 0.8, 0.7, 0.1, 0.5]])  # the target (column 0) and the ITC order of the others
    top = torch.tensor([[0, 1]])
    new = rerank(sim, top, torch.tensor([[0.2, 0.6]]))  # ITM prefers column 1
    assert new.argsort(descending=True)[0].tolist() == [1, 0, 2, 4, 3]
    outside = rerank(torch.tensor([[0.1, 0.9, 0.8, 0.7]]), torch.tensor([[1, 2]]), torch.tensor([[0.5, 0.4]]))
    assert (
        int((outside[0] > outside[0, 0]).sum()) == 3
    )  # not in the top k: ranked after every better ITC item


def test_splits_are_the_same_in_every_process():
    """The corpus depends on the seed only: not on Python's per-process string hashing (set order)."""
    import subprocess
    import sys

    code = (
        "import hashlib; from semmim.data import SceneConfig, make_split\n"
        "s = make_split(SceneConfig(train_images=20, test_images=40), 'test')\n"
        "print(hashlib.sha256(('|'.join(s.captions)).encode() + s.images.numpy().tobytes()).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**__import__("os").environ, "PYTHONHASHSEED": str(h)},
        ).stdout.strip()
        for h in (1, 2, 3)
    }
    assert len(digests) == 1


def test_second_view_colour_changes_are_channel_permutations_or_grey(corpus):
    images = corpus[0].batch(torch.arange(16))[0]
    same = augment(images, max_shift=0, brightness=0.0)
    assert torch.equal(same, images)  # no colour change unless asked
    hue = augment(images, max_shift=0, brightness=0.0, hue_p=1.0)
    assert torch.equal(hue.sort(dim=1).values, images.sort(dim=1).values)  # each pixel: the same 3 values
    assert not torch.equal(hue, images)  # some image got a non-identity permutation
    grey = augment(images, max_shift=0, brightness=0.0, gray_p=1.0)
    assert torch.allclose(grey, images.mean(1, keepdim=True).expand_as(images))


@pytest.mark.parametrize("field", ["view_hue_p", "view_gray_p"])
def test_view_colour_probabilities_outside_0_1_name_the_field(field):
    from paperlab.config import ConfigError
    from semmim.vlp import MIMConfig

    with pytest.raises(ConfigError, match=rf"mim\.{field}"):
        MIMConfig(**{field: 1.5})


def test_confident_itm_scores_do_not_saturate_into_ties():
    """Issue 31's tie rule meets ITM: match probabilities of 1 - 1e-9 and 1 - 1e-12 are both 1.0 in fp32, so the
    re-ranked target tied with a distractor; the log-odds keep them apart (and negative log-odds below 0 work)."""
    from semmim.evaluate import itm_scores

    class Stub:
        def itm_logits(self, txt, img, attention):
            return torch.tensor([[0.0, 21.0], [0.0, 28.0], [3.0, 0.0]])

    score = itm_scores(Stub(), torch.zeros(3, 1), torch.zeros(3, 1), torch.zeros(3, 1))
    assert (
        torch.softmax(torch.tensor([[0.0, 21.0], [0.0, 28.0]]), -1)[:, 1].unique().numel() == 1
    )  # saturated
    assert score.tolist() == [21.0, 28.0, -3.0]
    new = rerank(torch.tensor([[0.9, 0.8, 0.1]]), torch.tensor([[0, 1, 2]]), score[None])
    assert new.argsort(descending=True)[0].tolist() == [1, 0, 2] and bool((new > 1).all())
