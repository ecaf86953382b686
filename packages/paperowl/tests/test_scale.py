"""The paper dry run's code path (``make paperowl-paper-dry``: ``paperowl.scale.dry_run_specs`` through
``paperlab.dryrun``) at reduced size: the model is this package's own, prepared as training prepares it (frozen ViT
and LM base, trained abstractor + crop positions + LoRA on q/v), one training and one evaluation step fit."""

from __future__ import annotations

from paperlab.config import compose
from paperlab.dryrun import dry_run
from paperowl.scale import PAPER_SCALE, dry_run_specs

SMALL = {
    "num_query_tokens": 8,
    "vision_config": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                      "num_attention_heads": 4, "image_size": 32, "patch_size": 8},
    "visual_abstractor_config": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                                 "intermediate_size": 96},
    "text_config": {"model_type": "llama", "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
                    "num_attention_heads": 4, "vocab_size": 500},
}  # fmt: skip
OVERRIDES = [
    "experiment=tiny_paper", "experiment.model.image_size=32", "experiment.model.patch_size=8",
    "experiment.model.num_queries=8", "experiment.model.abstractor_dim=64", "experiment.model.abstractor_layers=2",
    "experiment.model.abstractor_heads=4", "experiment.model.abstractor_ffn=96", "experiment.model.max_length=256",
    "experiment.max_new_tokens=32",
]  # fmt: skip


def test_dry_run_of_the_paper_path_at_reduced_size_counts_the_trained_parts_by_hand() -> None:
    (spec,) = dry_run_specs(compose("paperowl", OVERRIDES), owl=SMALL, views=4)
    assert spec.scale == PAPER_SCALE and spec.batch_size == 4 and spec.grad_accum == 256 // (4 * 8)
    assert spec.seq_len == 256 and spec.eval_prompt_len == 256 - 32
    report = dry_run(spec)
    # abstractor: queries 8x64; per layer norm1/normk/norm2 3x128, q/k/v 3x(64x64+64), out_proj 64x64+64,
    # w1/w3 2x(64x96+96), w2 96x64+64, ffn_ln 2x96 = 35,904 (x2 layers); visual_fc 64x128+128; vit_eos 128;
    # crop positions (1 + 2x2) x 128; LoRA r 8 on q/v of 2 layers: 2 x 2 x 8 x (128 + 128)
    per_layer = 3 * 128 + 3 * (64 * 64 + 64) + (64 * 64 + 64) + 2 * (64 * 96 + 96) + (96 * 64 + 64) + 2 * 96
    expected = 8 * 64 + 2 * per_layer + (64 * 128 + 128) + 128 + 5 * 128 + 2 * 2 * 8 * 256
    assert report.trainable_params == expected == 89_600
    assert report.n_params > 6 * expected  # the frozen ViT and LM are built, not trained
    t, e = report.train_gib, report.eval_gib
    assert t["gradients"] <= 4 * expected / 2**30 * 1.01 and t["activations"] > 0 and e["activations"] > 0
    assert report.fits and report.tokens_per_step == 4 * 256 * 8 * 8
