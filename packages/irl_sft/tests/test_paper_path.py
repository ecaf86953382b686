"""The paper path (issue 27): the paper config follows the official stagewise run, generation follows the official
``generate_split_data.py``, stages that cannot fill fail at the start, models load through ``paperlab.scale``, the
trainer overrides TRL's public ``compute_loss``, and the package is split into one idea per module."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from paperlab.config import compose, from_config

PKG = Path(__file__).resolve().parents[1] / "src" / "irl_sft"


def _paper(name: str = "paper"):
    from irl_sft.llm import LLMConfig

    return from_config(LLMConfig, compose("irl_sft", [f"experiment={name}"]).llm, where="llm")


def test_paper_config_follows_run_irft_sh_and_its_stagewise_configs() -> None:
    """scripts/run_IRFT.sh: 5 stages of 10k prompts, configs/configs_stagewise_7b/config_sec<k>.yaml (1 epoch,
    max length 512 / prompt 128, lr 5e-7, RMSprop, warm-up 10 %), LoRA r 64 alpha 16 on every projection and
    lm_head, ZeRO-3; 4 GPUs x 2 pairs = 8 pairs per step (here 8 GPUs x 1)."""
    cfg = _paper()
    assert (cfg.stages, cfg.prompts_per_stage, cfg.beta) == (5, 10000, 0.1)
    assert cfg.max_length == 512 and cfg.max_length - cfg.min_completion_tokens == 128
    t = cfg.train
    assert t["num_train_epochs"] == 1 and t["learning_rate"] == 5e-7 and t["optim"] == "rmsprop"
    assert t["lr_scheduler_type"] == "linear" and t["warmup_steps"] == 0.1
    s = cfg.scale
    assert (s.launch, s.precision, s.gradient_checkpointing) == ("zero3", "bf16-lora", True)
    assert (s.lora.r, s.lora.alpha) == (64, 16)
    assert sorted(s.lora.target_modules) == sorted(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"]
    )
    assert s.num_gpus * t["per_device_train_batch_size"] * t.get("gradient_accumulation_steps", 1) == 8
    assert (s.gpu, s.gpu_memory_gib) == ("A100-80GB", 80.0)
    for key in ("bf16", "gradient_checkpointing", "deepspeed"):  # the scale block decides these
        assert key not in t
    one_b = _paper("paper_1b")
    assert (
        one_b.model == "facebook/opt-1.3b" and one_b.train["num_train_epochs"] == 2
    )  # config_pythia_iter1.yaml
    assert one_b.max_length == 512 and one_b.max_length - one_b.min_completion_tokens == 128


def test_generation_follows_generate_split_data_on_a_multi_turn_row(tmp_path) -> None:
    """Official generation: SPIN_iter0's ``real`` column shuffled with seed 42, the first user turn only, greedy,
    256 new tokens, prompt "### Instruction: <turn>\\n\\n### Response: " without special tokens; the training prompt
    is the chat template of an empty system message and that turn, the demonstration the first assistant reply."""
    from irl_sft.data import load_demos
    from irl_sft.generation import generation_kwargs, generation_prompt
    from paperlab.models import tiny_model_and_tokenizer

    cfg = _paper()
    assert cfg.data.demos.startswith("hub:UCLA-AGI/SPIN_iter0")
    assert (cfg.data.messages_field, cfg.data.prompt_turns, cfg.data.shuffle_seed) == ("real", "first", 42)
    assert generation_kwargs(cfg) == {"do_sample": False, "max_new_tokens": 256}
    _, tok = tiny_model_and_tokenizer(["hello world how are you"], seed=0)
    tok = copy.deepcopy(tok)
    tok.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}<assistant>"
    turns = [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
        {"role": "assistant", "content": "second answer"},
    ]
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"real": turns}) + "\n")
    data = replace(cfg.data, demos=str(path), shuffle_seed=-1)  # held-out rows: their own source
    (demo,) = load_demos(replace(cfg, data=data, max_length=64, min_completion_tokens=8), tok)
    assert demo["prompt"] == "<system><user>first question<assistant>"
    assert demo["completion"] == "first answer"
    assert generation_prompt(cfg, demo) == "### Instruction: first question\n\n### Response: "
    # the whole-conversation mode keeps the earlier turns and the last reply
    whole_cfg = replace(cfg, data=replace(data, prompt_turns="all"), max_length=512, min_completion_tokens=8)
    (whole,) = load_demos(whole_cfg, tok)
    assert whole["completion"] == "second answer" and "second question" in whole["prompt"]


def test_greedy_generation_is_deterministic_and_strips_like_the_official_script() -> None:
    from irl_sft.generation import generate_completions
    from paperlab.models import tiny_model_and_tokenizer

    model, tok = tiny_model_and_tokenizer(["count from 3 by 2: 5 7 9 11 13"], seed=0)
    tok.pad_token = tok.pad_token or tok.eos_token
    prompts = ["count from 3 by 2:", "count from 1 by 1:", "count"]
    a = generate_completions(model, tok, prompts, max_new_tokens=6, do_sample=False, batch_size=2)
    b = generate_completions(model, tok, prompts[::-1], max_new_tokens=6, do_sample=False, batch_size=1)
    assert a == b[::-1]  # greedy: the same text whatever the batch and padding
    assert all(t == t.lstrip() and t for t in a)


def test_stages_that_cannot_fill_fail_at_the_start_naming_the_numbers(tmp_path) -> None:
    from irl_sft.llm import DataConfig, LLMConfig, run_llm
    from paperlab.io import DataError

    rows = [{"prompt": f"count from {i} by 1:", "completion": " 1 2 3"} for i in range(20)]
    rows += [{"prompt": "count " * 80 + "from 1:", "completion": " 2"} for _ in range(10)]
    path = tmp_path / "demos.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = LLMConfig(
        data=DataConfig(demos=str(path), eval_demos=4),
        stages=2,
        prompts_per_stage=10,
        max_length=48,
        min_completion_tokens=8,
        long_prompts="drop",
        train={"use_cpu": True},
    )
    with pytest.raises(DataError) as err:
        run_llm(cfg, tmp_path / "out")
    msg = str(err.value)
    for part in ("30 rows", "10 dropped", "40 tokens", "4 held out", "16 left", "2 stages x 10 = 20"):
        assert part in msg, (part, msg)
    assert not (tmp_path / "out" / "stage-1").exists()  # nothing generated or trained


def test_stage_models_load_through_paperlab_scale_without_device_map(tmp_path, monkeypatch) -> None:
    """Under WORLD_SIZE=2 the policy and pi_t load whole on the rank's device, pi_t frozen, no device_map."""
    import transformers

    from irl_sft.stages import load_stage_models
    from paperlab.models import tiny_model_and_tokenizer
    from paperlab.scale import ScaleConfig, rank_device

    model, _ = tiny_model_and_tokenizer(["hello world"], seed=0)
    model.save_pretrained(tmp_path / "m")
    calls = []
    original = transformers.AutoModelForCausalLM.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        calls.append(kwargs)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", classmethod(spy))
    monkeypatch.setenv("WORLD_SIZE", "2")
    policy, ref = load_stage_models(tmp_path / "m", ScaleConfig(launch="ddp", num_gpus=2))
    assert len(calls) == 2 and all("device_map" not in c for c in calls)
    assert not ref.training and not any(p.requires_grad for p in ref.parameters())
    assert all(p.requires_grad for p in policy.parameters()) and policy.training
    for m in (policy, ref):
        assert next(m.parameters()).device == rank_device()
    assert next(policy.parameters()).dtype == torch.float32


def test_irft_trainer_overrides_trls_public_compute_loss() -> None:
    import inspect

    from trl import DPOTrainer

    from irl_sft.trainer import IRFTTrainer

    assert "_compute_loss" not in vars(IRFTTrainer)
    assert "compute_loss" in vars(IRFTTrainer)
    params = inspect.signature(IRFTTrainer.compute_loss).parameters
    assert list(params) == list(inspect.signature(DPOTrainer.compute_loss).parameters)


def test_llm_pipeline_is_split_into_modules_with_the_public_api_kept() -> None:
    import irl_sft.llm as llm

    for name in (
        "DataConfig",
        "LLMConfig",
        "RFTConfig",
        "load_demos",
        "load_prefs",
        "reward_scores",
        "run_llm",
    ):
        assert hasattr(llm, name), name
    for module in ("data", "generation", "stages", "reward", "evaluate"):
        path = PKG / f"{module}.py"
        assert path.is_file(), module
        assert len(path.read_text().splitlines()) <= 400, module
    assert len((PKG / "llm.py").read_text().splitlines()) <= 100
