"""The kvpress side of ``benchmarks/adore/bench.py``; runs in kvpress's own environment (``../shared/docs/PEERS.md``:
kvpress 0.5.5, transformers 5.2), never imports ``adore``. Prints one JSON line.

    python peer_kvpress.py WORK CONTEXT FRACTION NEW_TOKENS   # speed rows on WORK/bench_model.pt
    python peer_kvpress.py WORK recall FRACTION                # exact match on WORK/recall.pt
"""

from __future__ import annotations

import itertools
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from kvpress import DecodingPress, KnormPress, PrefillDecodingPress, SnapKVPress, StreamingLLMPress
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

CHUNK = 16  # the decoding press compresses every 16 steps, as our caches release


def load(path: Path, attn: str = "sdpa") -> tuple[LlamaForCausalLM, dict]:
    saved = torch.load(path, weights_only=False)
    config = LlamaConfig.from_dict(saved["config"])
    config._attn_implementation = attn
    model = LlamaForCausalLM(config)
    model.load_state_dict(saved["state_dict"])
    return model.eval(), saved


def presses(fraction: float, budget: int, window: int = 64) -> dict:
    """kvpress's presses at ``fraction`` of the context (``budget`` tokens for the decoding press; ``window``:
    SnapKV's observation window, 64 by default, 8 on the 42-token recall contexts as our SnapKV)."""
    ratio = 1 - fraction
    return {
        "full": None,
        "StreamingLLM": StreamingLLMPress(compression_ratio=ratio),
        "SnapKV": SnapKVPress(compression_ratio=ratio, window_size=window),
        "KNorm": KnormPress(compression_ratio=ratio),
        "KNorm + DecodingPress": PrefillDecodingPress(
            prefilling_press=KnormPress(compression_ratio=ratio),
            decoding_press=DecodingPress(
                base_press=KnormPress(),
                compression_interval=CHUNK,
                target_size=budget,
                hidden_states_buffer_size=0,
            ),
        ),
    }


def kv_mib(cache: DynamicCache) -> float:
    return sum(layer.keys.numel() + layer.values.numel() for layer in cache.layers) * 4 / 2**20


@torch.no_grad()
def speed(work: Path, n: int, fraction: float, new: int) -> list[dict]:
    model, _ = load(work / "bench_model.pt")
    ids = torch.arange(3, 67)[None]
    check = float(model(ids).logits.double().sum())
    ids = torch.randint(3, model.config.vocab_size, (1, n + 1), generator=torch.Generator().manual_seed(n))
    rows = []
    for name, press in presses(fraction, round(fraction * n)).items():
        if name == "full" and fraction != 0.125:
            continue
        cache = DynamicCache()
        marks: list[float] = []
        ctx = press(model) if press is not None else _null()
        with ctx:
            t0 = time.process_time()
            model(ids[:, :n], past_key_values=cache, use_cache=True)
            prefill = time.process_time() - t0
            hook = model.register_forward_pre_hook(lambda *a, m=marks: m.append(time.process_time()))
            w0 = time.perf_counter()
            greedy(
                model, ids, cache, n, new
            )  # kvpress's own pipeline loop: generate() would re-slice the input
            wall = time.perf_counter() - w0
            hook.remove()
        marks.append(time.process_time())
        steps = [b - a for a, b in itertools.pairwise(marks)][1:-1]
        rows.append(
            {
                "system": name,
                "prefill s": prefill,
                "decode tok/s": 1 / statistics.median(steps),
                "decode tok/s (mean)": len(steps) / sum(steps),
                "decode tok/s (wall)": new / wall,
                "KV MiB": kv_mib(cache),
                "checksum": check,
            }
        )
    return rows


def greedy(model: LlamaForCausalLM, ids: torch.Tensor, cache: DynamicCache, n: int, new: int) -> None:
    """Greedy decoding from a (compressed) cache, positions given explicitly (as ``kvpress.pipeline`` does)."""
    token = ids[:, n : n + 1]
    for i in range(new):
        pos = torch.tensor([n + i])
        out = model(
            input_ids=token, past_key_values=cache, position_ids=pos[None], cache_position=pos, use_cache=True
        )
        token = out.logits[:, -1:].argmax(-1)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


@torch.no_grad()
def recall(work: Path, fraction: float) -> dict:
    model, saved = load(work / "recall.pt", attn="eager")
    out = {}
    for name, press in presses(fraction, 1, window=8).items():
        if name == "KNorm + DecodingPress":
            continue  # one decoding step: the same as KNorm at prefill
        hits = 0
        for context, question, answers in saved["examples"]:
            cache = DynamicCache()
            with press(model) if press is not None else _null():
                model(context[None], past_key_values=cache, use_cache=True)
            n, q = context.numel(), question.numel()
            pos = torch.arange(n, n + q)
            logits = model(
                question[None],
                past_key_values=cache,
                position_ids=pos[None],
                cache_position=pos,
                use_cache=True,
            ).logits
            hits += str(int(logits[0, -1].argmax())) in answers
        out[name] = 100 * hits / len(saved["examples"])
    out["KNorm + DecodingPress"] = out["KNorm"]
    return out


def main() -> None:
    torch.set_num_threads(1)
    work = Path(sys.argv[1])
    if sys.argv[2] == "recall":
        print(json.dumps(recall(work, float(sys.argv[3]))))
    else:
        print(json.dumps(speed(work, int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))))


if __name__ == "__main__":
    main()
