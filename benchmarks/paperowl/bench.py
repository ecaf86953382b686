"""paperowl benchmark: what the visual abstractor buys (mPLUG-Owl/PaperOwl compress each view to 64 tokens) and what
shape-adaptive cropping costs, side by side in one run; plus the M-Paper builder's throughput on the shared papers.

    .venv/bin/python benchmarks/paperowl/bench.py            # writes results/bench/paperowl.json and .md

Compared on the same LM (random Llama, CPU, fp32) and the same views:
- ``patches``: every ViT patch token goes to the LM through a linear projection (LLaVA-style baseline);
- ``abstractor``: 64 learned queries per view (the paper's setting);
and for a tall table image: global view only vs global + shape-adaptive crops (both through the abstractor).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from PIL import Image

from paperlab.data import DataUnavailableError, data_path
from paperlab.device import Timer
from paperlab.io import atomic_write_json, atomic_write_text
from paperlab.models import tiny_causal_lm, tiny_vision_tower
from paperlab.report import markdown_table
from paperowl.builder import BuildConfig, build
from paperowl.cropping import crop_views
from paperowl.model import VisualAbstractor

IMAGE, PATCH, WIDTH, HIDDEN, QUERIES, TEXT_TOKENS, REPEATS = 224, 14, 192, 256, 64, 64, 3


def _lm_step(lm, visual: torch.Tensor) -> tuple[float, int]:
    """Seconds for one forward+backward of the LM on ``visual`` tokens + text tokens; returns (s, tokens)."""
    text = lm.get_input_embeddings()(torch.randint(5, 100, (visual.shape[0], TEXT_TOKENS)))
    embeds = torch.cat([visual, text], dim=1)
    best = float("inf")
    for _ in range(REPEATS):
        lm.zero_grad(set_to_none=True)
        with Timer() as timer:
            out = lm(inputs_embeds=embeds, labels=torch.zeros(embeds.shape[:2], dtype=torch.long))
            out.loss.backward(retain_graph=True)
        best = min(best, timer.seconds)
    return best, embeds.shape[1]


def bench_tokens() -> list[dict]:
    torch.manual_seed(0)
    vit = tiny_vision_tower(IMAGE, PATCH, WIDTH, depth=2, heads=4).eval()
    lm = tiny_causal_lm(vocab_size=512, layers=4, hidden=HIDDEN, heads=4)
    abstractor = VisualAbstractor(WIDTH, 128, HIDDEN, QUERIES, layers=2, heads=4)
    projection = torch.nn.Linear(WIDTH, HIDDEN)
    tall = Image.new("RGB", (300, 1200), "white")
    rows = []
    for name, anchors in (
        ("global view only", None),
        ("global + shape-adaptive crops", [[1, 1], [2, 1], [3, 1], [4, 1]]),
    ):
        views, _ = crop_views(tall, IMAGE, anchors)
        with torch.no_grad():
            patches = vit.forward_features(views)[:, 1:]
        for method, tokens in (
            ("patches (linear projection)", projection(patches)),
            ("abstractor (64 queries)", abstractor(patches)),
        ):
            visual = tokens.reshape(1, -1, HIDDEN).detach()
            seconds, length = _lm_step(lm, visual)
            rows.append(
                {
                    "views": name,
                    "n_views": views.shape[0],
                    "visual tokens -> LM": method,
                    "LM sequence": length,
                    "LM fwd+bwd s": seconds,
                }
            )
    return rows


def bench_builder() -> dict:
    try:
        src = data_path("paperowl")
    except DataUnavailableError as err:
        return {"skipped": str(err)}
    out = Path("/tmp/paperowl-bench-mpaper")
    start = time.perf_counter()
    summary = build(src, out, BuildConfig(render_tables=False))
    seconds = time.perf_counter() - start
    return {
        "papers": len(summary["papers"]),
        "samples": summary["samples"],
        "seconds": seconds,
        "papers_per_s": len(summary["papers"]) / seconds,
        "samples_per_s": summary["samples"] / seconds,
    }


def main() -> None:
    torch.set_num_threads(
        1
    )  # one thread: stable timings on shared cores (two threads per process oversubscribe)
    rows = bench_tokens()
    by = {(r["views"], r["visual tokens -> LM"]): r for r in rows}
    ratios = {}
    for views in ("global view only", "global + shape-adaptive crops"):
        p, a = by[(views, "patches (linear projection)")], by[(views, "abstractor (64 queries)")]
        ratios[f"{views}: LM time patches/abstractor"] = p["LM fwd+bwd s"] / a["LM fwd+bwd s"]
        ratios[f"{views}: sequence patches/abstractor"] = p["LM sequence"] / a["LM sequence"]
    g, c = (
        by[("global view only", "abstractor (64 queries)")],
        by[("global + shape-adaptive crops", "abstractor (64 queries)")],
    )
    ratios["abstractor: LM time crops/global"] = c["LM fwd+bwd s"] / g["LM fwd+bwd s"]
    builder = bench_builder()
    result = {
        "rows": rows,
        "ratios": ratios,
        "builder": builder,
        "setup": {
            "image": IMAGE,
            "patch": PATCH,
            "vit_width": WIDTH,
            "lm_hidden": HIDDEN,
            "lm_layers": 4,
            "queries": QUERIES,
            "text_tokens": TEXT_TOKENS,
            "threads": torch.get_num_threads(),
        },
    }
    out = Path("results/bench")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "paperowl.json", result)
    text = "# paperowl benchmark\n\n" + markdown_table(rows, floatfmt=".3f") + "\n"
    text += "".join(f"- {k}: {v:.2f}x\n" for k, v in ratios.items())
    text += f"\nBuilder on the shared papers: {json.dumps(builder)}\n"
    atomic_write_text(out / "paperowl.md", text)
    print(text)


if __name__ == "__main__":
    main()
