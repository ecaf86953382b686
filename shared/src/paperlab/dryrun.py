"""Dry run: a paper model built at its real shape on fake tensors, one training step and one evaluation step at the
paper's batch, lengths, precision and sharding, and the estimated peak GiB per GPU by category.

The model is built with ``transformers`` from its architecture file (a small YAML shipped in the package, citing
the model card: the hub's ``config.json`` is not reachable here), or by the package's own ``ModelShape.builder``
(a vision-language model; then the spec's ``batch`` and ``eval_step`` make its inputs), under PyTorch's
``FakeTensorMode``: no weight is
allocated, every op only computes shapes. ``torch.distributed._tools.mem_tracker.MemTracker`` records what each
tensor is (parameter, gradient, optimizer state, activation, temporary) at the step's peak. The categories are
then laid out for the launch: FSDP / ZeRO-3 divide parameters, gradients and optimizer state by the GPUs and add
the gathered full weights of two decoder layers (the one computing and the one prefetched); DDP and a single
process keep everything. Frozen models beside the trained one count as bf16 weights: ``frozen`` ones (a reference
policy the trainer wraps) sharded like it, ``replicated`` ones (a judge) whole on every GPU. Optimizer state is
created before the tracked step (as from a real run's second step), and the step's overall peak and the peaks of its
forward and backward are each laid out for the launch: the largest is the estimate.

Limits, said in every report: CPU kernels stand in for the GPU's (attention through the SDPA op, which saves no
``seq x seq`` matrix, as flash attention does not); the CUDA context, NCCL buffers, DDP's gradient buckets and
allocator fragmentation are not in the tensors and are budgeted by ``overhead_gib`` (2 GiB by default).

``python -m paperlab.dryrun <package> experiment=<exp>`` runs ``<package>.scale.dry_run_specs(cfg)`` and writes
``results/<package>/paper-dry/<exp>.{json,md}``; it exits 1 when a step does not fit its GPU.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from paperlab.config import ConfigError, require
from paperlab.scale import ScaleConfig, suggest_launch

log = logging.getLogger(__name__)

GIB = 2**30
CATEGORIES = ("parameters", "gradients", "optimizer", "activations", "frozen", "gathered", "other")
_MT = {
    "Parameter": "parameters",
    "Buffer": "other",
    "Gradient": "gradients",
    "Activation": "activations",
    "Temp": "activations",
    "Optstate": "optimizer",
    "Other": "other",
}


@dataclass
class ModelShape:
    """A model's architecture, as the hub's ``config.json`` has it: ``model_type`` and the ``config`` fields
    passed to ``AutoConfig.for_model``. ``source`` cites the model card / config the numbers come from."""

    name: str
    model_type: str
    config: dict[str, Any]
    source: str = ""
    auto_class: str = "AutoModelForCausalLM"
    attn_implementation: str = "sdpa"
    """``eager`` for the architectures without an SDPA path in transformers (DeBERTa, MPT)."""
    builder: Callable[[torch.dtype, ScaleConfig], torch.nn.Module] | None = None
    """A model that is not one ``transformers`` auto class (a vision-language model of a package): called as
    ``builder(dtype, scale)`` under the meta device, it returns the model as the package's training code prepares
    it for ``scale`` (dtype, LoRA, gradient checkpointing, frozen towers with ``requires_grad=False``); ``config``
    then only describes the shape for the report. The spec's ``batch`` and ``eval_step`` give its inputs."""

    def build_config(self) -> Any:
        from transformers import AutoConfig

        cfg = AutoConfig.for_model(self.model_type, **self.config)
        cfg._attn_implementation = self.attn_implementation
        return cfg


def load_shape(path: str | Path) -> ModelShape:
    """Read an architecture file (YAML with ``name``, ``model_type``, ``config``, ``source``); a missing file or
    field names the file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such architecture file")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with name, model_type, config")
    missing = [k for k in ("name", "model_type", "config") if k not in data]
    if missing:
        raise ConfigError(f"{path}: missing field(s) {missing}")
    try:
        return ModelShape(**data)
    except TypeError as err:
        raise ConfigError(f"{path}: {err}") from err


@dataclass
class DryRunSpec:
    """One training setting to estimate. ``batch_size`` is the per-GPU micro-batch of sequences of ``seq_len``
    tokens (a preference pair counts as two sequences: give ``2 x`` pairs); ``grad_accum`` only enters the tokens
    per step. Evaluation: ``eval_batch_size`` prompts of ``eval_prompt_len`` tokens generating
    ``eval_new_tokens`` (a KV cache of the full length), or one forward of ``seq_len`` when that is 0.
    ``train=False``: an inference-only phase (a frozen teacher answering): the model is built in the evaluation
    precision (bf16 unless ``fp32``), no training step runs, and the report's training columns are empty."""

    label: str
    model: ModelShape
    scale: ScaleConfig
    batch_size: int
    seq_len: int
    grad_accum: int = 1
    eval_batch_size: int = 0
    eval_prompt_len: int = 0
    eval_new_tokens: int = 0
    frozen: list[ModelShape] = field(default_factory=list)
    replicated: list[ModelShape] = field(default_factory=list)
    """Frozen models loaded whole on every GPU whatever the launch (a judge through ``load_for_inference``);
    ``frozen`` ones are sharded with the trained model under FSDP / ZeRO-3 (a reference policy the trainer wraps)."""
    optimizer: str = "adamw"
    overhead_gib: float = 2.0
    loss: Callable[[Any, dict[str, torch.Tensor]], torch.Tensor] | None = None
    train: bool = True
    batch: Callable[[Any, int], dict[str, Any]] | None = None
    """``batch(model, batch_size)``: one training micro-batch for ``loss`` (default: random token ids of
    ``seq_len``), built on fake tensors; a model with a ``builder`` needs one (images, frames, captions)."""
    eval_step: Callable[[Any, DryRunSpec], Any] | None = None
    """``eval_step(model, spec)``: one evaluation step at ``eval_batch_size`` (default: a forward or a generation
    of token ids); a model with a ``builder`` needs one."""

    def __post_init__(self) -> None:
        if self.model.builder is not None:
            require(self.batch is not None, f"{self.label}.batch", None, "a batch function for a built model")
            if self.eval_batch_size:
                require(
                    self.eval_step is not None,
                    f"{self.label}.eval_step",
                    None,
                    "an eval step for a built model",
                )
        if not self.train:
            require(self.eval_batch_size > 0, f"{self.label}.eval_batch_size", 0, "a batch when train=False")
        require(self.batch_size > 0, f"{self.label}.batch_size", self.batch_size, "a positive micro-batch")
        require(self.seq_len > 0, f"{self.label}.seq_len", self.seq_len, "a positive length")
        require(
            self.optimizer in ("adamw", "rmsprop", "sgd"),
            f"{self.label}.optimizer",
            self.optimizer,
            "adamw, rmsprop or sgd",
        )

    @property
    def tokens_per_step(self) -> int:
        """Tokens of one optimizer step over all GPUs; an inference-only phase: of one generation call."""
        if not self.train:
            return self.eval_batch_size * (self.eval_prompt_len + self.eval_new_tokens) * self.scale.num_gpus
        return self.batch_size * self.seq_len * self.grad_accum * self.scale.num_gpus


@dataclass
class DryRunReport:
    label: str
    model: str
    source: str
    launch: str
    num_gpus: int
    gpu: str
    gpu_memory_gib: float
    precision: str
    n_params: int
    trainable_params: int
    tokens_per_step: int
    train_gib: dict[str, float]
    eval_gib: dict[str, float]
    seconds: float

    @property
    def peak_gib(self) -> float:
        return max(self.train_gib.get("total", 0.0), self.eval_gib.get("total", 0.0))

    @property
    def peak_step(self) -> dict[str, float]:
        """The categories of the larger of the two steps."""
        if self.train_gib.get("total", 0.0) >= self.eval_gib.get("total", 0.0):
            return self.train_gib
        return self.eval_gib

    @property
    def fits(self) -> bool:
        return self.peak_gib <= self.gpu_memory_gib

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "peak_gib": self.peak_gib, "fits": self.fits}


# ----------------------------------------------------------------------------------------------- tracking


def _optimizer(name: str, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if name == "adamw":
        return torch.optim.AdamW(params, lr=1e-5, foreach=False)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=1e-5, foreach=False)
    return torch.optim.SGD(params, lr=1e-5, foreach=False)


def _tracker(watch: torch.nn.Module | None = None) -> Any:
    """PyTorch's ``MemTracker``, taught that a frozen parameter (a LoRA base weight) takes no gradient hook, and
    keeping per-module peaks for ``watch`` only: the stock tracker updates the peak of every module it has seen on
    every allocation, quadratic in the layers (over 15 minutes for a 7B with LoRA on every projection)."""
    from torch.distributed._tools.mem_tracker import _TOTAL_KEY, MemTracker

    class _Tracker(MemTracker):
        def _track_module_params_and_buffers(self, module: Any, install_grad_hooks: bool = True) -> Any:
            hooks = install_grad_hooks and all(p.requires_grad for p in module.parameters())
            return super()._track_module_params_and_buffers(module, install_grad_hooks=hooks)

        def _update_peak_stats(self, peak_state: Any) -> None:
            current = self._curr_mem_snap
            stats = self.memory_tracking.get(watch) if watch is not None else None
            if (
                stats is not None
                and stats.mod_fqn in self._mod_tracker.parents
                and peak_state in stats.snapshots
            ):
                for dev, snap in current.items():
                    if stats.local_peak.get(dev, 0) < snap[_TOTAL_KEY]:
                        stats.local_peak[dev] = snap[_TOTAL_KEY]
                        stats.snapshots[peak_state][-1][dev] = dict(snap)
            for dev, snap in current.items():
                if self._peak_mem.get(dev, 0) < snap[_TOTAL_KEY]:
                    self._peak_mem[dev] = snap[_TOTAL_KEY]
                    self._peak_mem_snap[dev] = dict(snap)

    return _Tracker()


def _snapshot(tracker: Any) -> dict[str, float]:
    return _categories(tracker.get_tracker_snapshot("peak"))


def _categories(snapshot: dict[Any, dict[Any, int]]) -> dict[str, float]:
    out = dict.fromkeys(CATEGORIES, 0.0)
    for per_device in snapshot.values():
        for kind, nbytes in per_device.items():
            key = _MT.get(getattr(kind, "value", str(kind)))
            if key is not None:
                out[key] += nbytes / GIB
    return out


def _init_optimizer_state(opt: torch.optim.Optimizer, params: list[torch.nn.Parameter]) -> None:
    """One untracked step on zero gradients: the optimizer state exists before the tracked step, as it does from
    the second step of a real run on (Adam creates its moments lazily on the first ``step``)."""
    for p in params:
        p.grad = torch.zeros_like(p)
    opt.step()
    opt.zero_grad(set_to_none=True)


def _train_moments(tracker: Any, step: torch.nn.Module) -> list[dict[str, float]]:
    """The categories at the step's overall peak and at the peaks of its forward and its backward."""
    from torch.distributed._tools.mem_tracker import _ModState

    moments = [_snapshot(tracker)]
    stats = tracker.memory_tracking.get(step)
    if stats is not None:
        for state in (_ModState.PEAK_FW, _ModState.PEAK_BW):
            for snap in stats.snapshots.get(state, [])[-1:]:
                moments.append(_categories(snap))
    return moments


def _default_loss(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    out = model(**batch)
    return out.loss if getattr(out, "loss", None) is not None else out.logits.float().mean()


def _batch(model: Any, batch_size: int, seq_len: int, vocab: int, *, labels: bool) -> dict[str, torch.Tensor]:
    ids = torch.randint(0, vocab, (batch_size, seq_len))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if labels and _is_causal(model):
        batch["labels"] = ids
    return batch


def _is_causal(model: Any) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return type(base).__name__.endswith("ForCausalLM")


def _build(shape: ModelShape, dtype: torch.dtype, scale: ScaleConfig | None = None) -> Any:
    if shape.builder is not None:
        return shape.builder(dtype, scale or ScaleConfig())
    import transformers

    cls = getattr(transformers, shape.auto_class)
    return cls.from_config(shape.build_config(), dtype=dtype)


class _Step(torch.nn.Module):
    """One call of ``fn(model, *args)`` as a module: MemTracker then sees the model under a parent, so a step that
    calls the model twice (prefill + decode, chosen + rejected) is tracked as one iteration."""

    def __init__(self, fn: Callable[..., Any], model: torch.nn.Module) -> None:
        super().__init__()
        self.fn, self.model = fn, model

    def forward(self, *args: Any) -> Any:
        return self.fn(self.model, *args)


def _to_fake(model: torch.nn.Module, mode: Any) -> None:
    """Replace the meta parameters and buffers of ``model`` by fake CPU tensors of ``mode``, in place (tied weights
    stay tied). Built on meta, the model can be cast and wrapped (peft) freely; fake tensors cannot be cast."""
    convert = mode.fake_tensor_converter
    cpu = torch.device("cpu")
    done: dict[int, torch.nn.Parameter] = {}
    for module in model.modules():
        for key, p in list(module._parameters.items()):
            if p is not None:
                if id(p) not in done:
                    fake = convert.from_meta_and_device(mode, p, cpu)
                    done[id(p)] = torch.nn.Parameter(fake, requires_grad=p.requires_grad)
                module._parameters[key] = done[id(p)]
        for key, b in list(module._buffers.items()):
            if b is not None:
                module._buffers[key] = convert.from_meta_and_device(mode, b, cpu)


def _bf16_gib(shape: ModelShape) -> float:
    with torch.device("meta"):
        return sum(p.numel() for p in _build(shape, torch.bfloat16).parameters()) * 2 / GIB


def _largest_layer_params(model: torch.nn.Module) -> int:
    """Parameters of the biggest repeated block (a decoder layer): what FSDP / ZeRO-3 gather at once."""
    sizes = [
        sum(p.numel() for p in m.parameters())
        for m in model.modules()
        if isinstance(m, torch.nn.ModuleList)
        for m in m
    ]
    return max(sizes) if sizes else 0


def dry_run(spec: DryRunSpec) -> DryRunReport:
    """Build ``spec.model`` on fake tensors, run one training step (forward, backward, optimizer) and one
    evaluation step, and lay the tracked peak out per GPU for ``spec.scale`` (see the module docstring)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from paperlab.scale import prepare_for_training

    start = time.perf_counter()
    scale = spec.scale
    train_dtype = torch.bfloat16 if scale.uses_lora else torch.float32
    if not spec.train:
        train_dtype = torch.float32 if scale.precision == "fp32" else torch.bfloat16
    autocast = scale.precision != "fp32"
    vocab = int(spec.model.config.get("vocab_size", 32000))
    single = dataclasses.replace(scale, launch="single", num_gpus=1)
    with torch.device("meta"):
        model = _build(spec.model, train_dtype, single)
        n_params = sum(p.numel() for p in model.parameters())
        layer_params = _largest_layer_params(model)
        if spec.model.builder is not None:  # prepared by its package's own code
            model = model.train() if spec.train else model.requires_grad_(False)
        elif spec.train:
            model = prepare_for_training(model, single, move=False).train()
        else:
            model.requires_grad_(False)
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    _to_fake(model, mode)
    with mode, torch.device("cpu"):
        trainable = [p for p in model.parameters() if p.requires_grad]
        n_trainable = sum(p.numel() for p in trainable)
        moments = _train_step(model, spec, trainable, vocab, autocast) if spec.train else []

        eval_gib: dict[str, float] = {}
        if spec.eval_batch_size:
            model.eval()
            tracker = _tracker()
            tracker.track_external(model)
            with tracker, torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                _Step(_eval_step, model)(spec, vocab)
            eval_gib = _snapshot(tracker)
            eval_gib["gradients"] = eval_gib["optimizer"] = 0.0

    frozen_gib = sum(map(_bf16_gib, spec.frozen)) / (scale.num_gpus if scale.sharded else 1)
    frozen_gib += sum(map(_bf16_gib, spec.replicated))
    # The step's peak after the layout: under ZeRO-3 / FSDP the end of the forward (activations) usually beats the
    # optimizer step that peaks on one device, so each moment is laid out and the largest kept.
    laid = [_layout(m, scale, layer_params, train_dtype, frozen_gib, spec.overhead_gib) for m in moments]
    train = max(laid, key=lambda step: step["total"]) if laid else {}
    if eval_gib:
        eval_gib = _layout(eval_gib, scale, layer_params, train_dtype, frozen_gib, spec.overhead_gib)
    report = DryRunReport(
        label=spec.label,
        model=spec.model.name,
        source=spec.model.source,
        launch=scale.launch,
        num_gpus=scale.num_gpus,
        gpu=scale.gpu,
        gpu_memory_gib=scale.gpu_memory_gib,
        precision=scale.precision,
        n_params=n_params,
        trainable_params=n_trainable,
        tokens_per_step=spec.tokens_per_step,
        train_gib=train,
        eval_gib=eval_gib,
        seconds=round(time.perf_counter() - start, 1),
    )
    log.info("dry run %s: peak %.1f GiB per GPU (%s)", spec.label, report.peak_gib, scale.gpu)
    return report


def _train_step(
    model: Any, spec: DryRunSpec, trainable: list[torch.nn.Parameter], vocab: int, autocast: bool
) -> list[dict[str, float]]:
    """One tracked forward, backward and optimizer step (optimizer state created beforehand)."""
    opt = _optimizer(spec.optimizer, trainable)
    _init_optimizer_state(opt, trainable)
    step = _Step(spec.loss or _default_loss, model)
    tracker = _tracker(step)
    tracker.track_external(model, opt)
    with tracker:
        if spec.batch is not None:
            batch = spec.batch(model, spec.batch_size)
        else:
            batch = _batch(model, spec.batch_size, spec.seq_len, vocab, labels=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = step(batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return _train_moments(tracker, step)


def _eval_step(model: Any, spec: DryRunSpec, vocab: int) -> None:
    if spec.eval_step is not None:
        spec.eval_step(model, spec)
        return
    if not _is_causal(model) or not spec.eval_new_tokens:
        length = spec.eval_prompt_len or spec.seq_len
        model(**_batch(model, spec.eval_batch_size, length, vocab, labels=False))
        return
    # Generation's peak: the prompt (plus all but one new token) prefilled into the KV cache, then one decode step
    # attending to the full length.
    prefill = spec.eval_prompt_len + spec.eval_new_tokens - 1
    batch = _batch(model, spec.eval_batch_size, prefill, vocab, labels=False)
    out = model(**batch, use_cache=True, logits_to_keep=1)  # as generate() prefills
    nxt = torch.randint(0, vocab, (spec.eval_batch_size, 1))
    mask = torch.ones(spec.eval_batch_size, prefill + 1, dtype=torch.long)
    model(
        input_ids=nxt,
        attention_mask=mask,
        past_key_values=out.past_key_values,
        use_cache=True,
        logits_to_keep=1,
    )


def _layout(
    tracked: dict[str, float],
    scale: ScaleConfig,
    layer_params: int,
    dtype: torch.dtype,
    frozen_gib: float,
    overhead_gib: float,
) -> dict[str, float]:
    out = dict(tracked)
    if scale.sharded:
        for key in ("parameters", "gradients", "optimizer"):
            out[key] /= scale.num_gpus
        # two layers gathered in the compute dtype (bf16 under autocast / bf16 base)
        bytes_per = 2 if (scale.precision != "fp32") else torch.finfo(dtype).bits // 8
        out["gathered"] = 2 * layer_params * bytes_per / GIB
    out["frozen"] = frozen_gib
    out["other"] += overhead_gib
    out["total"] = sum(out[k] for k in CATEGORIES)
    return {k: round(v, 6) for k, v in out.items()}


# ----------------------------------------------------------------------------------------------- reports


def report_markdown(reports: Sequence[DryRunReport], title: str) -> str:
    """A Markdown table: one row per step, estimated GiB per GPU by category, and whether it fits."""
    lines = [
        f"# {title}",
        "",
        "Estimated peak GiB per GPU (FakeTensorMode + MemTracker; paperlab.dryrun). Training step: forward, "
        "backward, optimizer; evaluation: one generation step with the full KV cache.",
        "",
        "| step | model | launch | GPUs | precision | params | trainable | tokens/step | weights | grads | "
        "optimizer | activations | frozen | gathered | other | train total | eval total | GPU | fits |",
        "| --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: | --- | --- |",
    ]
    for r in reports:
        t = r.train_gib or r.eval_gib  # an inference-only phase: its evaluation step's categories
        train_total = f"{r.train_gib['total']:.1f}" if r.train_gib else "–"
        lines.append(
            f"| {r.label} | {r.model} | {r.launch} | {r.num_gpus} | {r.precision} | {r.n_params / 1e9:.2f}B | "
            f"{r.trainable_params / 1e6:.1f}M | {r.tokens_per_step:,} | {t['parameters']:.1f} | "
            f"{t['gradients']:.1f} | {t['optimizer']:.1f} | {t['activations']:.1f} | {t['frozen']:.1f} | "
            f"{t['gathered']:.1f} | {t['other']:.1f} | {train_total} | {r.eval_gib.get('total', 0.0):.1f} | "
            f"{r.gpu} ({r.gpu_memory_gib:g}) | {'yes' if r.fits else '**no**'} |"
        )
    lines += [
        "",
        "Not in the tensors (budgeted as 'other', 2 GiB): CUDA context, NCCL and DDP bucket buffers, allocator "
        "fragmentation. FSDP/ZeRO-3 divide weights, gradients and optimizer state by the GPUs and gather two "
        "layers at a time. A row without a training total is an inference-only phase (its columns are the "
        "evaluation step's). Architecture sources: "
        + "; ".join(sorted({f"{r.model}: {r.source}" for r in reports if r.source})),
        "",
    ]
    return "\n".join(lines)


def check_fits(report: DryRunReport) -> None:
    """Raise :class:`ConfigError` with the estimate and a launch that would fit when ``report`` does not fit."""
    if report.fits:
        return
    t = report.peak_step
    raise ConfigError(
        f"{report.label}: {report.model} ({report.precision}, launch={report.launch}, {report.num_gpus} GPU(s)) "
        f"needs an estimated {report.peak_gib:.1f} GiB per GPU (weights {t['parameters']:.1f}, gradients "
        f"{t['gradients']:.1f}, optimizer {t['optimizer']:.1f}, activations {t['activations']:.1f}), more than "
        f"{report.gpu} ({report.gpu_memory_gib:g} GiB); "
        + suggest_launch(
            report.n_params,
            ScaleConfig(
                launch=report.launch,
                num_gpus=report.num_gpus,
                gpu=report.gpu,
                gpu_memory_gib=report.gpu_memory_gib,
                precision=report.precision,
            ),
        )
    )


def write_reports(reports: Sequence[DryRunReport], out_dir: str | Path, name: str, title: str) -> Path:
    """``<out_dir>/<name>.json`` and ``<name>.md`` (atomic). Returns the Markdown path."""
    from paperlab.io import atomic_write_json, atomic_write_text

    out = Path(out_dir)
    atomic_write_json(out / f"{name}.json", [r.to_dict() for r in reports])
    return atomic_write_text(out / f"{name}.md", report_markdown(reports, title))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m paperlab.dryrun <package> [hydra overrides]``: the package's ``scale.dry_run_specs(cfg)``."""
    import importlib
    import os

    from paperlab.config import compose, setup_logging

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("usage: python -m paperlab.dryrun <package> [experiment=<exp> ...]", file=sys.stderr)
        return 2
    setup_logging()
    package, overrides = argv[0], argv[1:]
    try:
        specs_of = importlib.import_module(f"{package}.scale").dry_run_specs
    except (ImportError, AttributeError) as err:
        print(f"paperlab.dryrun: {package}.scale.dry_run_specs not found ({err})", file=sys.stderr)
        return 2
    experiment = next((o.split("=", 1)[1] for o in overrides if o.startswith("experiment=")), "paper")
    try:
        specs = specs_of(compose(package, overrides))
    except ConfigError as err:
        print(f"{package}: config error: {err}", file=sys.stderr)
        return 2
    reports = [dry_run(s) for s in specs]
    root = Path(os.environ.get("PAPERLAB_RESULTS", "results"))
    md = write_reports(reports, root / package / "paper-dry", experiment, f"{package} {experiment}: dry run")
    print(md.read_text())
    failed = [r for r in reports if not r.fits]
    for r in failed:
        try:
            check_fits(r)
        except ConfigError as err:
            print(f"does not fit: {err}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
