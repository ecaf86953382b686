"""At scale: the paper dry run fits 8 x A100-80GB with the analytic parameter count, the tiny IRFT loop runs under
two CPU processes (generation shared, files written once by rank 0, equal weights), and lm-eval runs on every stage
model from a local task file."""

from __future__ import annotations

import json
import re

import pytest

from paperlab.config import compose

GIB = 2**30


def _meta(shape):
    import torch

    from paperlab.dryrun import _build

    with torch.device("meta"):
        return _build(shape, torch.bfloat16)


@pytest.mark.slow  # ~30 s: the 7B with LoRA on every projection, on fake tensors
def test_paper_dry_run_fits_and_matches_the_analytic_parameter_count() -> None:
    from irl_sft.scale import dry_run_specs
    from paperlab.dryrun import dry_run

    (spec,) = dry_run_specs(compose("irl_sft", ["experiment=paper"]))
    assert (spec.scale.launch, spec.scale.num_gpus, spec.scale.precision) == ("zero3", 8, "bf16-lora")
    assert (spec.batch_size, spec.seq_len, spec.eval_prompt_len, spec.eval_new_tokens) == (2, 512, 128, 256)
    report = dry_run(spec)
    assert report.fits and report.gpu_memory_gib == 80.0
    n, lora = report.n_params, report.trainable_params
    # Mistral-7B: 7.24B weights; LoRA r 64 on q,k,v,o,gate,up,down of 32 layers and on lm_head
    assert 7.2e9 < n < 7.3e9
    per_layer = 64 * ((4096 + 4096) + (4096 + 1024) * 2 + (4096 + 4096) + (4096 + 14336) * 3)
    assert lora == 32 * per_layer + 64 * (4096 + 32000)
    t = report.train_gib
    base = n  # n_params counts the model before the adapter
    assert t["parameters"] == pytest.approx(
        (2 * base + 4 * lora) / GIB / 8, rel=0.002
    )  # bf16 base, fp32 adapter
    # the peak is the end of the forward (activations, no adapter gradient yet) on the sharded state
    assert t["gradients"] <= 4 * lora / GIB / 8 * 1.01
    assert t["optimizer"] == pytest.approx(4 * lora / GIB / 8, rel=0.01)  # RMSprop: one fp32 state
    # pi_t, sharded by ZeRO-3, and the DeBERTa-v3-large judge (435M parameters) whole on every GPU
    judge = sum(p.numel() for p in _meta(spec.replicated[0]).parameters())
    assert 4.3e8 < judge < 4.4e8
    assert t["frozen"] == pytest.approx((2 * base / 8 + 2 * judge) / GIB, rel=0.01)
    assert 0 < t["activations"] < 40 and t["total"] < 80
    assert report.tokens_per_step == 2 * 512 * 8


@pytest.mark.slow  # ~60 s: two processes, each importing torch/transformers/TRL
def test_tiny_irft_under_two_processes(tmp_path) -> None:
    """accelerate launch --cpu --num_processes 2 (gloo): both ranks generate their half of the stage's prompts,
    every result file is written once and by rank 0, and the trained weights are equal on both ranks."""
    from paperlab.testing import run_two_processes

    results, cache = tmp_path / "results", tmp_path / "cache"
    run = run_two_processes(
        ["-m", "irl_sft", "experiment=llm_tiny_2proc"],
        cwd=tmp_path,
        env={"PAPERLAB_RESULTS": str(results), "PAPERLAB_CACHE": str(cache)},
        timeout_s=300,
    )
    out = results / "irl_sft" / "llm_tiny_2proc"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and [h["stage"] for h in metrics["history"]] == [0, 1]
    shards = re.findall(r"rank (\d): generating (\d+) of (\d+) completions", run.stdout + run.stderr)
    assert sorted(set(shards)) == [("0", "16", "32"), ("0", "4", "8"), ("1", "16", "32"), ("1", "4", "8")]
    assert not run.written_more_than_once() and not run.written_by_other_ranks()
    written = {p.name for _, p in run.writes}
    assert {"generations.jsonl", "done.json", "metrics.json", "results.md"} <= written
    digests = set(re.findall(r"rank \d weights digest ([0-9a-f]{64})", run.stdout + run.stderr))
    assert digests == {metrics["weights_digest"]}  # both ranks logged the one digest
    assert (out / "stage-1" / "model" / "model.safetensors").is_file()


@pytest.mark.slow  # ~45 s: a one-stage run and three lm-eval passes
def test_lm_eval_runs_on_every_stage_model_from_a_local_task(tmp_path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from irl_sft.evaluate import EvalConfig
    from irl_sft.llm import DataConfig, LLMConfig, run_llm
    from paperlab.evaluation import run_lm_eval
    from paperlab.testing import write_choice_task

    # "count from a by 1:" continued right (a + 1) or wrong (a + 5)
    rows = [
        {"question": f"count from {a} by 1:", "choices": [f" {a + 1}", f" {a + 5}"], "label": 0}
        for a in range(8)
    ]
    tasks = write_choice_task(tmp_path / "tasks", "irl_count", rows)
    cfg = LLMConfig(
        data=DataConfig(demos="synthetic", eval_demos=8),
        stages=1,
        prompts_per_stage=32,
        max_length=48,
        max_new_tokens=8,
        eval=EvalConfig(lm_eval_tasks=["irl_count"], lm_eval_include_path=str(tasks)),
        train={
            "learning_rate": 1e-3,
            "per_device_train_batch_size": 8,
            "use_cpu": True,
            "disable_tqdm": True,
        },
    )
    history = run_llm(cfg, tmp_path / "run")["history"]
    assert [sorted(h["lm_eval"]) for h in history] == [["irl_count"], ["irl_count"]]
    for h in history:
        assert set(h["lm_eval"]["irl_count"]) >= {"acc"}
    # the stage-1 number is lm-eval's on the saved stage model
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "stage-1" / "model")
    tok = AutoTokenizer.from_pretrained(tmp_path / "run" / "stage-1" / "model")
    direct = run_lm_eval(model, tok, ["irl_count"], include_path=str(tasks))
    assert history[1]["lm_eval"]["irl_count"]["acc"] == pytest.approx(direct["irl_count"]["acc"])
    assert "irl_count acc" in (tmp_path / "run" / "results.md").read_text()
