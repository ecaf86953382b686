"""The scale contract: how a training entry point loads, shards and launches a model, the same on one CPU and on
eight GPUs.

A package's training config holds one :class:`ScaleConfig` (YAML block ``scale:``). With it:

- :func:`load_for_training` puts the *whole* model on the rank's own device under a distributed launch (never
  ``device_map="auto"`` when ``WORLD_SIZE > 1``: accelerate refuses to train such a model), applies the precision
  policy (``fp32``; ``bf16-mixed``: fp32 master weights under bf16 autocast; ``bf16-lora``: a peft LoRA adapter in
  fp32 on a frozen bf16 base) and the gradient-checkpointing switch. Pure bf16 training is refused: at the
  paper learning rates (5e-7 .. 1e-5) most Adam updates are below bf16's rounding step and are lost.
- :func:`load_for_inference` loads a frozen model (reference policy, teacher, reward model) on the same device.
- :func:`trainer_kwargs` turns the config into ``TrainingArguments`` fields (bf16 autocast, checkpointing, the
  process-group timeout, the DeepSpeed file or FSDP options of the launch).
- :func:`distributed_state` starts the process group with a raised timeout (NCCL's default of 10 minutes kills
  a run whose main process works alone for longer), :func:`map_sharded` shards generation-like work over ranks
  (``split_between_processes`` + ``gather_object``) so that every rank gets the full result in order, and
  :func:`assert_replicas_equal` checks at the end that DDP replicas hold the same weights.
- Launch configs ship as files (:func:`launch_config`): ``ddp``, ``fsdp`` (full shard), ``zero3`` (DeepSpeed
  ZeRO-3, the ``paperlab[deepspeed]`` extra); ``make <name>-paper LAUNCH=zero3 NPROC=8`` picks one.
- :func:`parameter_state_gib` is the quick analytic check run before any weight is loaded; the measured
  estimate is :mod:`paperlab.dryrun`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import torch

from paperlab.config import ConfigError, require

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

LAUNCHES = ("single", "ddp", "fsdp", "zero3")
#: Launches that shard parameters, gradients and optimizer state over the ranks.
SHARDED_LAUNCHES = ("fsdp", "zero3")
PRECISIONS = ("fp32", "bf16-mixed", "bf16-lora")
LAUNCH_DIR = Path(__file__).parent / "launch"


@dataclass
class LoraSpec:
    """A peft ``LoraConfig`` in YAML form. ``target_modules``: module names, or ``["all-linear"]`` (peft's
    every linear layer but the output head); add ``lm_head`` to adapt the head too (IRFT's official run)."""

    r: int = 64
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["all-linear"])

    def __post_init__(self) -> None:
        require(self.r > 0, "lora.r", self.r, "a positive rank")
        require(self.alpha > 0, "lora.alpha", self.alpha, "a positive scaling")
        require(0 <= self.dropout < 1, "lora.dropout", self.dropout, "a probability in [0, 1)")
        require(bool(self.target_modules), "lora.target_modules", self.target_modules, "at least one name")


@dataclass
class ScaleConfig:
    """How one training run is laid out on hardware.

    ``launch``: ``single`` (one process), ``ddp``, ``fsdp`` (full shard) or ``zero3`` (DeepSpeed ZeRO-3).
    ``num_gpus``: the processes of the launch (GPUs of the paper run; the dry run divides sharded state by it).
    ``gpu``/``gpu_memory_gib``: the GPU the config is meant for (the dry run's budget).
    ``precision``: ``fp32`` | ``bf16-mixed`` (fp32 master weights, bf16 autocast) | ``bf16-lora`` (frozen bf16
    base, fp32 LoRA adapter ``lora``). ``timeout_s``: the process-group timeout (seconds).
    """

    launch: str = "single"
    num_gpus: int = 1
    gpu: str = "A100-80GB"
    gpu_memory_gib: float = 80.0
    precision: str = "fp32"
    lora: LoraSpec = field(default_factory=LoraSpec)
    gradient_checkpointing: bool = False
    timeout_s: int = 7200

    def __post_init__(self) -> None:
        if isinstance(self.lora, dict):
            self.lora = LoraSpec(**self.lora)
        require(self.launch in LAUNCHES, "scale.launch", self.launch, f"one of {list(LAUNCHES)}")
        require(self.num_gpus >= 1, "scale.num_gpus", self.num_gpus, "at least 1")
        require(
            self.launch != "single" or self.num_gpus == 1,
            "scale.num_gpus",
            self.num_gpus,
            "1 with launch=single (pick ddp, fsdp or zero3 for several GPUs)",
        )
        require(self.gpu_memory_gib > 0, "scale.gpu_memory_gib", self.gpu_memory_gib, "a positive size")
        if self.precision == "bf16":
            raise ConfigError(
                "scale.precision='bf16': pure bf16 training loses most updates at small learning rates (an Adam "
                "step below bf16's rounding step leaves the weight unchanged); use 'bf16-mixed' (fp32 master "
                "weights, bf16 autocast) or 'bf16-lora' (LoRA adapter in fp32 on a bf16 base)"
            )
        require(self.precision in PRECISIONS, "scale.precision", self.precision, f"one of {list(PRECISIONS)}")
        require(self.timeout_s > 0, "scale.timeout_s", self.timeout_s, "a positive number of seconds")

    @property
    def sharded(self) -> bool:
        return self.launch in SHARDED_LAUNCHES

    @property
    def uses_lora(self) -> bool:
        return self.precision == "bf16-lora"


# ----------------------------------------------------------------------------------------------- ranks


def world_size() -> int:
    """Processes of the launch (``WORLD_SIZE``, set by accelerate/torchrun; 1 otherwise)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    return rank() == 0


def rank_device() -> torch.device:
    """This rank's own device: ``cuda:LOCAL_RANK`` under a launch with GPUs, else the first CUDA GPU, MPS or CPU.
    Accelerate's ``--cpu`` launches set ``ACCELERATE_USE_CPU``: CPU then, even where a GPU exists."""
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    from paperlab.device import pick_device

    return pick_device("auto")


def check_launch(scale: ScaleConfig, name: str = "<name>") -> None:
    """Raise :class:`ConfigError` when the processes running differ from what ``scale`` says (a paper config
    for 8 GPUs started as one process), naming the make command that launches it as configured."""
    running = world_size()
    expected = 1 if scale.launch == "single" else scale.num_gpus
    if running != expected:
        raise ConfigError(
            f"scale.launch={scale.launch!r}, scale.num_gpus={scale.num_gpus}: the config expects {expected} "
            f"process(es) but {running} run; launch it as configured with `make {name}-paper LAUNCH="
            f"{scale.launch} NPROC={scale.num_gpus}` (or override scale.launch / scale.num_gpus)"
        )


def distributed_state(timeout_s: int = 7200) -> Any:
    """accelerate's ``PartialState``, the process group started with ``timeout_s`` (call it before the Trainer or
    anything else starts the group; later calls return the same state). On one process it is a plain state."""
    from accelerate import PartialState

    if world_size() > 1 and not (torch.distributed.is_initialized()):
        cpu = rank_device().type == "cpu"
        return PartialState(cpu=cpu, timeout=timedelta(seconds=timeout_s))
    return PartialState()


def map_sharded(fn: Callable[[list[T]], list[R]], items: Sequence[T]) -> list[R]:
    """``fn(items)`` with the items split over the ranks (contiguous shards, ``split_between_processes``) and the
    results gathered back in order on *every* rank (``gather_object``). ``fn`` must return one result per item.
    Main-only writing stays with the caller (``if is_main_process(): write(...)``). One process: ``fn(items)``."""
    items = list(items)
    if world_size() == 1:
        return _checked(fn(items), items)
    from accelerate.utils import gather_object

    state = distributed_state()
    with state.split_between_processes(items) as shard:
        mine = _checked(fn(list(shard)), shard) if shard else []
    gathered = gather_object([mine])
    return [r for part in gathered for r in part]


def _checked(results: list[R], items: Sequence[Any]) -> list[R]:
    if len(results) != len(items):
        raise RuntimeError(f"map_sharded: fn returned {len(results)} results for {len(items)} items")
    return list(results)


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 over every parameter's name, shape and bytes (fp32 on CPU): equal digests, equal weights."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        h.update(name.encode())
        h.update(str(tuple(p.shape)).encode())
        h.update(p.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def assert_replicas_equal(model: torch.nn.Module) -> str:
    """Gather every rank's :func:`weights_digest` and raise ``RuntimeError`` naming the ranks that differ from
    rank 0. Returns the digest. For replicated (DDP) weights; sharded (FSDP/ZeRO-3) weights are not replicas."""
    digest = weights_digest(model)
    if world_size() == 1:
        return digest
    from accelerate.utils import gather_object

    digests = gather_object([digest])
    differ = [r for r, d in enumerate(digests) if d != digests[0]]
    if differ:
        raise RuntimeError(
            f"ranks {differ} hold other weights than rank 0 after training (digests {digests})"
        )
    return digest


# ----------------------------------------------------------------------------------------------- loading


def _param_dtype(scale: ScaleConfig) -> torch.dtype:
    return torch.bfloat16 if scale.uses_lora else torch.float32


def _placement(scale: ScaleConfig) -> torch.device | None:
    """Where the loaded weights go: the rank's device, or nowhere yet (CPU) for FSDP/ZeRO-3, whose engine moves
    and shards them."""
    return None if scale.sharded else rank_device()


def load_for_training(
    name_or_path: str | Path,
    scale: ScaleConfig,
    *,
    auto_class: str = "AutoModelForCausalLM",
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
    **kwargs: Any,
) -> Any:
    """A model to train under ``scale``: whole on the rank's device (CPU for FSDP/ZeRO-3, which place it
    themselves; with ZeRO-3 create the ``TrainingArguments`` first so transformers partitions at load), fp32
    weights for ``fp32``/``bf16-mixed``, a bf16 base with a fp32 LoRA adapter for ``bf16-lora``.
    ``auto_class`` names the transformers class (``AutoModelForSequenceClassification`` for a reward model)."""
    import transformers

    if "device_map" in kwargs and world_size() > 1:
        raise ConfigError(
            f"device_map={kwargs['device_map']!r} under a launch of {world_size()} processes: each rank would "
            "split the model over every GPU and accelerate refuses to train it; leave device_map unset"
        )
    options: dict[str, Any] = {"dtype": _param_dtype(scale), "trust_remote_code": trust_remote_code, **kwargs}
    if attn_implementation is not None:
        options["attn_implementation"] = attn_implementation
    model = getattr(transformers, auto_class).from_pretrained(str(name_or_path), **options)
    return prepare_for_training(model, scale)


def prepare_for_training(model: Any, scale: ScaleConfig, *, move: bool = True) -> Any:
    """Apply ``scale`` to a model already built (a tiny one, or one just loaded): cast it, move it to the rank's
    device (unless ``move=False``: the dry run's meta model), add the LoRA adapter, switch gradient checkpointing.
    Returns the model to train (a ``PeftModel`` for ``bf16-lora``)."""
    first = next(model.parameters())
    if first.dtype != _param_dtype(scale):
        model = model.to(_param_dtype(scale))
    place = _placement(scale) if move else None
    if place is not None and first.device != place:
        model = model.to(place)
    if scale.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        if getattr(model.config, "use_cache", False):
            model.config.use_cache = False
    if scale.uses_lora:
        from peft import LoraConfig, get_peft_model

        targets: str | list[str] = list(scale.lora.target_modules)
        if targets == ["all-linear"]:
            targets = "all-linear"
        task = "SEQ_CLS" if type(model).__name__.endswith("ForSequenceClassification") else "CAUSAL_LM"
        lora = LoraConfig(
            r=scale.lora.r,
            lora_alpha=scale.lora.alpha,
            lora_dropout=scale.lora.dropout,
            target_modules=targets,
            task_type=task,
        )
        if scale.gradient_checkpointing:
            model.enable_input_require_grads()
        model = get_peft_model(model, lora)
    log.info(
        "training model: %s, precision %s, launch %s, %d process(es)",
        type(model).__name__,
        scale.precision,
        scale.launch,
        world_size(),
    )
    return model


def load_for_inference(
    name_or_path: str | Path,
    *,
    dtype: str = "auto",
    auto_class: str = "AutoModelForCausalLM",
    trust_remote_code: bool = False,
    **kwargs: Any,
) -> Any:
    """A frozen model (reference policy, teacher, judge) whole on this rank's device, in eval mode, without
    gradients. ``dtype="auto"``: bf16 where CUDA supports it, else fp32 (:func:`paperlab.device.pick_dtype`)."""
    import transformers

    from paperlab.device import pick_dtype

    device = rank_device()
    model = getattr(transformers, auto_class).from_pretrained(
        str(name_or_path), dtype=pick_dtype(dtype, device), trust_remote_code=trust_remote_code, **kwargs
    )
    model = model.to(device).eval()
    model.requires_grad_(False)
    return model


# ----------------------------------------------------------------------------------------------- launch


def launch_config(launch: str) -> Path:
    """The shipped accelerate config file of a launch (``ddp``, ``fsdp``, ``zero3``)."""
    require(launch in LAUNCHES[1:], "scale.launch", launch, f"one of {list(LAUNCHES[1:])} for a launch file")
    return LAUNCH_DIR / f"{launch}.yaml"


def trainer_kwargs(scale: ScaleConfig) -> dict[str, Any]:
    """``TrainingArguments`` fields for ``scale``: bf16 autocast for the bf16 precisions on CUDA, activation
    (gradient) checkpointing, ``ddp_timeout``, the DeepSpeed ZeRO-3 file or the FSDP full-shard options."""
    on_cuda = rank_device().type == "cuda"
    out: dict[str, Any] = {
        "bf16": scale.precision != "fp32" and on_cuda,
        "activation_checkpointing": scale.gradient_checkpointing,
        "ddp_timeout": scale.timeout_s,
    }
    if scale.gradient_checkpointing:
        out["activation_checkpointing_kwargs"] = {"use_reentrant": False}
    if scale.launch == "zero3":
        out["deepspeed"] = str(LAUNCH_DIR / "zero3.json")
    elif scale.launch == "fsdp":
        out["fsdp"] = "full_shard auto_wrap"
        out["fsdp_config"] = {
            "activation_checkpointing": scale.gradient_checkpointing,
            "use_orig_params": scale.uses_lora,
            "sync_module_states": True,
            "cpu_ram_efficient_loading": True,
        }
        if scale.gradient_checkpointing:
            out["activation_checkpointing"] = False  # FSDP checkpoints activations itself
    if scale.launch in ("ddp", "single") and scale.uses_lora:
        out["ddp_find_unused_parameters"] = False
    return out


# ----------------------------------------------------------------------------------------------- estimate

#: Bytes per parameter held for training: weights, gradients, optimizer state (Adam: two moments, fp32).
_STATE_BYTES = {"fp32": (4, 4, 8), "bf16-mixed": (4, 4, 8)}


def parameter_state_gib(n_params: int, scale: ScaleConfig, *, trainable: int | None = None) -> float:
    """GiB per GPU of weights + gradients + Adam state for a model of ``n_params`` parameters (``trainable``
    of them trained: the LoRA adapter), divided over the GPUs for FSDP/ZeRO-3. Activations are not counted:
    the measured estimate with them is :func:`paperlab.dryrun.dry_run`."""
    if scale.uses_lora:
        train = trainable if trainable is not None else 0
        total = 2 * n_params + 16 * train
    else:
        w, g, o = _STATE_BYTES[scale.precision]
        total = (w + g + o) * n_params
    if scale.sharded:
        total /= scale.num_gpus
    return total / 2**30


def check_parameter_state(n_params: int, scale: ScaleConfig, *, trainable: int | None = None) -> float:
    """Raise :class:`ConfigError` when weights, gradients and optimizer state alone exceed the GPU, naming the
    estimate and a launch that would fit; else return the estimate in GiB. Run before loading any weight."""
    gib = parameter_state_gib(n_params, scale, trainable=trainable)
    if gib <= scale.gpu_memory_gib:
        return gib
    raise ConfigError(
        f"scale: {scale.precision} training of {n_params / 1e9:.2f}B parameters under launch={scale.launch} "
        f"on {scale.num_gpus} GPU(s) needs {gib:.1f} GiB per GPU for weights, gradients and Adam state alone, "
        f"more than {scale.gpu} ({scale.gpu_memory_gib:g} GiB); {suggest_launch(n_params, scale, trainable)}"
    )


def suggest_launch(n_params: int, scale: ScaleConfig, trainable: int | None = None) -> str:
    """A sentence naming the first of ZeRO-3 / FSDP on the same GPUs, then LoRA, whose parameter state fits."""
    from dataclasses import replace

    tries = [
        replace(scale, launch="zero3", num_gpus=max(scale.num_gpus, 8)),
        replace(scale, launch="fsdp", num_gpus=max(scale.num_gpus, 8)),
        replace(scale, launch="ddp" if scale.num_gpus > 1 else "single", precision="bf16-lora"),
    ]
    for t in tries:
        lora_params = trainable if trainable is not None else int(0.01 * n_params)
        gib = parameter_state_gib(n_params, t, trainable=lora_params if t.uses_lora else None)
        if gib <= scale.gpu_memory_gib:
            return (
                f"launch={t.launch} with {t.num_gpus} GPU(s) and precision={t.precision} would fit "
                f"({gib:.1f} GiB per GPU before activations): make <name>-paper LAUNCH={t.launch} NPROC={t.num_gpus}"
            )
    return "no shipped launch fits this model on that GPU; use more or larger GPUs"
