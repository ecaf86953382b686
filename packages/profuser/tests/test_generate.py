"""Inference-mode answers from an OpenAI-compatible server (a local stand-in on 127.0.0.1)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from profuser.generate import server_responses


class _Echo(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body.get("model") != "m" or body.get("temperature") != 0.0:
            self.send_response(400)
            self.end_headers()
            self.wfile.write(b"bad request")
            return
        if self.path == "/v1/chat/completions":
            text = body["messages"][0]["content"].upper()
            choice = {"message": {"role": "assistant", "content": text}}
        else:
            choice = {"text": body["prompt"][::-1]}
        data = json.dumps({"choices": [choice]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = HTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_answers_come_back_in_prompt_order(server):
    prompts = [f"prompt {i}" for i in range(20)]
    assert server_responses(server, "m", prompts, workers=4) == [p.upper() for p in prompts]
    assert server_responses(server, "m", ["abc"], chat=False) == ["cba"]


def test_a_failed_request_answers_none_and_the_others_are_kept(server, caplog):
    assert server_responses(server, "other-model", ["x"]) == [None]  # refused (HTTP 400): not retried
    assert "/v1/chat/completions: HTTP 400" in caplog.text
    down = server_responses("http://127.0.0.1:9", "m", ["x", "y"], timeout_s=2, retries=1, backoff_s=0.0)
    assert down == [None, None]


def test_a_real_server_gives_the_local_greedy_answers(openai_server):
    """``transformers serve`` with the tiny checkpoint (paperlab's ``openai_server``): the served answers are the
    local :func:`greedy_responses` of the same model, prompt by prompt, through the chat template; with one request
    in five failing, the failing prompts answer None and every other is the same."""
    from paperlab.models import load_causal_lm, load_tokenizer
    from profuser.generate import greedy_responses

    prompts = [f"question {i}: how many {w}?" for i, w in enumerate(["cats", "maps", "keys", "suns"] * 3)]
    model, tokenizer = load_causal_lm(openai_server.checkpoint), load_tokenizer(openai_server.checkpoint)
    local = greedy_responses(model, tokenizer, prompts, max_new_tokens=6, batch_size=1, chat=True)
    served = server_responses(openai_server.base_url, openai_server.model, prompts, max_new_tokens=6)
    assert served == local and len(openai_server.completions()) == len(prompts)
    openai_server.fail_prompts(0.2)
    flaky = server_responses(
        openai_server.base_url, openai_server.model, prompts, max_new_tokens=6, retries=1, backoff_s=0.0
    )
    failing = [openai_server.would_fail(p) for p in prompts]
    assert any(failing) and flaky == [None if f else t for f, t in zip(failing, local, strict=True)]
