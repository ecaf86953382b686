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


def test_server_errors_name_the_url(server):
    with pytest.raises(RuntimeError, match=r"/v1/chat/completions: HTTP 400"):
        server_responses(server, "other-model", ["x"])
    with pytest.raises(RuntimeError, match="is the server running"):
        server_responses("http://127.0.0.1:9", "m", ["x"], timeout_s=2)
