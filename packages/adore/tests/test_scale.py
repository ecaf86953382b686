"""The paper configs' dry runs (issue 30 item 5): Llama-2-7B at the configs' lengths on fake tensors fits the A100-80GB
they name; the attention map that used to be collected for every layer at once would not."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from adore.scale import dry_run_specs
from paperlab.config import ConfigError, compose
from paperlab.dryrun import dry_run


def test_paper_lm_dry_run_fits_and_the_old_attention_map_would_not() -> None:
    labels, decode = dry_run_specs(compose("adore", ["experiment=paper"]))
    assert labels.eval_prompt_len == 4096 and decode.eval_prompt_len == 4095
    assert labels.model.attn_implementation == "eager" and labels.scale.gpu_memory_gib == 80.0
    report = dry_run(labels)
    assert report.n_params > 6.7e9 and report.fits
    # one layer's (32, 4096, 4096) weights in bf16 and their fp32 softmax (3 GiB) plus the streamed sum, not 32 layers
    assert 3.0 < report.eval_gib["activations"] < 8.0, report.eval_gib

    def stacked(model, spec):  # the map before issue 30: every layer's weights returned, then stacked
        out = model(torch.randint(0, 32000, (1, spec.eval_prompt_len)), output_attentions=True)
        torch.stack([a[0].float() for a in out.attentions]).mean(dim=(0, 1))

    old = dry_run(dataclasses.replace(labels, eval_step=stacked))
    assert old.eval_gib["activations"] > 100 and not old.fits, old.eval_gib


def test_paper_longbench_dry_run_fits() -> None:
    specs = dry_run_specs(compose("adore", ["experiment=paper_longbench"]))
    assert [s.eval_prompt_len for s in specs] == [1024, 3500] and specs[1].eval_new_tokens == 32
    for report in map(dry_run, specs):
        assert report.fits and report.peak_gib > 12.5, report.label  # bf16 weights alone are 12.6 GiB


def test_multi_gpu_launch_is_refused_with_the_field_name() -> None:
    with pytest.raises(ConfigError, match=r"lm\.scale\.launch"):
        dry_run_specs(compose("adore", ["experiment=paper", "lm.scale.launch=ddp", "lm.scale.num_gpus=2"]))
    with pytest.raises(ConfigError, match="kind"):
        dry_run_specs(compose("adore", ["experiment=recall"]))
