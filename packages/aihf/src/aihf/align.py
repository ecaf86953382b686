"""AIHF on a real LLM (the implicit variant, paper Sec. 3 + Alg. 1 with the DPO substitution), on TRL.

Each AIHF iteration: (1) the current policy samples one completion for every demonstration prompt (self-play
negatives of the demonstration term); (2) one training pass of :class:`aihf.trainer.AIHFTrainer` over the
demonstration rows (``chosen`` = demonstration, ``rejected`` = the fresh sample, ``is_demo``) and the preference rows.
The reference model stays the initial policy. Iterations are checkpointed in ``<out>/iter-<k>/`` (model, tokenizer,
``done.json``): a rerun resumes after the last finished iteration.

Data: JSONL files (one object per line) or hub datasets (``hub:<name>[:<split>]``):

- demonstrations: ``prompt`` and ``completion`` (field names configurable);
- preferences: ``prompt``, ``chosen``, ``rejected``; or Anthropic-HH transcripts (``format: hh``: only ``chosen``
  and ``rejected`` dialogues, the prompt being everything up to the last ``"\\n\\nAssistant:"``).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from paperlab.config import ConfigError, require
from paperlab.io import DataError, atomic_write_json, read_jsonl
from paperlab.report import results_dir

log = logging.getLogger(__name__)
HH_SPLIT = "\n\nAssistant:"


def _load(source: str) -> tuple[str, list[dict[str, Any]]]:
    if source.startswith("hub:"):
        from datasets import load_dataset

        name, _, split = source[4:].partition(":")
        return source, [dict(r) for r in load_dataset(name, split=split or "train")]
    return source, read_jsonl(source)


def _field(row: dict[str, Any], key: str, where: str, expected: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value:
        found = "missing" if key not in row else f"{type(value).__name__} {value!r}"[:60]
        raise DataError(f"{where}: field {key!r} is {found}; expected a non-empty string ({expected})")
    return value


def split_hh(text: str, where: str) -> tuple[str, str]:
    """An Anthropic-HH transcript -> (prompt up to and including the last ``Assistant:``, the final response)."""
    cut = text.rfind(HH_SPLIT)
    if cut < 0:
        raise DataError(
            f"{where}: no {HH_SPLIT.strip()!r} turn in the transcript; expected Anthropic-HH format"
        )
    cut += len(HH_SPLIT)
    return text[:cut], text[cut:]


@dataclass
class DataConfig:
    demos: str = ""  # JSONL path or hub:<name>[:<split>]
    prefs: str = ""
    prompt_field: str = "prompt"
    completion_field: str = "completion"  # of the demonstrations
    format: str = (
        "columns"  # preferences: "columns" (prompt/chosen/rejected) or "hh" (Anthropic-HH transcripts)
    )
    demo_format: str = (
        "columns"  # demonstrations: "columns" or "hh" (the ``chosen`` transcript is the demonstration)
    )
    max_demos: int = 0  # 0: all
    max_prefs: int = 0

    def __post_init__(self) -> None:
        for name in ("format", "demo_format"):
            require(
                getattr(self, name) in ("columns", "hh"), f"data.{name}", getattr(self, name), "columns or hh"
            )


def load_demos(cfg: DataConfig) -> list[dict[str, str]]:
    """``[{prompt, completion}]``; an empty set is an error."""
    source, rows = _load(cfg.demos)
    out = []
    for i, row in enumerate(rows[: cfg.max_demos or None], start=1):
        where = f"{source}: row {i}"
        if cfg.demo_format == "hh":
            prompt, completion = split_hh(_field(row, "chosen", where, "an HH transcript"), where)
        else:
            prompt = _field(row, cfg.prompt_field, where, "the demonstration's prompt")
            completion = _field(row, cfg.completion_field, where, "the demonstrated completion")
        out.append({"prompt": prompt, "completion": completion})
    if not out:
        raise DataError(f"{source}: no demonstrations (the file or split is empty)")
    return out


def load_prefs(cfg: DataConfig) -> list[dict[str, str]]:
    """``[{prompt, chosen, rejected}]``; an empty set is an error (use ``w_pref = 0`` to train without)."""
    source, rows = _load(cfg.prefs)
    out = []
    for i, row in enumerate(rows[: cfg.max_prefs or None], start=1):
        where = f"{source}: row {i}"
        if cfg.format == "hh":
            prompt, chosen = split_hh(_field(row, "chosen", where, "an HH transcript"), where)
            prompt_r, rejected = split_hh(_field(row, "rejected", where, "an HH transcript"), where)
            if prompt_r != prompt:
                raise DataError(f"{where}: 'chosen' and 'rejected' transcripts differ before the last reply")
        else:
            prompt = _field(row, cfg.prompt_field, where, "the shared prompt")
            chosen = _field(row, "chosen", where, "the preferred completion")
            rejected = _field(row, "rejected", where, "the dispreferred completion")
        out.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    if not out:
        raise DataError(f"{source}: no preference pairs (the file or split is empty)")
    return out


@dataclass
class AlignConfig:
    name: str = "align"
    model: str = "tiny"  # "tiny": a tiny Llama + tokenizer built locally; else a hub name or local directory
    dtype: str = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    w_demo: float = 1.0  # logistic (self-play) demonstration term: on DPO's scale
    w_pref: float = 1.0
    beta: float = 0.1
    iterations: int = 2
    max_new_tokens: int = 64
    temperature: float = 1.0
    generation_batch: int = 16
    seed: int = 0
    train: dict[str, Any] = field(
        default_factory=dict
    )  # passed to AIHFConfig (learning_rate, batch size, bf16, ...)

    def __post_init__(self) -> None:
        require(self.iterations >= 1, "iterations", self.iterations, ">= 1")
        require(self.max_new_tokens >= 1, "max_new_tokens", self.max_new_tokens, ">= 1")
        require(self.beta > 0, "beta", self.beta, "> 0")
        require(
            self.data.demos != "" or self.w_demo == 0,
            "data.demos",
            self.data.demos,
            "a JSONL path or hub:<name>",
        )
        require(
            self.data.prefs != "" or self.w_pref == 0,
            "data.prefs",
            self.data.prefs,
            "a JSONL path or hub:<name>",
        )
        from aihf.losses import check_weights

        try:
            check_weights(self.w_demo, self.w_pref)
        except ValueError as err:
            raise ConfigError(str(err)) from None


def _model_and_tokenizer(cfg: AlignConfig, texts: list[str]) -> tuple[Any, Any]:
    from paperlab.models import policy_and_tokenizer

    return policy_and_tokenizer(cfg.model, texts, dtype=cfg.dtype, seed=cfg.seed)


def sample_completions(model: Any, tok: Any, prompts: list[str], cfg: AlignConfig) -> list[str]:
    """One sampled completion per prompt from the current policy (:func:`paperlab.models.sample_completions`)."""
    from paperlab.models import sample_completions as sample

    return sample(
        model,
        tok,
        prompts,
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        batch_size=cfg.generation_batch,
    )


def run_align(cfg: AlignConfig, out_dir: Path | None = None) -> dict[str, Any]:
    from datasets import Dataset

    from aihf.trainer import AIHFConfig, AIHFTrainer
    from paperlab.seed import seed_everything

    seed_everything(cfg.seed)
    out = Path(out_dir) if out_dir is not None else results_dir("aihf", cfg.name)
    demos = load_demos(cfg.data) if cfg.w_demo > 0 else []
    prefs = load_prefs(cfg.data) if cfg.w_pref > 0 else []
    texts = [r["prompt"] + r["completion"] for r in demos] + [r["prompt"] + r["chosen"] for r in prefs]
    model, tok = _model_and_tokenizer(cfg, texts)
    ref_model = copy.deepcopy(model).eval()
    start = 0
    for k in range(cfg.iterations, 0, -1):
        if (out / f"iter-{k}" / "done.json").is_file():
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(out / f"iter-{k}", dtype=model.dtype).to(
                model.device
            )
            start = k
            log.info("resuming after iteration %d (%s)", k, out / f"iter-{k}")
            break
    history = []
    for k in range(start + 1, cfg.iterations + 1):
        rows = [{**r, "is_demo": False} for r in prefs]
        if demos:
            samples = sample_completions(model, tok, [d["prompt"] for d in demos], cfg)
            rows += [
                {"prompt": d["prompt"], "chosen": d["completion"], "rejected": s, "is_demo": True}
                for d, s in zip(demos, samples, strict=True)
            ]
        args = AIHFConfig(
            output_dir=str(out / f"iter-{k}" / "trainer"),
            w_demo=cfg.w_demo,
            w_pref=cfg.w_pref,
            beta=cfg.beta,
            seed=cfg.seed + k,
            save_strategy="no",
            report_to=[],
            **cfg.train,
        )
        trainer = AIHFTrainer(
            model=model,
            ref_model=ref_model,
            args=args,
            train_dataset=Dataset.from_list(rows).shuffle(seed=cfg.seed + k),
            processing_class=tok,
        )
        result = trainer.train()
        model = trainer.model
        model.save_pretrained(out / f"iter-{k}")
        tok.save_pretrained(out / f"iter-{k}")
        record = {"iteration": k, "train_loss": float(result.training_loss), "rows": len(rows)}
        atomic_write_json(out / f"iter-{k}" / "done.json", record)
        history.append(record)
        log.info("AIHF iteration %d: loss %.4f over %d rows", k, record["train_loss"], len(rows))
    metrics = {"config": asdict(cfg), "history": history, "final": str(out / f"iter-{cfg.iterations}")}
    atomic_write_json(out / "metrics.json", metrics)
    return metrics
