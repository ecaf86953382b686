"""GLPFT: stage 2 starts from stage 1's weights, the roles train on disjoint data, finished runs are reused; the
static prediction pipeline assembles planner / caller / summarizer outputs in the official step format; the shipped
configs validate offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from alpha_umi.data import END, ROLES, eval_steps, role_datasets, training_text
from alpha_umi.infer import predict_multi, predict_single
from alpha_umi.metrics import static_metrics
from alpha_umi.train import StageConfig, TrainConfig, glpft, load_done
from alpha_umi.world import make_split


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return {k: v.clone() for k, v in AutoModelForCausalLM.from_pretrained(path).state_dict().items()}


def test_stage2_starts_from_stage1_and_roles_train_on_disjoint_data(tmp_path) -> None:
    from paperlab.models import tiny_causal_lm, train_tiny_tokenizer

    data = role_datasets([t for _, t in make_split(12, seed=0)])
    keys = {r: {(s["input"], s["target"]) for s in data[r]} for r in ROLES}
    assert all(keys[a].isdisjoint(keys[b]) for a in ROLES for b in ROLES if a < b)
    tok = train_tiny_tokenizer(
        [training_text(s, "")["prompt"] + s["target"] for r in data for s in data[r]], vocab_size=600
    )
    tiny_causal_lm(tokenizer=tok, layers=1, hidden=32, heads=2, seed=0).save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    frozen = StageConfig(
        learning_rate=1e-12, epochs=1.0, warmup_ratio=0.0
    )  # stage 2 barely moves the weights
    cfg = TrainConfig(
        max_length=1024,
        batch_size=8,
        stage1=StageConfig(learning_rate=3e-3, epochs=1.0, warmup_ratio=0.0),
        planner=frozen,
        caller=frozen,
        summarizer=frozen,
        args={"use_cpu": True, "disable_tqdm": True},
    )
    paths = glpft(tmp_path / "base", data, cfg, tmp_path / "runs")
    base, stage1 = _weights(tmp_path / "base"), _weights(paths["backbone"])
    moved = max((stage1[k] - base[k]).abs().max().item() for k in base)
    assert moved > 1e-3  # stage 1 trained
    for role in ROLES:
        w = _weights(paths[role])
        assert max((w[k] - stage1[k]).abs().max().item() for k in w) < 1e-6, role  # = stage 1, not the base
        done = load_done(paths[role].parent)
        assert done["start"] == str(paths["backbone"]) and done["samples"] == len(data[role])
    assert load_done(paths["backbone"].parent)["samples"] == len(data["backbone"])
    # a finished run is reused, not retrained
    stamp = (paths["planner"].parent / "done.json").stat().st_mtime_ns
    glpft(tmp_path / "base", data, cfg, tmp_path / "runs")
    assert (paths["planner"].parent / "done.json").stat().st_mtime_ns == stamp


def test_static_pipeline_assembles_the_official_step_format() -> None:
    trajs = [t for _, t in make_split(15, seed=3)]
    steps = [s for t in trajs for s in eval_steps(t)]

    def gold(kind: str):
        def batch(prompts):
            return list(prompts_out[kind].pop(0) for _ in prompts)

        return batch

    prompts_out = {"plan": [], "call": [], "sum": []}
    for s in steps:
        plan, _, rest = s["reference"].partition(END)
        prompts_out["plan"].append(plan.removeprefix("assistant: "))
        if rest.startswith("caller: "):
            prompts_out["call"].append(rest.removeprefix("caller: ").removesuffix(END))
        elif rest.startswith("conclusion: "):
            prompts_out["sum"].append(rest.removeprefix("conclusion: ").removesuffix(END))
    preds = predict_multi(trajs, gold("plan"), gold("call"), gold("sum"), progress=False)
    m = static_metrics(preds)
    assert (m["plan_acc"], m["action_em"], m["arg_f1"], m["hallucination"]) == (100.0, 100.0, 100.0, 0.0)
    assert m["rouge_l"] == pytest.approx(100.0, abs=1e-5)
    # the single-LLM path: gold backbone targets score 100 too
    from alpha_umi.data import backbone_samples

    targets = [b["target"] for t in trajs for b in backbone_samples(t)]
    single = static_metrics(predict_single(trajs, lambda prompts: [targets.pop(0) for _ in prompts]))
    assert (single["plan_acc"], single["action_em"], single["arg_f1"]) == (100.0, 100.0, 100.0)


@pytest.mark.parametrize("name", ["tiny", "study", "paper", "paper_13b", "tiny_2proc"])
def test_shipped_configs_validate_offline(name) -> None:
    from alpha_umi.experiment import ExperimentConfig
    from paperlab.config import compose, from_config

    cfg = from_config(ExperimentConfig, compose("alpha_umi", [f"experiment={name}"]))
    if name.startswith("paper"):
        t = cfg.train
        assert (t.stage1.learning_rate, t.stage1.epochs, t.stage1.warmup_ratio) == (5e-5, 2, 0.4)
        assert (t.planner.learning_rate, t.planner.epochs, t.caller.epochs, t.summarizer.epochs) == (
            1e-5,
            1,
            1,
            2,
        )
        assert cfg.model.base.startswith("meta-llama/") and cfg.data.kind == "toolbench"
    else:
        assert cfg.model.base == "tiny" and cfg.data.kind == "world"


def test_lora_run_saves_merged_weights_that_moved(tmp_path) -> None:
    from alpha_umi.train import sft
    from paperlab.models import tiny_causal_lm, train_tiny_tokenizer

    data = role_datasets([t for _, t in make_split(6, seed=0)])
    tok = train_tiny_tokenizer(
        [training_text(s, "")["prompt"] + s["target"] for s in data["caller"]], vocab_size=400
    )
    tiny_causal_lm(tokenizer=tok, layers=1, hidden=32, heads=2, seed=0).save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    from paperlab.scale import LoraSpec, ScaleConfig

    cfg = TrainConfig(
        max_length=1024,
        batch_size=4,
        args={"use_cpu": True, "disable_tqdm": True},
        scale=ScaleConfig(
            precision="bf16-lora", lora=LoraSpec(r=4, alpha=8, target_modules=["q_proj", "v_proj"])
        ),
    )
    path = sft(tmp_path / "base", data["caller"], StageConfig(1e-2, 1.0, 0.0), cfg, tmp_path, name="lora")
    base, tuned = _weights(tmp_path / "base"), _weights(path)
    assert set(tuned) == set(base)  # merged: a plain model, no adapter keys
    changed = [k for k in base if not torch.equal(base[k], tuned[k])]
    assert changed and all("q_proj" in k or "v_proj" in k for k in changed)
