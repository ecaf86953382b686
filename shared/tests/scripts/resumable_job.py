"""A tiny resumable job for paperlab.testing.kill_and_resume's tests: 30 steps of a seeded random walk, a
checkpoint (atomic) after every step, result.json at the end. ``--no-resume`` ignores the checkpoint and draws
its start from the clock: the kind of job the contract must catch. ``--late-term`` lingers a second after its last
write with SIGTERM's default action, as an interpreter shutting down does: a SIGTERM there kills it (-15) with
every output written."""

import json
import random
import signal
import sys
import time
from pathlib import Path

from paperlab.io import atomic_write_json

resume = "--no-resume" not in sys.argv
signal.signal(signal.SIGTERM, lambda *_: (print("stopped; rerun to resume", file=sys.stderr), sys.exit(143)))
ckpt = Path("ckpt.json")
state = {"step": 0, "value": 0.0, "rng": None}
rng = random.Random(0 if resume else time.time_ns())
if resume and ckpt.exists():
    state = json.loads(ckpt.read_text())
    rng.setstate((state["rng"][0], tuple(state["rng"][1]), state["rng"][2]))
while state["step"] < 30:
    time.sleep(0.03)
    state["value"] += rng.gauss(0, 1)
    state["step"] += 1
    state["rng"] = rng.getstate()
    atomic_write_json(ckpt, state)
atomic_write_json(Path("result.json"), {"value": state["value"]})
if "--late-term" in sys.argv:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    time.sleep(1.0)
