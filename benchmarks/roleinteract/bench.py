"""roleinteract benchmark: where an evaluation run spends its time, and that the knobs that should help do.

    .venv/bin/python benchmarks/roleinteract/bench.py        # writes results/bench/roleinteract.json and .md

- endpoint throughput vs ``max_concurrency`` against a local fake OpenAI-compatible server with 50 ms latency
  per request (a vLLM server overlaps requests the same way); target: concurrency 8 is >= 4x concurrency 1;
- local transformers backend (tiny Llama, CPU): answers/s with batch 1 vs 8 on the shipped EP prompts;
- scoring throughput (official parser + aggregation) on the EP file; target >= 20k items/s;
- resume overhead: opening a complete 10k-answer cache and finding nothing to ask; target < 2 s.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import torch

from paperlab.data import DataUnavailableError, data_path
from paperlab.device import Timer
from paperlab.io import atomic_write_json, atomic_write_text
from paperlab.report import markdown_table
from roleinteract.backends import (
    EndpointBackend,
    EndpointConfig,
    GenerationConfig,
    Query,
    RandomBackend,
    TransformersBackend,
)
from roleinteract.data import fixture_paths, load_benchmark, load_items
from roleinteract.harness import ask_all, score_replies
from roleinteract.prompts import build_prompt
from roleinteract.scoring import ScoreConfig, aggregate
from roleinteract.synthetic import synthetic_items

LATENCY_S = 0.05


class _Slow(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(LATENCY_S)
        payload = json.dumps({"choices": [{"message": {"content": "A"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _items():
    try:
        return load_items(data_path("socialbench", "emotional_perception.json")), "shipped EP file"
    except DataUnavailableError:
        return load_benchmark(fixture_paths()) * 20, "fixtures x20 (PAPERLAB_DATA absent)"


def bench_endpoint(items) -> list[dict]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rows = []
    try:
        for concurrency in (1, 4, 8):
            subset = items[:80]
            cfg = EndpointConfig(
                base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", max_concurrency=concurrency
            )
            with tempfile.TemporaryDirectory() as tmp, Timer() as timer:
                ask_all(EndpointBackend(cfg), subset, Path(tmp) / "c.jsonl", progress=False)
            rows.append(
                {
                    "case": f"endpoint, concurrency {concurrency}",
                    "n": len(subset),
                    "seconds": timer.seconds,
                    "per_s": len(subset) / timer.seconds,
                }
            )
    finally:
        server.shutdown()
        server.server_close()
    return rows


def bench_transformers(items) -> list[dict]:
    torch.set_num_threads(1)
    subset = items[:96]
    queries = [Query(it, build_prompt(it)) for it in subset]
    rows = []
    for batch in (1, 8):
        backend = TransformersBackend.tiny(
            [q.prompt for q in queries], gen=GenerationConfig(8, 16, batch_size=batch)
        )
        with Timer() as timer:
            for _ in backend.iter_answers(queries):
                pass
        rows.append(
            {
                "case": f"tiny transformers, batch {batch}",
                "n": len(subset),
                "seconds": timer.seconds,
                "per_s": len(subset) / timer.seconds,
            }
        )
    return rows


def bench_scoring(items) -> list[dict]:
    replies = dict(zip([it.item_id for it in items], ["I pick (B) and maybe C."] * len(items), strict=True))
    with Timer() as timer:
        for _ in range(5):
            aggregate(items, score_replies(items, replies), ScoreConfig())
    n = 5 * len(items)
    return [
        {"case": "scoring (parse + aggregate)", "n": n, "seconds": timer.seconds, "per_s": n / timer.seconds}
    ]


def bench_resume() -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        items = synthetic_items(Path(tmp), per_category=1112)[:10000]
        cache = Path(tmp) / "c.jsonl"
        ask_all(RandomBackend(0), items, cache, progress=False)
        with Timer() as timer:
            ask_all(RandomBackend(0), items, cache, progress=False)
    return [
        {
            "case": "resume: complete 10k cache, nothing asked",
            "n": len(items),
            "seconds": timer.seconds,
            "per_s": len(items) / timer.seconds,
        }
    ]


def main() -> None:
    items, source = _items()
    rows = bench_endpoint(items) + bench_transformers(items) + bench_scoring(items) + bench_resume()
    by = {r["case"]: r for r in rows}
    speedup = by["endpoint, concurrency 8"]["per_s"] / by["endpoint, concurrency 1"]["per_s"]
    batching = by["tiny transformers, batch 8"]["per_s"] / by["tiny transformers, batch 1"]["per_s"]
    targets = {
        "endpoint concurrency 8 / 1 >= 4x": speedup >= 4.0,
        "scoring >= 20k items/s": by["scoring (parse + aggregate)"]["per_s"] >= 20000,
        "resume of 10k cache < 2 s": by["resume: complete 10k cache, nothing asked"]["seconds"] < 2.0,
    }
    out = Path("results/bench")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        out / "roleinteract.json",
        {
            "source": source,
            "rows": rows,
            "endpoint_speedup": speedup,
            "batch_speedup": batching,
            "targets": targets,
        },
    )
    table = markdown_table(rows, ["case", "n", "seconds", "per_s"])
    text = (
        f"# roleinteract benchmark ({source}; 2-core CPU)\n\n{table}\n\nendpoint speedup 8 vs 1: {speedup:.1f}x; "
        f"tiny-model batching 8 vs 1: {batching:.1f}x\n\n"
        + "\n".join(f"- {'PASS' if ok else 'FAIL'}: {name}" for name, ok in targets.items())
        + "\n"
    )
    atomic_write_text(out / "roleinteract.md", text)
    print(text)
    if not all(targets.values()):
        raise SystemExit("roleinteract benchmark: a target was missed (see above)")


if __name__ == "__main__":
    main()
