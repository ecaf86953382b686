"""Paper scale on fake tensors: the paper config's phases are laid out for their GPUs; the target's training step
(vicuna-7b-v1.5, ZeRO-3 over 8 A100-80GB, bf16-mixed) fits, with weights, gradients and Adam state as counted by
hand; a plain-DDP full fine-tune of the same 7B is refused with the launch that would fit."""

import dataclasses

import pytest
import torch

from paperlab.config import ConfigError, compose
from paperlab.dryrun import GIB, _build, check_fits, dry_run
from paperlab.scale import check_parameter_state
from profuser.scale import dry_run_specs, shape_of


def _specs():
    return dry_run_specs(compose("profuser", ["experiment=paper"]))


def test_every_paper_model_has_an_architecture_and_ddp_is_refused():
    specs = _specs()
    assert [s.label.split(":")[0] for s in specs] == ["fusion training"] + ["inference mode"] * 3
    train = specs[0]
    # MPT's eager attention: 4 prompts at a time (16 need ~96 GiB per GPU), the others the fusion's 16
    assert [s.eval_batch_size for s in specs[1:]] == [16, 16, 4] and not any(s.train for s in specs[1:])
    assert train.tokens_per_step == 4 * 2048 * 4 * 8  # FuseChat's global batch of 128 x 2048 tokens
    sizes = {}
    for name in ("lmsys/vicuna-7b-v1.5", "meta-llama/Llama-2-7b-chat-hf", "mosaicml/mpt-7b-8k-chat"):
        with torch.device("meta"):
            sizes[name] = sum(p.numel() for p in _build(shape_of(name), torch.bfloat16).parameters())
    assert sizes["lmsys/vicuna-7b-v1.5"] == sizes["meta-llama/Llama-2-7b-chat-hf"] == 6_738_415_616
    assert 6.5e9 < sizes["mosaicml/mpt-7b-8k-chat"] < 6.8e9
    ddp = dataclasses.replace(train.scale, launch="ddp")
    with pytest.raises(ConfigError, match="launch=zero3"):
        check_parameter_state(sizes["lmsys/vicuna-7b-v1.5"], ddp)


@pytest.mark.slow
def test_target_training_step_fits_and_matches_the_hand_count():
    report = dry_run(_specs()[0])
    check_fits(report)
    n, t = report.n_params, report.train_gib
    per_gpu = n * 4 / GIB / 8  # fp32 master weights, sharded over 8 GPUs
    assert t["parameters"] == pytest.approx(per_gpu, rel=0.01)
    # the per-GPU peak is the end of the forward (activations on the sharded state), above the optimizer step's
    # moment (weights + all gradients + Adam state)
    assert (
        t["gradients"] <= per_gpu * 1.01 and t["activations"] > 4 * 2048 * 32000 * 4 / GIB
    )  # >= fp32 logits
    assert t["total"] >= 4 * per_gpu
    assert t["optimizer"] == pytest.approx(2 * per_gpu, rel=0.03)  # Adam's two fp32 moments
    assert report.peak_gib < report.gpu_memory_gib and report.eval_gib["total"] > 0


@pytest.mark.slow
def test_every_source_answers_within_its_gpu():
    for spec in _specs()[1:]:
        report = dry_run(spec)
        check_fits(report)
        # bf16 weights of a 7B on every GPU, and a KV cache of batch x (2048 + 1024) tokens
        assert report.eval_gib["parameters"] == pytest.approx(report.n_params * 2 / GIB, rel=0.01)
