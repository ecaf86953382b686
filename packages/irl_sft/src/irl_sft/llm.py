"""IRFT on a causal LM (paper Sec. 4.2, Algorithm 2), stage by stage on TRL (:class:`irl_sft.trainer.IRFTTrainer`).

Stage t = 1..T takes its own slice of ``prompts_per_stage`` demonstrations (the official ``run_IRFT.sh``: 5 stages of
10k of 50k prompts), and:

1. generates one completion per prompt of the slice with the current model pi_t (refreshed each stage);
2. trains ``IRFTTrainer`` on (prompt, demonstration, generation) with ``ref_model`` = a frozen copy of pi_t;
3. saves the model (``stage-<t>/model``) and evaluates it on held-out demonstrations.

``T = 1`` with the SFT model as the start is SPIN. Files (under the results folder): ``stage-<t>/generations.jsonl``
(written before training, so a restarted stage trains on the same pairs), ``stage-<t>/trainer/checkpoint-*`` (Trainer
checkpoints when ``train.save_strategy: steps``; a rerun resumes mid-stage from the latest), ``stage-<t>/done.json``
(a rerun skips finished stages), ``metrics.json``, ``results.md`` and ``stage_metrics.png``.

Evaluation after every stage, on ``eval_demos`` held-out demonstrations: the implicit reward r = log pi - log pi_0
(pi_0 = the starting model) ranks the demonstration above pi_0's own generation for the same prompt (ranking
accuracy, the paper's "distinguish preferred from non-preferred"), and the demonstrations' log-likelihood per token.
The paper's own evaluation (a reward model's score and the Open LLM Leaderboard tasks with ``lm-eval``) runs on the
saved stage models; see the README for the commands.

Data: JSONL files or hub datasets (``hub:<name>[:<split>]``), ``format``:

- ``columns``: a prompt and a completion field (names configurable);
- ``chat``: a list of ``{role, content}`` messages (ultrachat_200k's ``messages``, SPIN_iter0's ``real``); the last
  message must be the assistant's and is the demonstration, the ones before it make the prompt through the
  tokenizer's chat template.

A prompt whose tokens leave fewer than ``min_completion_tokens`` of ``max_length`` for the completion is an error
naming the file and row (``long_prompts: error``), or is dropped with a warning (``long_prompts: drop``);
completions are truncated to ``max_length`` (TRL's ``keep_start``), as in the official code.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from irl_sft.losses import sequence_logps
from paperlab.config import require
from paperlab.io import DataError, atomic_write_json, read_json, read_jsonl
from paperlab.report import plot_lines, results_dir, write_results

log = logging.getLogger(__name__)


@dataclass
class DataConfig:
    demos: str = ""  # JSONL path or hub:<name>[:<split>]
    format: str = "columns"  # columns | chat
    prompt_field: str = "prompt"
    completion_field: str = "completion"
    messages_field: str = "messages"
    eval_demos: int = 64  # held-out demonstrations (taken after the training slices)
    # preference pairs ranked by the implicit reward log pi - log pi_0 at every stage (the official
    # test_reward_accuracy.py on ultrafeedback_binarized test_prefs): "" none | "synthetic" | JSONL | hub:<name>[:<split>]
    # with prompt/chosen/rejected strings (format columns) or chosen/rejected message lists (format chat)
    eval_prefs: str = ""
    eval_prefs_limit: int = 0  # 0: all pairs

    def __post_init__(self) -> None:
        require(self.format in ("columns", "chat"), "data.format", self.format, "columns or chat")
        require(self.eval_demos >= 1, "data.eval_demos", self.eval_demos, ">= 1")
        require(self.eval_prefs_limit >= 0, "data.eval_prefs_limit", self.eval_prefs_limit, ">= 0")


@dataclass
class RFTConfig:
    """The explicit variant's pieces (``method: rft``; Sec. 4.1, Algorithm 1; official ``run_RFT.sh``)."""

    reward_model: str = (
        ""  # "": a tiny reward model on the policy's tokenizer (model: tiny); else hub name / dir
    )
    rl_beta: float = 0.05  # KL(pi || pi_0) coefficient of the policy step (TRL RLOO's beta)
    num_generations: int = 4  # RLOO samples per prompt
    reward_train: dict[str, Any] = field(default_factory=dict)  # RewardConfig fields
    rl_train: dict[str, Any] = field(default_factory=dict)  # RLOOConfig fields

    def __post_init__(self) -> None:
        require(self.rl_beta >= 0, "rft.rl_beta", self.rl_beta, ">= 0")
        require(
            self.num_generations >= 2, "rft.num_generations", self.num_generations, ">= 2 (leave-one-out)"
        )


@dataclass
class LLMConfig:
    name: str = "llm"
    method: str = "irft"  # irft (implicit, IRFTTrainer) | rft (explicit: reward model + RLOO per stage)
    model: str = "tiny"  # "tiny": a tiny Llama + tokenizer built locally; else a hub name or local directory
    dtype: str = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    rft: RFTConfig = field(default_factory=RFTConfig)
    stages: int = 2  # T
    prompts_per_stage: int = 0  # 0: the training demonstrations split evenly into T slices
    beta: float = 0.1
    max_length: int = 128
    min_completion_tokens: int = 8
    long_prompts: str = "error"  # error | drop
    max_new_tokens: int = 32
    temperature: float = 1.0
    generation_batch: int = 16
    # "" none; else a sequence-classification reward model (hub name or directory, with its own tokenizer) that
    # scores the policy's completions of the held-out prompts at every stage (mean reward; our choice of judge)
    eval_reward_model: str = ""
    seed: int = 0
    train: dict[str, Any] = field(
        default_factory=dict
    )  # IRFTConfig fields (learning_rate, epochs, bf16, ...)

    def __post_init__(self) -> None:
        require(self.method in ("irft", "rft"), "method", self.method, "irft or rft")
        require(self.data.demos != "", "data.demos", self.data.demos, "a JSONL path or hub:<name>[:<split>]")
        require(
            self.method == "irft" or self.model == "tiny" or self.rft.reward_model != "",
            "rft.reward_model",
            self.rft.reward_model,
            "a hub name or directory of a sequence-classification model when model is not 'tiny'",
        )
        require(self.stages >= 1, "stages", self.stages, ">= 1")
        require(self.prompts_per_stage >= 0, "prompts_per_stage", self.prompts_per_stage, ">= 0")
        require(self.beta > 0, "beta", self.beta, "> 0")
        require(
            0 < self.min_completion_tokens < self.max_length,
            "min_completion_tokens",
            self.min_completion_tokens,
            f"between 1 and max_length - 1 = {self.max_length - 1}",
        )
        require(self.long_prompts in ("error", "drop"), "long_prompts", self.long_prompts, "error or drop")
        require(self.max_new_tokens >= 1, "max_new_tokens", self.max_new_tokens, ">= 1")


def synthetic_demos(n: int = 240, seed: int = 0) -> list[dict[str, str]]:
    """``demos: synthetic``: prompts "count from a by k:" with the demonstration continuing the arithmetic sequence
    (the tiny default, so that the pipeline runs with no file and no hub)."""
    import random

    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, k = rng.randint(0, 20), rng.randint(1, 3)
        rows.append(
            {
                "prompt": f"count from {a} by {k}:",
                "completion": " " + " ".join(str(a + k * i) for i in range(1, 6)),
            }
        )
    return rows


def synthetic_prefs(n: int = 48, seed: int = 1) -> list[dict[str, str]]:
    """``eval_prefs: synthetic``: the correct continuation of "count from a by k:" preferred to one with a wrong step."""
    import random

    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, k = rng.randint(0, 20), rng.randint(1, 3)
        wrong = k + rng.choice([1, 2])
        chosen, rejected = (" " + " ".join(str(a + step * i) for i in range(1, 6)) for step in (k, wrong))
        rows.append({"prompt": f"count from {a} by {k}:", "chosen": chosen, "rejected": rejected})
    return rows


def load_prefs(cfg: LLMConfig, tokenizer: Any) -> list[dict[str, str]]:
    """``[{prompt, chosen, rejected}]`` from ``cfg.data.eval_prefs``, checked row by row (file, row, field)."""
    source = cfg.data.eval_prefs
    rows = synthetic_prefs() if source == "synthetic" else _load(source)
    if cfg.data.eval_prefs_limit:
        rows = rows[: cfg.data.eval_prefs_limit]
    out = []
    for i, row in enumerate(rows, start=1):
        where = f"{source}: row {i}"
        if cfg.data.format == "chat" and source != "synthetic":
            prompt, chosen = _chat(row, "chosen", where, tokenizer)
            prompt_r, rejected = _chat(row, "rejected", where, tokenizer)
            if prompt_r != prompt:
                raise DataError(
                    f"{where}: 'chosen' and 'rejected' differ before the last (assistant) message"
                )
        else:
            prompt, chosen, rejected = (_text(row, k, where) for k in ("prompt", "chosen", "rejected"))
        out.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    if not out:
        raise DataError(f"{source}: no preference pairs; expected rows with prompt, chosen and rejected")
    return out


def _load(source: str) -> list[dict[str, Any]]:
    if source == "synthetic":
        return synthetic_demos()
    if source.startswith("hub:"):
        from datasets import load_dataset

        name, _, split = source[4:].partition(":")
        return [dict(r) for r in load_dataset(name, split=split or "train")]
    return read_jsonl(source)


def _text(row: dict[str, Any], key: str, where: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        found = "missing" if key not in row else f"{type(value).__name__} {value!r}"[:60]
        raise DataError(f"{where}: field {key!r} is {found}; expected a non-empty string")
    return value


def _chat(row: dict[str, Any], key: str, where: str, tokenizer: Any) -> tuple[str, str]:
    messages = row.get(key)
    if not isinstance(messages, list) or len(messages) < 2:
        found = "missing" if key not in row else f"{type(messages).__name__} of length {len(messages or [])}"
        raise DataError(
            f"{where}: field {key!r} is {found}; expected a list of >= 2 {{role, content}} messages"
        )
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "assistant":
        raise DataError(
            f"{where}: the last message of {key!r} is not the assistant's; it is the demonstration"
        )
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    return prompt, _text(last, "content", f"{where}: {key}[-1]")


def load_demos(cfg: LLMConfig, tokenizer: Any) -> list[dict[str, str]]:
    """``[{prompt, completion}]`` from ``cfg.data``, checked row by row (module docstring)."""
    rows = _load(cfg.data.demos)
    out, dropped = [], 0
    budget = cfg.max_length - cfg.min_completion_tokens
    for i, row in enumerate(rows, start=1):
        where = f"{cfg.data.demos}: row {i}"
        if cfg.data.format == "chat":
            prompt, completion = _chat(row, cfg.data.messages_field, where, tokenizer)
        else:
            prompt = _text(row, cfg.data.prompt_field, where)
            completion = _text(row, cfg.data.completion_field, where)
        n = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        if n > budget:
            if cfg.long_prompts == "error":
                raise DataError(
                    f"{where}: the prompt has {n} tokens; max_length {cfg.max_length} leaves room for at most "
                    f"{budget} (min_completion_tokens {cfg.min_completion_tokens}). Raise max_length, or set "
                    "long_prompts=drop to skip such rows"
                )
            dropped += 1
            continue
        out.append({"prompt": prompt, "completion": completion})
    if dropped:
        log.warning(
            "%s: dropped %d of %d rows whose prompt exceeds %d tokens",
            cfg.data.demos,
            dropped,
            len(rows),
            budget,
        )
    if len(out) <= cfg.data.eval_demos:
        raise DataError(
            f"{cfg.data.demos}: {len(out)} usable demonstrations; expected more than data.eval_demos = "
            f"{cfg.data.eval_demos} (the held-out ones) plus at least one per stage"
        )
    return out


def _model_and_tokenizer(cfg: LLMConfig, texts: list[str]) -> tuple[Any, Any]:
    from paperlab.models import policy_and_tokenizer

    return policy_and_tokenizer(cfg.model, texts, dtype=cfg.dtype, seed=cfg.seed)


@torch.no_grad()
def completion_logps(
    model: Any, tok: Any, prompts: list[str], completions: list[str], batch: int = 16
) -> torch.Tensor:
    """Summed log-prob of each completion given its prompt (right-padded batches)."""
    out = []
    was_training = model.training
    model.eval()
    for s in range(0, len(prompts), batch):
        p_ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts[s : s + batch]]
        c_ids = [tok(c, add_special_tokens=False)["input_ids"] for c in completions[s : s + batch]]
        seqs = [p + c for p, c in zip(p_ids, c_ids, strict=True)]
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), tok.pad_token_id, dtype=torch.long)
        attn = torch.zeros_like(ids)
        mask = torch.zeros_like(ids)
        for k, (p, seq) in enumerate(zip(p_ids, seqs, strict=True)):
            ids[k, : len(seq)] = torch.tensor(seq)
            attn[k, : len(seq)] = 1
            mask[k, len(p) : len(seq)] = 1
        ids, attn, mask = (t.to(model.device) for t in (ids, attn, mask))
        logits = model(input_ids=ids, attention_mask=attn, use_cache=False).logits
        out.append(sequence_logps(logits, ids, mask).cpu())
    model.train(was_training)
    return torch.cat(out)


def evaluate(
    model: Any,
    base_scores: dict[str, torch.Tensor],
    held: dict[str, list[str]],
    tok: Any,
    prefs: list[dict[str, str]] | None = None,
    judge: tuple[Any, Any, dict[str, Any]] | None = None,
) -> dict[str, float]:
    """Ranking accuracy of r = log pi - log pi_0 (demo vs pi_0's generation) and demo log-likelihood per token;
    with ``prefs``, the share of preference pairs whose chosen answer gets the higher implicit reward
    (``base_scores["chosen"/"rejected"]`` = pi_0's); with ``judge`` = (reward model, its tokenizer, sampling
    kwargs), the judge's mean reward of the policy's completions of the held-out prompts."""
    demo = completion_logps(model, tok, held["prompt"], held["completion"])
    gen = completion_logps(model, tok, held["prompt"], held["generation"])
    r_demo, r_gen = demo - base_scores["demo"], gen - base_scores["generation"]
    tokens = sum(len(tok(c, add_special_tokens=False)["input_ids"]) for c in held["completion"])
    out = {
        "ranking_acc": 100.0 * float((r_demo > r_gen).float().mean()),
        "demo_loglik_per_token": float(demo.sum()) / max(tokens, 1),
    }
    if prefs:
        prompts = [p["prompt"] for p in prefs]
        chosen = completion_logps(model, tok, prompts, [p["chosen"] for p in prefs]) - base_scores["chosen"]
        rejected = (
            completion_logps(model, tok, prompts, [p["rejected"] for p in prefs]) - base_scores["rejected"]
        )
        out["pref_acc"] = 100.0 * float((chosen > rejected).float().mean())
    if judge is not None:
        from paperlab.models import sample_completions

        reward_model, judge_tok, gen_kwargs = judge
        with torch.random.fork_rng(devices=[]):  # the same draws at every stage; training's RNG untouched
            torch.manual_seed(0)
            samples = sample_completions(model, tok, held["prompt"], **gen_kwargs)
        out["judge_reward"] = float(
            reward_scores(reward_model, judge_tok, held["prompt"], samples, as_pair=True).mean()
        )
    return out


def run_llm(cfg: LLMConfig, out_dir: Path | None = None) -> dict[str, Any]:
    from accelerate import PartialState
    from transformers import AutoModelForCausalLM

    from paperlab.models import sample_completions
    from paperlab.seed import seed_everything

    # under `accelerate launch` every process runs this function; files are made by the main process first and
    # read by the others, so all ranks train on the same generations
    state = PartialState()
    seed_everything(cfg.seed)
    out = Path(out_dir) if out_dir is not None else results_dir("irl_sft", cfg.name)
    start_dir = out / "stage-0" / "model"
    with state.main_process_first():
        if cfg.model == "tiny" and start_dir.is_dir():  # the tiny start model (built once, reused on resume)
            model, tok = _model_and_tokenizer(replace(cfg, model=str(start_dir)), [])
        else:
            rows = _load(cfg.data.demos) if cfg.model == "tiny" else []
            model, tok = _model_and_tokenizer(cfg, [" ".join(map(str, r.values())) for r in rows[:2000]])
            if cfg.model == "tiny":
                model.save_pretrained(start_dir)
                tok.save_pretrained(start_dir)
    demos = load_demos(cfg, tok)
    held, train_demos = demos[-cfg.data.eval_demos :], demos[: -cfg.data.eval_demos]
    per_stage = cfg.prompts_per_stage or len(train_demos) // cfg.stages
    if per_stage < 1 or per_stage * cfg.stages > len(train_demos):
        raise DataError(
            f"{cfg.data.demos}: {len(train_demos)} training demonstrations cannot fill {cfg.stages} stages of "
            f"{per_stage} prompts"
        )
    gen = dict(
        max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, batch_size=cfg.generation_batch
    )
    held_cols = {"prompt": [d["prompt"] for d in held], "completion": [d["completion"] for d in held]}
    held_file = out / "heldout_generations.jsonl"
    with state.main_process_first():
        if held_file.is_file():  # pi_0's generations for the held-out prompts, made once
            held_cols["generation"] = [r["generation"] for r in read_jsonl(held_file)]
        else:
            held_cols["generation"] = sample_completions(model, tok, held_cols["prompt"], **gen)
            _write_jsonl(held_file, [{"generation": g} for g in held_cols["generation"]])
    base_scores = {
        "demo": completion_logps(model, tok, held_cols["prompt"], held_cols["completion"]),
        "generation": completion_logps(model, tok, held_cols["prompt"], held_cols["generation"]),
    }
    prefs = load_prefs(cfg, tok) if cfg.data.eval_prefs else None
    if prefs:
        pref_prompts = [p["prompt"] for p in prefs]
        for key in ("chosen", "rejected"):
            base_scores[key] = completion_logps(model, tok, pref_prompts, [p[key] for p in prefs])
    judge = None
    if cfg.eval_reward_model:
        from transformers import AutoModelForSequenceClassification

        from paperlab.models import load_tokenizer

        judge_model = AutoModelForSequenceClassification.from_pretrained(
            cfg.eval_reward_model, dtype=model.dtype
        )
        judge = (judge_model.to(model.device).eval(), load_tokenizer(cfg.eval_reward_model), gen)

    def evaluate_stage(policy: Any) -> dict[str, float]:
        return evaluate(policy, base_scores, held_cols, tok, prefs=prefs, judge=judge)

    history = [{"stage": 0, **evaluate_stage(model)}]
    prev = (
        start_dir if cfg.model == "tiny" else Path(cfg.model)
    )  # pi_t's weights: the start, then each stage's

    def load(path: Path) -> Any:
        return AutoModelForCausalLM.from_pretrained(path, dtype=model.dtype).to(model.device)

    prev_reward: Path | None = None  # RFT: the reward model continues from stage to stage
    for t in range(1, cfg.stages + 1):
        stage_dir = out / f"stage-{t}"
        if (stage_dir / "done.json").is_file():
            history.append(read_json(stage_dir / "done.json"))
            prev = stage_dir / "model"
            prev_reward = stage_dir / "reward" if cfg.method == "rft" else None
            log.info("stage %d already done (%s)", t, stage_dir)
            continue
        # policy and pi_t as fresh copies of the stage-start weights (TRL patches the models it trains, so a
        # deep copy of the previous stage's model would share its patched forward)
        model = load(prev)
        ref = load(prev).eval()
        slice_ = train_demos[(t - 1) * per_stage : t * per_stage]
        gen_file = stage_dir / "generations.jsonl"
        with state.main_process_first():
            if gen_file.is_file():
                pairs = read_jsonl(gen_file)
            else:
                samples = sample_completions(model, tok, [d["prompt"] for d in slice_], **gen)
                pairs = [
                    {"prompt": d["prompt"], "chosen": d["completion"], "rejected": s}
                    for d, s in zip(slice_, samples, strict=True)
                ]
                _write_jsonl(gen_file, pairs)
        if cfg.method == "rft":
            del ref
            model, train_loss, extra = _rft_stage(
                cfg, t, model, tok, pairs, stage_dir, out, prev_reward, state, gen
            )
            prev_reward = stage_dir / "reward"
        else:
            model, train_loss = _irft_stage(cfg, t, model, ref, tok, pairs, stage_dir)
            extra = {}
            del ref
        record = {
            "stage": t,
            "train_loss": train_loss,
            "pairs": len(pairs),
            **evaluate_stage(model),
            **extra,
        }
        if state.is_main_process:
            tok.save_pretrained(stage_dir / "model")
            atomic_write_json(stage_dir / "done.json", record)
        state.wait_for_everyone()
        history.append(record)
        prev = stage_dir / "model"
        log.info("%s stage %d/%d: %s", cfg.method.upper(), t, cfg.stages, record)
    metrics = {
        "config": asdict(cfg),
        "history": history,
        "final_model": str(out / f"stage-{cfg.stages}" / "model"),
    }
    if not state.is_main_process:
        return metrics
    stages = [h["stage"] for h in history]
    plot_lines(
        out / "stage_metrics.png",
        stages,
        {"ranking accuracy (%)": [h["ranking_acc"] for h in history]},
        xlabel="IRFT stage (0 = starting model)",
        ylabel="held-out ranking accuracy (%)",
        title=f"{cfg.method.upper()} on {cfg.model}: demo vs pi_0 generation",
    )
    columns = ["stage", "ranking_acc", "demo_loglik_per_token", "train_loss"]
    columns += [k for k in ("pref_acc", "judge_reward") if k in history[0]]
    if cfg.method == "rft":  # the stage's reward model: its accuracy, and the policy's reward before/after RL
        columns += ["reward_train_acc", "reward_demo", "reward_before", "reward_after"]
    rows_md = [{k: h.get(k, "") for k in columns} for h in history]
    write_results(
        out,
        metrics,
        rows=rows_md,
        title=f"irl_sft {cfg.name}: {cfg.method.upper()} stages on {cfg.model}",
        notes=(
            f"{cfg.stages} stages of {per_stage} prompts, beta {cfg.beta}; held-out: {len(held)} demonstrations. "
            "Ranking accuracy: r = log pi - log pi_0 ranks the demonstration above pi_0's generation."
        ),
    )
    print((out / "results.md").read_text())
    return metrics


def _irft_stage(
    cfg: LLMConfig, t: int, model: Any, ref: Any, tok: Any, pairs: list[dict[str, str]], stage_dir: Path
) -> tuple[Any, float]:
    """One IRFT stage: :class:`irl_sft.trainer.IRFTTrainer` on (demonstration, generation) with pi_t = ``ref``."""
    from datasets import Dataset

    from irl_sft.trainer import IRFTConfig, IRFTTrainer

    for p in ref.parameters():
        p.requires_grad_(False)
    args = IRFTConfig(
        output_dir=str(stage_dir / "trainer"),
        beta=cfg.beta,
        max_length=cfg.max_length,
        seed=cfg.seed + t,
        **{"save_strategy": "no", "report_to": [], **cfg.train},
    )
    trainer = IRFTTrainer(
        model=model, ref_model=ref, args=args, train_dataset=Dataset.from_list(pairs), processing_class=tok
    )
    resume = any((stage_dir / "trainer").glob("checkpoint-*"))
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    trainer.save_model(str(stage_dir / "model"))  # main process only (and gathers sharded weights)
    return trainer.model, float(result.training_loss)


@torch.no_grad()
def reward_scores(
    reward: Any,
    tok: Any,
    prompts: list[str],
    completions: list[str],
    *,
    as_pair: bool = False,
    batch: int = 16,
) -> torch.Tensor:
    """A sequence-classification reward model's first logit for each (prompt, completion), in right-padded batches:
    the concatenated text (our reward models, trained on it), or with ``as_pair`` the text pair, truncated to the
    model's length (external judges such as OpenAssistant's, which take question and answer)."""
    side, tok.padding_side = tok.padding_side, "right"
    out = []
    was_training = reward.training
    reward.eval()
    try:
        for s in range(0, len(prompts), batch):
            ps, cs = prompts[s : s + batch], completions[s : s + batch]
            if as_pair:
                enc = tok(ps, cs, return_tensors="pt", padding=True, truncation=True)
            else:
                enc = tok([p + c for p, c in zip(ps, cs, strict=True)], return_tensors="pt", padding=True)
            out.append(reward(**enc.to(reward.device)).logits[:, 0].float().cpu())
    finally:
        tok.padding_side = side
        reward.train(was_training)
    return torch.cat(out)


def _rft_stage(
    cfg: LLMConfig,
    t: int,
    model: Any,
    tok: Any,
    pairs: list[dict[str, str]],
    stage_dir: Path,
    out: Path,
    prev_reward: Path | None,
    state: Any,
    gen: dict[str, Any],
) -> tuple[Any, float, dict[str, float]]:
    """One RFT stage (Algorithm 1): fit the reward model to rank this stage's demonstrations above the current
    policy's generations (Bradley-Terry, TRL's ``RewardTrainer``, continuing from the previous stage's reward model),
    then improve the policy on r_phi with a KL penalty to the starting model pi_0 (TRL's ``RLOOTrainer``; the official
    code uses PPO). Returns the policy, the RL loss and the stage's reward figures: the reward model's accuracy on the
    stage's pairs, and its mean reward of the policy's samples before and after the policy step."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer, RLOOConfig, RLOOTrainer

    from paperlab.models import sample_completions

    if prev_reward is not None:
        reward = AutoModelForSequenceClassification.from_pretrained(prev_reward, num_labels=1)
    elif cfg.rft.reward_model:
        reward = AutoModelForSequenceClassification.from_pretrained(cfg.rft.reward_model, num_labels=1)
    else:
        from paperlab.models import tiny_sequence_classifier

        reward = tiny_sequence_classifier(tokenizer=tok, seed=cfg.seed)
    if reward.config.pad_token_id is None:
        reward.config.pad_token_id = tok.pad_token_id
    common = {"save_strategy": "no", "report_to": [], "seed": cfg.seed + t}
    for key in ("use_cpu", "bf16", "activation_checkpointing"):  # device settings follow the policy's
        if key in cfg.train:
            common[key] = cfg.train[key]
    rm_trainer = RewardTrainer(
        model=reward,
        args=RewardConfig(
            output_dir=str(stage_dir / "reward_trainer"),
            max_length=cfg.max_length,
            **{**common, **cfg.rft.reward_train},
        ),
        train_dataset=Dataset.from_list(pairs),
        processing_class=tok,
    )
    rm_trainer.train()
    reward = rm_trainer.model
    prompts = [p["prompt"] for p in pairs]
    r_demo = reward_scores(reward, tok, prompts, [p["chosen"] for p in pairs])
    r_gen = reward_scores(reward, tok, prompts, [p["rejected"] for p in pairs])
    rm_trainer.save_model(str(stage_dir / "reward"))
    state.wait_for_everyone()
    reward = AutoModelForSequenceClassification.from_pretrained(stage_dir / "reward", num_labels=1)
    start = out / "stage-0" / "model" if cfg.model == "tiny" else Path(cfg.model)
    model.config._name_or_path = str(start)  # TRL builds RLOO's KL reference from this path: pi_0, not pi_t
    rl = RLOOTrainer(
        model=model,
        reward_funcs=reward,
        args=RLOOConfig(
            output_dir=str(stage_dir / "rl_trainer"),
            beta=cfg.rft.rl_beta,
            num_generations=cfg.rft.num_generations,
            max_completion_length=cfg.max_new_tokens,
            temperature=cfg.temperature,
            **{**common, **{k: v for k, v in cfg.train.items() if k not in common}, **cfg.rft.rl_train},
        ),
        train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
        processing_class=tok,
        reward_processing_classes=tok,
    )
    resume = any((stage_dir / "rl_trainer").glob("checkpoint-*"))
    result = rl.train(resume_from_checkpoint=True if resume else None)
    rl.save_model(str(stage_dir / "model"))
    after = sample_completions(rl.model, tok, prompts, **gen)
    r_after = reward_scores(reward, tok, prompts, after)
    extra = {
        "reward_train_acc": 100.0 * float((r_demo > r_gen).float().mean()),
        "reward_demo": float(r_demo.mean()),
        "reward_before": float(r_gen.mean()),
        "reward_after": float(r_after.mean()),
    }
    return rl.model, float(result.training_loss), extra


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    import json

    from paperlab.io import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
