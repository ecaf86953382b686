"""Issue 27's alpha_umi defects, each shown numerically: training and inference read the same ids (BOS included),
long samples keep their end and none is dropped, the base model trains in fp32 whatever its checkpoint's dtype,
the trained model is saved by ``trainer.save_model``, generation sits on the rank's device, the paper config names
ZeRO-3, and ``make alpha_umi-paper`` launches through ``paper_run``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import torch

from alpha_umi.train import StageConfig, TrainConfig

ROOT = Path(__file__).resolve().parents[3]
CPU = {"use_cpu": True, "disable_tqdm": True, "logging_steps": 1}


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"max_length": 1024, "batch_size": 4, "args": CPU, **kw})


def test_training_and_inference_tokenize_a_prompt_identically_with_bos(bos_base, tmp_path) -> None:
    from alpha_umi.infer import Generator
    from alpha_umi.train import make_trainer

    base, data = bos_base
    samples = data["caller"][:3]
    trainer, _ = make_trainer(base, samples, StageConfig(1e-3, 1.0, 0.0), _cfg(), tmp_path / "run")
    gen = Generator(base, max_new_tokens=8, max_length=1024)
    bos = gen.tok.bos_token_id
    for row, sample in zip(trainer.train_dataset, samples, strict=True):
        prompt = gen.encode([sample["input"]])[0]
        assert prompt[0] == bos and row["input_ids"][0] == bos
        assert (
            row["input_ids"][: len(prompt)] == prompt
        )  # the training sequence starts with the inference prompt
        assert all(label == -100 for label in row["labels"][: len(prompt)])  # no loss on the prompt
        assert row["labels"][len(prompt)] != -100  # the loss starts right after it


def test_long_sample_keeps_its_end_and_no_sample_is_dropped(bos_base, tmp_path) -> None:
    from alpha_umi.tokens import encode_sample, load_tokenizer
    from alpha_umi.train import make_trainer

    base, data = bos_base
    tok = load_tokenizer(base)
    long = dict(data["planner"][0], input=data["planner"][0]["input"] * 6)  # a prompt far over max_length
    full, cut = encode_sample(tok, long, 10_000)
    others = data["planner"][1:3]
    limit = max(len(encode_sample(tok, s, 10_000)[0]["input_ids"]) for s in others) + 8
    assert not cut and len(full["input_ids"]) > 2 * limit
    trainer, truncated = make_trainer(
        base, [long, *others], StageConfig(1e-3, 1.0, 0.0), _cfg(max_length=limit), tmp_path / "run"
    )
    assert truncated == 1 and len(trainer.train_dataset) == 3  # TRL's keep_start dropped it (fully masked)
    row = trainer.train_dataset[0]
    assert row["input_ids"] == full["input_ids"][-limit:]  # the end kept (official preprocess)
    n_target = sum(full["completion_mask"])
    assert sum(label != -100 for label in row["labels"]) == n_target  # the whole target is learnt
    assert row["input_ids"][-1] == tok.eos_token_id


def test_fp16_checkpoint_trains_in_fp32_and_is_saved_by_trainer_save_model(
    bos_base, tmp_path, monkeypatch
) -> None:
    from transformers import AutoModelForCausalLM
    from trl import SFTTrainer

    from alpha_umi.train import make_trainer, sft

    base, data = bos_base
    assert AutoModelForCausalLM.from_pretrained(base).dtype == torch.float16  # as Llama-2's checkpoint
    trainer, _ = make_trainer(base, data["caller"][:4], StageConfig(1e-3, 1.0, 0.0), _cfg(), tmp_path / "t")
    assert {p.dtype for p in trainer.model.parameters()} == {
        torch.float32
    }  # fp32 master weights (scale: fp32)
    saved = []
    original = SFTTrainer.save_model

    def spy(self, output_dir=None, _internal_call=False):
        saved.append(output_dir)
        return original(self, output_dir, _internal_call)

    monkeypatch.setattr(SFTTrainer, "save_model", spy)
    path = sft(base, data["caller"][:4], StageConfig(1e-3, 1.0, 0.0), _cfg(), tmp_path, name="run")
    assert saved == [str(path)]  # gathers ZeRO-3 / FSDP shards; save_pretrained of a shard would not
    tuned = AutoModelForCausalLM.from_pretrained(path)
    assert tuned.dtype == torch.float32


def test_generator_sits_on_the_rank_device(bos_base, monkeypatch) -> None:
    import paperlab.scale
    from alpha_umi.infer import Generator

    monkeypatch.setattr(paperlab.scale, "rank_device", lambda: torch.device("meta"))
    gen = Generator(bos_base[0], max_new_tokens=4, max_length=256)
    assert gen.model.device == torch.device(
        "meta"
    )  # where load_for_inference puts it (cuda:LOCAL_RANK on GPUs)
    assert not any(p.requires_grad for p in gen.model.parameters())


def test_paper_configs_name_zero3_on_8_a100_and_fit_parameter_state() -> None:
    from alpha_umi.experiment import ExperimentConfig
    from paperlab.config import compose, from_config
    from paperlab.scale import check_parameter_state

    for name, n_params in (("paper", 6_738_415_616), ("paper_13b", 13_015_864_320)):
        cfg = from_config(ExperimentConfig, compose("alpha_umi", [f"experiment={name}"]))
        s = cfg.train.scale
        assert (s.launch, s.num_gpus, s.gpu, s.gpu_memory_gib) == ("zero3", 8, "A100-80GB", 80.0)
        assert (s.precision, s.gradient_checkpointing) == ("bf16-mixed", True)
        assert (
            check_parameter_state(n_params, s) == n_params * 16 / 8 / 2**30
        )  # fp32 weights, grads, Adam / 8
    tiny = from_config(ExperimentConfig, compose("alpha_umi", ["experiment=tiny"])).train.scale
    assert (tiny.launch, tiny.precision, tiny.num_gpus) == ("single", "fp32", 1)


def test_make_alpha_umi_paper_launches_through_paper_run() -> None:
    out = subprocess.run(
        ["make", "-n", "--no-print-directory", "alpha_umi-paper", "LAUNCH=zero3", "NPROC=8"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()[-1]
    assert out.startswith("HF_HUB_OFFLINE=0 ") and "accelerate launch" in out
    assert "launch/zero3.yaml --num_processes 8" in out and "zero3.json" in out
    assert "-m alpha_umi train.scale.launch=zero3 train.scale.num_gpus=8 experiment=paper" in out
    dry = subprocess.run(
        ["make", "-n", "--no-print-directory", "paper-dry"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "alpha_umi-paper-dry" in dry.stdout


def test_static_evaluation_holds_one_role_model_at_a_time(bos_base) -> None:
    from alpha_umi.infer import Generator, Sharded

    gen = Generator(bos_base[0], max_new_tokens=2, max_length=256)
    assert gen._model is None  # nothing loaded before the first prompt
    sharded = Sharded(gen, release=True)
    out = sharded(["p0", "p1", "p2"])
    assert len(out) == 3 and sharded.local == 3 and gen._model is None  # freed after its one call
    assert (
        gen.one("p0") == out[0] and gen._model is not None
    )  # reloads on demand (the live loop), same weights
