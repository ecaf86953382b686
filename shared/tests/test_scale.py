"""The scale contract (paperlab.scale): loading under a launch, precision policy, launch files, sharding, replicas."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from paperlab.config import ConfigError, from_config
from paperlab.models import tiny_causal_lm
from paperlab.scale import (
    LAUNCH_DIR,
    ScaleConfig,
    check_launch,
    check_parameter_state,
    launch_config,
    load_for_training,
    map_sharded,
    parameter_state_gib,
    prepare_for_training,
    trainer_kwargs,
    weights_digest,
)
from paperlab.testing import run_two_processes

SCRIPT = Path(__file__).parent / "scripts" / "two_rank_job.py"


def test_pure_bf16_training_and_bad_fields_are_refused_naming_the_field():
    with pytest.raises(ConfigError, match=r"scale\.precision='bf16'.*bf16-mixed"):
        ScaleConfig(precision="bf16")
    with pytest.raises(ConfigError, match=r"scale\.num_gpus=8"):
        ScaleConfig(launch="single", num_gpus=8)
    with pytest.raises(ConfigError, match=r"scale\.launch='zero2'"):
        ScaleConfig(launch="zero2")
    cfg = from_config(
        ScaleConfig, {"launch": "zero3", "num_gpus": 8, "precision": "bf16-lora", "lora": {"r": 8}}
    )
    assert cfg.sharded and cfg.uses_lora and cfg.lora.r == 8 and cfg.lora.alpha == 16


def test_load_causal_lm_never_splits_the_model_under_a_launch(monkeypatch):
    """Defect: with several GPUs visible, every rank used device_map='auto' (accelerate refuses to train it)."""
    import transformers

    from paperlab import models

    seen = {}

    class Loaded:
        def to(self, device):
            seen["to"] = str(device)
            return self

    def fake_from_pretrained(name, **kwargs):
        seen.update(kwargs)
        return Loaded()

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fake_from_pretrained)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "2")
    models.load_causal_lm("some/model")
    assert "device_map" not in seen
    assert seen["to"] == "cuda:2"
    assert seen["dtype"] == torch.bfloat16
    # one process with four GPUs still shards for inference
    seen.clear()
    monkeypatch.setenv("WORLD_SIZE", "1")
    models.load_causal_lm("some/model")
    assert seen["device_map"] == "auto"


def test_load_for_training_refuses_device_map_under_a_launch(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="device_map='auto' under a launch of 2 processes"):
        load_for_training(tmp_path, ScaleConfig(launch="ddp", num_gpus=2), device_map="auto")


def test_load_for_training_fp32_master_weights_from_a_bf16_checkpoint(tmp_path):
    model = tiny_causal_lm(vocab_size=64, hidden=32, layers=1).to(torch.bfloat16)
    model.save_pretrained(tmp_path)
    loaded = load_for_training(tmp_path, ScaleConfig(precision="bf16-mixed", gradient_checkpointing=True))
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    assert loaded.is_activation_checkpointing and not loaded.config.use_cache
    assert next(loaded.parameters()).device.type == "cpu"


def test_master_weights_keep_small_updates_that_bf16_weights_lose():
    """Defect: bf16 weights trained directly lose Adam updates below bf16's rounding step (lr 5e-7 .. 1e-5)."""

    def changed_fraction(model: torch.nn.Module, lr: float) -> float:
        before = [p.detach().clone() for p in model.parameters()]
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
        ids = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(0))
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        moved = sum(int((p.detach() != b).sum()) for p, b in zip(model.parameters(), before))
        return moved / sum(b.numel() for b in before)

    bf16 = tiny_causal_lm(vocab_size=64, hidden=32, layers=1).to(torch.bfloat16).train()
    master = prepare_for_training(
        tiny_causal_lm(vocab_size=64, hidden=32, layers=1).to(torch.bfloat16),
        ScaleConfig(precision="bf16-mixed"),
    ).train()
    lost = changed_fraction(bf16, 5e-7)
    kept = changed_fraction(master, 5e-7)
    assert lost < 0.05  # Adam's first step moves each weight by ~lr: below bf16's step for |w| > 1e-4
    assert kept > 0.9  # every weight with a gradient (unused embedding rows have none)


def test_bf16_lora_trains_a_fp32_adapter_on_a_frozen_bf16_base():
    base = tiny_causal_lm(vocab_size=64, hidden=32, layers=2)
    n_base = sum(p.numel() for p in base.parameters())
    scale = ScaleConfig(
        precision="bf16-lora", lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    )
    model = prepare_for_training(base, scale)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    frozen = [p for p in model.parameters() if not p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert {p.dtype for p in trainable.values()} == {torch.float32}
    assert {p.dtype for p in frozen} == {torch.bfloat16}
    # 2 layers x (q, v) x (A: r x 32 + B: 32 x r) with r = 4 -> 2 * 2 * 256 = 1024
    assert sum(p.numel() for p in trainable.values()) == 1024
    assert sum(p.numel() for p in frozen) == n_base


def test_trainer_kwargs_per_launch():
    z3 = trainer_kwargs(ScaleConfig(launch="zero3", num_gpus=8, precision="bf16-mixed", timeout_s=5400))
    assert z3["ddp_timeout"] == 5400 and z3["bf16"] is False  # no CUDA here: no autocast asked of the CPU
    ds = json.loads(Path(z3["deepspeed"]).read_text())
    assert ds["zero_optimization"]["stage"] == 3
    fsdp = trainer_kwargs(ScaleConfig(launch="fsdp", num_gpus=8, gradient_checkpointing=True))
    assert fsdp["fsdp"] == "full_shard auto_wrap" and fsdp["fsdp_config"]["activation_checkpointing"] is True
    assert fsdp["activation_checkpointing"] is False  # FSDP checkpoints itself; both would recompute twice
    assert "deepspeed" not in trainer_kwargs(ScaleConfig(launch="ddp", num_gpus=2))


@pytest.mark.parametrize("launch,kind", [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("zero3", "DEEPSPEED")])
def test_launch_files_are_accelerate_configs(launch, kind):
    from accelerate.commands.config.config_args import ClusterConfig

    path = launch_config(launch)
    cfg = ClusterConfig.from_yaml_file(path)
    assert cfg.distributed_type.value == kind and cfg.num_processes == 8 and cfg.mixed_precision == "bf16"
    if launch == "zero3":
        assert (
            LAUNCH_DIR / yaml.safe_load(path.read_text())["deepspeed_config"]["deepspeed_config_file"]
        ).is_file()


def test_check_launch_names_the_make_command(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    with pytest.raises(ConfigError, match="make irl_sft-paper LAUNCH=zero3 NPROC=8"):
        check_launch(ScaleConfig(launch="zero3", num_gpus=8), "irl_sft")
    check_launch(ScaleConfig(), "irl_sft")


def test_parameter_state_refuses_a_7b_full_fine_tune_under_ddp_and_names_a_launch_that_fits():
    n = 6_738_415_616  # Llama-2-7b
    ddp = ScaleConfig(launch="ddp", num_gpus=8, precision="bf16-mixed")
    # fp32 weights 4 + gradients 4 + Adam 8 bytes per parameter, replicated on every GPU
    assert parameter_state_gib(n, ddp) == pytest.approx(16 * n / 2**30)
    with pytest.raises(ConfigError, match=r"needs 100\.4 GiB.*launch=zero3 with 8 GPU\(s\).*12\.6 GiB"):
        check_parameter_state(n, ddp)
    zero3 = ScaleConfig(launch="zero3", num_gpus=8, precision="bf16-mixed")
    assert check_parameter_state(n, zero3) == pytest.approx(16 * n / 8 / 2**30)


def test_map_sharded_on_one_process_is_fn_and_checks_lengths():
    assert map_sharded(lambda xs: [x * 2 for x in xs], [1, 2, 3]) == [2, 4, 6]
    with pytest.raises(RuntimeError, match="2 results for 3 items"):
        map_sharded(lambda xs: xs[:2], [1, 2, 3])


def test_weights_digest_sees_one_changed_weight():
    a, b = (
        tiny_causal_lm(vocab_size=64, hidden=32, layers=1),
        tiny_causal_lm(vocab_size=64, hidden=32, layers=1),
    )
    assert weights_digest(a) == weights_digest(b)
    with torch.no_grad():
        next(b.parameters())[0, 0] += 1e-3
    assert weights_digest(a) != weights_digest(b)


@pytest.mark.slow
def test_two_processes_shard_train_write_once_and_agree(tmp_path):
    run = run_two_processes([str(SCRIPT), str(tmp_path), "1234"], cwd=tmp_path)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["world_size"] == 2
    assert result["timeout_s"] == 1234  # the raised process-group timeout, not NCCL/gloo's default
    # seven items over two ranks: contiguous shards 4 + 3, gathered in order
    assert result["squares"] == [[x, x * x, 0 if x < 4 else 1] for x in range(7)]
    assert run.writes == [(0, (tmp_path / "result.json").resolve())]
    assert not run.written_more_than_once() and not run.written_by_other_ranks()


@pytest.mark.slow
def test_two_processes_with_different_weights_are_caught(tmp_path):
    run = run_two_processes([str(SCRIPT), str(tmp_path), "600", "diverge"], cwd=tmp_path, check=False)
    assert run.returncode != 0
    assert "ranks [1] hold other weights than rank 0" in run.stderr
    assert not (tmp_path / "result.json").exists()
