"""A real OpenAI-compatible server for tests: ``transformers serve`` (transformers' own server, the ``serving``
extra) on 127.0.0.1 with a tiny local checkpoint, offline, on CPU, behind a small proxy that counts what the
server was asked and can make requests fail.

:func:`start_served_model` starts both and returns a :class:`ServedModel`; ``paperlab``'s pytest plugin wraps it in
the session fixture ``openai_server`` (one server per test process, stopped at the end). The proxy is what the
client talks to (:attr:`ServedModel.base_url`); it records every request (:attr:`ServedModel.requests`) and, with
:meth:`ServedModel.fail_prompts`, answers HTTP 500 to every request whose prompt hashes into the failing fraction
(the same prompt fails every time, so a client's retries cannot hide it); ``delay_s`` makes it a slow server.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from paperlab.testing import free_port


def prompt_of(body: dict[str, Any]) -> str:
    """The text a completions / chat request asks about (the prompt, or the last user turn)."""
    if "messages" in body:
        return str(body["messages"][-1].get("content", ""))
    return str(body.get("prompt", ""))


def _fails(prompt: str, fraction: float) -> bool:
    return int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) / 16**8 < fraction


@dataclass
class ServedModel:
    """A running ``transformers serve`` and its proxy. ``base_url`` (the proxy, with ``/v1``) and ``model`` are
    what a client is configured with; ``checkpoint`` is the served folder (for a local twin of the model)."""

    base_url: str
    upstream: str
    model: str
    checkpoint: Path
    process: subprocess.Popen
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    failing_fraction: float = 0.0
    delay_s: float = 0.0  # the proxy waits this long before forwarding a generation request (a slow server)
    _proxy: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_prompts(self, fraction: float) -> None:
        """From now on, answer HTTP 500 to the requests whose prompt falls in ``fraction`` of the hash space."""
        self.failing_fraction = fraction

    def would_fail(self, prompt: str) -> bool:
        return _fails(prompt, self.failing_fraction)

    def reset(self) -> None:
        """Forget the recorded requests and stop failing."""
        with self._lock:
            self.requests.clear()
            self.headers.clear()
        self.failing_fraction = 0.0
        self.delay_s = 0.0

    def completions(self) -> list[dict[str, Any]]:
        """The recorded generation requests (completions and chat), in arrival order."""
        with self._lock:
            return [r for r in self.requests if r["path"].endswith("completions")]

    def stop(self) -> None:
        if self._proxy is not None:
            self._proxy.shutdown()
            self._proxy.server_close()
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _proxy(served: ServedModel) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _forward(self, method: str) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method == "POST" else None
            body = json.loads(raw) if raw else {}
            with served._lock:
                served.requests.append({"path": self.path, **body})
                served.headers.append(dict(self.headers))
            if (
                method == "POST"
                and served.failing_fraction
                and _fails(prompt_of(body), served.failing_fraction)
            ):
                self._reply(500, b'{"error": "injected failure"}')
                return
            if method == "POST" and served.delay_s:
                time.sleep(served.delay_s)
            request = urllib.request.Request(
                served.upstream + self.path,
                data=raw,
                method=method,
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=600) as response:
                    self._reply(response.status, response.read())
            except urllib.error.HTTPError as err:
                self._reply(err.code, err.read())

        def _reply(self, status: int, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._forward("GET")

        def do_POST(self) -> None:
            self._forward("POST")

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def start_served_model(
    checkpoint: str | Path, *, timeout_s: float = 300.0, log: str | Path | None = None
) -> ServedModel:
    """``transformers serve <checkpoint>`` on a free 127.0.0.1 port (CPU, offline, one torch thread) and the
    proxy in front of it; returns once ``/health`` answers and the model has answered one request (the first
    request loads it). Raises ``RuntimeError`` with the server's output when it does not come up in
    ``timeout_s``."""
    checkpoint = Path(checkpoint).resolve()
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error"}
    out = Path(log) if log is not None else checkpoint.parent / f"serve-{port}.log"
    command = [
        sys.executable,
        "-m",
        "transformers.cli.transformers",
        "serve",
        str(checkpoint),
    ]  # the CLI's main
    command += ["--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    with out.open("w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    served = ServedModel("", f"http://127.0.0.1:{port}", str(checkpoint), checkpoint, process)
    deadline = time.monotonic() + timeout_s
    warm = json.dumps({"model": served.model, "prompt": "hello", "max_tokens": 1}).encode()
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            served.stop()
            raise RuntimeError(
                f"transformers serve did not come up on port {port}: {out.read_text()[-2000:]}"
            )
        try:
            request = urllib.request.Request(
                served.upstream + "/v1/completions", data=warm, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=60):
                break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    served._proxy = _proxy(served)
    threading.Thread(target=served._proxy.serve_forever, daemon=True).start()
    served.base_url = f"http://127.0.0.1:{served._proxy.server_address[1]}/v1"
    return served
