"""The experiment's configuration: one dataclass per YAML block of ``conf/config.yaml`` (validated by
:func:`paperlab.config.from_config`), at both scales."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from paperlab.config import require
from paperlab.io import derived_key
from paperlab.scale import ScaleConfig
from profuser.chat import TEMPLATES
from profuser.schedule import ScheduleConfig
from profuser.sources import LMTrainConfig
from profuser.world import SPECIALIST_SKILLS, WorldConfig

#: method -> (schedule kind, uses fusion (lam from config) or SFT (lam = 1))
METHODS = {
    "SFT": ("training", False),
    "FuseLLM": ("training", True),
    "Inference": ("inference", True),
    "ProFuser": (None, True),  # the configured schedule
    "ProFuser-2stage": ("stages", True),  # ablation: a hard switch at fusion.schedule.switch
}


#: file endings of ``data.dataset`` read by :func:`profuser.corpus.load_conversations` rather than ``datasets``
LOCAL_SUFFIXES = (".json", ".jsonl")


def is_local_file(dataset: str) -> bool:
    """``data.dataset`` names a local JSON / JSONL file (read by :func:`profuser.corpus.load_conversations`)."""
    return bool(dataset) and (
        Path(dataset).suffix.lower() in LOCAL_SUFFIXES or Path(dataset).expanduser().is_file()
    )


def _check_template(name: str, value: str) -> None:
    require(
        not value or value in TEMPLATES,
        name,
        value,
        f"'' (the tokenizer's own) or one of {sorted(TEMPLATES)}",
    )


@dataclass
class SourceConfig:
    name: str
    model: str = "tiny"  # "tiny" (a specialist of the world, trained here) or a hub name / folder
    skill: str = ""  # tiny: the skill it specialises in
    vocab_size: int = 300  # tiny: its tokenizer's size
    family: str = "llama"  # tiny: architecture family
    chat: bool = False  # prompts through the tokenizer's chat template
    chat_template: str = ""  # the template used when the tokenizer has none (profuser.chat.TEMPLATES)
    server: str = ""  # base URL of an OpenAI-compatible server (vLLM) serving `model`, for the answers
    generation_batch: int = 0  # prompts per generate() call of this source; 0: fusion.generation_batch

    def __post_init__(self) -> None:
        require(bool(self.name), "sources[].name", self.name, "a non-empty label")
        _check_template(f"sources[{self.name}].chat_template", self.chat_template)
        require(
            self.generation_batch >= 0,
            f"sources[{self.name}].generation_batch",
            self.generation_batch,
            "0 (the fusion one) or a positive batch",
        )
        if self.server:
            require(
                self.server.startswith(("http://", "https://")),
                f"sources[{self.name}].server",
                self.server,
                "an http(s) base URL",
            )
        if self.model == "tiny":
            require(
                self.skill in SPECIALIST_SKILLS,
                f"sources[{self.name}].skill",
                self.skill,
                f"one of {SPECIALIST_SKILLS}",
            )


@dataclass
class TargetConfig:
    model: str = "tiny"
    vocab_size: int = 512
    family: str = "llama"
    layers: int = 2
    hidden: int = 64
    chat: bool = False
    chat_template: str = ""

    def __post_init__(self) -> None:
        _check_template("target.chat_template", self.chat_template)


@dataclass
class DataConfig:
    """Paper scale: the fusion corpus from the hub (ShareGPT-style ``conversations`` or two text fields)."""

    dataset: str = ""
    split: str = "train"
    format: str = "sharegpt"  # sharegpt | fields
    prompt_field: str = "prompt"
    response_field: str = "response"
    limit: int = 0  # 0 = all
    max_tokens: int = (
        2048  # samples longer than this in the target tokenizer (prompt + response) are left out
    )

    def __post_init__(self) -> None:
        require(self.format in ("sharegpt", "fields"), "data.format", self.format, "sharegpt or fields")


@dataclass
class FusionConfig:
    k: int = 10  # top-k kept per token (FuseLLM: 10)
    lam: float = 0.9  # weight of the CLM loss (FuseLLM Sec. 4.1: 0.9)
    temperature: float = 1.0
    reward: str = "rule"  # rule (the tiny world's checker) | a reward model's hub name / folder
    max_new_tokens: int = 28
    generation_batch: int = 64  # prompts per generate() call of a source (per GPU)
    represent_batch: int = 16  # samples per teacher-forced forward of a source (per GPU)
    reward_batch: int = 8  # (prompt, answer) pairs per reward-model forward
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    def __post_init__(self) -> None:
        require(self.k >= 1, "fusion.k", self.k, ">= 1")
        require(0.0 <= self.lam <= 1.0, "fusion.lam", self.lam, "in [0, 1]")
        for name in ("generation_batch", "represent_batch", "reward_batch", "max_new_tokens"):
            require(getattr(self, name) > 0, f"fusion.{name}", getattr(self, name), "> 0")


@dataclass
class TrainConfig:
    """The target's training (per-GPU ``batch``; ``scale``: launch, GPUs, precision, checkpointing)."""

    steps: int = 1200
    batch: int = 32
    grad_accum: int = 1
    lr: float = 3.0e-3
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    scheduler: str = "cosine"
    save_steps: int = 0  # 0 = no checkpoints (tiny); paper: every N steps, resumed automatically
    logging_steps: int = 10
    scale: ScaleConfig = field(default_factory=ScaleConfig)

    def __post_init__(self) -> None:
        require(self.steps > 0, "train.steps", self.steps, "> 0")
        require(self.batch > 0, "train.batch", self.batch, "> 0")
        require(self.grad_accum > 0, "train.grad_accum", self.grad_accum, "> 0")


@dataclass
class EvalConfig:
    """lm-eval on every trained model (``paperlab.evaluation.run_lm_eval``) when ``lm_eval_tasks`` is set."""

    lm_eval_tasks: list[str] = field(default_factory=list)
    lm_eval_include_path: str = ""  # a folder of task YAMLs of one's own
    lm_eval_limit: float = 0  # examples per task (0 = all; < 1 = a fraction)
    lm_eval_batch_size: int = 8
    lm_eval_num_fewshot: int | None = None

    def __post_init__(self) -> None:
        require(self.lm_eval_limit >= 0, "eval.lm_eval_limit", self.lm_eval_limit, ">= 0 (0 = all)")
        require(self.lm_eval_batch_size > 0, "eval.lm_eval_batch_size", self.lm_eval_batch_size, "> 0")


@dataclass
class ExperimentConfig:
    name: str = "tiny"
    world: WorldConfig = field(default_factory=WorldConfig)
    sources: list[SourceConfig] = field(default_factory=list)
    source_train: LMTrainConfig = field(default_factory=LMTrainConfig)
    target: TargetConfig = field(default_factory=TargetConfig)
    data: DataConfig = field(default_factory=DataConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    seeds: list[int] = field(default_factory=lambda: [0])
    progress: bool = True

    def __post_init__(self) -> None:
        require(bool(self.sources), "sources", self.sources, "at least one source")
        names = [s.name for s in self.sources]
        require(len(set(names)) == len(names), "sources[].name", names, "unique names")
        bad = [m for m in self.methods if m not in METHODS]
        require(
            not bad and bool(self.methods), "methods", self.methods, f"a non-empty subset of {list(METHODS)}"
        )
        require(bool(self.seeds), "seeds", self.seeds, "at least one seed")
        if self.is_tiny:
            require(
                self.target.model == "tiny", "target.model", self.target.model, "tiny when the sources are"
            )
            require(
                self.fusion.reward == "rule", "fusion.reward", self.fusion.reward, "rule in the tiny world"
            )
        else:
            require(
                bool(self.data.dataset), "data.dataset", self.data.dataset, "a hub data set at paper scale"
            )

    @property
    def is_tiny(self) -> bool:
        return all(s.model == "tiny" for s in self.sources)

    def results_key(self) -> str:
        """The key of what a method's run is derived from (``runs-<key>.jsonl``, ``runs/<method>-seed<seed>-<key>``):
        every setting that changes a run's result (not its name, the methods and seeds run, progress bars,
        lm-eval settings, checkpoint intervals or the layout over GPUs) and, at paper scale, a local corpus file."""
        settings = asdict(self)
        settings["train"] = {k: v for k, v in settings["train"].items() if k not in ("scale", "save_steps")}
        settings["source_train"].pop("save_steps")
        inputs = [self.data.dataset] if not self.is_tiny and is_local_file(self.data.dataset) else []
        return derived_key(settings, inputs, drop=("name", "methods", "seeds", "progress", "eval"))

    def run_folder(self, out: Path, method: str, seed: int) -> Path:
        """Where one method and seed trains (Trainer output, checkpoints, ``final/`` at paper scale)."""
        return out / "runs" / f"{method}-seed{seed}-{self.results_key()}"
