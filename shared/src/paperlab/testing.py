"""Test helpers for the scale contract: run a training entry point under two CPU processes, as
``accelerate launch --cpu --num_processes 2`` (gloo), and read back what each rank wrote.

A package test runs its tiny config through :func:`run_two_processes` and then checks, with numbers, that both
ranks finished, that every result file was written once and by rank 0 (:attr:`TwoProcessRun.writes`, from the
``PAPERLAB_WRITE_LOG`` that :mod:`paperlab.io` appends to), and that the final weights are equal across ranks
(the entry point calls :func:`paperlab.scale.assert_replicas_equal`, which raises when they are not, and the
test reads the digest it logs or writes).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paperlab.io import WRITE_LOG_ENV


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for the launch's rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class TwoProcessRun:
    """What a two-process launch left: its exit code, output, and the ``(rank, path)`` of every atomic write."""

    returncode: int
    stdout: str
    stderr: str
    writes: list[tuple[int, Path]]

    def written_more_than_once(self) -> list[Path]:
        counts = Counter(path for _, path in self.writes)
        return sorted(p for p, n in counts.items() if n > 1)

    def written_by_other_ranks(self) -> list[Path]:
        return sorted({path for rank, path in self.writes if rank != 0})


def run_two_processes(
    args: Sequence[str],
    *,
    cwd: str | Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 600,
    check: bool = True,
) -> TwoProcessRun:
    """``accelerate launch --cpu --num_processes 2 <args>`` (``args`` as after the launcher: ``["-m", "irl_sft",
    "experiment=llm_tiny"]`` or a script path), one torch thread per process, in ``cwd``. With ``check`` a
    non-zero exit raises ``AssertionError`` carrying the end of both streams."""
    cwd = Path(cwd)
    log = cwd / f".paperlab-writes-{os.getpid()}.tsv"
    log.unlink(missing_ok=True)
    full_env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "ACCELERATE_USE_CPU": "true",
        WRITE_LOG_ENV: str(log),
        **(env or {}),
    }
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_ip",
        "127.0.0.1",
        "--main_process_port",
        str(free_port()),
        *args,
    ]
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout_s)
    writes: list[tuple[int, Path]] = []
    if log.exists():
        for line in log.read_text().splitlines():
            r, path = line.split("\t", 1)
            writes.append((int(r), Path(path)))
        log.unlink()
    run = TwoProcessRun(proc.returncode, proc.stdout, proc.stderr, writes)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"two-process run {' '.join(args)} exited {proc.returncode}\n--- stdout (end)\n{proc.stdout[-3000:]}"
            f"\n--- stderr (end)\n{proc.stderr[-6000:]}"
        )
    return run


def choice_accuracy(
    model: Any, tokenizer: Any, rows: Sequence[Mapping[str, Any]], delimiter: str = " "
) -> float:
    """Multiple-choice accuracy computed directly, to check an lm-eval run against: for each row (``question``,
    ``choices``, ``label``) the choice of the largest summed log-likelihood of ``delimiter + choice`` after the
    question (lm-eval's ``acc`` for ``output_type: multiple_choice``, its default target delimiter a space)."""
    import torch

    @torch.no_grad()
    def loglikelihood(context: str, continuation: str) -> float:
        ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
        cont = tokenizer(context + continuation, add_special_tokens=False)["input_ids"][len(ctx) :]
        ids = torch.tensor([ctx + cont], device=next(model.parameters()).device)
        logp = model(input_ids=ids).logits.float().log_softmax(-1)[0, len(ctx) - 1 : -1]
        return float(logp.gather(-1, torch.tensor(cont, device=logp.device)[:, None]).sum())

    hits = 0
    for r in rows:
        scores = [loglikelihood(r["question"], delimiter + c) for c in r["choices"]]
        hits += max(range(len(scores)), key=scores.__getitem__) == int(r["label"])
    return hits / len(rows)


def write_choice_task(folder: str | Path, task: str, rows: Sequence[Mapping[str, Any]]) -> Path:
    """A local lm-eval multiple-choice task, read offline: ``<folder>/<task>.jsonl`` with ``rows`` (``question``,
    ``choices``, ``label``) and ``<folder>/<task>.yaml``, accuracy as its metric. Returns ``folder``, the
    ``include_path`` to give lm-eval; :func:`choice_accuracy` computes the same accuracy directly."""
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{task}.jsonl"
    data.write_text("".join(json.dumps(dict(r)) + "\n" for r in rows))
    (folder / f"{task}.yaml").write_text(
        f"task: {task}\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\noutput_type: multiple_choice\n"
        'doc_to_text: "{{question}}"\ndoc_to_choice: "{{choices}}"\ndoc_to_target: "{{label}}"\n'
        "metric_list:\n  - metric: acc\n"
    )
    return folder
