"""Details made identical to the official code (issue 29): anchors and ``anchor_rank`` (mPLUG-DocOwl
``PaperOwl/configs/sft/release.yaml``, ``pipeline/data_utils/processors/doc_processor.py``), and the global batch of
micro-batches with gradient accumulation (``scripts/train_it.sh``: micro-batch 4, global 256, checkpointing, bf16)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from paperlab.config import ConfigError, compose, from_config
from paperowl.cropping import PAPER_ANCHORS, anchor_scores, crop_views, select_anchor
from paperowl.data import Sample, collate
from paperowl.experiments import ExperimentConfig
from paperowl.model import ModelConfig, PaperOwlModel, build_tokenizer
from paperowl.synthetic import caption_vocabulary, make_diagrams
from paperowl.train import TrainConfig, accumulate, answer_tokens, encode_one, train

PROMPT = "<image>\nWrite the caption of this figure."


def test_anchor_rank_puts_shape_iou_first_hand_computed() -> None:
    # 1000 x 300 image, anchors 1x3 and 1x4 at 224 px. 1x3: anchor box 672 x 224, the image's shape at that width
    # 672 x floor(0.3 * 672) = 672 x 201 -> shape IoU 201/224 = 0.89732; image IoU (672*224) / (1000*300) = 0.50176.
    # 1x4: 896 x 224 vs 896 x floor(268.8) = 268 -> shape IoU 224/268 = 0.83582; IoU (896*224)/(1000*300) = 0.66901.
    scores = anchor_scores(1000, 300, [(1, 3), (1, 4)], 224)
    assert scores.tolist() == pytest.approx([89.732 + 0.50176, 83.582 + 0.66901], abs=2e-3)
    # shape first: 1x3, although UReader's sum S_rr + S_ra (0.502 + 0.900 < 0.669 + 0.833) picked 1x4
    assert select_anchor(1000, 300, [(1, 3), (1, 4)], 224) == (1, 3)
    # a 100 x 50 thumbnail: 1x2 has its shape (IoU 1) although 1x1 is closer in pixels (0.0997 vs 0.0498)
    assert anchor_scores(100, 50, [(1, 1), (1, 2)], 224).tolist() == pytest.approx(
        [50.0 + 5000 / 224**2, 100.0 + 5000 / (448 * 224)], abs=1e-3
    )
    # equal scores: the first anchor, as torch.argmax
    assert select_anchor(448, 448, [(2, 2), (2, 2)], 224) == (2, 2)


def test_paper_anchors_are_release_yaml_and_give_global_plus_four_crops() -> None:
    paper = from_config(ExperimentConfig, compose("paperowl", ["experiment=tiny_paper"]).experiment)
    assert paper.model.anchors == [[2, 2]] == [list(a) for a in PAPER_ANCHORS]
    views, positions = crop_views(Image.new("RGB", (300, 1200), "white"), 32, paper.model.anchors)
    assert views.shape == (5, 3, 32, 32) and positions.tolist() == [0, 1, 2, 3, 4]


def _model(**overrides) -> PaperOwlModel:
    options = dict(image_size=32, patch_size=8, num_queries=4, tokenizer_kind="word", vocab_size=200,
                   lm_modules_to_save=["embed_tokens", "lm_head"], anchors=[[1, 1]], lora_dropout=0.0)  # fmt: skip
    config = ModelConfig(**{**options, **overrides})
    return PaperOwlModel(config, build_tokenizer(config, [*caption_vocabulary(), PROMPT[8:]]))


def _samples(n: int, seed: int) -> list[Sample]:
    return [Sample([d.image], PROMPT, d.caption, "figure_cap") for d in make_diagrams(n, seed=seed)]


def _grads(model) -> dict[str, torch.Tensor]:
    out = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return out


def test_accumulated_micro_batches_give_the_gradient_of_one_big_batch() -> None:
    torch.manual_seed(0)
    model = _model()
    samples = _samples(8, seed=4)
    encoded = [encode_one(model, s) for s in samples]
    pad = model.tokenizer.pad_token_id
    big = collate(encoded, pad)
    total = answer_tokens(big)
    loss_big = accumulate(model, [big], total)
    one = _grads(model)
    micro = [collate(encoded[i : i + 2], pad) for i in range(0, 8, 2)]
    counts = [answer_tokens(m) for m in micro]
    assert sum(counts) == total and len(set(counts)) > 1  # answers of different lengths
    loss_micro = accumulate(model, micro, total)
    four = _grads(model)
    assert loss_micro == pytest.approx(loss_big, rel=1e-5)
    assert one.keys() == four.keys() and len(one) > 10
    for name in one:
        assert torch.allclose(one[name], four[name], rtol=1e-4, atol=1e-7), name
    # averaging the micro-batches' mean losses (what dividing by the accumulation steps does) is another update
    for m in micro:
        (model(**m).loss / len(micro)).backward()
    naive = _grads(model)
    assert max(float((naive[n] - one[n]).abs().max()) for n in one) > 1e-4


def test_training_with_accumulation_equals_the_big_batch_run_and_bad_splits_are_refused() -> None:
    samples = _samples(12, seed=6)
    options = dict(steps=3, batch_size=8, lr=3e-3, warmup_steps=1, min_lr=1e-4)
    runs = {}
    for micro in (8, 2):
        torch.manual_seed(0)
        model = _model()
        runs[micro] = (
            train(model, samples, TrainConfig(**options, micro_batch_size=micro), progress=False),
            model,
        )
    assert runs[2][0] == pytest.approx(runs[8][0], rel=1e-4)
    for (name, a), (_, b) in zip(runs[8][1].named_parameters(), runs[2][1].named_parameters(), strict=True):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-5), name
    with pytest.raises(ConfigError, match=r"train\.batch_size=8: the global batch must be a multiple of micro_batch_size x processes = 3 x 1"):  # fmt: skip
        train(_model(), samples, TrainConfig(**options, micro_batch_size=3), progress=False)
    with pytest.raises(ConfigError, match=r"precision='bf16': expected fp32 or bf16-mixed"):
        TrainConfig(precision="bf16")


def test_paper_config_is_micro_batch_4_of_global_256_with_checkpointing_and_bf16() -> None:
    paper = from_config(ExperimentConfig, compose("paperowl", ["experiment=tiny_paper"]).experiment)
    t, m = paper.train, paper.model
    assert (t.batch_size, t.micro_batch_size, t.precision) == (256, 4, "bf16-mixed")
    assert m.gradient_checkpointing and m.max_length == 2304
    assert m.init_from == "MAGAer13/mplug-owl-llama-7b" and m.abstractor_ffn == 2816
    # checkpointing and bf16 autocast run (tiny, CPU): one step, finite loss
    model = _model(gradient_checkpointing=True)
    assert model.lm.is_gradient_checkpointing
    losses = train(model, _samples(4, seed=2), TrainConfig(steps=1, batch_size=4, micro_batch_size=2,
                                                          precision="bf16-mixed"), progress=False)  # fmt: skip
    assert len(losses) == 1 and 0 < losses[0] < 20
