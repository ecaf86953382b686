"""LongBench-style question answering under a KV budget, through ``model.generate`` with an :class:`AdoreCache`.

Protocol (question-agnostic compression, as kvpress evaluates LongBench): the context is prefilled and released to
the budget BEFORE the question is seen; the question is then fed (one forward, rebuilds allowed) and the answer
generated greedily. Two sources of examples:

- ``load_longbench(path, tokenizer, ...)``: LongBench JSONL rows (``context``, ``input``, ``answers``), the prompt
  ``template`` filled in, the middle of over-long prompts cut (LongBench's truncation); scored by token F1
  (:func:`paperlab.metrics.qa_f1`, LongBench's ``qa_f1_score``);
- ``recall_examples(task, ...)``: the associative-recall language as QA (context = the pairs, question = one key,
  answer = its value), scored by exact match; the CPU default.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from adore.controller import controller_checkpoint, train_controller
from adore.recall import recall_controller, recall_lm
from adore.registry import GENERATE_POLICIES, budget_tokens, check_names, generate_cache
from adore.tasks import SEP, fixed_threads, sample, single_process
from paperlab.config import ConfigError
from paperlab.io import DataError, existing_file, iter_jsonl
from paperlab.scale import ScaleConfig

log = logging.getLogger(__name__)
QA_POLICIES = ("full", "window", "streaming_llm", "random", "adore", "adore+rebuild")  # the default
LONGBENCH_TEMPLATE = (
    "Answer the question based on the given passages. Only give me the answer and do not output any other words."
    "\n\n{context}\n\nQuestion: {input}\nAnswer:"
)


@dataclass
class QAExample:
    context_ids: torch.Tensor  # (c,) prefilled and compressed before the question
    question_ids: torch.Tensor  # (q,)
    answers: list[str]
    uid: str = ""


def read_longbench(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` of each example of a LongBench JSONL file, checked before any model is loaded:
    ``context`` and ``input`` strings, ``answers`` a non-empty list of strings, ``_id`` (optional) a string or a
    number. A missing file, a line that is not a JSON object, a field of the wrong type or a file without examples
    is a :class:`~paperlab.io.DataError` naming the file, the line and the field."""
    path = existing_file(path, "qa.data")
    rows = []
    for n, row in iter_jsonl(path):
        for key, kind in (("context", str), ("input", str), ("answers", list)):
            if not isinstance(row.get(key), kind):
                got = "missing" if key not in row else f"got {type(row[key]).__name__} {row[key]!r:.60}"
                raise DataError(f"{path}:{n}: field {key!r} must be a {kind.__name__}, {got}")
        answers = row["answers"]
        if not answers or not all(isinstance(a, str) for a in answers):
            raise DataError(
                f"{path}:{n}: field 'answers' must be a non-empty list of strings, got {answers!r:.60}"
            )
        uid = row.get("_id", n)
        if isinstance(uid, bool) or not isinstance(uid, str | int):
            raise DataError(f"{path}:{n}: field '_id' must be a string, got {type(uid).__name__} {uid!r:.60}")
        rows.append((n, row))
    if not rows:
        raise DataError(f"{path}: no examples (expected one JSON object per line: context, input, answers)")
    return rows


def load_longbench(
    path: str | Path,
    tokenizer: Any,
    template: str = LONGBENCH_TEMPLATE,
    max_context: int = 3500,
    rows: list[tuple[int, dict[str, Any]]] | None = None,
) -> list[QAExample]:
    """LongBench JSONL as examples (:func:`read_longbench`; ``rows``: its result when already read), the prompt
    ``template`` filled in and the middle of an over-long context cut."""
    head, _, tail = template.partition("{input}")
    if "{context}" not in head:
        raise ConfigError(f"qa.template={template!r:.60}: expected {{context}} before {{input}}")
    examples = []
    for n, row in read_longbench(path) if rows is None else rows:
        context = tokenizer(head.replace("{context}", row["context"]), add_special_tokens=True)["input_ids"]
        question = tokenizer(row["input"] + tail, add_special_tokens=False)["input_ids"]
        room = max_context - len(question)
        if room < 2:
            raise DataError(
                f"{path}:{n}: field 'input': the question is {len(question)} tokens, leaving no room for the "
                f"context within qa.max_context={max_context}"
            )
        if len(context) > room:  # keep both ends, cut the middle
            context = context[: room // 2] + context[len(context) - (room - room // 2) :]
        examples.append(
            QAExample(
                torch.tensor(context), torch.tensor(question), list(row["answers"]), str(row.get("_id", n))
            )
        )
    return examples


def recall_examples(task: Any, n: int, seed: int) -> list[QAExample]:
    """The recall language as QA: context = ``BOS pairs... SEP``, question = one key, answer = its value id."""
    ids, mask = sample(task, n, seed=seed)
    out = []
    for row, m in zip(ids, mask, strict=True):
        sep = int((row == SEP).nonzero()[0])
        first = int(m.nonzero()[0])  # the first query's answer position
        out.append(QAExample(row[: sep + 1], row[sep + 1 : first], [str(int(row[first]))], ""))
    return out


@torch.no_grad()
def answer(
    model: Any,
    example: QAExample,
    policy: str,
    budget: int,
    controller: Any = None,
    rebuild: int = 2,
    rebuild_context: int = 1,
    max_new_tokens: int = 32,
    eos_token_id: int | None = None,
) -> list[int]:
    """Greedy answer ids: prefill the context (released to ``budget``), then ``generate`` from the question."""
    device = next(model.parameters()).device
    cache = generate_cache(policy, model, controller, budget, rebuild, rebuild_context)
    prompt = torch.cat([example.context_ids, example.question_ids])[None].to(device)
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": False, "pad_token_id": 0}
    if eos_token_id is not None:
        kwargs["eos_token_id"] = eos_token_id
    if cache is None:
        out = model.generate(prompt, **kwargs)
    else:
        with cache:
            model(example.context_ids[None].to(device), past_key_values=cache, use_cache=True)
            out = model.generate(prompt, past_key_values=cache, **kwargs)
    return out[0, prompt.shape[1] :].tolist()


@dataclass
class QAExperimentConfig:
    """``experiment=qa`` (the recall language via ``generate``, CPU) and ``experiment=paper_longbench`` (a hub model
    on LongBench JSONL files, GPU)."""

    name: str = "qa"
    model: str = (
        ""  # "" = the recall LM of the recall experiment's settings (trained or loaded from the cache)
    )
    data: list[str] = field(default_factory=list)  # LongBench JSONL files (model != "")
    template: str = LONGBENCH_TEMPLATE
    max_context: int = 3500
    max_new_tokens: int = 32
    dtype: str = "auto"
    device: str = "auto"
    examples: int = 100  # per data file (recall: in all)
    budgets: list[float] = field(default_factory=lambda: [0.1, 0.25, 0.5])  # fractions of each context
    policies: list[str] = field(default_factory=lambda: list(QA_POLICIES))
    rebuild: int = 2
    rebuild_context: int = 1
    controller_window: int = 1024  # real model: controller trained on this many context tokens per sequence
    seed: int = 0
    progress: bool = True
    scale: ScaleConfig = field(default_factory=ScaleConfig)  # the GPU the config is meant for (dry run)

    def __post_init__(self) -> None:
        from paperlab.config import require

        single_process(self.scale, "qa.scale")
        require(all(0 < b <= 1 for b in self.budgets), "budgets", self.budgets, "fractions in (0, 1]")
        check_names(self.policies, allowed=GENERATE_POLICIES)
        require(
            not self.model or bool(self.data), "data", self.data, "LongBench JSONL file(s) when model is set"
        )
        require(self.examples >= 1, "examples", self.examples, ">= 1")


def run_qa(cfg: QAExperimentConfig, recall: Any, controller_cfg: Any) -> dict[str, Any]:
    """Score every policy at every budget; ``recall``: the recall experiment's settings (task, LM steps, threads)
    used when ``cfg.model`` is empty; ``controller_cfg``: :class:`~adore.controller.ControllerConfig`."""
    with fixed_threads(recall.threads):
        return _run_qa(cfg, recall, controller_cfg)


def _run_qa(cfg: QAExperimentConfig, recall: Any, controller_cfg: Any) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from paperlab.metrics import exact_match, qa_f1
    from paperlab.report import plot_lines, results_dir, write_results
    from paperlab.seed import seed_everything

    seed_everything(cfg.seed)
    eos = None
    if cfg.model:
        from paperlab.models import load_causal_lm, load_tokenizer

        read = {p: read_longbench(p) for p in cfg.data}  # every file checked before the model is loaded
        if all(len(rows) < 5 for rows in read.values()):
            raise DataError(
                f"qa.data {cfg.data}: too few examples to hold out any for the controller (need >= 5 in a file)"
            )
        tokenizer = load_tokenizer(cfg.model)
        model = load_causal_lm(
            cfg.model, dtype=cfg.dtype, device=cfg.device, attn_implementation="eager"
        ).eval()
        sets = {
            Path(p).stem: load_longbench(p, tokenizer, cfg.template, cfg.max_context, rows=rows)
            for p, rows in read.items()
        }
        # the controller learns from the contexts of the LAST examples of each file (at most a fifth of it); they
        # are not evaluated
        ctl_ids = []
        for key, examples in sets.items():
            n_ctl = min(max(1, controller_cfg.sequences // len(sets)), len(examples) // 5)
            ctl_ids += [e.context_ids[: cfg.controller_window] for e in examples[len(examples) - n_ctl :]]
            sets[key] = examples[: len(examples) - n_ctl][: cfg.examples]
        eos = tokenizer.eos_token_id
        settings = ("model", "dtype", "device", "template", "max_context", "controller_window")
        origin = {k: getattr(cfg, k) for k in settings}
        local = [cfg.model] if Path(cfg.model).expanduser().exists() else []
        checkpoint = controller_checkpoint(origin, controller_cfg, [*cfg.data, *local])

        def score(ids: list[int], ex: QAExample) -> float:
            text = tokenizer.decode(ids, skip_special_tokens=True).strip().split("\n")[0]
            return qa_f1(text, ex.answers)

        metric = "F1"
    else:
        model = recall_lm(recall, progress=cfg.progress)
        sets = {"recall": recall_examples(recall.task, cfg.examples, seed=cfg.seed + 2)}

        def score(ids: list[int], ex: QAExample) -> float:
            return exact_match(str(ids[0]) if ids else "", ex.answers)

        metric = "exact match"
    if cfg.model:
        controller = train_controller(
            model, ctl_ids, controller_cfg, progress=cfg.progress, checkpoint=checkpoint
        )
    else:
        controller = recall_controller(recall, model, controller_cfg, cfg.seed)
    rows = []
    for set_name, examples in sets.items():
        for fraction in cfg.budgets:
            for policy in cfg.policies:
                total = 0.0
                for ex in tqdm(
                    examples, desc=f"{set_name} {policy} @ {fraction}", disable=not cfg.progress, leave=False
                ):
                    budget = budget_tokens(fraction, ex.context_ids.numel(), cfg.rebuild)
                    ids = answer(
                        model,
                        ex,
                        policy,
                        budget,
                        controller,
                        cfg.rebuild,
                        cfg.rebuild_context,
                        cfg.max_new_tokens if cfg.model else 1,
                        eos,
                    )
                    total += score(ids, ex)
                rows.append(
                    {
                        "data": set_name,
                        "budget": f"{round(100 * fraction)}%",
                        "fraction": fraction,
                        "policy": policy,
                        metric: 100 * total / len(examples),
                        "examples": len(examples),
                    }
                )
                log.info("%s", rows[-1])
    out_dir = results_dir("adore", cfg.name)
    for set_name in sets:
        plot_lines(
            out_dir / f"{metric.replace(' ', '_')}_vs_budget-{set_name}.png",
            [100 * b for b in cfg.budgets],
            {
                p: [r[metric] for r in rows if r["policy"] == p and r["data"] == set_name]
                for p in cfg.policies
            },
            xlabel="cache budget (% of the context)",
            ylabel=f"{metric} (%)",
            title=f"{set_name}: question-agnostic KV compression",
        )
    write_results(
        out_dir,
        {"rows": rows, "metric": metric},
        rows=rows,
        columns=["data", "budget", "policy", metric, "examples"],
        title="ADORE: QA under a KV budget (context compressed before the question)",
        notes="Context prefilled and released to the budget before the question is fed; greedy answers via "
        "model.generate with an AdoreCache.",
    )
    print((out_dir / "results.md").read_text())
    return {"rows": rows, "metric": metric}
