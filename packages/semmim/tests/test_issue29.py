"""Issue 29 (semmim at paper scale): temperature-scaled ITM mining, DDP-correct queues and centres (two
processes), pixel normalisation of a named tower, DINO views at paper scale, ALBEF's 6 + 6 BERT shape, a streaming
caption file, bf16 autocast without per-step host syncs, and the paper dry run's code path at reduced size."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from paperlab.config import compose, from_config
from semmim import losses

TESTS = Path(__file__).parent
SMALL = [
    "model.vision_width=32",
    "model.vision_depth=1",
    "model.vision_heads=2",
    "model.text_width=32",
    "model.text_depth=1",
    "model.text_heads=2",
    "model.fusion_depth=1",
    "model.fusion_heads=2",
    "model.embed_dim=16",
    "model.prototypes=8",
    "model.head_hidden=32",
    "model.head_bottleneck=16",
]


def test_itm_negatives_are_drawn_from_itc_similarities_over_the_temperature(make_model, batch, monkeypatch):
    model = make_model("base")
    seen = []
    real = losses.hard_negative_index
    monkeypatch.setattr(losses, "hard_negative_index", lambda sim, same: seen.append(sim) or real(sim, same))
    images, ids, attention = batch
    model(images, ids, attention)
    with torch.no_grad():
        _, _, ie, te = model.encode(images, ids, attention)
    temp = model.log_temp.exp().clamp(0.001, 0.5)
    assert float(temp.detach()) == pytest.approx(0.07)  # ALBEF's initial temperature
    assert torch.allclose(seen[0], ie @ te.T / temp, atol=1e-5)  # per image: captions
    assert torch.allclose(seen[1], te @ ie.T / temp, atol=1e-5)  # per caption: images
    # what the temperature does: one negative 0.3 above seven others is drawn ~99 % of the time, not ~1/5
    sim = torch.zeros(1, 8)
    sim[0, 1] = 0.3
    same = torch.zeros(1, 8, dtype=torch.bool)
    same[0, 0] = True
    torch.manual_seed(0)
    draws = torch.stack([real(sim / 0.07, same) for _ in range(400)])
    assert (draws == 1).float().mean() > 0.9


@pytest.mark.slow
def test_two_processes_hold_identical_queues_and_centres_with_both_ranks_samples(tmp_path):
    from paperlab.testing import run_two_processes

    results = tmp_path / "results"
    overrides = [
        "experiment=tiny",
        "name=ddp",
        "methods=[semmim]",
        "seeds=[0]",
        "train.steps=1",
        "train.warmup=0",
    ]
    overrides += ["train.batch=4", "train.log_every=1", "loss.itc_queue=16", "data.train_images=64"]
    overrides += [
        "data.test_images=8",
        "rerank_k=2",
        "progress=false",
        "scale.launch=ddp",
        "scale.num_gpus=2",
    ]
    run = run_two_processes(
        [str(TESTS / "ddp_probe.py"), str(tmp_path), *overrides, *SMALL],
        cwd=tmp_path,
        env={"PAPERLAB_RESULTS": str(results), "PAPERLAB_CACHE": str(tmp_path / "cache")},
        timeout_s=300,
    )
    assert run.written_more_than_once() == [] and run.written_by_other_ranks() == []
    assert (results / "semmim" / "ddp" / "metrics.json").is_file()
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    for key in ("image_queue", "text_queue", "queue_ptr", "center", "patch_center"):
        assert torch.equal(r0[key], r1[key]), key
    assert int(r0["queue_ptr"]) == 8  # 4 samples from each rank
    for name, queue in (("image", "image_queue"), ("text", "text_queue")):
        local0, local1 = r0["seen"][name][0], r1["seen"][name][0]
        assert not torch.allclose(local0, local1)  # the ranks drew different batches
        assert torch.allclose(r0[queue][:4], local0) and torch.allclose(r0[queue][4:8], local1)
    m = 0.9  # mim.center_momentum: one update from 0 with the mean of both ranks' teacher logits
    for key in ("center", "patch_center"):
        both = (r0["seen"][key][0] + r1["seen"][key][0]) / 2
        assert torch.allclose(r0[key], (1 - m) * both, atol=1e-6), key


def test_a_named_vit_gets_its_own_mean_std_normalisation():
    from semmim.model import ModelConfig, build_vision, encode_image

    vit = build_vision(ModelConfig(vision="vit_tiny_patch16_224", image_size=32, patch_size=16))
    mean, std = vit.pretrained_cfg["mean"], vit.pretrained_cfg["std"]
    seen = []
    vit.patch_embed.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    images = torch.rand(2, 3, 32, 32)
    encode_image(vit, images)
    expected = (images - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    assert torch.allclose(seen[0], expected, atol=1e-6)
    assert not torch.allclose(seen[0], images)  # not pixels / 255 alone


def test_the_paper_config_uses_dino_views_and_albefs_shape():
    from semmim.experiment import ExperimentConfig
    from semmim.views import dino_view

    cfg = from_config(ExperimentConfig, compose("semmim", ["experiment=paper"]))
    assert cfg.loss.mim.view == "dino" and cfg.scale.precision == "bf16-mixed"
    assert (cfg.model.text_depth, cfg.model.fusion_depth, cfg.model.fusion_init) == (6, 6, "text")
    tiny = from_config(ExperimentConfig, compose("semmim", []))
    assert tiny.loss.mim.view == "shift"  # the CPU claim keeps its views
    images = torch.zeros(64, 3, 64, 64)
    images[:, :, :, :32] = 1.0  # left half white
    torch.manual_seed(0)
    views = dino_view(images, jitter_p=0.0, gray_p=0.0, blur_p=0.0, solarize_p=0.0)
    left, right = views[..., :32].mean((1, 2, 3)), views[..., 32:].mean((1, 2, 3))
    flipped = (left < right).float().mean()
    assert 0.3 < flipped < 0.7  # horizontal flip, p 0.5
    white = views.mean((1, 2, 3))
    assert white.std() > 0.05  # each image its own random resized crop


def test_fusion_layers_start_from_berts_top_layers(tokenizer):
    from transformers import BertModel

    from semmim.model import ModelConfig, build_fusion, build_text, local_bert_config

    cfg = ModelConfig(
        text="bert", text_width=32, text_heads=2, text_depth=2, fusion_depth=2, fusion_init="text"
    )
    torch.manual_seed(0)
    text = build_text(cfg, 40)
    torch.manual_seed(0)
    full = BertModel(local_bert_config(cfg, 40, 4), add_pooling_layer=False)
    fusion = build_fusion(cfg, text)
    assert len(text.model.encoder.layer) == 2 and len(fusion.layers) == 2
    for i, layer in enumerate(fusion.layers):
        source = full.encoder.layer[2 + i]
        q = source.attention.self.query.weight
        for stream in (layer.text, layer.image):
            assert torch.equal(stream.self_attn.in_proj_weight[:32], q)
            assert torch.equal(stream.mlp[0].weight, source.intermediate.dense.weight)
    ids = torch.randint(5, 40, (2, 6))
    mask = torch.ones(2, 6, dtype=torch.bool)
    text.eval(), full.eval()  # no dropout
    with torch.no_grad():
        hidden = full(input_ids=ids, attention_mask=mask.long(), output_hidden_states=True).hidden_states[2]
        assert torch.allclose(text(ids, mask), hidden, atol=1e-5)  # the text encoder = BERT's first 2 layers


def _png(i: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (i % 256, 40, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.slow
def test_a_caption_file_of_10000_images_streams_in_bounded_memory(tmp_path):
    import psutil

    from semmim.data import caption_loader, read_caption_file

    rows = []
    for i in range(10_000):
        (tmp_path / f"{i}.png").write_bytes(_png(i))
        rows.append({"image": f"{i}.png", "caption": f"image {i}"})
    (tmp_path / "list.json").write_text(json.dumps(rows))
    del rows
    process = psutil.Process()
    before = process.memory_info().rss
    data = read_caption_file(tmp_path / "list.json", 64)  # decoded in memory: 10,000 x 12 KiB = 117 MiB
    seen, peak = 0, 0
    for images, captions in caption_loader(data, batch_size=250, workers=2):
        seen, shape = seen + len(captions), images.shape
        peak = max(peak, process.memory_info().rss - before)
    assert seen == 10_000 and shape == (250, 3, 64, 64)
    assert peak < 40 * 2**20, f"resident memory grew by {peak / 2**20:.1f} MiB"  # bound: 40 MiB


@pytest.mark.slow
def test_fine_tuning_files_of_10000_images_are_read_lazily_and_stream_in_bounded_memory(
    tmp_path, monkeypatch
):
    import psutil

    from semmim import data as scene_data
    from semmim import finetune_data
    from semmim.finetune_data import item_batches, read_caption_images, read_vqa_file

    captions, questions = [], []
    for i in range(10_000):
        (tmp_path / f"{i}.png").write_bytes(_png(i))
        captions += [{"image": f"{i}.png", "caption": f"image {i}"}, {"image": f"{i}.png", "caption": f"{i}"}]
        questions.append({"image": f"{i}.png", "question": "what colour?", "answers": [str(i % 256)]})
    (tmp_path / "captions.json").write_text(json.dumps(captions))
    (tmp_path / "vqa.json").write_text(json.dumps(questions))
    del captions, questions
    decoded = []
    real = scene_data.load_image
    monkeypatch.setattr(finetune_data, "load_image", lambda *a: decoded.append(a[0]) or real(*a))
    process = psutil.Process()
    before = process.memory_info().rss
    vqa = read_vqa_file(tmp_path / "vqa.json", 64)  # decoded in memory: 10,000 x 12 KiB = 117 MiB
    pairs = read_caption_images(tmp_path / "captions.json", 64)
    assert decoded == [] and len(vqa.images) == len(pairs.images) == 10_000 and len(pairs) == 20_000
    assert vqa.images[7][0, 0, 0].item() == 7 and pairs.images[pairs.image_of[5]][0, 0, 0].item() == 2
    seen, peak = 0, 0
    for images, index in item_batches(vqa, batch_size=250, steps=40, workers=2):  # decoded in the workers
        red = (images[:, 0, 0, 0] * 255).round()
        assert torch.equal(red, (index % 256).float())  # each item its own image
        seen += len(index)
        peak = max(peak, process.memory_info().rss - before)
    assert seen == 10_000 and images.shape == (250, 3, 64, 64)
    assert peak < 40 * 2**20, f"resident memory grew by {peak / 2**20:.1f} MiB"  # bound: 40 MiB


def test_bf16_autocast_and_losses_reach_the_host_once_per_log_interval(
    make_model, corpus, tokenizer, monkeypatch
):
    from semmim.train import TrainConfig, pretrain

    calls = []
    for name in ("__float__", "item", "tolist"):
        real = getattr(torch.Tensor, name)

        def counted(self, *a, _real=real, _name=name, **k):
            import inspect

            if inspect.currentframe().f_back.f_code.co_filename.endswith("train.py"):
                calls.append(_name)
            return _real(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    model = make_model("semmim")
    dtypes = []
    model.itm_head.register_forward_hook(
        lambda m, a, out: dtypes.append(out.dtype)
    )  # a Linear under autocast
    cfg = TrainConfig(steps=4, batch=8, warmup=1, log_every=2)
    history = pretrain(model, corpus[0], tokenizer, cfg, progress=False, precision="bf16-mixed")
    assert len(history) == 2 and all(torch.isfinite(torch.tensor(h["loss"])) for h in history)
    assert calls == ["tolist", "tolist"]  # one transfer per log interval, none per step
    assert dtypes and all(d == torch.bfloat16 for d in dtypes)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fp32 master weights


def test_the_paper_dry_run_path_at_reduced_size_fits_and_covers_finetuning():
    from paperlab.dryrun import dry_run
    from semmim import scale

    small = [*SMALL, "model.vision=tiny", "model.image_size=32", "model.patch_size=8", "model.text=bert"]
    small += ["model.max_text_len=8", "loss.itc_queue=64", "train.batch=4", "rerank_k=4"]
    cfg = compose("semmim", ["experiment=paper", *small, "name=paper_small"])
    specs = scale.dry_run_specs(cfg)
    assert len(specs) == 1  # the reduced config: pretraining only
    report = dry_run(specs[0])
    assert report.fits and report.train_gib["activations"] > 0 and report.eval_gib["total"] > 0
    assert report.precision == "bf16-mixed" and report.num_gpus == 8
    assert set(scale.FINETUNE_TASKS) == {"coco_retrieval", "flickr_retrieval", "vqa", "coco_caption"}
    crops = ["loss.mim.local_crops=4", "loss.mim.local_crop_size=16"]  # multi-crop enters the dry-run step
    spec = scale.dry_run_specs(compose("semmim", ["experiment=paper", *small, *crops]))[0]
    assert [v.shape for v in spec.batch(None, 4)["local_views"]] == [(4, 3, 16, 16)] * 4
    assert dry_run(spec).fits


# ----------------------------------------------------------------------------------------------- multi-crop
def test_local_crops_are_encoded_at_their_size_as_timms_dynamic_vit():
    import timm

    from semmim.model import encode_crops, encode_image

    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=64).eval()
    dynamic = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=64, dynamic_img_size=True
    ).eval()
    dynamic.load_state_dict(vit.state_dict())
    full, crops = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(encode_crops(vit, full), encode_image(vit, full))
        local = encode_crops(vit, crops)
        assert local.shape == (2, 1 + 4, 192)  # a 2 x 2 patch grid and the class token
        assert torch.allclose(local, dynamic.forward_features(crops), atol=1e-5)  # timm's own resampling
    with pytest.raises(ValueError, match=r"not a multiple of the patch size"):
        encode_crops(vit, torch.rand(1, 3, 40, 40))


def test_the_agreement_over_local_crops_is_dinos_mean_over_view_pairs():
    torch.manual_seed(0)
    t1, t2, s1, s2, l1 = (torch.randn(4, 8) for _ in range(5))
    center = torch.zeros(8)
    two = losses.agreement_loss((s1, s2), (t1, t2), center, 0.1, 0.04)
    three = losses.agreement_loss((s1, s2, l1), (t1, t2), center, 0.1, 0.04)
    p1, p2 = (losses.teacher_distribution(t, center, 0.04) for t in (t1, t2))

    def ce(p, s):
        return losses.cross_entropy_between(p, s, 0.1).mean()

    local_terms = ce(p1, l1) + ce(p2, l1)
    assert torch.allclose(three, (2 * two + local_terms) / 4)  # 4 pairs: (1,2) (2,1) (1,l) (2,l)
    assert not torch.allclose(three, two)


def test_a_pretraining_step_with_multi_crop_feeds_local_crops_to_the_student_only(make_model, batch):
    from semmim.views import local_views
    from semmim.vlp import LossConfig, MIMConfig

    loss = LossConfig(mim=MIMConfig(local_crops=2, local_crop_size=16, local_crop_scale=[0.05, 0.4]))
    model = make_model("semmim", loss)
    images, ids, attention = batch
    sizes = {"student": [], "teacher": []}
    model.vision.patch_embed.proj.register_forward_hook(
        lambda m, a, o: sizes["student"].append(a[0].shape[-1])
    )
    model.momentum["vision"].patch_embed.proj.register_forward_hook(
        lambda m, a, o: sizes["teacher"].append(a[0].shape[-1])
    )
    torch.manual_seed(1)
    crops = local_views(images, 2, 16, (0.05, 0.4))
    assert [c.shape for c in crops] == [(8, 3, 16, 16)] * 2
    out = model(images, ids, attention, images.flip(-1), crops)
    assert sorted(sizes["student"]).count(16) == 2 and 16 not in sizes["teacher"]
    out["agr"].backward()
    assert model.vision.patch_embed.proj.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"mim.local_crops is 2 but 0 local views"):
        model(images, ids, attention, images.flip(-1))
    same = make_model("semmim", loss)
    torch.manual_seed(2)
    with_crops = same(images, ids, attention, images.flip(-1), crops)["agr"]
    plain = make_model("semmim")
    torch.manual_seed(2)
    assert not torch.allclose(with_crops, plain(images, ids, attention, images.flip(-1))["agr"])


def test_pretraining_with_multi_crop_trains_through_the_cli_path(make_model, corpus, tokenizer):
    from semmim.train import TrainConfig, pretrain
    from semmim.vlp import LossConfig, MIMConfig

    model = make_model("semmim", LossConfig(mim=MIMConfig(local_crops=2, local_crop_size=16)))
    calls = []
    model.vision.patch_embed.proj.register_forward_hook(lambda m, a, o: calls.append(a[0].shape[-1]))
    torch.manual_seed(0)
    history = pretrain(model, corpus[0], tokenizer, TrainConfig(steps=2, batch=4, warmup=1, log_every=1))
    assert len(history) == 2 and all(h["agr"] > 0 for h in history)
    assert calls.count(16) == 4  # 2 local crops x 2 steps
