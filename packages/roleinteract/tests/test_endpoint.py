"""The OpenAI-compatible endpoint backend against a fake server on 127.0.0.1 started by the test."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from roleinteract.backends import EndpointBackend, EndpointConfig
from roleinteract.data import load_items
from roleinteract.harness import ask_all, score_replies
from roleinteract.scoring import ScoreConfig, aggregate
from roleinteract.synthetic import raw_item, write_items


class FakeOpenAI(ThreadingHTTPServer):
    """Answers ``POST /v1/chat/completions`` with the gold letter hidden in the option text; a scripted list of
    status codes is served first (e.g. 503 then 200)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict] = []
        self.headers_seen: list[dict] = []
        self.script: list[int] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: FakeOpenAI

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_POST(self) -> None:
        import time

        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with srv.lock:
            srv.requests.append(body)
            srv.headers_seen.append(dict(self.headers))
            status = srv.script.pop(0) if srv.script else 200
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
        time.sleep(0.01)
        with srv.lock:
            srv.in_flight -= 1
        if self.path != "/v1/chat/completions":
            status = 404
        if status != 200:
            payload = json.dumps({"error": {"message": f"scripted {status}"}}).encode()
        else:
            prompt = body["messages"][-1]["content"]
            letter = "B" if "option text B (gold)" in prompt else "A"
            payload = json.dumps(
                {"choices": [{"index": 0, "message": {"role": "assistant", "content": f"Answer: {letter}"}}]}
            ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    srv = FakeOpenAI()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _items(tmp_path: Path, n: int = 12):
    raws = []
    for i in range(n):
        raw = raw_item(label=["B"] if i % 2 else ["A"])
        if i % 2:
            raw["choices"]["B"] = "option text B (gold)"
        raws.append(raw)
    return load_items(write_items(tmp_path / "self_awareness.json", raws))


def test_endpoint_answers_are_scored_and_keyed_by_the_served_model(server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_KEY", "sk-test-123")
    items = _items(tmp_path)
    cfg = EndpointConfig(base_url=server.base_url, model="fake-7b", api_key_env="FAKE_KEY", max_concurrency=3)
    backend = EndpointBackend(cfg)
    replies = ask_all(backend, items, tmp_path / "cache.jsonl", progress=False)
    summary = aggregate(items, score_replies(items, replies), ScoreConfig())
    assert summary["columns"]["SA Style"] == 100.0
    assert len(server.requests) == len(items)
    assert all(h.get("Authorization") == "Bearer sk-test-123" for h in server.headers_seen)
    assert {r["model"] for r in server.requests} == {"fake-7b"}
    assert server.requests[0]["temperature"] == 0.0 and server.requests[0]["max_tokens"] == 32
    assert 1 <= server.max_in_flight <= 3  # concurrency limit holds
    assert backend.name == "endpoint:fake-7b"
    assert '"model": "endpoint:fake-7b"' in (tmp_path / "cache.jsonl").read_text()


def test_endpoint_retries_503_and_429_then_succeeds(server, tmp_path) -> None:
    server.script = [503, 429]
    items = _items(tmp_path, n=1)
    backend = EndpointBackend(EndpointConfig(base_url=server.base_url, backoff_s=0.01, max_concurrency=1))
    replies = ask_all(backend, items, tmp_path / "cache.jsonl", progress=False)
    assert replies[items[0].item_id] == "Answer: A"
    assert len(server.requests) == 3  # 503, 429, then 200


def test_endpoint_gives_up_after_max_retries_and_keeps_the_question_as_failed(server, tmp_path) -> None:
    server.script = [500, 500, 500]
    items = _items(tmp_path, n=3)
    cfg = EndpointConfig(base_url=server.base_url, backoff_s=0.01, max_retries=2, max_concurrency=1)
    cache = tmp_path / "cache.jsonl"
    replies = ask_all(EndpointBackend(cfg), items, cache, progress=False)  # the run goes on
    assert replies[items[0].item_id] is None
    assert all(replies[it.item_id] == f"Answer: {it.label[0]}" for it in items[1:])
    assert len(server.requests) == 3 + 2  # three tries of the first, one each for the others
    records = [json.loads(line) for line in cache.read_text().splitlines()]
    assert ["no answer after 3 attempts; last: HTTP 500" in r.get("error", "") for r in records] == [1, 0, 0]
    summary = aggregate(items, score_replies(items, replies), ScoreConfig())
    assert summary["unparsed"] == 1  # a failed question counts as unparsed
    # the next run does not ask it again unless told to
    assert ask_all(EndpointBackend(cfg), items, cache, progress=False)[items[0].item_id] is None
    assert len(server.requests) == 5
    again = ask_all(EndpointBackend(cfg), items, cache, progress=False, retry_failed=True)
    assert again[items[0].item_id] == f"Answer: {items[0].label[0]}" and len(server.requests) == 6


def test_endpoint_client_error_is_not_retried(server, tmp_path) -> None:
    server.script = [400]
    items = _items(tmp_path, n=1)
    cfg = EndpointConfig(base_url=server.base_url, backoff_s=0.01, max_concurrency=1)
    assert ask_all(EndpointBackend(cfg), items, tmp_path / "cache.jsonl", progress=False) == {
        items[0].item_id: None
    }
    assert len(server.requests) == 1
    assert "HTTP 400" in json.loads((tmp_path / "cache.jsonl").read_text())["error"]


def test_endpoint_without_key_sends_no_authorization(server, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    items = _items(tmp_path, n=2)
    ask_all(
        EndpointBackend(EndpointConfig(base_url=server.base_url)), items, tmp_path / "c.jsonl", progress=False
    )
    assert all("Authorization" not in h for h in server.headers_seen)


def test_unreachable_endpoint_fails_with_a_clear_error(tmp_path) -> None:
    items = _items(tmp_path, n=1)
    cfg = EndpointConfig(base_url="http://127.0.0.1:9/v1", backoff_s=0.01, max_retries=1, timeout_s=2)
    assert ask_all(EndpointBackend(cfg), items, tmp_path / "c.jsonl", progress=False) == {
        items[0].item_id: None
    }
    error = json.loads((tmp_path / "c.jsonl").read_text())["error"]
    assert "127.0.0.1:9" in error and "Connection refused" in error


def test_endpoint_config_is_validated() -> None:
    with pytest.raises(ValueError, match="base_url"):
        EndpointConfig(base_url="localhost:8000")
    with pytest.raises(ValueError, match="max_concurrency"):
        EndpointConfig(max_concurrency=0)
