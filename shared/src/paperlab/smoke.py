"""GPU smoke test of every package's paper architecture: random weights, paper shapes and precision, a few real
training steps on one GPU, the measured peak memory and steps/s printed beside the dry run's estimate.

``python -m paperlab.smoke`` (``make gpu-smoke``) walks the packages that have ``<name>.scale.dry_run_specs`` and
the paper experiments they ship (``conf/experiment/*paper*.yaml``), and for each training step they describe:

- builds the model at its real shape directly on the GPU (``from_config``: random weights, nothing downloaded) in
  the paper precision (:func:`paperlab.scale.prepare_for_training`: fp32 master weights under bf16 autocast, or a
  LoRA adapter on a bf16 base);
- runs ``steps`` optimizer steps at the paper's per-GPU micro-batch and length, as one process: a launch that
  shards over 8 GPUs is measured unsharded, with as many decoder layers as fit the GPU by the analytic count
  (printed), and the dry run of exactly that single-GPU setting is the estimate it is compared with;
- prints one table (and writes ``results/smoke/smoke.json``).

Without CUDA (``--tiny``, the default there) the same code runs at tiny shapes (2 layers, width 64) on the CPU, which
is what the tests run. The whole GPU pass is meant to take under 8 minutes on one H200.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from paperlab.dryrun import GIB, DryRunSpec, ModelShape, dry_run
from paperlab.scale import parameter_state_gib, prepare_for_training

log = logging.getLogger(__name__)

_LAYER_KEYS = ("num_hidden_layers", "n_layers", "num_layers")


def _layers_key(shape: ModelShape) -> str | None:
    return next((k for k in _LAYER_KEYS if k in shape.config), None)


def shrink(shape: ModelShape) -> ModelShape:
    """The same family at a tiny size (2 layers, width 64, 4 heads, vocabulary 512) for a CPU run."""
    cfg = dict(shape.config)
    sizes = {
        "hidden_size": 64, "d_model": 64, "intermediate_size": 128, "num_attention_heads": 4, "n_heads": 4,
        "vocab_size": 512, "max_position_embeddings": 256, "max_seq_len": 256, "head_dim": 16,
    }  # fmt: skip
    for key, value in sizes.items():
        if key in cfg:
            cfg[key] = value
    if "num_key_value_heads" in cfg:
        cfg["num_key_value_heads"] = (
            2 if shape.config["num_key_value_heads"] < shape.config.get("num_attention_heads", 0) else 4
        )
    layers = _layers_key(shape)
    if layers:
        cfg[layers] = 2
    return dataclasses.replace(shape, name=f"{shape.name} (tiny)", config=cfg)


def _single(spec: DryRunSpec, gpu_gib: float) -> tuple[DryRunSpec, int]:
    """``spec`` as one process on one GPU of ``gpu_gib``, with as many decoder layers as keep the unsharded
    weights, gradients and optimizer state under 60 % of the GPU (the analytic count). Returns it and the layers."""
    from paperlab.dryrun import _build, _largest_layer_params

    scale = dataclasses.replace(
        spec.scale, launch="single", num_gpus=1, gpu="this GPU", gpu_memory_gib=gpu_gib
    )
    key = _layers_key(spec.model)
    layers = int(spec.model.config.get(key, 0)) if key else 0
    if key and layers:
        with torch.device("meta"):
            model = _build(spec.model, torch.float32)
        total, per_layer = sum(p.numel() for p in model.parameters()), _largest_layer_params(model)
        rest = total - layers * per_layer

        def state(n_layers: int) -> float:
            n = rest + n_layers * per_layer
            return parameter_state_gib(n, scale, trainable=int(0.01 * n) if scale.uses_lora else None)

        while layers > 1 and state(layers) > 0.6 * gpu_gib:
            layers -= 1
    shape = dataclasses.replace(spec.model, config={**spec.model.config, key: layers}) if key else spec.model
    return dataclasses.replace(spec, model=shape, scale=scale, frozen=[]), layers


def measure(spec: DryRunSpec, device: torch.device, steps: int = 3) -> dict[str, float]:
    """Build ``spec.model`` with random weights on ``device`` and time ``steps`` training steps (the first is a
    warm-up and not timed); returns measured peak GiB and steps/s."""
    import transformers

    from paperlab.device import peak_memory_bytes, reset_peak_memory, synchronize

    dtype = torch.bfloat16 if spec.scale.uses_lora else torch.float32
    cls = getattr(transformers, spec.model.auto_class)
    with torch.device(device):
        model = cls.from_config(spec.model.build_config(), dtype=dtype)
    model = prepare_for_training(model, spec.scale, move=False).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = {"rmsprop": torch.optim.RMSprop, "sgd": torch.optim.SGD}.get(spec.optimizer, torch.optim.AdamW)(
        params, lr=1e-5
    )
    vocab = int(spec.model.config.get("vocab_size", 32000))
    autocast = spec.scale.precision != "fp32" and device.type == "cuda"
    gen = torch.Generator(device=device).manual_seed(0)
    reset_peak_memory(device)
    start = 0.0
    for step in range(steps + 1):
        if step == 1:
            synchronize(device)
            start = time.perf_counter()
        ids = torch.randint(0, vocab, (spec.batch_size, spec.seq_len), device=device, generator=gen)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            out = model(input_ids=ids, labels=ids) if _causal(model) else model(input_ids=ids)
            loss = out.loss if getattr(out, "loss", None) is not None else out.logits.float().mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    synchronize(device)
    seconds = time.perf_counter() - start
    peak = peak_memory_bytes(device) / GIB if device.type == "cuda" else float("nan")
    del model, opt
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"measured_gib": peak, "steps_per_s": steps / seconds, "loss": float(loss)}


def _causal(model: Any) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return type(base).__name__.endswith("ForCausalLM")


def package_specs(package: str, experiment: str) -> list[DryRunSpec]:
    from paperlab.config import compose

    module = importlib.import_module(f"{package}.scale")
    return list(module.dry_run_specs(compose(package, [f"experiment={experiment}"])))


def paper_experiments(package: str) -> list[str]:
    conf = Path(importlib.import_module(f"{package}.conf").__file__).parent / "experiment"
    return sorted(p.stem for p in conf.glob("*paper*.yaml"))


def run(
    packages: Sequence[str], *, tiny: bool, steps: int = 3, estimate: bool = True, max_specs: int = 2
) -> list[dict[str, Any]]:
    """Smoke every paper training step of ``packages`` (at most ``max_specs`` per experiment; inference-only phases
    are left out); see the module."""
    device = torch.device("cuda" if torch.cuda.is_available() and not tiny else "cpu")
    gpu_gib = torch.cuda.get_device_properties(device).total_memory / GIB if device.type == "cuda" else 16.0
    rows: list[dict[str, Any]] = []
    for package in packages:
        for experiment in paper_experiments(package):
            for spec in [s for s in package_specs(package, experiment) if s.train][:max_specs]:
                if tiny:
                    spec = dataclasses.replace(spec, model=shrink(spec.model), batch_size=2, seq_len=32)
                single, layers = _single(spec, gpu_gib)
                row: dict[str, Any] = {
                    "package": package, "experiment": experiment, "step": spec.label, "model": spec.model.name,
                    "precision": spec.scale.precision, "paper_launch": f"{spec.scale.launch} x{spec.scale.num_gpus}",
                    "layers": layers, "batch_size": spec.batch_size, "seq_len": spec.seq_len,
                }  # fmt: skip
                row.update(measure(single, device, steps))
                row["estimated_gib"] = dry_run(single).train_gib["total"] if estimate else float("nan")
                rows.append(row)
                log.info("smoke %s", row)
    return rows


def table(rows: Sequence[dict[str, Any]]) -> str:
    head = "| package | experiment | step | model | precision | paper launch | layers | batch x len | measured GiB | "
    head += (
        "estimated GiB | steps/s |\n| --- | --- | --- | --- | --- | --- | ---: | --- | ---: | ---: | ---: |"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"| {r['package']} | {r['experiment']} | {r['step']} | {r['model']} | {r['precision']} | "
            f"{r['paper_launch']} | {r['layers']} | {r['batch_size']} x {r['seq_len']} | {r['measured_gib']:.1f} | "
            f"{r['estimated_gib']:.1f} | {r['steps_per_s']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from paperlab.config import setup_logging
    from paperlab.io import atomic_write_json

    parser = argparse.ArgumentParser(prog="python -m paperlab.smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("packages", nargs="*", help="packages (default: every one with <name>.scale)")
    parser.add_argument(
        "--tiny", action="store_true", help="tiny shapes on the CPU (the default without CUDA)"
    )
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument(
        "--no-estimate", action="store_true", help="skip the dry-run estimate beside each row"
    )
    args = parser.parse_args(argv)
    setup_logging()
    packages = args.packages or [
        p for p in ("profuser", "aihf", "irl_sft", "alpha_umi", "semmim", "unify", "paperowl", "adore")
        if importlib.util.find_spec(p) is not None and importlib.util.find_spec(f"{p}.scale") is not None
    ]  # fmt: skip
    tiny = args.tiny or not torch.cuda.is_available()
    rows = run(packages, tiny=tiny, steps=args.steps, estimate=not args.no_estimate)
    text = table(rows)
    print(text)
    out = Path(os.environ.get("PAPERLAB_RESULTS", "results")) / "smoke"
    atomic_write_json(
        out / "smoke.json", {"device": "cpu (tiny)" if tiny else torch.cuda.get_device_name(), "rows": rows}
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
