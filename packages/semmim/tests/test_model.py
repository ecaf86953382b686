"""The momentum model gets no gradient and follows the EMA formula; targets are distributions from the shared
head; text changes the mask and (only with text injection) the targets; bad input names the field."""

import copy

import pytest
import torch

from paperlab.config import ConfigError
from semmim.data import augment
from semmim.model import ModelConfig, encode_image
from semmim.vlp import MOMENTUM_PARTS, LossConfig, MIMConfig


def test_forward_gives_every_loss_and_momentum_gets_no_gradient(make_model, batch):
    model = make_model("semmim")
    images, ids, attention = batch
    out = model(images, ids, attention, augment(images))
    assert set(out) == {"itc", "itm", "mlm", "mim", "agr", "loss"}
    assert all(torch.isfinite(v) for v in out.values())
    out["loss"].backward()
    assert all(not p.requires_grad and p.grad is None for p in model.momentum.parameters())
    assert model.vision.patch_embed.proj.weight.grad is not None
    assert all(p not in set(model.trainable_parameters()) for p in model.momentum.parameters())


def test_ema_update_matches_the_formula(make_model):
    model = make_model("semmim")
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p))
    before = {n: copy.deepcopy(getattr(model, n)).state_dict() for n in MOMENTUM_PARTS}
    momentum_before = copy.deepcopy(model.momentum.state_dict())
    model.ema_update()
    m = model.cfg.momentum
    for name in MOMENTUM_PARTS:
        for key, _ in getattr(model, name).named_parameters():
            expected = m * momentum_before[f"{name}.{key}"] + (1 - m) * before[name][key]
            assert torch.allclose(model.momentum[name].state_dict()[key], expected, atol=1e-7)


def test_global_and_patch_codes_share_one_head(make_model, batch):
    """The agreement loss and the MIM loss both reach the same prototypes (the shared encoding space)."""
    images, ids, attention = batch
    for switch in ("agr", "mim"):
        model = make_model("semmim")
        out = model(images, ids, attention, augment(images))
        out[switch].backward()
        assert model.head.prototypes.grad is not None and model.head.prototypes.grad.abs().sum() > 0


def test_targets_are_distributions_and_depend_on_text_only_with_injection(make_model, batch, tokenizer):
    images, ids, attention = batch
    other_ids, other_att = tokenizer(["a large yellow cross top left"] * images.shape[0])
    for inject in (True, False):
        loss = LossConfig(mim=MIMConfig(text_in_target=inject))
        model = make_model("semmim", loss=loss) if inject else make_model("semmim_no_text_target", loss=loss)
        with torch.no_grad():
            img_m, txt_m, _, _ = model.encode(images, ids, attention, momentum=True)
            _, txt_o, _, _ = model.encode(images, other_ids, other_att, momentum=True)
            mask, targets = model.mim_mask_and_targets(images, img_m, txt_m, attention)
            model.patch_center.zero_()
            _, targets_again = model.mim_mask_and_targets(images, img_m, txt_m, attention)
            model.patch_center.zero_()
            mask_o, targets_o = model.mim_mask_and_targets(images, img_m, txt_o, other_att)
        assert targets.shape == (images.shape[0], model.cfg.num_patches, model.cfg.prototypes)
        assert torch.allclose(targets.sum(-1), torch.ones(targets.shape[:2]), atol=1e-5)
        assert (mask.sum(1) == 8).all() and not torch.equal(mask, mask_o)  # the text chooses the mask
        assert torch.allclose(targets_again, targets_o, atol=1e-6) != inject


def test_patch_teacher_temperature_sharpens_only_the_mim_targets(make_model, batch):
    """``mim.tau_teacher_patch`` (iBOT's separate patch teacher temperature) changes the MIM targets only; None
    falls back to ``tau_teacher``; the global agreement loss keeps ``tau_teacher``."""
    import dataclasses

    images, ids, attention = batch
    model = make_model("semmim")
    view2 = augment(images)

    def run(tau_patch):
        model.loss_cfg = dataclasses.replace(
            model.loss_cfg, mim=dataclasses.replace(model.loss_cfg.mim, tau_teacher_patch=tau_patch)
        )
        model.patch_center.zero_()
        model.center.zero_()
        with torch.no_grad():
            img, _, _, _ = model.encode(images, ids, attention)
            img_m, txt_m, _, _ = model.encode(images, ids, attention, momentum=True)
            _, targets = model.mim_mask_and_targets(images, img_m, txt_m, attention)
            agr = model.global_agreement(img, img_m, view2)
        return targets, agr

    default, agr_default = run(None)
    same, _ = run(model.loss_cfg.mim.tau_teacher)
    sharp, agr_sharp = run(model.loss_cfg.mim.tau_teacher / 2)
    entropy = lambda p: float(-(p * p.clamp_min(1e-12).log()).sum(-1).mean())  # noqa: E731
    assert torch.allclose(default, same) and entropy(sharp) < entropy(default)
    assert torch.allclose(sharp.sum(-1), torch.ones(sharp.shape[:2]), atol=1e-5)
    assert torch.allclose(agr_default, agr_sharp)


def test_masked_patches_see_the_mask_token(make_model, batch):
    model = make_model("semmim")
    images = batch[0]
    mask = torch.zeros(images.shape[0], model.cfg.num_patches, dtype=torch.bool)
    mask[:, 3] = True
    a = encode_image(model.vision, images, mask, model.mask_token)
    b = encode_image(model.vision, images.flip(0), mask, model.mask_token)  # other images, same mask
    assert a.shape == (images.shape[0], 1 + model.cfg.num_patches, model.cfg.vision_width)
    assert not torch.allclose(a, b)


def test_bad_input_is_reported_with_the_field(make_model, batch, tokenizer):
    with pytest.raises(ConfigError, match=r"model\.image_size"):
        ModelConfig(image_size=30, patch_size=8)
    with pytest.raises(ConfigError, match=r"mim\.mask_ratio"):
        MIMConfig(mask_ratio=1.0)
    with pytest.raises(ConfigError, match=r"mim\.target"):
        MIMConfig(target="tokens")
    with pytest.raises(ValueError, match=r"model\.max_text_len=24"):
        tokenizer([" ".join(["red"] * 23)])
    model = make_model("base")
    with pytest.raises(ValueError, match="image_size"):
        model(torch.zeros(2, 3, 16, 16), *tokenizer(["a red circle", "a blue square"]))


@pytest.mark.parametrize("depth", [1, 2])
def test_text_fused_image_stream_reaches_the_itm_head_only_from_depth_2(make_model, batch, depth):
    """A co-attention layer's text stream reads the image stream *before* that layer's image cross-attention, so
    the weights the cross-modal MIM trains there (image attends to text) reach the ITM head only through a later
    layer: at depth 1 they get no ITM gradient, at depth 2 the first layer's do (why the tiny config uses 2)."""
    model = make_model("base", fusion_depth=depth)
    images, ids, attention = batch
    img, txt, _, _ = model.encode(images, ids, attention)
    model.itm_logits(txt, img, attention).logsumexp(-1).sum().backward()
    grad = model.fusion.layers[0].image_cross.in_proj_weight.grad
    reached = grad is not None and grad.abs().sum() > 0
    assert reached == (depth == 2)
