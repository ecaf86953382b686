"""The GPU smoke test's code (paperlab.smoke), run on the CPU at tiny shapes."""

import math

import torch

from paperlab.dryrun import DryRunSpec, ModelShape
from paperlab.scale import ScaleConfig
from paperlab.smoke import _single, measure, shrink

MISTRAL_7B = ModelShape(
    name="mistralai/Mistral-7B-v0.1",
    model_type="mistral",
    config={
        "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 32768,
    },
)  # fmt: skip


def test_shrink_keeps_the_family_and_grouped_query_attention():
    tiny = shrink(MISTRAL_7B)
    assert tiny.model_type == "mistral" and tiny.config["num_hidden_layers"] == 2
    assert (
        tiny.config["hidden_size"] == 64 and tiny.config["num_key_value_heads"] == 2
    )  # still fewer kv heads
    assert tiny.config["num_attention_heads"] == 4


def test_single_gpu_setting_keeps_the_layers_whose_state_fits():
    spec = DryRunSpec(
        "sft", MISTRAL_7B, ScaleConfig(launch="zero3", num_gpus=8, precision="bf16-mixed"), 1, 512
    )
    single, layers = _single(spec, gpu_gib=40.0)
    # 16 bytes per trained parameter must stay under 0.6 * 40 GiB: embeddings + head 2 * 32000 * 4096, each layer
    # 4096 * (2 * 4096 + 2 * 1024) attention + 3 * 4096 * 14336 MLP + 2 * 4096 norms (+ the final norm)
    layer = 4096 * (2 * 4096 + 2 * 1024) + 3 * 4096 * 14336 + 2 * 4096
    rest = 2 * 32000 * 4096 + 4096
    expected = max(n for n in range(1, 33) if 16 * (rest + n * layer) / 2**30 <= 24.0)
    assert layers == expected == 6
    assert single.scale.launch == "single" and single.scale.num_gpus == 1
    assert single.model.config["num_hidden_layers"] == expected


def test_measure_trains_a_tiny_shape_on_the_cpu():
    spec = DryRunSpec(
        "sft", shrink(MISTRAL_7B), ScaleConfig(precision="bf16-mixed"), batch_size=2, seq_len=16
    )
    out = measure(spec, torch.device("cpu"), steps=2)
    assert math.isfinite(out["loss"]) and abs(out["loss"] - math.log(512)) < 1.0  # random init: ~ln(vocab)
    assert out["steps_per_s"] > 0
