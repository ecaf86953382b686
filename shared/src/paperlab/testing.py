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
from collections.abc import Callable, Mapping, Sequence
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


@dataclass
class KillResume:
    """What :func:`kill_and_resume` saw: the reference run's atomic writes, and per kill point the write it was
    killed after, its exit code (143 when the signal landed, 0 when the run had already finished) and the
    resumed run's exit code."""

    reference_writes: int
    kills: list[dict[str, Any]]

    @property
    def landed(self) -> int:
        return sum(1 for k in self.kills if k["returncode"] == 143)


def _watch_writes(log: Path) -> int:
    try:
        return sum(1 for _ in log.open(encoding="utf-8"))
    except FileNotFoundError:
        return 0


def _half_written(root: Path) -> list[Path]:
    """Temporary files an atomic write leaves only when killed mid-write (paperlab.io names them ``.<name>.*.tmp``)."""
    return sorted(p for p in root.rglob(".*.tmp") if p.is_file())


def kill_and_resume(
    args: Sequence[str],
    *,
    workdir: str | Path,
    outputs: Callable[[Path], Any],
    kills: int = 3,
    seed: int = 0,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 600,
) -> KillResume:
    """The kill-and-resume contract of a resumable run, checked with numbers.

    ``args`` (a command; ``{cwd}`` in any argument becomes the run's folder) runs once uninterrupted in
    ``workdir/reference``, counting its atomic writes (``PAPERLAB_WRITE_LOG``). Then, per kill point, a fresh
    ``workdir/kill<i>`` runs it again and gets SIGTERM right after its k-th atomic write plus a short random
    delay (k and the delay drawn from ``seed``, so mid-step kills are covered too); the killed run must exit 143
    (or 0 if it had finished; or die of the signal as the interpreter shuts down, when its outputs are already the
    reference's), leave no half-written file, and the rerun in the same folder must exit 0 with
    ``outputs(folder)`` equal to the reference's. At least one kill must land. Returns what happened."""
    import random
    import signal
    import time

    rng = random.Random(seed)
    workdir = Path(workdir)
    base_env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **(env or {})}

    def start(cwd: Path) -> tuple[subprocess.Popen, Path]:
        cwd.mkdir(parents=True, exist_ok=True)
        log = workdir / f"{cwd.name}.writes.tsv"
        log.unlink(missing_ok=True)
        cmd = [a.replace("{cwd}", str(cwd)) for a in args]
        # streams to files, not pipes: a chatty run must not block on a full pipe before the kill point
        out = open(workdir / f"{cwd.name}.{len(list(workdir.glob(cwd.name + '.*.out')))}.out", "w+")  # noqa: SIM115
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env={**base_env, WRITE_LOG_ENV: str(log)},
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        proc.paperlab_out = out  # type: ignore[attr-defined]
        return proc, log

    def finish(proc: subprocess.Popen, what: str) -> tuple[int, str]:
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"{what}: still running after {timeout_s} s") from None
        out = proc.paperlab_out  # type: ignore[attr-defined]
        out.seek(0)
        text = out.read()
        out.close()
        return proc.returncode, text

    ref_dir = workdir / "reference"
    proc, log = start(ref_dir)
    rc, err = finish(proc, "reference run")
    assert rc == 0, f"reference run {' '.join(args)} exited {rc}:\n{err[-4000:]}"
    total = _watch_writes(log)
    assert total > 0, f"reference run {' '.join(args)} made no atomic write: nothing to resume from"
    expected = outputs(ref_dir)
    points = sorted(rng.sample(range(1, total + 1), min(kills, total)))
    seen: list[dict[str, Any]] = []
    for i, k in enumerate(points):
        cwd = workdir / f"kill{i}"
        delay = rng.uniform(0.0, 0.4)
        proc, log = start(cwd)
        deadline = time.monotonic() + timeout_s
        while proc.poll() is None and _watch_writes(log) < k and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        rc, err = finish(proc, f"run killed after write {k}")
        if (
            rc == -signal.SIGTERM
        ):  # the signal came after the entry point returned, as the interpreter shut down
            assert outputs(cwd) == expected, (
                f"killed after write {k}: exit {rc} (SIGTERM after the run returned) but its outputs are not "
                f"the reference's:\n{err[-4000:]}"
            )
        else:
            assert rc in (0, 143), (
                f"killed after write {k}: exit {rc}, expected 143 (or 0 if done):\n{err[-4000:]}"
            )
        if rc == 143:
            lines = [line for line in err.splitlines() if "resume" in line]
            assert lines, f"killed after write {k}: no line saying how to resume in stderr:\n{err[-2000:]}"
        left = _half_written(cwd)
        assert not left, f"killed after write {k}: half-written files left: {left}"
        proc, _ = start(cwd)
        rc2, err2 = finish(proc, f"rerun after the kill at write {k}")
        assert rc2 == 0, f"rerun after the kill at write {k} exited {rc2}:\n{err2[-4000:]}"
        got = outputs(cwd)
        assert got == expected, (
            f"resumed after the kill at write {k}: outputs differ\n{got!r}\n!=\n{expected!r}"
        )
        seen.append({"after_write": k, "delay_s": round(delay, 3), "returncode": rc})
    result = KillResume(total, seen)
    assert result.landed >= 1, f"no kill landed before the run finished: {seen}"
    return result
