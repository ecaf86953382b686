"""Device and dtype choice, and CUDA memory/timing helpers that degrade to no-ops (or CPU equivalents) on CPU."""

from __future__ import annotations

import time
from types import TracebackType

import torch

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def pick_device(prefer: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; anything else is taken as a torch device string."""
    if prefer != "auto":
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device={prefer!r} was asked for but CUDA is not available on this machine")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(prefer: str = "auto", device: torch.device | str | None = None) -> torch.dtype:
    """``auto``: bf16 on a CUDA device that supports it, fp16 on other CUDA/MPS, fp32 on CPU.

    Named dtypes: float32/fp32, float16/fp16, bfloat16/bf16.
    """
    if prefer != "auto":
        if prefer not in _DTYPES:
            raise ValueError(f"dtype must be 'auto' or one of {sorted(_DTYPES)}, got {prefer!r}")
        return _DTYPES[prefer]
    device = torch.device(device) if device is not None else pick_device()
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for queued CUDA kernels; a no-op on CPU."""
    if torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda"):
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device | str | None = None) -> None:
    """Reset CUDA's peak-memory counter; a no-op on CPU."""
    if torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda"):
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device | str | None = None) -> int:
    """Peak CUDA memory allocated since the last reset; on CPU the process's peak resident set size."""
    if torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda"):
        return int(torch.cuda.max_memory_allocated(device))
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def tensor_bytes(*tensors: torch.Tensor) -> int:
    """Bytes held by the given tensors (element size x count)."""
    return int(sum(t.numel() * t.element_size() for t in tensors))


class Timer:
    """Wall-clock timer that synchronizes CUDA before reading the clock.

    >>> with Timer() as t:
    ...     pass
    >>> t.seconds >= 0
    True
    """

    def __init__(self, device: torch.device | str | None = None) -> None:
        self.device = device
        self.seconds = 0.0
        self._start = 0.0

    def __enter__(self) -> Timer:
        synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        synchronize(self.device)
        self.seconds = time.perf_counter() - self._start
