"""Downstream fine-tuning of a pretrained SemMIM model: image-text retrieval (COCO, Flickr30K), VQA and
captioning, ``python -m semmim.finetune task=<task>`` (configs in ``conf/finetune.yaml`` + ``conf/task/``).

Every task loads pretrained weights (``init``, written by ``python -m semmim ... ++save_weights=true`` or any
pretraining checkpoint; see :func:`semmim.vlp.load_weights`), fine-tunes with the loop of pretraining
(:func:`semmim.train.fit`: AdamW, warm-up + cosine, DDP under ``accelerate launch`` / ``torchrun``) and evaluates
before and after: retrieval R@k (:func:`semmim.evaluate.retrieval`, ITM re-ranking of the ITC top ``rerank_k``),
VQA accuracy (:func:`semmim.finetune_data.vqa_accuracy`) against the majority-answer baselines, caption BLEU-4 /
ROUGE-L / CIDEr (:func:`paperlab.metrics.coco_caption_scores`) against the untrained decoder. Results go to
``results/semmim/finetune_<task>/`` (``metrics.json``, ``results.md``).

Tiny tasks (``*_tiny``) use the synthetic scene corpus; without ``init`` they first pretrain a tiny SemMIM model
(``pretrain.*``), cached in ``results/semmim/finetune_pretrain/`` and shared by the three tasks. ``init=scratch``
fine-tunes a randomly initialised model (what pretraining adds).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from paperlab.config import from_config, hydra_entry, require, setup_logging
from paperlab.device import pick_device
from paperlab.io import derived_key, existing_file
from paperlab.report import plot_lines, results_dir, write_results
from paperlab.scale import ScaleConfig, check_launch, rank_device, world_size
from paperlab.seed import seed_everything
from semmim.data import HubTokenizer, SceneConfig, WordTokenizer, make_split, vocabulary
from semmim.experiment import METHODS, ExperimentConfig, build_model
from semmim.finetune_data import QUESTION_WORDS, read_caption_images, read_vqa_file, synthetic_vqa
from semmim.finetune_tasks import RUNNERS, TaskData
from semmim.model import ModelConfig
from semmim.train import TrainConfig, is_main_process, pretrain
from semmim.vlp import LossConfig, SemMIMModel, load_weights, save_weights

log = logging.getLogger(__name__)

TASK_KINDS = ("retrieval", "vqa", "caption")


@dataclass
class DecoderConfig:
    """The caption decoder (:class:`semmim.finetune_models.CaptionDecoder`)."""

    width: int = 64
    depth: int = 2
    heads: int = 4
    beams: int = 1  # 1 = greedy

    def __post_init__(self) -> None:
        require(self.heads >= 1, "task.decoder.heads", self.heads, ">= 1")
        require(
            self.width > 0 and self.width % self.heads == 0,
            "task.decoder.width",
            self.width,
            "a multiple of heads",
        )
        require(self.depth >= 1, "task.decoder.depth", self.depth, ">= 1")
        require(self.beams >= 1, "task.decoder.beams", self.beams, ">= 1")


@dataclass
class TaskConfig:
    name: str = "vqa_tiny"
    kind: str = "vqa"  # retrieval | vqa | caption
    source: str = "synthetic"  # synthetic (the scene corpus) | files
    train_file: str = ""
    test_file: str = ""
    # > 0: train.steps = epochs x training items / (batch x GPUs); 0: train.steps as given
    epochs: float = 0.0
    warmup_epochs: float = 0.0  # with epochs > 0: train.warmup in epochs
    rerank_k: int = 8  # retrieval: ITM re-ranks the ITC top k
    itc_queue: int = 0  # retrieval: 0 = in-batch ITC, > 0 = ALBEF's momentum queue
    answers: int = 3129  # VQA: answer vocabulary size (the N most frequent training answers)
    head_lr_mult: float = 1.0  # learning rate of the new head (VQA classifier / caption decoder) / train.lr
    decoder: DecoderConfig = field(default_factory=DecoderConfig)

    def __post_init__(self) -> None:
        require(self.kind in TASK_KINDS, "task.kind", self.kind, f"one of {list(TASK_KINDS)}")
        require(self.source in ("synthetic", "files"), "task.source", self.source, "synthetic or files")
        if self.source == "files":
            for name in ("train_file", "test_file"):
                require(bool(getattr(self, name)), f"task.{name}", getattr(self, name), "a JSON file")
        require(self.epochs >= 0 and self.warmup_epochs >= 0, "task.epochs", self.epochs, ">= 0")
        require(self.rerank_k >= 1, "task.rerank_k", self.rerank_k, ">= 1")
        require(self.itc_queue >= 0, "task.itc_queue", self.itc_queue, ">= 0")
        require(self.answers >= 2, "task.answers", self.answers, ">= 2")
        require(self.head_lr_mult > 0, "task.head_lr_mult", self.head_lr_mult, "> 0")


@dataclass
class PretrainConfig:
    """Tiny tasks without ``init``: pretrain ``method`` from ``seed`` for ``train.steps`` on the scene corpus."""

    method: str = "semmim"
    seed: int = 0
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=200, warmup=20))

    def __post_init__(self) -> None:
        require(self.method in METHODS, "pretrain.method", self.method, f"one of {list(METHODS)}")


@dataclass
class FinetuneConfig:
    task: TaskConfig = field(default_factory=TaskConfig)
    init: str = (
        ""  # pretrained weights; "" = pretrain here (synthetic tasks only); "scratch" = no pretraining
    )
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    data: SceneConfig = field(default_factory=SceneConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    scale: ScaleConfig = field(default_factory=ScaleConfig)  # paperlab.scale: launch, GPUs, precision

    def __post_init__(self) -> None:
        require(
            self.scale.precision in ("fp32", "bf16-mixed"),
            "scale.precision",
            self.scale.precision,
            "fp32 or bf16-mixed",
        )
        if self.task.source == "files":
            require(bool(self.init), "init", self.init, "pretrained weights (a .pt file) for a task on files")
        else:
            require(
                self.model.image_size == self.data.image_size,
                "model.image_size",
                self.model.image_size,
                f"equal to data.image_size={self.data.image_size}",
            )


# ----------------------------------------------------------------------------------------------- data
def load_task_data(cfg: FinetuneConfig) -> TaskData:
    """The task's train / test sets and tokenizer: the word tokenizer of the scene captions for the tiny text
    encoder (synthetic questions add :data:`QUESTION_WORDS`), else the hub tokenizer of ``model.text``."""
    task, size = cfg.task, cfg.model.image_size
    if task.source == "synthetic" or cfg.model.text == "tiny":
        words = vocabulary() + (list(QUESTION_WORDS) if task.kind == "vqa" else [])
        tokenizer = WordTokenizer(words, cfg.model.max_text_len)
    else:
        tokenizer = HubTokenizer(cfg.model.text, cfg.model.max_text_len)
    if task.source == "synthetic":
        make = synthetic_vqa if task.kind == "vqa" else make_split
        train, test = make(cfg.data, "train"), make(cfg.data, "test")
        return TaskData(train, test, tokenizer, torch.arange(len(train)), torch.arange(len(test)))
    read = read_vqa_file if task.kind == "vqa" else read_caption_images
    train, test = read(task.train_file, size), read(task.test_file, size)
    return TaskData(train, test, tokenizer, train.image_of, test.image_of)


# ----------------------------------------------------------------------------------------------- init
def tiny_pretrained(cfg: FinetuneConfig, device) -> Path:
    """Pretrain ``cfg.pretrain.method`` on the scene corpus (caption words only; the default
    :class:`semmim.vlp.LossConfig` with the method's MIM switches), or reuse the weights cached for the same
    settings (model, data, pretraining, loss defaults); returns the weights file."""
    experiment = ExperimentConfig(
        name="finetune_pretrain", data=cfg.data, model=cfg.model, train=cfg.pretrain.train
    )
    key = derived_key({"experiment": asdict(experiment), "pretrain": asdict(cfg.pretrain)})
    pre = cfg.pretrain
    path = results_dir("semmim", "finetune_pretrain") / f"{pre.method}_seed{pre.seed}_{key}.pt"
    if path.is_file():
        log.info("reusing pretrained weights %s", path)
        return path
    tokenizer = WordTokenizer(vocabulary(), cfg.model.max_text_len)
    seed_everything(pre.seed)
    model = build_model(experiment, pre.method, pre.seed, tokenizer)
    train = make_split(cfg.data, "train")
    pretrain(model, train, tokenizer, pre.train, progress=cfg.progress, description="pretrain", device=device)
    model.to("cpu")
    if is_main_process():
        save_weights(model, path)
    return path


def build_vlp(cfg: FinetuneConfig, tokenizer) -> SemMIMModel:
    """The SemMIM model a task wraps: ``cfg.model`` with no MLM / MIM and the ITC queue of ``task.itc_queue``."""
    return SemMIMModel(
        dataclasses.replace(cfg.model, seed=cfg.seed),
        LossConfig(mlm=False, itc_queue=cfg.task.itc_queue),
        tokenizer.vocab_size,
        tokenizer.special_ids,
        tokenizer.mask_id,
    )


# ----------------------------------------------------------------------------------------------- run
NOTES = """\
Task `{task}` ({kind}, {source}); initialised from `{init}`; {steps} fine-tuning steps, batch {batch}, lr {lr:g};
{seconds:.0f} s (pretraining {pre_seconds:.0f} s).
{what}
Paper comparison: the SemMIM paper's fine-tuned tables could not be read, so no published numbers are quoted.
"""

WHAT = {
    "retrieval": "R@k in %: `itm_*` = the ITC top {k} re-ranked by ITM (ALBEF's protocol); the first row is the "
    "initial model (zero-shot). Test images hold colour-shape pairs never seen in training when synthetic.",
    "vqa": "VQA accuracy in % (min(1, #annotators / 3) of the predicted answer, Antol et al. 2015), overall and per "
    "question type; blind baselines answer without the image.",
    "caption": "pycocoevalcap scores (BLEU-4 and ROUGE-L in [0, 1], CIDEr unbounded) of one greedy caption "
    "(beams = {beams}) per test image; the untrained decoder is the same model before fine-tuning.",
}


def run(cfg: FinetuneConfig) -> dict:
    """Fine-tune and evaluate ``cfg.task``; writes ``results/semmim/finetune_<task>/``; returns the metrics."""
    check_launch(cfg.scale, "semmim-finetune")
    out = results_dir("semmim", f"finetune_{cfg.task.name}")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    device = rank_device() if world_size() > 1 else pick_device(cfg.device)
    start = time.time()
    init = cfg.init if cfg.init in ("", "scratch") else existing_file(cfg.init, "init")
    data = load_task_data(cfg)
    init = tiny_pretrained(cfg, device) if init == "" else init
    pre_seconds = time.time() - start
    seed_everything(cfg.seed)
    vlp = build_vlp(cfg, data.tokenizer)
    if init != "scratch":
        load_weights(vlp, init)
    log.info(
        "%s: %d training / %d test items, weights %s", cfg.task.name, len(data.train), len(data.test), init
    )
    result = RUNNERS[cfg.task.kind](cfg, data, vlp, device)
    seconds = time.time() - start
    metrics = {
        "config": asdict(cfg),
        "init": str(init),
        "seconds": seconds,
        "pretrain_seconds": pre_seconds,
        "steps": result["train"].steps,
        **result["metrics"],
        "history": result["history"],
    }
    if is_main_process():
        notes = NOTES.format(
            task=cfg.task.name,
            kind=cfg.task.kind,
            source=cfg.task.source,
            init=init,
            steps=result["train"].steps,
            batch=result["train"].batch,
            lr=result["train"].lr,
            seconds=seconds,
            pre_seconds=pre_seconds,
            what=WHAT[cfg.task.kind].format(k=cfg.task.rerank_k, beams=cfg.task.decoder.beams),
        )
        write_results(
            out, metrics, rows=result["rows"], title=f"SemMIM fine-tuning: {cfg.task.name}", notes=notes
        )
        history = result["history"]
        if history:
            plot_lines(
                out / "loss.png",
                [h["step"] for h in history],
                {k: [h[k] for h in history] for k in history[0] if k != "step"},
                xlabel="step",
                ylabel="loss",
                title=f"fine-tuning {cfg.task.name}",
                markers=False,
            )
        log.info("results in %s (%.0f s)", out, seconds)
    return metrics


def _run(cfg) -> None:
    setup_logging()
    run(from_config(FinetuneConfig, cfg))


main = hydra_entry("semmim", _run, config_name="finetune")


if __name__ == "__main__":
    main()
