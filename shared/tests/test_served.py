"""paperlab.serving against a real server: ``transformers serve`` with the tiny checkpoint (the ``openai_server``
fixture of paperlab's pytest plugin), through its counting, fault-injecting proxy."""

from __future__ import annotations

import torch

from paperlab.models import load_causal_lm, load_tokenizer
from paperlab.serving import OpenAIServer, ServerConfig

PROMPTS = [f"the {w} of item {i}" for i, w in enumerate(["cat", "dog", "sun", "map", "key"] * 4)]


def _greedy(checkpoint, prompt: str, new: int) -> str:
    tokenizer = load_tokenizer(checkpoint)
    model = load_causal_lm(checkpoint).eval()
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=new, do_sample=False, min_new_tokens=new)
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


def test_completions_from_the_served_model_are_its_greedy_continuations(openai_server, tmp_path):
    cfg = ServerConfig(openai_server.base_url, openai_server.model, max_tokens=6, concurrency=2)
    done = OpenAIServer(cfg).complete(PROMPTS[:3])
    assert all(c.ok for c in done) and len(openai_server.completions()) == 3
    assert done[0].text == _greedy(openai_server.checkpoint, PROMPTS[0], 6)  # the same model, greedy
    chat = OpenAIServer(ServerConfig(openai_server.base_url, openai_server.model, chat=True, max_tokens=4))
    assert (
        chat.complete(["hello"])[0].ok
        and openai_server.completions()[-1]["messages"][-1]["content"] == "hello"
    )


def test_one_request_in_five_failing_leaves_every_other_answered_and_counted(openai_server, tmp_path):
    openai_server.fail_prompts(0.2)
    failing = [p for p in PROMPTS if openai_server.would_fail(p)]
    assert 1 <= len(failing) <= 8  # about one in five of the 20
    cache = tmp_path / "answers.jsonl"
    cfg = ServerConfig(openai_server.base_url, openai_server.model, max_tokens=4, retries=1, backoff_s=0.0)
    client = OpenAIServer(ServerConfig(**{**cfg.__dict__, "cache_path": str(cache)}))
    done = client.complete(PROMPTS)
    assert [not c.ok for c in done] == [p in failing for p in PROMPTS]
    assert client.failures == len(failing) and all("HTTP 500" in c.error for c in done if not c.ok)
    assert len(cache.read_text().splitlines()) == len(PROMPTS)  # every outcome written, nothing lost
    assert len(openai_server.completions()) == len(PROMPTS) + len(failing)  # each failing one retried once
    openai_server.fail_prompts(0.0)
    again = OpenAIServer(ServerConfig(**{**cfg.__dict__, "cache_path": str(cache), "retry_failed": True}))
    assert all(c.ok for c in again.complete(PROMPTS)) and again.requests_sent == len(failing)


def test_prompts_are_cut_to_the_served_context_with_the_served_tokenizer(openai_server):
    tokenizer = load_tokenizer(openai_server.checkpoint)
    long = " ".join(f"word{i}" for i in range(400))
    cfg = ServerConfig(
        openai_server.base_url,
        openai_server.model,
        max_tokens=8,
        context_tokens=64,
        tokenizer=str(openai_server.checkpoint),
    )
    done = OpenAIServer(cfg).complete([long])[0]
    sent = openai_server.completions()[-1]["prompt"]
    assert done.ok and done.dropped_tokens > 0
    assert len(tokenizer(sent, add_special_tokens=False)["input_ids"]) <= 64 - 8
    assert long.endswith(sent.split()[-1])  # the start is dropped (truncate=left), the end kept


def test_the_api_key_is_sent_from_the_environment_and_never_written(openai_server, tmp_path, monkeypatch):
    secret = "sk-paperlab-test-5f1e2d3c4b5a"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    cache = tmp_path / "answers.jsonl"
    cfg = ServerConfig(openai_server.base_url, openai_server.model, max_tokens=3, cache_path=str(cache))
    assert all(c.ok for c in OpenAIServer(cfg).complete(PROMPTS[:2]))
    assert {h.get("Authorization") for h in openai_server.headers} == {f"Bearer {secret}"}
    assert all(secret not in p.read_text() for p in tmp_path.rglob("*") if p.is_file())
