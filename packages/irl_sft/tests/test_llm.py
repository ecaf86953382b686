"""IRFT and RFT on a causal LM with TRL: the trainer's loss is TRL's sigmoid DPO loss with pi_t as reference, the stage loop
learns on the synthetic task, resumes mid-stage to the same weights, and bad data is refused with file/row/field."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch

from irl_sft.llm import DataConfig, LLMConfig, RFTConfig, load_demos, run_llm
from paperlab.config import ConfigError
from paperlab.io import DataError

TRAIN = {
    "learning_rate": 1e-3,
    "num_train_epochs": 1,
    "per_device_train_batch_size": 8,
    "use_cpu": True,
    "disable_tqdm": True,
    "activation_checkpointing": False,
}


def _cfg(**kw) -> LLMConfig:
    base = LLMConfig(
        data=DataConfig(demos="synthetic", eval_demos=24),
        stages=2,
        prompts_per_stage=96,
        max_length=48,
        max_new_tokens=12,
        train=dict(TRAIN),
    )
    return replace(base, **kw)


@pytest.fixture(scope="module")
def tok_and_models():
    from paperlab.models import tiny_model_and_tokenizer

    model, tok = tiny_model_and_tokenizer(["count from 3 by 2: 5 7 9 11 13", "hello world"], seed=0)
    ref, _ = tiny_model_and_tokenizer(["count from 3 by 2: 5 7 9 11 13", "hello world"], seed=1)
    tok.pad_token = tok.pad_token or tok.eos_token
    return tok, model, ref


def test_irft_trainer_loss_is_trls_dpo_loss_with_pi_t_as_reference(tok_and_models, tmp_path) -> None:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from irl_sft.trainer import IRFTConfig, IRFTTrainer

    tok, model, ref = tok_and_models
    rows = [
        {"prompt": "count from 3 by 2:", "chosen": " 5 7 9", "rejected": " hello"},
        {"prompt": "count from 1 by 1:", "chosen": " 2 3 4", "rejected": " world world"},
    ]
    common = {
        "beta": 0.3,
        "report_to": [],
        "use_cpu": True,
        "per_device_train_batch_size": 2,
        "max_length": 32,
    }
    losses, by_hand = {}, None
    for name, (Config, Trainer) in {
        "irft": (IRFTConfig, IRFTTrainer),
        "dpo": (DPOConfig, DPOTrainer),
    }.items():
        trainer = Trainer(
            model=model,
            ref_model=ref,
            args=Config(output_dir=str(tmp_path / name), **common),
            train_dataset=Dataset.from_list(rows),
            processing_class=tok,
        )
        batch = next(iter(trainer.get_train_dataloader()))
        with torch.no_grad():
            losses[name] = float(trainer.compute_loss(trainer.model, batch))
            if by_hand is None:  # the paper's formula, token by token from each model's logits
                ids, comp = batch["input_ids"], batch["completion_mask"]
                logps = {}
                for key, m in (("pi", model), ("ref", ref)):
                    logits = m(input_ids=ids, attention_mask=batch["attention_mask"]).logits.log_softmax(-1)
                    logps[key] = [
                        sum(float(logits[i, t - 1, ids[i, t]]) for t in range(1, ids.shape[1]) if comp[i, t])
                        for i in range(ids.shape[0])
                    ]
                n = ids.shape[0] // 2
                margins = [
                    (logps["pi"][i] - logps["ref"][i]) - (logps["pi"][i + n] - logps["ref"][i + n])
                    for i in range(n)
                ]
                by_hand = sum(math.log1p(math.exp(-0.3 * m)) for m in margins) / n
    assert losses["irft"] == pytest.approx(by_hand, abs=1e-5)
    # TRL computes the log-probs with its fused LM head; on the reference it differs by ~1e-3 nats per sequence
    assert losses["irft"] == pytest.approx(losses["dpo"], abs=1e-3)
    assert abs(losses["irft"] - 0.6931) > 1e-3  # different models: a non-trivial margin was compared


def test_irft_config_refuses_other_dpo_losses_and_the_trainer_needs_pi_t(tmp_path) -> None:
    from irl_sft.trainer import IRFTConfig, IRFTTrainer

    with pytest.raises(ValueError, match=r"unsupported loss_type=\['hinge'\]"):
        IRFTConfig(output_dir=str(tmp_path), loss_type="hinge", report_to=[], use_cpu=True)
    with pytest.raises(ValueError, match="needs ref_model"):
        IRFTTrainer(model=None, args=None)


def test_stage_loop_learns_the_demonstrations_and_resumes_mid_stage(
    tok_and_models, tmp_path, monkeypatch
) -> None:
    from irl_sft.llm import load_demos, reward_scores
    from paperlab.models import sample_completions, tiny_sequence_classifier

    # an external judge with its own tokenizer (a random tiny classifier: the plumbing is what is checked)
    judge_tok = tok_and_models[0]
    judge = tiny_sequence_classifier(tokenizer=judge_tok, seed=0)
    judge.config.pad_token_id = judge_tok.pad_token_id
    judge.save_pretrained(tmp_path / "judge")
    judge_tok.save_pretrained(tmp_path / "judge")
    cfg_eval = _cfg(
        data=DataConfig(demos="synthetic", eval_demos=24, eval_prefs="synthetic"),
        eval_reward_model=str(tmp_path / "judge"),
    )
    full = run_llm(cfg_eval, tmp_path / "full")
    history = full["history"]
    assert [h["stage"] for h in history] == [0, 1, 2]
    assert history[0]["ranking_acc"] == 0.0  # r = log pi - log pi_0 is 0 at the start: no pair ranked right
    assert history[-1]["ranking_acc"] > 90.0
    assert history[-1]["demo_loglik_per_token"] > history[0]["demo_loglik_per_token"] + 0.2
    assert (tmp_path / "full" / "stage_metrics.png").is_file()
    # unseen preference pairs (right step vs wrong step): the implicit reward learns to rank them (measured 0/77/85)
    assert history[0]["pref_acc"] == 0.0 and history[-1]["pref_acc"] > 70.0
    # the judge's figure is its mean reward of the model's completions (seed 0) of the held-out prompts (stage 0:
    # the saved start model, so the check is exact)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    final = AutoModelForCausalLM.from_pretrained(tmp_path / "full" / "stage-0" / "model")
    tok = AutoTokenizer.from_pretrained(tmp_path / "full" / "stage-2" / "model")
    prompts = [d["prompt"] for d in load_demos(cfg_eval, tok)[-24:]]
    torch.manual_seed(0)
    samples = sample_completions(final, tok, prompts, max_new_tokens=12, temperature=1.0, batch_size=16)
    expected = float(reward_scores(judge.eval(), judge_tok, prompts, samples, as_pair=True).mean())
    assert history[0]["judge_reward"] == pytest.approx(expected, abs=1e-4)

    # interrupted in stage 2 after step 4 (a Trainer checkpoint every 2 steps), then rerun: same final weights
    from transformers import AutoModelForCausalLM, TrainerCallback

    class Interrupt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if "stage-2" in args.output_dir and state.global_step == 5:
                raise KeyboardInterrupt

    from irl_sft import trainer as trainer_module

    original = trainer_module.IRFTTrainer.__init__

    def with_interrupt(self, *a, **kw):
        original(self, *a, **kw)
        self.add_callback(Interrupt())

    cfg = _cfg(train={**TRAIN, "save_strategy": "steps", "save_steps": 2})
    monkeypatch.setattr(trainer_module.IRFTTrainer, "__init__", with_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_llm(cfg, tmp_path / "resumed")
    monkeypatch.setattr(trainer_module.IRFTTrainer, "__init__", original)
    assert (tmp_path / "resumed" / "stage-1" / "done.json").is_file()
    assert (tmp_path / "resumed" / "stage-2" / "trainer" / "checkpoint-4").is_dir()
    resumed = run_llm(cfg, tmp_path / "resumed")
    a = AutoModelForCausalLM.from_pretrained(tmp_path / "full" / "stage-2" / "model")
    b = AutoModelForCausalLM.from_pretrained(tmp_path / "resumed" / "stage-2" / "model")
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-5), name
    assert resumed["history"][-1]["ranking_acc"] == pytest.approx(history[-1]["ranking_acc"])


def test_rft_stage_fits_a_reward_and_raises_it_with_rloo(tmp_path) -> None:
    """Explicit RFT (Algorithm 1) at LLM scale: a Bradley-Terry reward model ranks the stage's demonstrations above
    pi_t's generations, and the RLOO step moves the policy's samples up that reward."""
    cfg = _cfg(
        method="rft",
        stages=1,
        prompts_per_stage=48,
        rft=RFTConfig(
            reward_train={"learning_rate": 1e-3, "num_train_epochs": 2},
            rl_train={"learning_rate": 1e-3, "num_train_epochs": 2},
        ),
    )
    stage = run_llm(cfg, tmp_path)["history"][-1]
    assert stage["reward_train_acc"] > 90.0
    assert stage["reward_demo"] > stage["reward_before"] + 1.0
    # measured: before -1.28, after -0.21 (demonstrations 1.28)
    assert stage["reward_after"] > stage["reward_before"] + 0.5
    assert (tmp_path / "stage-1" / "reward" / "config.json").is_file()
    with pytest.raises(ConfigError, match=r"rft\.reward_model"):
        replace(cfg, model="some/hub-model")


def _write(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_bad_demonstrations_are_named(tok_and_models, tmp_path) -> None:
    tok = tok_and_models[0]
    ok = {"prompt": "count from 1 by 1:", "completion": " 2 3 4"}
    path = _write(tmp_path / "no_response.jsonl", [ok, {"prompt": "count from 2 by 1:", "answer": " 3"}])
    with pytest.raises(DataError, match=r"no_response.jsonl: line 2: field 'completion' is missing"):
        load_demos(_cfg(data=DataConfig(demos=path, eval_demos=1)), tok)
    long_row = {"prompt": "count " * 60 + "from 1:", "completion": " 2"}
    path = _write(tmp_path / "long.jsonl", [ok, ok, long_row])
    with pytest.raises(DataError, match=r"long.jsonl: line 3: the prompt has \d+ tokens; max_length 48"):
        load_demos(_cfg(data=DataConfig(demos=path, eval_demos=1)), tok)
    kept = load_demos(_cfg(data=DataConfig(demos=path, eval_demos=1), long_prompts="drop"), tok)
    assert len(kept) == 2
    chat = [{"messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": "again"}]}]
    path = _write(tmp_path / "chat.jsonl", chat)
    with pytest.raises(DataError, match="line 1: the last message of 'messages' is not the assistant's"):
        load_demos(_cfg(data=DataConfig(demos=path, format="chat", eval_demos=1)), tok)
    with pytest.raises(ConfigError, match=r"data\.demos"):
        LLMConfig()
    # preference pairs for evaluation: the field and the row are named
    from irl_sft.llm import load_prefs

    path = _write(
        tmp_path / "prefs.jsonl", [{"prompt": "p", "chosen": " a", "rejected": " b"}, {"prompt": "p"}]
    )
    with pytest.raises(DataError, match=r"prefs.jsonl: line 2: field 'chosen' is missing"):
        load_prefs(_cfg(data=DataConfig(demos="synthetic", eval_prefs=path)), tok)
    user, other = {"role": "user", "content": "hi"}, {"role": "user", "content": "bye"}
    answer = {"role": "assistant", "content": "yes"}
    path = _write(tmp_path / "chat_prefs.jsonl", [{"chosen": [user, answer], "rejected": [other, answer]}])
    import copy

    chat_tok = copy.deepcopy(tok)  # the module's tokenizer stays without a template
    chat_tok.chat_template = "{% for m in messages %}{{ m['content'] }} {% endfor %}"
    with pytest.raises(DataError, match=r"chat_prefs\.jsonl: line 1: 'chosen' and 'rejected' differ"):
        load_prefs(_cfg(data=DataConfig(demos="synthetic", format="chat", eval_prefs=path)), chat_tok)


@pytest.mark.parametrize("name", ["paper", "paper_1b", "llm_tiny", "llm_rft_tiny", "llm_tiny_2proc"])
def test_shipped_llm_configs_validate_offline(name) -> None:
    from dataclasses import fields

    from irl_sft.trainer import IRFTConfig
    from paperlab.config import compose, from_config

    cfg = compose("irl_sft", [f"experiment={name}"])
    assert cfg.kind == "llm"
    llm = from_config(LLMConfig, cfg.llm, where="llm")
    unknown = set(llm.train) - {f.name for f in fields(IRFTConfig)}
    assert not unknown, f"{name}: train keys IRFTConfig does not have: {unknown}"
    if llm.method == "rft":
        from trl import RewardConfig, RLOOConfig

        assert not set(llm.rft.reward_train) - {f.name for f in fields(RewardConfig)}
        assert not set(llm.rft.rl_train) - {f.name for f in fields(RLOOConfig)}
        assert name == "llm_rft_tiny" and llm.stages == 2 and llm.rft.num_generations == 4
    if name.startswith("paper"):
        assert (llm.beta, llm.train["learning_rate"], llm.stages, llm.prompts_per_stage) == (
            0.1,
            5e-7,
            5,
            10000,
        )
        assert llm.train["optim"] == "rmsprop"
        assert llm.train["num_train_epochs"] == {"paper": 1, "paper_1b": 2}[name]  # stagewise / pythia_iter1
        assert llm.data.eval_prefs == "hub:HuggingFaceH4/ultrafeedback_binarized:test_prefs"
        assert llm.eval_reward_model != ""
    assert llm.model == {
        "paper": "alignment-handbook/zephyr-7b-sft-full",
        "paper_1b": "facebook/opt-1.3b",
    }.get(name, "tiny")
