"""A tiny DDP job for the two-process tests of paperlab.scale: shards a 'generation' over ranks, trains a linear
model a few steps with accelerate, writes its results once from rank 0, and checks the replicas."""

import sys
from pathlib import Path

import torch

from paperlab.io import atomic_write_json
from paperlab.scale import assert_replicas_equal, distributed_state, is_main_process, map_sharded, world_size


def main(out_dir: str, timeout_s: int, diverge: bool) -> None:
    from accelerate import Accelerator

    state = distributed_state(timeout_s)
    items = list(range(7))
    squares = map_sharded(lambda shard: [(x, x * x, state.process_index) for x in shard], items)
    accelerator = Accelerator(cpu=True)
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model, opt = accelerator.prepare(model, opt)
    g = torch.Generator().manual_seed(1 + state.process_index)  # each rank its own data
    for _ in range(3):
        x = torch.randn(4, 3, generator=g)
        loss = model(x).pow(2).mean()
        accelerator.backward(loss)
        opt.step()
        opt.zero_grad()
    if diverge and state.process_index == 1:  # a replica that went its own way
        with torch.no_grad():
            accelerator.unwrap_model(model).bias.add_(1.0)
    digest = assert_replicas_equal(accelerator.unwrap_model(model))
    pg = torch.distributed.distributed_c10d._get_default_group()
    timeout = pg._get_backend(torch.device("cpu")).options._timeout
    if is_main_process():
        atomic_write_json(
            Path(out_dir) / "result.json",
            {
                "world_size": world_size(),
                "squares": squares,
                "digest": digest,
                "timeout_s": timeout.total_seconds(),
            },
        )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), "diverge" in sys.argv[3:])
