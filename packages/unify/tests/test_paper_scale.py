"""Issue 29 (unify): CLIP4Clip meanP at init, QuickGELU for OpenAI weights, a bounded-memory lexicon head, the
paper dry run at reduced size."""

import pytest
import torch
from torch.nn import functional as F

from paperlab.config import compose
from paperlab.dryrun import dry_run
from unify.model import ModelConfig, UnifyModel, build_clip


def test_latent_video_feature_at_init_is_the_mean_of_per_frame_clip_features(tokenizer, splits):
    """CLIP4Clip meanP (modules/modeling.py, _loose_similarity): per-frame CLIP image features, L2-normalised,
    averaged, L2-normalised. With the temporal part at init the latent branch gives exactly that."""
    cfg = ModelConfig(layers=3, shared_layers=1)
    torch.manual_seed(0)
    clip = build_clip(cfg, tokenizer.vocab_size).eval()
    model = UnifyModel(clip, tokenizer.vocab_size, 1, tokenizer.special_ids, 16).eval()
    frames = splits[1].batch(torch.arange(4))[0]  # (4, 3, 3, 32, 32)
    with torch.no_grad():
        latent, _ = model.encode_video(frames)
        x = (frames.flatten(0, 1) - model.mean) / model.std
        per_frame = F.normalize(clip.encode_image(x), dim=-1).view(4, 3, -1)
    expected = F.normalize(per_frame.mean(1), dim=-1)
    assert (latent - expected).abs().max() < 1e-5
    # the frames differ, so the mean is not any single frame's feature: the test can tell pooling schemes apart
    assert (per_frame[:, 0] - expected).norm(dim=-1).min() > 1e-3


def test_openai_weights_get_quickgelu(monkeypatch):
    """open_clip's plain ViT-B-32 config is nn.GELU; OpenAI's weights were trained with QuickGELU."""
    import open_clip
    from open_clip.transformer import QuickGELU

    from paperlab import models

    def no_download(name, pretrained=None, **kwargs):  # the real call's model, built without weights
        return open_clip.create_model(name, pretrained=None, **kwargs), None, None

    monkeypatch.setattr(models, "load_open_clip", no_download)
    clip = build_clip(
        ModelConfig(backbone="ViT-B-32", pretrained="openai", layers=12, shared_layers=10), 49408
    )
    acts = [type(m) for m in clip.modules() if isinstance(m, (QuickGELU, torch.nn.GELU))]
    assert len(acts) == 24 and set(acts) == {QuickGELU}  # 12 vision + 12 text MLPs


def _old_video_lexicon(model, frames):
    """Today's direct computation: log(1 + ReLU(head)) of every token of every frame, then the max."""
    b, f = frames.shape[:2]
    x = model.visual._embeds((frames.flatten(0, 1) - model.mean) / model.std)
    for block in model.v_stem:
        x = block(x)
    t = x.shape[1]
    lex = (x.view(b, f, t, -1) + model.temporal_embedding[:f, None, :]).view(b, f * t, -1)
    for block in model.v_lexicon_top:
        lex = block(lex)
    weights = torch.log1p(F.relu(model.v_lexicon_head(lex))) * model.concept_mask
    return weights.amax(1)


def test_chunked_lexicon_head_equals_the_full_computation_values_and_gradients(make_model, splits):
    model = make_model(max_frames=4)
    model.lexicon_chunk = 7  # chunks cut across frames (17 tokens per frame, 3 frames)
    frames = splits[1].batch(torch.arange(3))[0]
    _, new = model.encode_video(frames)
    old = _old_video_lexicon(model, frames)
    assert torch.allclose(new, old, atol=1e-6) and float(old.max()) > 0
    g_new = torch.autograd.grad(new.square().sum(), model.v_lexicon_head[1].weight)[0]
    g_old = torch.autograd.grad(old.square().sum(), model.v_lexicon_head[1].weight)[0]
    assert torch.allclose(g_new, g_old, atol=1e-5) and float(g_old.abs().sum()) > 0


def _tiny_clip_vocab_spec(frames: int):
    from unify.scale import dry_run_specs

    raw = compose(
        "unify",
        [
            "experiment=tiny",
            "tokenizer=clip",
            "model.context_length=8",
            "model.width=32",
            "model.heads=2",
            "model.layers=2",
            "model.image_size=16",
            "model.patch_size=8",
            "model.temporal_layers=1",
            "model.lexicon_chunk=5",
            f"data.synthetic.num_frames={frames}",
            "data.synthetic.image_size=16",
            "data.synthetic.object_size=2",
            "data.synthetic.step_px=1",
            "train.batch_size=4",
            "eval_batch_size=4",
        ],
    )
    return dry_run_specs(raw)[0]


@pytest.mark.slow
def test_lexicon_memory_does_not_grow_with_frames_x_tokens_x_vocab():
    """49,408-way heads, 4 videos, 5 tokens per frame: the direct computation holds (4, frames x 5, 49,408) fp32
    tensors 3-4 times, +23.6 MiB per extra frame for each; chunked, the peak grows by the small model's own
    activations only (measured on fake tensors with PyTorch's MemTracker, paperlab.dryrun)."""
    few, many = (dry_run(_tiny_clip_vocab_spec(f)) for f in (2, 10))
    one_tensor_per_frame = 4 * 5 * 49408 * 4 / 2**30  # GiB of a (4, 5, V) fp32 slice
    growth = many.train_gib["activations"] - few.train_gib["activations"]
    assert growth < 0.5 * 8 * one_tensor_per_frame, (few.train_gib, many.train_gib)
    eval_growth = many.eval_gib["activations"] - few.eval_gib["activations"]
    assert eval_growth < 0.5 * 8 * one_tensor_per_frame, (few.eval_gib, many.eval_gib)


@pytest.mark.slow
def test_paper_dry_run_path_at_reduced_size():
    """make unify-paper-dry's path (the real ViT-B/32 shape with QuickGELU, CLIP vocabulary, DDP over 4 GPUs,
    bf16-mixed) at 1 video x 2 frames per GPU."""
    from unify.scale import dry_run_specs

    raw = compose(
        "unify", ["experiment=msrvtt_paper", "data.num_frames=2", "train.batch_size=4", "eval_batch_size=1"]
    )
    (spec,) = dry_run_specs(raw)
    assert spec.batch_size == 1 and spec.scale.num_gpus == 4 and spec.scale.precision == "bf16-mixed"
    report = dry_run(spec)
    assert 0.24e9 < report.n_params < 0.26e9 and report.trainable_params == report.n_params
    t = report.train_gib
    assert t["parameters"] == pytest.approx(report.n_params * 4 / 2**30, rel=0.02)  # fp32 master weights
    assert 2 * t["parameters"] * 0.99 < t["optimizer"] < 2.5 * t["parameters"]  # AdamW moments
    assert 0 < t["activations"] < 3 and report.fits
