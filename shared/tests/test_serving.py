"""The OpenAI-compatible client (paperlab.serving) against a small server on 127.0.0.1 run by the test."""

import json
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from paperlab.config import ConfigError
from paperlab.serving import OpenAIServer, ServerConfig, ServerError


class Fake:
    """Answers ``echo: <prompt>``; fails the first ``fail_first`` requests with 503; tracks peak concurrency."""

    def __init__(
        self, fail_first: int = 0, status: int = 503, delay_s: float = 0.05, retry_after: str | None = None
    ) -> None:
        self.fail_first, self.status, self.delay_s, self.retry_after = (
            fail_first,
            status,
            delay_s,
            retry_after,
        )
        self.times: list[float] = []
        self.context: int | None = None  # the max_model_len /v1/models reports
        self.auth: list[str | None] = []
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

            def do_GET(self):  # /v1/models, as vLLM answers it (with the served context length)
                entry = (
                    {"id": "m", "object": "model", "max_model_len": fake.context}
                    if fake.context
                    else {"id": "m"}
                )
                out = json.dumps({"object": "list", "data": [entry]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.seen += 1
                    n = fake.seen
                    fake.active += 1
                    fake.peak = max(fake.peak, fake.active)
                    fake.bodies.append({"path": self.path, **body})
                    fake.times.append(time.monotonic())
                    fake.auth.append(self.headers.get("Authorization"))
                time.sleep(fake.delay_s)
                with fake.lock:
                    fake.active -= 1
                if n <= fake.fail_first:
                    self.send_response(fake.status)
                    if fake.retry_after is not None:
                        self.send_header("Retry-After", fake.retry_after)
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
    assert client.texts(prompts) == [f"echo: p{i}" for i in range(10)]
    assert fake.peak <= 3 and fake.peak >= 2
    assert client.requests_sent == fake.seen == 11  # one 503 retried
    assert fake.bodies[-1]["stop"] == ["\n"] and fake.bodies[-1]["path"] == "/v1/completions"
    # a second client on the same cache sends nothing for the same prompts, and only the new one
    again = OpenAIServer(cfg)
    assert again.texts([*prompts, "new"])[-1] == "echo: new"
    assert again.requests_sent == 1 and fake.seen == 12


def test_chat_endpoint_and_errors(server):
    fake = Fake()
    url = server(fake)
    assert OpenAIServer(ServerConfig(url, "m", chat=True)).texts(["hi"]) == ["echo: hi"]
    assert (
        fake.bodies[0]["path"] == "/v1/chat/completions" and fake.bodies[0]["messages"][0]["role"] == "user"
    )
    bad = Fake(fail_first=10, status=400)
    refused = OpenAIServer(ServerConfig(server(bad), "m", backoff_s=0.01)).complete(["x"])[0]
    assert not refused.ok and refused.text == "" and "HTTP 400: busy" in refused.error
    assert bad.seen == 1  # a 400 is not retried
    down = Fake(fail_first=10)
    with pytest.raises(
        ServerError, match=r"1 of 1 prompts failed; first: .*no answer after 3 attempts; last: HTTP 503"
    ):
        OpenAIServer(ServerConfig(server(down), "m", retries=2, backoff_s=0.01)).texts(["x"])
    assert down.seen == 3
    with pytest.raises(ConfigError, match=r"server\.base_url"):
        ServerConfig("127.0.0.1:8000", "m")


def test_retry_after_is_waited_for_and_capped(server):
    fake = Fake(fail_first=1, status=429, delay_s=0.0, retry_after="0.6")
    cfg = ServerConfig(server(fake), "m", backoff_s=0.01)
    assert OpenAIServer(cfg).texts(["x"]) == ["echo: x"]
    assert fake.times[1] - fake.times[0] >= 0.55  # the header's 0.6 s, not the 0.01 s backoff
    capped = Fake(fail_first=1, status=503, delay_s=0.0, retry_after="3600")
    start = time.monotonic()
    assert OpenAIServer(ServerConfig(server(capped), "m", max_backoff_s=0.2)).texts(["y"]) == ["echo: y"]
    assert time.monotonic() - start < 5


def test_a_failed_prompt_is_cached_as_failed_and_asked_again_only_when_told(server, tmp_path):
    fake = Fake(fail_first=3, status=503, delay_s=0.0)
    cache = str(tmp_path / "c.jsonl")
    first = OpenAIServer(
        ServerConfig(server(fake), "m", retries=2, backoff_s=0.0, cache_path=cache, concurrency=1)
    )
    done = first.complete(["bad", "good"])
    assert [c.ok for c in done] == [False, True] and first.failures == 1 and fake.seen == 4
    again = OpenAIServer(ServerConfig(first.cfg.base_url, "m", retries=2, backoff_s=0.0, cache_path=cache))
    replay = again.complete(["bad", "good"])
    assert [c.cached for c in replay] == [True, True] and not replay[0].ok and again.requests_sent == 0
    asked = OpenAIServer(
        ServerConfig(first.cfg.base_url, "m", retries=2, backoff_s=0.0, cache_path=cache, retry_failed=True)
    )
    assert [c.text for c in asked.complete(["bad", "good"])] == ["echo: bad", "echo: good"]
    assert asked.requests_sent == 1 and asked.failures == 0  # only the failed one, now answered


def test_the_key_comes_from_the_environment_and_is_never_written(server, tmp_path, monkeypatch):
    fake = Fake(delay_s=0.0)
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("MY_SERVER_KEY", secret)
    cache = tmp_path / "c.jsonl"
    cfg = ServerConfig(server(fake), "m", cache_path=str(cache), api_key_env="MY_SERVER_KEY")
    assert OpenAIServer(cfg).texts(["x"]) == ["echo: x"]
    assert fake.auth == [f"Bearer {secret}"]
    assert secret not in cache.read_text() and secret not in repr(cfg)
    monkeypatch.delenv("MY_SERVER_KEY")
    OpenAIServer(ServerConfig(cfg.base_url, "m")).texts(["y"])
    assert fake.auth[-1] is None  # no key in the environment: none sent


def test_each_answer_changing_setting_changes_the_cache_key():
    base = ServerConfig("http://127.0.0.1:1/v1", "m")
    key = OpenAIServer(base).key("p")
    changed = {
        "base_url": "http://127.0.0.1:2/v1", "model": "n", "chat": True, "system": "be brief", "max_tokens": 9,
        "temperature": 0.7, "top_p": 0.9, "seed": 3, "stop": ["\n"], "context_tokens": 512,
    }  # fmt: skip
    for name, value in changed.items():
        assert OpenAIServer(replace(base, **{name: value})).key("p") != key, name
    assert OpenAIServer(replace(base, concurrency=2, timeout_s=5)).key("p") == key  # how, not what


def test_the_served_context_is_asked_of_the_model_list_and_prompts_are_cut_to_it(server, tmp_path):
    from paperlab.models import save_tiny_checkpoint

    tokenizer_dir = save_tiny_checkpoint(tmp_path / "tok")
    fake = Fake(delay_s=0.0)
    fake.context = 40  # vLLM's max_model_len
    cfg = ServerConfig(server(fake), "m", max_tokens=8, tokenizer=str(tokenizer_dir))
    client = OpenAIServer(cfg)
    long = " ".join(f"w{i}" for i in range(200))
    done = client.complete([long, "short"])
    assert client.served_context() == 40 and done[0].dropped_tokens > 0 and done[1].dropped_tokens == 0
    from paperlab.models import load_tokenizer

    tok = load_tokenizer(tokenizer_dir)
    sent = [b["prompt"] for b in fake.bodies]
    assert max(len(tok(p, add_special_tokens=False)["input_ids"]) for p in sent) <= 40 - 8
    assert "short" in sent and long.endswith(sent[0] if sent[0] != "short" else sent[1])
    plain = Fake(delay_s=0.0)  # a server whose model list says nothing: no cut
    assert OpenAIServer(replace(cfg, base_url=server(plain))).complete([long])[0].dropped_tokens == 0
