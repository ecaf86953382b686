"""The OpenAI-compatible client (paperlab.serving) against a small server on 127.0.0.1 run by the test."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from paperlab.config import ConfigError
from paperlab.serving import OpenAIServer, ServerConfig, ServerError


class Fake:
    """Answers ``echo: <prompt>``; fails the first ``fail_first`` requests with 503; tracks peak concurrency."""

    def __init__(self, fail_first: int = 0, status: int = 503, delay_s: float = 0.05) -> None:
        self.fail_first, self.status, self.delay_s = fail_first, status, delay_s
        self.seen, self.active, self.peak = 0, 0, 0
        self.bodies: list[dict] = []
        self.lock = threading.Lock()


@pytest.fixture
def server():
    fakes = []

    def start(fake: Fake) -> str:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.seen += 1
                    n = fake.seen
                    fake.active += 1
                    fake.peak = max(fake.peak, fake.active)
                    fake.bodies.append({"path": self.path, **body})
                time.sleep(fake.delay_s)
                with fake.lock:
                    fake.active -= 1
                if n <= fake.fail_first:
                    self.send_response(fake.status)
                    self.end_headers()
                    self.wfile.write(b"busy")
                    return
                if self.path.endswith("/chat/completions"):
                    choice = {"message": {"content": "echo: " + body["messages"][0]["content"]}}
                else:
                    choice = {"text": "echo: " + body["prompt"]}
                out = json.dumps({"choices": [choice]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        fakes.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}/v1"

    yield start
    for httpd in fakes:
        httpd.shutdown()


def test_answers_in_order_with_bounded_concurrency_retry_and_resume(server, tmp_path):
    fake = Fake(fail_first=1)
    url = server(fake)
    cfg = ServerConfig(
        url, "m", concurrency=3, backoff_s=0.01, cache_path=str(tmp_path / "c.jsonl"), stop=["\n"]
    )
    client = OpenAIServer(cfg)
    prompts = [f"p{i}" for i in range(10)]
    assert client.complete(prompts) == [f"echo: p{i}" for i in range(10)]
    assert fake.peak <= 3 and fake.peak >= 2
    assert client.requests_sent == fake.seen == 11  # one 503 retried
    assert fake.bodies[-1]["stop"] == ["\n"] and fake.bodies[-1]["path"] == "/v1/completions"
    # a second client on the same cache sends nothing for the same prompts, and only the new one
    again = OpenAIServer(cfg)
    assert again.complete([*prompts, "new"])[-1] == "echo: new"
    assert again.requests_sent == 1 and fake.seen == 12


def test_chat_endpoint_and_errors(server):
    fake = Fake()
    url = server(fake)
    assert OpenAIServer(ServerConfig(url, "m", chat=True)).complete(["hi"]) == ["echo: hi"]
    assert (
        fake.bodies[0]["path"] == "/v1/chat/completions" and fake.bodies[0]["messages"][0]["role"] == "user"
    )
    bad = Fake(fail_first=10, status=400)
    with pytest.raises(ServerError, match="HTTP 400: busy"):
        OpenAIServer(ServerConfig(server(bad), "m", backoff_s=0.01)).complete(["x"])
    assert bad.seen == 1  # a 400 is not retried
    down = Fake(fail_first=10)
    with pytest.raises(ServerError, match="no answer after 3 attempts; last: HTTP 503"):
        OpenAIServer(ServerConfig(server(down), "m", retries=2, backoff_s=0.01)).complete(["x"])
    with pytest.raises(ConfigError, match=r"server\.base_url"):
        ServerConfig("127.0.0.1:8000", "m")
