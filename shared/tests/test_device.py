import pytest
import torch

from paperlab.device import Timer, peak_memory_bytes, pick_device, pick_dtype, tensor_bytes


def test_pick_device_and_dtype_on_cpu():
    if torch.cuda.is_available():
        pytest.skip("this check describes a CPU-only machine")
    assert pick_device().type in {"cpu", "mps"}
    assert pick_dtype("auto", "cpu") == torch.float32
    assert pick_dtype("bf16") == torch.bfloat16
    with pytest.raises(ValueError, match="dtype must be"):
        pick_dtype("float8")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        pick_device("cuda")


def test_timer_and_memory_helpers():
    with Timer() as timer:
        sum(range(10000))
    assert timer.seconds > 0
    assert peak_memory_bytes() > 0
    assert tensor_bytes(torch.zeros(4, 4), torch.zeros(2, dtype=torch.float16)) == 64 + 4
