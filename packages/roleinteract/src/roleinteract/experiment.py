"""The ``eval`` experiment: ask each model every question (cached, resumable), score, report.

Models are given as short specs: ``tiny`` (a random tiny Llama built offline), ``hf:<hub name or path>``,
``endpoint:<served model>`` (with ``endpoint.base_url``), ``oracle`` and ``random`` / ``random:<seed>``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from paperlab.config import ConfigError, from_config, require
from paperlab.data import data_path, data_root
from paperlab.io import MissingFileError, atomic_write_json
from paperlab.report import results_dir
from paperlab.seed import seed_everything
from roleinteract.backends import (
    Backend,
    EndpointBackend,
    EndpointConfig,
    GenerationConfig,
    OracleBackend,
    RandomBackend,
    TransformersBackend,
)
from roleinteract.data import Item, fixture_paths, load_benchmark
from roleinteract.harness import ask_all, preference_drift, replies_from_cache, score_replies
from roleinteract.prompts import build_prompt, prompt_hash
from roleinteract.report import (
    PAPER_SOURCE,
    PUBLISHED,
    TABLE_COLUMNS,
    model_row,
    published_rows,
    write_report,
)
from roleinteract.scoring import PAPER_COLUMNS, ScoreConfig, aggregate, expected_random_columns

log = logging.getLogger(__name__)

_KINDS = ("tiny", "hf", "endpoint", "oracle", "random")


@dataclass
class EvalConfig:
    """One evaluation run (``conf/config.yaml`` mirrors it).

    data: benchmark files, absolute or relative to ``$PAPERLAB_DATA`` (``socialbench/<file>.json``).
    fixtures: also evaluate the package's hand-written fixtures (self-awareness, memory, social preference).
    fallback_to_fixtures: when ``data`` is absent (no ``$PAPERLAB_DATA``), run on the fixtures with a warning
        instead of stopping.
    models: model specs (see the module docstring).
    cache: the JSONL answer cache; default ``results/roleinteract/<name>/answers.jsonl``.
    rescore_only: score what the cache holds, never call a model.
    retry_failed: ask again the questions a backend failed on an earlier run (cached as failed; scored as
        unparsed until answered).
    """

    name: str = "eval"
    data: list[str] = field(default_factory=lambda: ["socialbench/emotional_perception.json"])
    fixtures: bool = False
    fallback_to_fixtures: bool = True
    limit: int | None = None
    models: list[str] = field(default_factory=lambda: ["tiny", "random", "oracle"])
    seed: int = 0
    cache: str = ""
    rescore_only: bool = False
    retry_failed: bool = False
    drift: bool = True
    progress: bool = True
    paper_rows: list[str] = field(default_factory=lambda: ["LLaMA-2-7B-Chat", "Qwen-72B-Chat", "GPT-4-Turbo"])
    device: str = "auto"
    dtype: str = "auto"
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)

    def __post_init__(self) -> None:
        require(bool(self.models), "models", self.models, "at least one model spec")
        for spec in self.models:
            kind = spec.split(":", 1)[0]
            require(kind in _KINDS, "models", spec, f"a spec starting with one of {', '.join(_KINDS)}")
            if kind in ("hf", "endpoint"):
                require(":" in spec and bool(spec.split(":", 1)[1]), "models", spec, f"'{kind}:<model name>'")
        require(bool(self.data) or self.fixtures, "data", self.data, "at least one file, or fixtures=true")
        require(self.limit is None or self.limit >= 1, "limit", self.limit, "null or >= 1")
        for name in self.paper_rows:
            require(name in PUBLISHED, "paper_rows", name, f"one of {', '.join(PUBLISHED)}")


def resolve_data(cfg: EvalConfig) -> tuple[list[Path], str]:
    """The files to evaluate and a label saying where they came from.

    A relative entry is a file under ``$PAPERLAB_DATA``; when that folder itself is absent (a fresh clone without
    the shared data) and ``fallback_to_fixtures`` is on, the hand-written fixtures are evaluated instead, with a
    warning. A file that is named but missing -- an absolute path, or a relative one under a data folder that
    exists -- is an error naming it, never a silent switch to the fixtures."""
    paths: list[Path] = []
    shipped, given = [], []
    for entry in cfg.data:
        p = Path(entry).expanduser()
        if p.is_absolute():
            if not p.is_file():
                raise MissingFileError(f"{p}: no such file (data entry {entry!r})")
            paths.append(p)
            given.append(p)
            continue
        root = data_root()
        if not root.is_dir():
            if not cfg.fallback_to_fixtures:
                data_path(*p.parts)  # raises DataUnavailableError naming PAPERLAB_DATA
            log.warning(
                "real data folder %s absent (data entry %r) -- evaluating the hand-written fixtures instead "
                "(set PAPERLAB_DATA to use real data)",
                root,
                entry,
            )
            return fixture_paths(), "hand-written fixtures (real data absent)"
        if not (root / p).is_file():
            raise MissingFileError(
                f"{root / p}: no such file (data entry {entry!r} under $PAPERLAB_DATA={root})"
            )
        paths.append(root / p)
        shipped.append(root / p)
    parts = []
    if shipped:
        parts.append("shipped data ($PAPERLAB_DATA)")
    if given:
        parts.append("given files")
    if cfg.fixtures:
        paths += fixture_paths()
        parts.append("hand-written fixtures")
    return paths, " + ".join(parts)


def backend_name(spec: str, cfg: EvalConfig) -> str:
    kind, _, rest = spec.partition(":")
    if kind == "tiny":
        return f"hf:tiny-seed{cfg.seed}"
    if kind == "random":
        return f"random-seed{int(rest) if rest else cfg.seed}"
    return spec if kind != "endpoint" else f"endpoint:{rest}"


def answer_settings(spec: str, cfg: EvalConfig, items: list[Item]) -> dict[str, Any] | None:
    """What, besides the model's name and the prompt, changes a model's answers: the part of the answer-cache
    key (:func:`roleinteract.harness.settings_key`) that keeps a changed setting from reusing stale answers.
    None for the oracle and random backends (their name holds their seed)."""
    kind, _, rest = spec.partition(":")
    if kind in ("oracle", "random"):
        return None
    if kind == "endpoint":
        e = cfg.endpoint
        keep = (
            "base_url", "temperature", "max_tokens", "max_tokens_open", "system", "context_tokens", "tokenizer",
        )  # fmt: skip
        return {"settings": {k: getattr(e, k) for k in keep}}
    settings: dict[str, Any] = {
        "generation": asdict(cfg.generation),
        "dtype": cfg.dtype,
        "device": cfg.device,
    }
    if kind == "tiny":  # its tokenizer is trained on the prompts of every item evaluated
        settings["tokenizer_texts"] = [prompt_hash(build_prompt(it)) for it in items]
        return {"settings": settings}
    local = Path(rest).expanduser()
    return {"settings": settings, "inputs": [local] if local.exists() else []}


def make_backend(spec: str, cfg: EvalConfig, items: list[Item]) -> Backend:
    kind, _, rest = spec.partition(":")
    if kind == "oracle":
        backend: Any = OracleBackend()
    elif kind == "random":
        backend = RandomBackend(int(rest) if rest else cfg.seed)
    elif kind == "tiny":
        backend = TransformersBackend.tiny(
            [build_prompt(it) for it in items], seed=cfg.seed, gen=cfg.generation
        )
    elif kind == "hf":
        backend = TransformersBackend.from_pretrained(
            rest, cfg.generation, dtype=cfg.dtype, device=cfg.device
        )
    else:
        backend = EndpointBackend(EndpointConfig(**{**cfg.endpoint.__dict__, "model": rest}))
    backend.settings = answer_settings(spec, cfg, items)
    return backend


def evaluate(cfg: EvalConfig, out_dir: Path | None = None) -> dict[str, Any]:
    """Run every model on the data, write the report, return the metrics."""
    seed_everything(cfg.seed)
    out = Path(out_dir) if out_dir is not None else results_dir("roleinteract", cfg.name)
    cache = Path(cfg.cache) if cfg.cache else out / "answers.jsonl"
    paths, source = resolve_data(cfg)
    items = load_benchmark(paths, limit=cfg.limit)
    log.info("%d items from %s", len(items), ", ".join(str(p) for p in paths))

    summaries: dict[str, dict[str, Any]] = {}
    drift: dict[str, Any] = {}
    for spec in cfg.models:
        name = backend_name(spec, cfg)
        if cfg.rescore_only:
            replies = replies_from_cache(cache, name, items, answer_settings(spec, cfg, items))
        else:
            backend = make_backend(spec, cfg, items)
            status = out / "progress.json"
            asking = {"progress": cfg.progress, "progress_file": status, "retry_failed": cfg.retry_failed}
            replies = ask_all(backend, items, cache, **asking)
            if cfg.drift:
                drift_of = preference_drift(backend, items, cache, **asking)
                if drift_of:
                    drift[name] = drift_of
        summaries[name] = aggregate(items, score_replies(items, replies), cfg.score)
        summaries[name]["failed"] = sum(reply is None for reply in replies.values())  # counted as unparsed

    chance = expected_random_columns(items, cfg.score)
    present = [v for v in chance.values() if v is not None]
    chance_row = {
        "model": "chance (analytic, from option counts)",
        **chance,
        "Avg": sum(present) / len(present) if present else None,
    }
    rows = (
        [model_row(name, s) for name, s in summaries.items()] + [chance_row] + published_rows(cfg.paper_rows)
    )
    notes = (
        f"Data: {source}: {', '.join(p.name for p in paths)} ({len(items)} items). Our rows score the columns "
        f"that data covers (– = no items); `Avg` is the mean of the columns present, so it is comparable to the "
        f"paper's `Avg` only when all nine are. Unparseable answers count as {cfg.score.unparsed}. "
        f"Published rows: {PAPER_SOURCE}; their EP columns use all 1,209 EP items (ours: the shipped subset)."
    )
    failed = {name: s["failed"] for name, s in summaries.items() if s["failed"]}
    if failed:
        notes += " Questions the backend failed (kept as failed, scored as unparsed; `retry_failed=true` asks them "
        notes += "again): " + ", ".join(f"{name} {n}" for name, n in failed.items()) + "."
    write_report(
        out, rows, summaries, title=f"RoleInteract / SocialBench: {cfg.name}", notes=notes, drift=drift
    )
    metrics = {
        "experiment": cfg.name,
        "data": [str(p) for p in paths],
        "source": source,
        "n_items": len(items),
        "models": summaries,
        "chance": chance,
        "drift": drift,
        "cache": str(cache),
    }
    atomic_write_json(out / "metrics.json", metrics)
    return metrics


def print_table(metrics: dict[str, Any], paper_rows: list[str]) -> None:
    from paperlab.report import markdown_table

    rows = [model_row(n, s) for n, s in metrics["models"].items()]
    chance = metrics["chance"]
    present = [v for v in chance.values() if v is not None]
    rows.append(
        {"model": "chance (analytic)", **chance, "Avg": sum(present) / len(present) if present else None}
    )
    rows += published_rows(paper_rows)
    print(markdown_table(rows, TABLE_COLUMNS))
    cols = [c for c in PAPER_COLUMNS if chance.get(c) is not None]
    print(f"{metrics['n_items']} items ({metrics['source']}); columns with data: {', '.join(cols)}")


def run(cfg: Any) -> dict[str, Any]:
    """Hydra entry: ``python -m roleinteract experiment=eval [models=[...]] ...``."""
    try:
        eval_cfg = from_config(EvalConfig, cfg)
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err)) from err
    metrics = evaluate(eval_cfg)
    print_table(metrics, eval_cfg.paper_rows)
    out = results_dir("roleinteract", eval_cfg.name)
    print(f"results: {out}/results.md, results.csv, categories.csv, scores.png, metrics.json")
    return metrics
