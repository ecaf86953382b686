"""The entry-point contract of paperlab.config.hydra_entry, run as a real program: Hydra's flags after an override,
one line and exit 2 for a config or data error (Hydra's own included), 130 / 143 on Ctrl-C / SIGTERM with the
``finally`` blocks run, a bug keeps its traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

MAIN = """
import os, sys, time
from pathlib import Path
from paperlab.config import ConfigError, hydra_entry
from paperlab.io import DataError

def run(cfg):
    what = cfg.what
    if what == "config":
        raise ConfigError("train.lr=-1: expected a positive float")
    if what == "data":
        raise DataError("data.jsonl:3: field 'prompt' missing")
    if what == "bug":
        raise RuntimeError("a bug")
    if what == "wrapped":  # a library that turns our interrupt into its own error (matplotlib's C init did)
        Path(os.environ["READY"]).write_text("ready")
        try:
            time.sleep(60)
        except BaseException as err:
            raise ImportError("initialization failed") from err
    if what == "wait":
        try:
            Path(os.environ["READY"]).write_text("ready")
            time.sleep(60)
        finally:
            Path(os.environ["READY"]).write_text("cleaned up")
    print("ran", what)

hydra_entry("entrypkg", run)()
"""


@pytest.fixture
def program(tmp_path):
    pkg = tmp_path / "entrypkg"
    (pkg / "conf" / "experiment").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "conf" / "__init__.py").write_text("")
    (pkg / "conf" / "config.yaml").write_text(
        textwrap.dedent(
            """
            defaults:
              - _self_
              - experiment: tiny
            what: ok
            """
        )
    )
    (pkg / "conf" / "experiment" / "tiny.yaml").write_text("# @package _global_\n{}\n")
    (tmp_path / "main.py").write_text(MAIN)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "READY": str(tmp_path / "ready")}

    def start(*args: str, **kw):
        # Ctrl-C as in a terminal: a shell's background job (``make test &``) inherits SIGINT ignored, and Python
        # then never raises KeyboardInterrupt
        return subprocess.Popen(
            [sys.executable, str(tmp_path / "main.py"), *args],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kw,
        )  # fmt: skip

    def call(*args: str):
        proc = start(*args)
        out, err = proc.communicate(timeout=120)
        return proc.returncode, out, err

    call.start = start
    call.ready = tmp_path / "ready"
    return call


def test_hydra_flags_after_an_override(program):
    code, out, err = program("experiment=tiny", "--cfg", "job")
    assert code == 0, err
    assert "what: ok" in out
    code, out, _ = program("what=fine")
    assert (code, out.strip().splitlines()[-1]) == (0, "ran fine")


@pytest.mark.parametrize(
    ("what", "line"),
    [
        ("config", "entrypkg: error: train.lr=-1: expected a positive float"),
        ("data", "entrypkg: error: data.jsonl:3: field 'prompt' missing"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(program, what, line):
    code, _, err = program(f"what={what}")
    assert code == 2
    assert err.strip().splitlines() == [line]


@pytest.mark.parametrize(
    ("override", "named"),
    [("no_such_key=1", "no_such_key"), ("experiment=absent", "absent"), ("what=[unclosed", "what=[unclosed")],
)
def test_hydra_composition_errors_are_one_line_and_exit_2(program, override, named):
    code, _, err = program(override)
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("entrypkg: error: ") and named in line


def test_a_bug_keeps_its_traceback(program):
    code, _, err = program("what=bug")
    assert code == 1 and "RuntimeError: a bug" in err


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupts_run_cleanup_and_exit_128_plus_the_signal(program, sig, code):
    proc = program.start("what=wait")
    deadline = time.monotonic() + 60
    while not (program.ready.exists() and program.ready.read_text() == "ready"):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code
    assert program.ready.read_text() == "cleaned up"
    (last,) = err.strip().splitlines()
    assert "rerun the same command to resume" in last


def test_an_interrupt_a_library_wrapped_in_its_own_error_still_exits_143(program):
    """CI, run 36: SIGTERM landed inside matplotlib's ft2font init, which raised ImportError from our Interrupted;
    the entry point took it for a bug (traceback, then the interpreter aborted: -6)."""
    proc = program.start("what=wrapped")
    deadline = time.monotonic() + 60
    while not (program.ready.exists() and program.ready.read_text() == "ready"):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    (last,) = err.strip().splitlines()
    assert "stopped by signal 15" in last


def test_an_in_process_run_leaves_every_logging_handler_and_its_stream_alone(program, tmp_path, monkeypatch):
    """Hydra's logging config (``dictConfig``) shuts down every handler alive in the process, and some close their
    stream when shut down (absl's, imported by rouge_score and lm_eval, holds the ``sys.stderr`` of its import, which
    under pytest is the capture file): a CLI run in a test then closed pytest's capture and every later test on that
    worker errored with "I/O operation on closed file". The entry point leaves logging to ``setup_logging``."""
    import logging

    from hydra.core.global_hydra import GlobalHydra

    from paperlab.config import hydra_entry

    class ClosesItsStream(logging.StreamHandler):  # as absl's PythonHandler.close does
        def close(self) -> None:
            self.stream.close()
            super().close()

    stream = (tmp_path / "log.txt").open("w")
    handler = ClosesItsStream(stream)  # alive (in logging's handler list), not even attached to a logger
    ran = []
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["entrypkg", "what=fine"])
    GlobalHydra.instance().clear()
    hydra_entry("entrypkg", lambda cfg: ran.append(cfg.what))()
    GlobalHydra.instance().clear()
    assert ran == ["fine"]
    assert not stream.closed
    assert all(h is not handler for h in logging.getLogger().handlers)
    stream.close()
