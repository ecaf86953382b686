"""The three experiments: ``build`` (M-Paper from the shared LaTeX papers), ``tiny`` (tiny PaperOwl on synthetic
diagrams vs caption priors) and ``paper`` (mPLUG-DocOwl-scale instruction tuning on built M-Paper JSONL; GPU)."""

from __future__ import annotations

import logging
import sys
import textwrap
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from paperlab.config import require
from paperlab.data import cache_root, data_path
from paperlab.io import DataError, derived_key
from paperlab.report import plot_lines, results_dir, write_results
from paperlab.seed import seed_everything
from paperowl.builder import BuildConfig, build
from paperowl.model import ModelConfig, PaperOwlModel, build_tokenizer
from paperowl.pretrain import prepare_tiny_tower
from paperowl.train import TrainConfig, generate, train

log = logging.getLogger(__name__)
PACKAGE = "paperowl"
#: M-Paper as published (official PaperOwl README; arXiv 2311.18248v2 Sec. 3, Table 1: samples per split).
PAPER_MPAPER = {"papers": "48,688 arXiv papers", "diagram images": "447k", "tasks": 3}
PAPER_MPAPER_SAMPLES = {  # task: (train, val, test)
    "cap": (343_546, 1_131, 1_133),
    "analysis": (267_476, 1_087, 1_195),
    "outline": (78_041, 3_425, 3_442),
}
#: Diagram captioning on the M-Paper test set (arXiv 2311.18248v2, main results table; BLEU-4 / ROUGE-L / METEOR /
#: CIDEr, x100): PaperOwl after instruction tuning and the strongest zero-shot document model it lists.
PAPER_CAPTIONING = {
    "mPLUG-PaperOwl (paper, M-Paper test)": {
        "BLEU-4": 2.37,
        "ROUGE-L": 18.31,
        "METEOR": 7.19,
        "CIDEr": 25.50,
    },
    "mPLUG-DocOwl zero-shot (paper, M-Paper test)": {
        "BLEU-4": 0.87,
        "ROUGE-L": 10.40,
        "METEOR": 3.64,
        "CIDEr": 8.08,
    },
}
#: Hand counts of the shared papers' main documents (figure/table floats), checked in the tests.
HAND_COUNTS = {"cvpr-author-kit": (2, 1), "scipy-1.0": (4, 2), "numpy-paper": (4, 0)}


@dataclass
class ExperimentConfig:
    """One experiment: ``name`` in build/tiny/paper; ``src``/``out`` default to the shared papers and the
    paperlab cache; ``train_jsonl``/``eval_jsonl`` are builder outputs for the ``paper`` experiment."""

    name: str
    build: BuildConfig = field(default_factory=BuildConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    src: str | None = None
    out: str | None = None
    train_jsonl: str | None = None
    eval_jsonl: str | None = None
    synthetic_train: int = 600
    synthetic_test: int = 60
    synthetic_size: int = 64
    max_new_tokens: int = 24
    contact_sheet: int = 8
    metrics: list[str] = field(default_factory=lambda: ["BLEU-4", "METEOR", "ROUGE-L", "CIDEr"])
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.name in ("build", "tiny", "paper"), "name", self.name, "one of build, tiny, paper")
        require(self.synthetic_train > 0, "synthetic_train", self.synthetic_train, "a positive integer")
        require(self.synthetic_test > 0, "synthetic_test", self.synthetic_test, "a positive integer")
        require(self.max_new_tokens > 0, "max_new_tokens", self.max_new_tokens, "a positive integer")
        known = {"BLEU-4", "METEOR", "ROUGE-L", "CIDEr"}
        require(
            bool(self.metrics) and set(self.metrics) <= known,
            "metrics",
            self.metrics,
            f"a subset of {sorted(known)}",
        )


def run(config: ExperimentConfig) -> dict[str, Any]:
    seed_everything(config.seed)
    return {"build": run_build, "tiny": run_tiny, "paper": run_paper}[config.name](config)


# ----------------------------------------------------------------------------------------------- build


def image_grid(items: list[tuple[Any, str]], path: Path, cols: int = 4) -> Path | None:
    """A PNG grid of ``(PIL image, title)`` pairs, titles wrapped under each other; None when ``items`` is empty."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not items:
        return None
    cols = min(cols, len(items))
    rows = (len(items) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 4.2 * rows), dpi=90, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (image, title) in zip(axes.ravel(), items, strict=False):
        ax.imshow(image.convert("RGB"))
        ax.set_title(title, fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def contact_sheet(out_dir: Path, diagrams: list[dict[str, Any]], path: Path, count: int = 8) -> Path | None:
    """A grid PNG of up to ``count`` rendered diagrams (one per paper first) with their wrapped captions."""
    from PIL import Image

    with_image = [d for d in diagrams if d.get("image")]
    firsts = list({d["paper"]: d for d in reversed(with_image)}.values())[::-1]
    chosen = (firsts + [d for d in with_image if d not in firsts])[:count]
    items = []
    for d in chosen:
        with Image.open(out_dir / d["image"]) as image:
            caption = textwrap.shorten(d["caption"], 150, placeholder=" ...")
            title = f"{d['paper']} {d['kind']} {d['number']}\n" + "\n".join(textwrap.wrap(caption, 48))
            items.append((image.convert("RGB"), title))
    return image_grid(items, path)


def run_build(config: ExperimentConfig) -> dict[str, Any]:
    import json

    src = Path(config.src) if config.src else data_path("paperowl")
    out = Path(config.out) if config.out else cache_root() / PACKAGE / "mpaper"
    start = time.time()
    summary = build(src, out, config.build)
    seconds = time.time() - start
    report = results_dir(PACKAGE, "build")
    diagrams = [
        json.loads(line) for line in (out / "meta" / "diagrams.jsonl").read_text().split("\n") if line
    ]
    sheet = contact_sheet(out, diagrams, report / "contact_sheet.png", config.contact_sheet)
    rows = []
    for name, paper in summary["papers"].items():
        hand = HAND_COUNTS.get(name)
        rows.append(
            {
                "paper": name,
                **{k: v for k, v in paper.items() if k != "main"},
                "hand count (fig/tab)": f"{hand[0]}/{hand[1]}" if hand else None,
            }
        )
    task_lines = "\n".join(f"| {k} | {v} |" for k, v in summary["task_types"].items())
    notes = (
        f"Built in {seconds:.1f} s into `{out}`; {summary['samples']} samples "
        f"({summary['tasks']}), {summary['multi_diagram_samples']} multi-diagram, {summary['images']} diagram images; "
        f"tables rendered as images: {summary['tables_rendered']}.\n\n"
        "| task_type | samples |\n| --- | --- |\n" + task_lines + "\n\n"
        "| task | samples here | published M-Paper train / val / test (Table 1) |\n| --- | --- | --- |\n"
        + "".join(
            f"| {task} | {summary['tasks'].get(task, 0)} | {' / '.join(f'{n:,}' for n in counts)} |\n"
            for task, counts in PAPER_MPAPER_SAMPLES.items()
        )
        + f"\nPublished M-Paper: {PAPER_MPAPER['papers']}, {PAPER_MPAPER['diagram images']} diagram images.\n\n"
        f"Warnings ({len(summary['warnings'])}):\n"
        + "".join(f"- `{w}`\n" for w in summary["warnings"])
        + (f"\nContact sheet: `{sheet.name}`\n" if sheet else "")
    )
    metrics = {k: v for k, v in summary.items() if k != "papers"} | {"seconds": seconds, "out": str(out)}
    write_results(report, metrics, rows=rows, title="M-Paper build from the shared LaTeX papers", notes=notes)
    log.info("build: %d samples %s -> %s", summary["samples"], summary["tasks"], report)
    print(json.dumps({"tasks": summary["tasks"], "task_types": summary["task_types"]}, indent=1))
    return metrics


# ----------------------------------------------------------------------------------------------- tiny


CAPTION_PROMPT = "Write the caption of this figure."


def synthetic_samples(n: int, seed: int, size: int):
    from paperowl.data import Sample
    from paperowl.synthetic import make_diagrams

    return [
        Sample(
            [d.image],
            f"<image>\n{CAPTION_PROMPT}",
            d.caption,
            f"{'table' if d.kind == 'table' else 'figure'}_cap",
        )
        for d in make_diagrams(n, seed=seed, size=size)
    ]


#: the tiny run saves its training state this often when no ``train.checkpoint_every`` is given
TINY_CHECKPOINT_EVERY = 100


def tiny_checkpointing(config: ExperimentConfig, model: PaperOwlModel, train_set: list) -> TrainConfig:
    """The tiny run's training settings with a checkpoint: ``train.checkpoint_path`` when given, else
    ``<paperlab cache>/paperowl/tiny/train-<key>.pt`` keyed by every setting and the data
    (:func:`paperowl.train.run_key`), saved every ``checkpoint_every`` (default 100) steps, so that an interrupted
    run resumes and a changed setting starts afresh."""
    from dataclasses import replace

    from paperowl.train import run_key, samples_key

    train_config = config.train
    if train_config.checkpoint_path is None:
        key = run_key(model, train_config, samples_key(train_set))
        path = cache_root() / PACKAGE / "tiny" / f"train-{key}.pt"
        every = train_config.checkpoint_every or TINY_CHECKPOINT_EVERY
        train_config = replace(train_config, checkpoint_path=str(path), checkpoint_every=every)
    return train_config


def train_tiny(config: ExperimentConfig, progress: bool = True):
    """Tokenizer, model, training losses, test samples and predictions of the tiny synthetic run."""
    from paperowl.synthetic import caption_vocabulary

    train_set = synthetic_samples(config.synthetic_train, config.seed, config.synthetic_size)
    test_set = synthetic_samples(config.synthetic_test, config.seed + 1000, config.synthetic_size)
    tokenizer = build_tokenizer(config.model, [*caption_vocabulary(), CAPTION_PROMPT])
    model = PaperOwlModel(config.model, tokenizer)
    clip_losses = prepare_tiny_tower(model, train_set, progress=progress)
    losses = train(model, train_set, tiny_checkpointing(config, model, train_set), progress=progress)
    predictions = generate(model, test_set, max_new_tokens=config.max_new_tokens)
    return model, clip_losses, losses, train_set, test_set, predictions


def exact_match_by_kind(predictions: list[str], samples: list[Any]) -> dict[str, float]:
    """Exact caption matches (%) per synthetic family (the caption's second word: bar / line / table) and overall."""
    hits: dict[str, list[bool]] = {}
    for p, s in zip(predictions, samples, strict=True):
        hits.setdefault(s.answer.split()[1], []).append(p == s.answer)
        hits.setdefault("all", []).append(p == s.answer)
    return {k: 100.0 * sum(v) / len(v) for k, v in sorted(hits.items())}


def run_tiny(config: ExperimentConfig) -> dict[str, Any]:
    from paperowl.evaluate import most_frequent_caption, nearest_caption, score_by_task

    start = time.time()
    model, clip_losses, losses, train_set, test_set, predictions = train_tiny(config)
    seconds = time.time() - start
    systems = {
        "tiny PaperOwl (ours)": predictions,
        "caption prior: most frequent training caption": [most_frequent_caption(train_set)] * len(test_set),
        "nearest training image (16x16 grey pixels)": nearest_caption(train_set, test_set),
    }
    scores = {name: score_by_task(p, test_set, config.metrics)["all"] for name, p in systems.items()}
    exact = {name: exact_match_by_kind(p, test_set) for name, p in systems.items()}
    from paperlab.scale import is_main_process, weights_digest, world_size

    digest = weights_digest(model)
    # every rank: equal replicas
    print(f"paperowl tiny: weights digest {digest}", file=sys.stderr, flush=True)
    if not is_main_process():  # under `accelerate launch`: rank 0 writes the report, once
        return {"weights_digest": digest}
    report = results_dir(PACKAGE, "tiny")
    plot_lines(
        report / "loss.png",
        list(range(1, len(losses) + 1)),
        {"train loss (answers only)": losses},
        xlabel="step",
        ylabel="cross-entropy",
        title="tiny PaperOwl on synthetic diagrams",
        markers=False,
    )
    nearest_captions = systems["nearest training image (16x16 grey pixels)"]
    image_grid(
        [
            (
                s.images[0],
                "\n".join(
                    textwrap.wrap(f"ours: {p}", 48)
                    + textwrap.wrap(f"nearest image: {n}", 48)
                    + textwrap.wrap(f"reference: {s.answer}", 48)
                ),
            )
            for p, n, s in list(zip(predictions, nearest_captions, test_set, strict=True))[:12]
        ],
        report / "examples.png",
    )
    kinds = [k for k in exact["tiny PaperOwl (ours)"] if k != "all"]
    rows = [
        {
            "model": name,
            **{m: None if v is None else 100.0 * v for m, v in scores[name].items()},
            "exact %": exact[name]["all"],
            **{f"exact {k} %": exact[name][k] for k in kinds},
        }
        for name in systems
    ]
    rows += [
        {"model": name, **{m: paper.get(m) for m in config.metrics}}
        for name, paper in PAPER_CAPTIONING.items()
    ]
    notes = (
        f"Synthetic chart/table captioning, {len(train_set)} train / {len(test_set)} held-out diagrams; "
        f"{config.model.vision_clip_steps} CLIP pre-training steps of the tiny tower, then {config.train.steps} "
        f"instruction-tuning steps; {seconds:.0f} s on CPU; {model.trainable_parameters():,} trainable parameters.\n"
        "Metrics from pycocoevalcap, x100 as in the paper's tables (metrics.json keeps the raw [0, 1] values); "
        "exact % = captions identical to the reference.\n"
        "Paper rows: diagram captioning on the M-Paper test set (arXiv 2311.18248v2, main results table): real "
        "papers' captions and a 7B model, so far lower scores than a closed 40-caption synthetic language; they are "
        "there for the metric ranges, not for comparison. Examples:\n\n"
        + "".join(
            f"- pred `{p}` | ref `{s.answer}`\n" for p, s in list(zip(predictions, test_set, strict=True))[:6]
        )
    )
    keys = {"tiny PaperOwl (ours)": "ours", "caption prior: most frequent training caption": "most_frequent"}
    metrics = {
        **{keys.get(name, "nearest"): scores[name] for name in systems},
        "exact_match": {keys.get(name, "nearest"): exact[name] for name in systems},
        "seconds": seconds,
        "world_size": world_size(),
        "weights_digest": digest,
        "clip_loss": [clip_losses[0], clip_losses[-1]] if clip_losses else None,
        "final_loss": losses[-1],
        "first_loss": losses[0],
        "config": asdict(config),
    }
    write_results(
        report, metrics, rows=rows, title="Tiny PaperOwl: diagram captioning", notes=notes, floatfmt=".2f"
    )
    log.info(
        "tiny: CIDEr ours %.3f, most frequent %.3f, nearest image %.3f; exact ours %.1f %%, nearest %.1f %%",
        metrics["ours"]["CIDEr"],
        metrics["most_frequent"]["CIDEr"],
        metrics["nearest"]["CIDEr"],
        exact["tiny PaperOwl (ours)"]["all"],
        exact["nearest training image (16x16 grey pixels)"]["all"],
    )
    return metrics


# ----------------------------------------------------------------------------------------------- paper


def _texts(sample: Any) -> tuple[str, str]:
    return sample.prompt, sample.answer


def run_paper(config: ExperimentConfig) -> dict[str, Any]:
    """Instruction tuning at paper scale on builder JSONL (``train_jsonl``), evaluation on ``eval_jsonl``."""
    from paperowl.data import samples_from_jsonl
    from paperowl.evaluate import score_by_task

    require(
        bool(config.train_jsonl),
        "train_jsonl",
        config.train_jsonl,
        "OUT_DIR/sft/3tasks.jsonl from `python -m paperowl build SRC_DIR OUT_DIR` (make paperowl-paper TRAIN=...)",
    )
    # both files read (and refused when missing or malformed) before any model is built or trained
    train_set = samples_from_jsonl(config.train_jsonl)
    if not train_set:
        raise DataError(f"{config.train_jsonl}: no samples (expected builder JSONL, one sample per line)")
    test_set = samples_from_jsonl(config.eval_jsonl) if config.eval_jsonl else None
    pretrained = config.model.lm or config.model.init_from
    texts = None if pretrained else [t for i in range(len(train_set)) for t in _texts(train_set[i])]
    tokenizer = build_tokenizer(config.model, texts)
    model = PaperOwlModel(config.model, tokenizer)
    if not pretrained:
        prepare_tiny_tower(model, train_set)
    data_key = derived_key({"train_jsonl": config.train_jsonl}, inputs=[config.train_jsonl])
    losses = train(model, train_set, config.train, data_key=data_key)
    report = results_dir(PACKAGE, "paper")
    metrics: dict[str, Any] = {
        "first_loss": losses[0],
        "final_loss": losses[-1],
        "train_samples": len(train_set),
    }
    if test_set is not None:
        predictions = generate(
            model,
            test_set,
            batch_size=config.train.micro_batch_size or 16,
            max_new_tokens=config.max_new_tokens,
            progress=True,
            num_workers=config.train.num_workers,
        )
        metrics["scores"] = score_by_task(predictions, test_set, config.metrics)
    write_results(report, metrics)
    return metrics
