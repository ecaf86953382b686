"""SemMIM pretraining cost vs the no-MIM baseline (ITC+ITM+MLM), one run, tiny model on CPU (or the GPU if any).

Per method: mean wall-clock time of a full pretraining step (forward, backward, AdamW, EMA update) over
``STEPS`` steps after ``WARMUP``, and the memory the step's autograd graph holds (bytes of tensors saved for
backward, counted with ``torch.autograd.graph.saved_tensors_hooks``; on CUDA also the peak allocated). The extra
cost of SemMIM comes from the momentum fusion pass (masking + targets), the masked image pass, the second view for
the agreement loss and its momentum pass. Writes results/bench/semmim.json and .md.
"""

from __future__ import annotations

import time

import torch

from paperlab.device import peak_memory_bytes, pick_device, reset_peak_memory, synchronize
from paperlab.report import write_bench
from paperlab.seed import seed_everything
from semmim.data import SceneConfig, WordTokenizer, augment, make_split, vocabulary
from semmim.experiment import method_loss
from semmim.model import ModelConfig
from semmim.vlp import LossConfig, SemMIMModel

METHODS = ("base", "pixel", "semmim_random_mask", "semmim")
STEPS, WARMUP, BATCH = 20, 3, 32


def measure(method: str, data, tokenizer, device) -> dict:
    seed_everything(0)
    model = SemMIMModel(
        ModelConfig(),  # the tiny defaults (fusion depth 2, as conf/config.yaml)
        method_loss(LossConfig(), method),
        tokenizer.vocab_size,
        tokenizer.special_ids,
        tokenizer.mask_id,
    ).to(device)
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-3)
    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    seconds, graph_bytes = 0.0, 0
    for step in range(WARMUP + STEPS):
        images, captions = data.batch(torch.randint(len(data), (BATCH,)))
        ids, attention = tokenizer(captions)
        images, ids, attention = images.to(device), ids.to(device), attention.to(device)
        if step == WARMUP:
            reset_peak_memory(device)
        synchronize(device)
        start = time.perf_counter()
        saved[0] = 0
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(images, ids, attention, augment(images))
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        model.ema_update()
        synchronize(device)
        if step >= WARMUP:
            seconds += time.perf_counter() - start
            graph_bytes = max(graph_bytes, saved[0])
    row = {
        "method": method,
        "ms/step": 1e3 * seconds / STEPS,
        "autograd MiB": graph_bytes / 2**20,
        "params (trainable, M)": sum(p.numel() for p in model.trainable_parameters()) / 1e6,
    }
    if torch.device(device).type == "cuda":
        row["peak CUDA MiB"] = peak_memory_bytes(device) / 2**20
    return row


def main() -> None:
    torch.set_num_threads(2)
    device = pick_device("auto")
    data = make_split(SceneConfig(train_images=512, test_images=8), "train")
    tokenizer = WordTokenizer(vocabulary(), 24)
    rows = [measure(m, data, tokenizer, device) for m in METHODS]
    base = rows[0]
    for row in rows:
        row["time ratio vs base"] = row["ms/step"] / base["ms/step"]
        row["memory ratio vs base"] = row["autograd MiB"] / base["autograd MiB"]
    write_bench(
        "semmim",
        rows,
        title=f"SemMIM pretraining step cost vs ITC+ITM+MLM (tiny model, batch {BATCH}, "
        f"{STEPS} steps, {device.type})",
        extra={"device": str(device), "batch": BATCH, "steps": STEPS},
    )


if __name__ == "__main__":
    main()
