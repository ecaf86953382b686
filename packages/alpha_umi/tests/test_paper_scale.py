"""Paper scale on a CPU machine: the dry run of the 7B paper config at its real shape (fake tensors), and the tiny
pipeline under two processes (DDP over gloo) with results written once, by rank 0, and equal replicas."""

from __future__ import annotations

import json

import pytest

N_PARAMS_7B = (
    6_738_415_616  # LLaMA-2-7B: 32 x (4 x 4096^2 + 3 x 4096 x 11008 + 2 x 4096) + 2 x 32000 x 4096 + 4096
)
GIB = 2**30


@pytest.fixture(scope="module")
def paper_7b_report():
    from alpha_umi.scale import dry_run_specs
    from paperlab.config import compose
    from paperlab.dryrun import dry_run

    spec = dry_run_specs(compose("alpha_umi", ["experiment=paper"]))[0]
    assert (spec.batch_size, spec.seq_len, spec.scale.launch, spec.scale.num_gpus) == (6, 4096, "zero3", 8)
    return dry_run(spec)


@pytest.mark.slow
def test_dry_run_of_the_7b_paper_config_fits_8_a100_and_matches_the_analytic_count(paper_7b_report) -> None:
    from paperlab.dryrun import check_fits

    report = paper_7b_report
    check_fits(report)
    t = report.train_gib
    assert report.n_params == N_PARAMS_7B and report.trainable_params == N_PARAMS_7B
    assert report.tokens_per_step == 6 * 4096 * 8
    fp32_per_gpu = N_PARAMS_7B * 4 / GIB / 8  # ZeRO-3 shards fp32 master weights, gradients, Adam over 8 GPUs
    assert t["parameters"] == pytest.approx(fp32_per_gpu, rel=0.01)
    # the per-GPU peak is the end of the forward (checkpointed activations on the sharded state): no gradient yet,
    # and it is above the optimizer step's moment (weights + all gradients + Adam state)
    assert t["gradients"] <= fp32_per_gpu * 1.01
    assert t["total"] >= 4 * fp32_per_gpu
    # Adam's two fp32 moments, plus the update's per-tensor temporaries that MemTracker files under the optimizer
    assert 2 * fp32_per_gpu <= t["optimizer"] <= 2 * fp32_per_gpu * 1.03
    layer = 4 * 4096**2 + 3 * 4096 * 11008 + 2 * 4096
    assert t["gathered"] == pytest.approx(2 * layer * 2 / GIB, rel=0.01)  # two bf16 layers gathered
    assert t["total"] < 80


@pytest.mark.slow
def test_dry_run_counts_the_checkpointed_activations(paper_7b_report) -> None:
    # checkpointed activations: at least the layer inputs of 6 x 4096 tokens in bf16, 32 layers
    assert paper_7b_report.train_gib["activations"] > 32 * 6 * 4096 * 4096 * 2 / GIB


@pytest.mark.slow
def test_tiny_pipeline_under_two_processes(tmp_path) -> None:
    from transformers import AutoModelForCausalLM

    from paperlab.scale import weights_digest
    from paperlab.testing import run_two_processes

    results, cache = tmp_path / "results", tmp_path / "cache"
    run = run_two_processes(
        ["-m", "alpha_umi", "experiment=tiny_2proc"],
        cwd=tmp_path,
        env={"PAPERLAB_RESULTS": str(results), "PAPERLAB_CACHE": str(cache)},
        timeout_s=300,
    )
    out = results / "alpha_umi" / "tiny_2proc"
    assert run.written_more_than_once() == [] and run.written_by_other_ranks() == []
    written = {p.relative_to(out.resolve()).as_posix() for _, p in run.writes}
    assert {"metrics.json", "models/glpft-stage1/done.json", "models/glpft-caller/done.json"} <= written
    assert sum(w.startswith("traces/") for w in written) == 2  # the 2 live tasks, one trace each
    metrics = json.loads((out / "metrics.json").read_text())
    res = metrics["results"]["alpha-UMi (GLPFT)"]
    per_rank = res["prompts_per_rank"]
    assert (
        len(per_rank) == 2 and min(per_rank) > 0 and abs(per_rank[0] - per_rank[1]) <= 3
    )  # generation sharded
    assert res["steps"] > 0
    for run_name in ("glpft-stage1", "glpft-planner", "glpft-caller", "glpft-summarizer"):
        done = json.loads((out / "models" / run_name / "done.json").read_text())
        saved = AutoModelForCausalLM.from_pretrained(out / "models" / run_name / "model")
        assert done["weights_digest"] == weights_digest(
            saved
        )  # replicas checked equal, and saved as they were
