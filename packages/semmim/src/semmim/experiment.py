"""The SemMIM experiments end to end and their report.

Tiny scale (``semmim-tiny``, ``semmim-study``): the synthetic scene corpus of :mod:`semmim.data`; every method is
a fresh model pretrained for the same number of steps from the same seed; test retrieval (held-out colour-shape
combinations) and the colour-of-a-named-object probe go to ``results/semmim/<exp>/`` (``metrics.json``,
``results.md``/``.csv``, ``r1.png``, ``loss.png``). One line per finished (method, seed) is cached in ``runs.jsonl``
so an interrupted study resumes where it stopped; with ``train.checkpoint_every`` a run in progress is checkpointed
(``checkpoint_<method>_<seed>_<key>.pt``, atomic) and resumes mid-run to the uninterrupted result. Both carry the key
of the settings and caption files (:func:`_config_key`): a changed setting or file is not served an old run.

Paper scale (``semmim-paper``): ViT-B/16 + BERT-base on JSON caption files (see :func:`semmim.data.read_caption_file`),
with checkpoints every ``train.checkpoint_every`` steps; run it with ``accelerate launch -m semmim experiment=paper``.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
from dataclasses import asdict, dataclass, field

import torch

from paperlab.config import require
from paperlab.device import pick_device
from paperlab.io import DataError, JsonlCache, derived_key
from paperlab.report import plot_bars, plot_lines, results_dir, write_results
from paperlab.scale import ScaleConfig, check_launch, rank_device, world_size
from paperlab.seed import seed_everything
from semmim.data import (
    COLOURS,
    SHAPES,
    CaptionSet,
    HubTokenizer,
    SceneConfig,
    WordTokenizer,
    make_split,
    read_caption_file,
    vocabulary,
)
from semmim.evaluate import attribute_probes, retrieval
from semmim.model import ModelConfig
from semmim.train import TrainConfig, is_main_process, pretrain
from semmim.vlp import LossConfig, MIMConfig, SemMIMModel, save_weights

log = logging.getLogger(__name__)

#: method -> MIM settings on top of ITC + ITM + MLM (None: no MIM)
METHODS: dict[str, dict | None] = {
    "base": None,  # ITC + ITM + MLM
    "pixel": {"target": "pixels", "masking": "random", "agreement": False},  # + random-mask pixel MIM
    # pixel targets under SemMIM's text-guided masking: tells the target's part from the masking's part
    "pixel_text_mask": {"target": "pixels", "masking": "text", "agreement": False},
    "semmim": {"target": "semantic", "masking": "text", "text_in_target": True, "agreement": True},
    "semmim_random_mask": {
        "target": "semantic",
        "masking": "random",
        "text_in_target": True,
        "agreement": True,
    },
    "semmim_no_text_target": {
        "target": "semantic",
        "masking": "text",
        "text_in_target": False,
        "agreement": True,
    },
    "semmim_no_agreement": {
        "target": "semantic",
        "masking": "text",
        "text_in_target": True,
        "agreement": False,
    },
    "feature": {"target": "features", "masking": "text", "text_in_target": True, "agreement": False},
}


@dataclass
class CorpusConfig:
    """``synthetic`` (the scene corpus of ``data``) or JSON caption files (paper scale)."""

    kind: str = "synthetic"
    train_file: str = ""
    test_file: str = ""
    datasets: list[str] = field(default_factory=list)  # what the files hold (documentation of the recipe)

    def __post_init__(self) -> None:
        require(self.kind in ("synthetic", "files"), "corpus.kind", self.kind, "synthetic or files")
        if self.kind == "files":
            require(bool(self.train_file), "corpus.train_file", self.train_file, "a JSON caption file")


@dataclass
class ExperimentConfig:
    name: str = "tiny"
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    data: SceneConfig = field(default_factory=SceneConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    methods: list[str] = field(default_factory=lambda: ["base", "pixel", "semmim"])
    seeds: list[int] = field(default_factory=lambda: [0])
    rerank_k: int = 8
    device: str = "auto"
    progress: bool = True
    # write each run's final weights to results/semmim/<name>/<method>_seed<seed>.pt (the init of semmim.finetune)
    save_weights: bool = False
    # the hardware layout (paperlab.scale): launch / num_gpus checked against the processes running; precision
    # fp32 | bf16-mixed (the forward under bf16 autocast, fp32 master weights)
    scale: ScaleConfig = field(default_factory=ScaleConfig)

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in METHODS]
        require(
            not bad and bool(self.methods), "methods", self.methods, f"a non-empty subset of {list(METHODS)}"
        )
        require(bool(self.seeds), "seeds", self.seeds, "at least one seed")
        require(self.rerank_k >= 1, "rerank_k", self.rerank_k, ">= 1")
        require(
            self.scale.precision in ("fp32", "bf16-mixed"),
            "scale.precision",
            self.scale.precision,
            "fp32 or bf16-mixed (the whole model trains: no LoRA)",
        )
        if self.corpus.kind == "synthetic":
            require(
                self.model.image_size == self.data.image_size,
                "model.image_size",
                self.model.image_size,
                f"equal to data.image_size={self.data.image_size}",
            )


def method_loss(base: LossConfig, method: str) -> LossConfig:
    """The loss settings of ``method``: ``base`` with MIM off (``base``) or with the method's MIM switches."""
    spec = METHODS[method]
    mim = MIMConfig(**{**asdict(base.mim), "enabled": spec is not None, **(spec or {})})
    return dataclasses.replace(base, mim=mim)


def build_model(cfg: ExperimentConfig, method: str, seed: int, tokenizer) -> SemMIMModel:
    model_cfg = dataclasses.replace(cfg.model, seed=seed)
    return SemMIMModel(
        model_cfg,
        method_loss(cfg.loss, method),
        tokenizer.vocab_size,
        tokenizer.special_ids,
        tokenizer.mask_id,
    )


def _config_key(cfg: ExperimentConfig) -> str:
    """The key of a run's cache line and checkpoint: every setting that changes a (method, seed) run, and the
    caption files' path, size and modification time (:func:`paperlab.io.derived_key`)."""
    settings = asdict(cfg)
    for name in ("checkpoint_every", "workers"):  # when to checkpoint, how many decoders: not the result
        settings["train"].pop(name)
    files = [cfg.corpus.train_file, cfg.corpus.test_file] if cfg.corpus.kind == "files" else []
    skip = ("methods", "seeds", "progress", "name", "save_weights")
    return derived_key(settings, [f for f in files if f], drop=skip)


def run_one(
    cfg, method, seed, train: CaptionSet, test: CaptionSet, tokenizer, device, checkpoint=None, weights=None
) -> dict:
    """Pretrain one method from one seed and evaluate it: ``{"method", "seed", metrics..., "history"}``;
    ``checkpoint``: the file to save to every ``train.checkpoint_every`` steps and to resume from; ``weights``:
    where to write the final weights (:func:`semmim.vlp.save_weights`, rank 0 only)."""
    seed_everything(seed)
    model = build_model(cfg, method, seed, tokenizer)
    history = pretrain(
        model,
        train,
        tokenizer,
        cfg.train,
        progress=cfg.progress,
        description=f"{method} seed {seed}",
        device=device,
        checkpoint=checkpoint,
        precision=cfg.scale.precision,
    )
    model.to("cpu")
    if weights is not None and is_main_process():
        save_weights(model, weights)
    metrics = retrieval(model, test, tokenizer, cfg.rerank_k)
    if test.scenes and test.scenes[0]:
        probes = attribute_probes(model, test, tokenizer, ("colour", "shape"))
        metrics.update({f"probe_{a}_acc": acc for a, acc in probes.items()})
    return {"method": method, "seed": seed, **metrics, "history": history}


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


COLUMNS = (
    "itm_t2i_R@1",
    "itm_i2t_R@1",
    "itc_t2i_R@1",
    "itc_i2t_R@1",
    "itc_t2i_R@5",
    "itc_t2i_R@10",
    "probe_colour_acc",
    "probe_shape_acc",
    "itm_t2i_err_place",
    "itm_t2i_err_bind",
    "itm_t2i_err_attr",
)

NOTES = """\
Test set: images that each contain at least one (colour, shape) pair never seen in pretraining. `itc_*`: ranking by
the ITC embeddings; `itm_*`: the top {k} ITC candidates re-ranked by the ITM head (ALBEF's protocol). `probe`:
choose the colour (shape) of each named object among {n} ({n_shape}) captions that differ only in it, by ITM (chance
{chance:.1f}% ({chance_shape:.0f}%)).
`err_*`: % of text queries whose ITM top-1 image is wrong and holds the same objects in other places (`place`), the
same sizes, colours and shapes paired differently (`bind`), or another object (`attr`).
Mean ± std over seeds {seeds}; {steps} pretraining steps per run, batch {batch}.

Paper comparison: the SemMIM paper reports fine-tuned COCO/Flickr30K retrieval, COCO captioning and VQA at
ViT-B/16 + BERT-base scale (abstract). Its tables could not be read here, so no published numbers are quoted; this
tiny experiment only checks the direction of its claim (MIM with semantic, text-guided targets helps fine-grained
cross-modal alignment over ITC+ITM+MLM and over pixel MIM).
"""


def report(cfg: ExperimentConfig, runs: list[dict], out) -> dict:
    rows, summary = [], {}
    for method in cfg.methods:
        mine = [r for r in runs if r["method"] == method]
        row: dict = {"method": method, "seeds": len(mine)}
        for col in COLUMNS:
            if all(col in r for r in mine):
                mean, std = _mean_std([r[col] for r in mine])
                row[col] = f"{mean:.1f} ± {std:.1f}"
                summary[f"{method}/{col}"] = mean
                summary[f"{method}/{col}_std"] = std
        rows.append(row)
    base = [r for r in runs if r["method"] == "base"]
    if base and any(r["method"] == "semmim" for r in runs):
        sem = {r["seed"]: r for r in runs if r["method"] == "semmim"}
        diffs = [sem[r["seed"]]["itm_t2i_R@1"] - r["itm_t2i_R@1"] for r in base if r["seed"] in sem]
        mean, std = _mean_std(diffs) if diffs else (0.0, 0.0)
        sem = std / len(diffs) ** 0.5 if diffs else 0.0
        summary["semmim_minus_base_t2i_R@1_per_seed"] = diffs
        summary["semmim_minus_base_t2i_R@1_mean"] = mean
        summary["semmim_minus_base_t2i_R@1_sem"] = sem
        summary["semmim_wins"] = sum(d > 0 for d in diffs)
        summary["semmim_beats_base_t2i_R@1"] = bool(diffs) and mean > 0
        summary["semmim_beats_base_by_2_sem"] = bool(diffs) and len(diffs) > 1 and mean > 2 * sem
    metrics = {
        "config": asdict(cfg),
        "summary": summary,
        "runs": [{k: v for k, v in r.items() if k != "history"} for r in runs],
    }
    notes = NOTES.format(
        k=cfg.rerank_k,
        n=len(COLOURS),
        chance=100 / len(COLOURS),
        n_shape=len(SHAPES),
        chance_shape=100 / len(SHAPES),
        seeds=cfg.seeds,
        steps=cfg.train.steps,
        batch=cfg.train.batch,
    )
    sem_runs = {r["seed"]: r for r in runs if r["method"] == "semmim"}
    gaps = []
    for method in cfg.methods:
        other = {r["seed"]: r for r in runs if r["method"] == method}
        diffs = [sem_runs[s]["itm_t2i_R@1"] - r["itm_t2i_R@1"] for s, r in other.items() if s in sem_runs]
        if method == "semmim" or len(diffs) < 2:
            continue
        mean, std = _mean_std(diffs)
        gaps.append(
            f"{method}: {mean:+.2f} ± {std / len(diffs) ** 0.5:.2f} (s.e.), SemMIM ahead in "
            f"{sum(d > 0 for d in diffs)} of {len(diffs)}"
        )
    if "semmim_minus_base_t2i_R@1_per_seed" in summary:
        diffs = summary["semmim_minus_base_t2i_R@1_per_seed"]
        notes += (
            f"\nClaim check (SemMIM - base, ITM t2i R@1, paired by seed): "
            f"{', '.join(f'{d:+.1f}' for d in diffs)}; mean {summary['semmim_minus_base_t2i_R@1_mean']:+.2f} "
            f"± {summary['semmim_minus_base_t2i_R@1_sem']:.2f} (s.e.), SemMIM ahead in {summary['semmim_wins']} of "
            f"{len(diffs)} seeds; a clear win (mean > 2 s.e.): {summary['semmim_beats_base_by_2_sem']}.\n"
        )
    if gaps:
        notes += "\nSemMIM minus each method (ITM t2i R@1, paired by seed): " + "; ".join(gaps) + ".\n"
    write_results(out, metrics, rows=rows, title=f"SemMIM {cfg.name}: held-out combinations", notes=notes)
    cats = ["itm_t2i_R@1", "itm_i2t_R@1", "itc_t2i_R@1", "probe_colour_acc", "probe_shape_acc"]
    plot_bars(
        out / "r1.png",
        cats,
        {m: [summary.get(f"{m}/{c}", 0.0) for c in cats] for m in cfg.methods},
        ylabel="% (mean over seeds)",
        title=f"SemMIM {cfg.name}: test (held-out combinations)",
    )
    first = {m: next(r for r in runs if r["method"] == m) for m in cfg.methods}
    steps = [h["step"] for h in first[cfg.methods[0]]["history"]]
    plot_lines(
        out / "loss.png",
        steps,
        {
            f"{m} (ITC+ITM+MLM)": [h.get("itc", 0) + h.get("itm", 0) + h.get("mlm", 0) for h in r["history"]]
            for m, r in first.items()
        },
        xlabel="step",
        ylabel="loss",
        title="shared losses, first seed",
        markers=False,
    )
    return summary


def load_corpus(cfg: ExperimentConfig):
    """(train, test, tokenizer): the scene corpus, or the caption files (read and checked first: a bad file stops
    the run before anything is built) with the word tokenizer of the scene captions for ``model.text: tiny``, else
    the hub tokenizer of ``model.text``."""
    if cfg.corpus.kind == "synthetic":
        tokenizer = WordTokenizer(vocabulary(), cfg.model.max_text_len)
        return make_split(cfg.data, "train"), make_split(cfg.data, "test"), tokenizer
    files = [cfg.corpus.train_file, cfg.corpus.test_file or cfg.corpus.train_file]
    train, test = (read_caption_file(f, cfg.model.image_size) for f in files)
    if cfg.model.text != "tiny":
        return train, test, HubTokenizer(cfg.model.text, cfg.model.max_text_len)
    limit = cfg.model.max_text_len - 2  # [CLS] and [SEP]
    for path, split in zip(files, (train, test), strict=True):
        for i, caption in enumerate(split.captions, start=1):
            if len(caption.split()) > limit:
                raise DataError(
                    f"{path}: item {i}: the caption has {len(caption.split())} words; model.max_text_len="
                    f"{cfg.model.max_text_len} allows {limit}"
                )
    return train, test, WordTokenizer(vocabulary(), cfg.model.max_text_len)


def run(cfg: ExperimentConfig) -> dict:
    """Every (method, seed) of ``cfg``, cached per run, then the report; returns the summary."""
    check_launch(cfg.scale, "semmim")
    out = results_dir("semmim", cfg.name)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    device = rank_device() if world_size() > 1 else pick_device(cfg.device)  # under DDP: this rank's GPU
    train, test, tokenizer = load_corpus(cfg)
    log.info("%d training pairs, %d test pairs, %d words", len(train), len(test), tokenizer.vocab_size)
    cache = JsonlCache(out / "runs.jsonl")
    key = _config_key(cfg)
    runs = []
    for method in cfg.methods:
        for seed in cfg.seeds:
            name = f"{key}/{method}/{seed}"
            weights = out / f"{method}_seed{seed}.pt" if cfg.save_weights else None
            if name not in cache or (weights is not None and not weights.is_file()):
                ckpt = out / f"checkpoint_{method}_{seed}_{key}.pt" if cfg.train.checkpoint_every else None
                result = run_one(cfg, method, seed, train, test, tokenizer, device, ckpt, weights)
                if not is_main_process():  # under DDP every rank evaluates; rank 0 alone writes
                    runs.append({"key": name, **result})
                    continue
                cache.append({"key": name, **result})
                log.info(
                    "%s seed %d: t2i R@1 %.1f (itm) %.1f (itc), probe colour %.1f shape %.1f",
                    method,
                    seed,
                    result["itm_t2i_R@1"],
                    result["itc_t2i_R@1"],
                    result.get("probe_colour_acc", float("nan")),
                    result.get("probe_shape_acc", float("nan")),
                )
            runs.append(cache.get(name))
    if not is_main_process():
        return {}
    summary = report(cfg, runs, out)
    log.info("results in %s", out)
    return summary
