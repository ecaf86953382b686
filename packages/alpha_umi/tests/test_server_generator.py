"""The OpenAI-compatible client against a tiny local server on 127.0.0.1: one prompt per request in the trained
format, at most ``concurrency`` requests in flight, a failed request retried, completions cached on disk so that a
restart asks for nothing twice."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from alpha_umi.infer import ServerGenerator


class _Server:
    """Answers ``out <prompt>``; the first request fails with HTTP 503; counts requests and peak concurrency."""

    def __init__(self, delay_s: float = 0.05) -> None:
        self.lock, self.active, self.peak, self.bodies, self.failed = threading.Lock(), 0, 0, [], 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.active += 1
                    outer.peak = max(outer.peak, outer.active)
                    first = not outer.bodies and not outer.failed
                    if first:
                        outer.failed += 1
                    else:
                        outer.bodies.append((self.path, body))
                time.sleep(delay_s)
                with outer.lock:
                    outer.active -= 1
                if first:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = json.dumps({"choices": [{"index": 0, "text": f" out {body['prompt']} "}]}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_bounded_concurrency_retry_and_resume_from_cache(tmp_path) -> None:
    prompts = [f"p{i} assistant: " for i in range(12)]
    cache = tmp_path / "cache.jsonl"
    with _Server() as srv:
        gen = ServerGenerator(
            srv.url, "alpha-umi-planner", 7, concurrency=3, backoff_s=0.01, cache_path=cache
        )
        out = gen(prompts)
        assert out == [
            f"out system: p{i} assistant:" for i in range(12)
        ]  # in order, stripped, trained format
        assert srv.failed == 1 and gen.requests == 13  # the 503 was retried
        assert 2 <= srv.peak <= 3  # concurrent, never more than the bound
        path, body = srv.bodies[0]
        assert path == "/v1/completions" and body["model"] == "alpha-umi-planner"
        assert (body["max_tokens"], body["temperature"], body["stop"]) == (7, 0.0, ["</s>"])
        assert len(cache.read_text().splitlines()) == 12
        # a restart: a new client on the same cache asks only for the prompt it has not seen
        again = ServerGenerator(srv.url, "alpha-umi-planner", 7, concurrency=3, cache_path=cache)
        assert again([*prompts, "new"]) == [*out, "out system: new"] and again.requests == 1
        # another model name is another key
        other = ServerGenerator(srv.url, "alpha-umi-caller", 7, cache_path=cache)
        assert other(prompts[:1]) == out[:1] and other.requests == 1


def test_client_errors_fail_at_once_and_dead_servers_after_the_retries() -> None:
    class NotFound(BaseHTTPRequestHandler):
        def do_POST(self):
            self.send_response(404)
            self.send_header("Content-Length", "9")
            self.end_headers()
            self.wfile.write(b"no model!")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        gen = ServerGenerator(f"http://127.0.0.1:{server.server_address[1]}", "m", retries=3, backoff_s=0.01)
        assert gen(["p"]) == [""]  # answered "", the run goes on
        assert gen.requests == 1 and gen.failures == 1 and "HTTP 404: no model!" in gen.errors[0]
    finally:
        server.shutdown()
        server.server_close()
    dead = ServerGenerator(
        f"http://127.0.0.1:{server.server_address[1]}", "m", retries=2, backoff_s=0.01, timeout_s=1
    )
    assert dead(["p"]) == [""] and dead.failures == 1 and "no answer after 3 attempts" in dead.errors[0]


def test_a_real_server_answers_as_the_local_generator_and_failures_are_counted(
    openai_server, tmp_path
) -> None:
    """``transformers serve`` with the tiny checkpoint (paperlab's ``openai_server``): the served role model gives
    the local greedy :class:`Generator`'s completions, prompt by prompt; with one request in five failing, the
    others are answered, the failed ones answer "" and are counted, and the cache keeps every outcome."""
    from alpha_umi.infer import Generator
    from alpha_umi.tokens import prompt_text

    prompts = [f"user: task {i} assistant: " for i in range(10)]
    local = Generator(openai_server.checkpoint, max_new_tokens=6, batch_size=1)(prompts)
    cache = tmp_path / "cache.jsonl"
    served = ServerGenerator(openai_server.base_url, openai_server.model, 6, concurrency=2, cache_path=cache)
    assert served(prompts) == local and served.failures == 0
    assert len(openai_server.completions()) == 10
    openai_server.fail_prompts(0.2)
    more = [f"user: other {i} assistant: " for i in range(10)]
    flaky = ServerGenerator(
        openai_server.base_url, openai_server.model, 6, retries=1, backoff_s=0.0, cache_path=cache
    )
    out = flaky(more)
    failing = [openai_server.would_fail(prompt_text(p)) for p in more]  # what the server is sent
    assert any(failing) and flaky.failures == sum(failing)
    assert [o == "" for o, f in zip(out, failing, strict=True) if f] == [True] * sum(failing)
    assert len(cache.read_text().splitlines()) == 20
