"""Dry runs (paperlab.dryrun): fake-tensor training and evaluation steps, laid out per GPU for the launch."""

import pytest
import torch

from paperlab.config import ConfigError
from paperlab.dryrun import (
    GIB,
    DryRunSpec,
    ModelShape,
    check_fits,
    dry_run,
    load_shape,
    main,
    report_markdown,
)
from paperlab.scale import ScaleConfig

SMALL = ModelShape(
    name="small-llama",
    model_type="llama",
    config={
        "vocab_size": 1000,
        "hidden_size": 256,
        "intermediate_size": 688,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "max_position_embeddings": 512,
    },
    source="made up for the test",
)
# embeddings + head 2 * 1000 * 256; per layer 4 * 256^2 (attention) + 3 * 256 * 688 (MLP) + 2 * 256 (norms); final norm
LAYER = 4 * 256 * 256 + 3 * 256 * 688 + 2 * 256
N_PARAMS = 2 * 1000 * 256 + 2 * LAYER + 256


def spec(scale: ScaleConfig, **kw) -> DryRunSpec:
    args = {
        "batch_size": 2,
        "seq_len": 64,
        "eval_batch_size": 2,
        "eval_prompt_len": 32,
        "eval_new_tokens": 16,
    }
    return DryRunSpec("train", SMALL, scale, **{**args, **kw})


def test_single_fp32_step_counts_weights_gradients_and_adam_state():
    r = dry_run(spec(ScaleConfig(), overhead_gib=0.0))
    assert r.n_params == N_PARAMS and r.trainable_params == N_PARAMS
    t = r.train_gib
    assert t["parameters"] == pytest.approx(4 * N_PARAMS / GIB, rel=0.01)
    assert t["gradients"] == pytest.approx(4 * N_PARAMS / GIB, rel=0.01)
    # two fp32 moments, plus the step's temporaries (a few tensors of one parameter at a time: at most the 1 MB head)
    assert 8 * N_PARAMS / GIB <= t["optimizer"] <= 8 * N_PARAMS / GIB + 3 * 4 * 1000 * 256 / GIB
    assert t["gathered"] == 0 and t["other"] == pytest.approx(0, abs=1e-3)
    assert t["total"] == pytest.approx(sum(t[k] for k in t if k != "total"), abs=2e-3)
    assert r.tokens_per_step == 2 * 64
    assert 0 < r.eval_gib["total"] < t["total"]  # no gradients, no optimizer state at evaluation
    assert r.fits


def test_zero3_divides_sharded_state_and_gathers_two_layers():
    single = dry_run(spec(ScaleConfig(precision="bf16-mixed"), overhead_gib=0.0))
    z3 = dry_run(
        spec(ScaleConfig(launch="zero3", num_gpus=4, precision="bf16-mixed"), grad_accum=8, overhead_gib=0.0)
    )
    for key in ("parameters", "gradients", "optimizer"):
        assert z3.train_gib[key] == pytest.approx(single.train_gib[key] / 4, abs=2e-3)
    assert z3.train_gib["gathered"] == pytest.approx(2 * LAYER * 2 / GIB, abs=1e-3)
    assert z3.tokens_per_step == 2 * 64 * 8 * 4


def test_sharded_peak_keeps_the_activations_of_the_forward():
    """Under ZeRO-3 the per-GPU peak is the end of the forward (activations on top of the sharded state), not the
    optimizer step that peaks on one device; and Adam's moments exist during it, as from a real run's second step."""
    z3 = dry_run(
        spec(ScaleConfig(launch="zero3", num_gpus=8, precision="bf16-mixed"), seq_len=256, overhead_gib=0)
    )
    t = z3.train_gib
    # at least the fp32 logits the loss reads: batch x seq x vocab x 4 bytes
    assert t["activations"] >= 2 * 256 * 1000 * 4 / GIB
    assert t["optimizer"] == pytest.approx(8 * N_PARAMS / GIB / 8, rel=0.05)
    assert t["total"] > t["activations"] + t["optimizer"]


def test_eager_attention_is_kept_for_models_without_sdpa():
    eager = ModelShape(**{**SMALL.__dict__, "attn_implementation": "eager"})
    assert eager.build_config()._attn_implementation == "eager"
    assert SMALL.build_config()._attn_implementation == "sdpa"


def test_an_inference_only_phase_holds_bf16_weights_and_the_kv_cache():
    r = dry_run(spec(ScaleConfig(precision="bf16-mixed"), train=False, overhead_gib=0.0))
    assert r.train_gib == {} and r.trainable_params == 0
    e = r.eval_gib
    assert e["parameters"] == pytest.approx(2 * N_PARAMS / GIB, rel=0.01)  # bf16, no fp32 master copy
    assert e["gradients"] == e["optimizer"] == 0
    # the KV cache of 2 x 47 tokens: layers x (k, v) x batch x tokens x hidden, bf16
    assert e["activations"] >= 2 * 2 * 2 * 47 * 256 * 2 / GIB
    assert r.peak_gib == e["total"]
    assert r.tokens_per_step == 2 * (32 + 16)  # one generation call: prompts x (prompt + new tokens)
    assert "| – |" in report_markdown([r], "t")
    with pytest.raises(ConfigError, match="eval_batch_size"):
        spec(ScaleConfig(), train=False, eval_batch_size=0)


def test_frozen_models_are_sharded_or_replicated_as_asked():
    z3 = ScaleConfig(launch="zero3", num_gpus=4, precision="bf16-mixed")
    r = dry_run(spec(z3, frozen=[SMALL], replicated=[SMALL], overhead_gib=0.0, eval_batch_size=0))
    assert r.train_gib["frozen"] == pytest.approx(2 * N_PARAMS / GIB * (1 / 4 + 1), rel=0.01)


def test_lora_trains_only_the_adapter():
    lora = ScaleConfig(precision="bf16-lora", lora={"r": 8, "target_modules": ["q_proj", "v_proj"]})
    r = dry_run(spec(lora, overhead_gib=0.0))
    adapter = 2 * 2 * (8 * 256 + 256 * 8)  # layers x (q, v) x (A + B)
    assert r.trainable_params == adapter
    assert r.train_gib["parameters"] == pytest.approx((2 * N_PARAMS + 4 * adapter) / GIB, rel=0.01)
    # the peak comes at the end of the forward (activations), before the adapter's few gradients exist
    assert r.train_gib["gradients"] <= 4 * adapter / GIB * 1.01
    assert r.train_gib["activations"] > r.train_gib["gradients"]


def test_a_step_that_does_not_fit_is_refused_with_a_launch_that_would():
    r = dry_run(
        spec(ScaleConfig(launch="ddp", num_gpus=8, gpu="tiny", gpu_memory_gib=0.01), overhead_gib=0.0)
    )
    assert not r.fits
    with pytest.raises(ConfigError, match=r"needs an estimated .* GiB per GPU .* more than tiny"):
        check_fits(r)
    assert "**no**" in report_markdown([r], "t")


def test_architecture_files_fail_naming_the_file_and_field(tmp_path):
    bad = tmp_path / "m.yaml"
    bad.write_text("name: x\nmodel_type: llama\n")
    with pytest.raises(ConfigError, match=r"m\.yaml: missing field\(s\) \['config'\]"):
        load_shape(bad)
    with pytest.raises(ConfigError, match="no such architecture file"):
        load_shape(tmp_path / "absent.yaml")
    assert main(["no_such_package"]) == 2


@pytest.mark.slow
def test_7b_full_fine_tune_under_ddp_is_refused_and_zero3_fits():
    """The acceptance case: Llama-2-7b, fp32 master weights + AdamW under plain DDP on 8 x 80 GB does not fit (about
    16 bytes per parameter = 100 GiB before activations); the refusal names ZeRO-3, whose estimate fits."""
    llama7b = ModelShape(
        name="meta-llama/Llama-2-7b-hf",
        model_type="llama",
        config={
            "vocab_size": 32000,
            "hidden_size": 4096,
            "intermediate_size": 11008,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 32,
            "max_position_embeddings": 4096,
        },
    )
    ddp = ScaleConfig(launch="ddp", num_gpus=8, precision="bf16-mixed")
    r = dry_run(DryRunSpec("sft", llama7b, ddp, batch_size=1, seq_len=512))
    assert r.n_params == 6_738_415_616
    assert r.train_gib["parameters"] == pytest.approx(4 * r.n_params / GIB, rel=0.01)
    assert r.peak_gib > 100 and not r.fits
    with pytest.raises(ConfigError, match=r"launch=zero3 with 8 GPU\(s\).*would fit"):
        check_fits(r)


class TwoTowers(torch.nn.Module):
    """A frozen 'image tower' and a trained 'text tower' with a contrastive loss: a model no auto class builds."""

    def __init__(self, dim: int = 128, depth: int = 3) -> None:
        super().__init__()
        self.image = torch.nn.ModuleList(torch.nn.Linear(dim, dim) for _ in range(depth))
        self.text = torch.nn.ModuleList(torch.nn.Linear(dim, dim) for _ in range(depth))

    def forward(self, pixels: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        for layer in self.image:
            pixels = layer(pixels).relu()
        for layer in self.text:
            words = layer(words).relu()
        logits = pixels.mean(1) @ words.mean(1).T
        return torch.nn.functional.cross_entropy(logits, torch.arange(len(logits)))


def _towers(dtype, scale):
    model = TwoTowers().to(dtype)
    model.image.requires_grad_(False)  # what the package's training code does for a frozen tower
    return model


TOWERS = ModelShape(name="two-towers", model_type="custom", config={"dim": 128}, builder=_towers)
TOWER_PARAMS = 3 * (128 * 128 + 128)


def _tower_batch(model, batch_size):
    return {"pixels": torch.randn(batch_size, 196, 128), "words": torch.randn(batch_size, 32, 128)}


def test_a_built_model_counts_only_its_trained_part_and_grows_with_the_batch():
    def run(batch_size):
        return dry_run(
            DryRunSpec(
                "towers", TOWERS, ScaleConfig(), batch_size=batch_size, seq_len=32, overhead_gib=0.0,
                batch=_tower_batch,
                loss=lambda m, batch: m(**batch),
                eval_batch_size=4, eval_step=lambda m, s: m(**_tower_batch(m, s.eval_batch_size)),
            )
        )  # fmt: skip

    small, large = run(8), run(64)
    assert small.n_params == 2 * TOWER_PARAMS and small.trainable_params == TOWER_PARAMS
    t = small.train_gib
    assert t["parameters"] == pytest.approx(4 * 2 * TOWER_PARAMS / GIB, rel=0.01)
    # the peak is the end of the forward (the image tower's activations): at most the text tower's gradients
    assert t["gradients"] <= 4 * TOWER_PARAMS / GIB * 1.01
    assert (
        8 * TOWER_PARAMS / GIB * 0.99 <= t["optimizer"] < 12 * TOWER_PARAMS / GIB
    )  # AdamW: the text tower only
    # activations: the image tower's 196 x 128 per sample dominate and scale with the batch
    ratio = large.train_gib["activations"] / t["activations"]
    assert 6 < ratio < 9
    assert 0 < small.eval_gib["activations"] < t["activations"]


def test_a_built_model_without_a_batch_function_is_refused():
    with pytest.raises(ConfigError, match=r"towers\.batch"):
        DryRunSpec("towers", TOWERS, ScaleConfig(), batch_size=2, seq_len=8)
