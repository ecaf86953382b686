"""The endpoint backend against a real OpenAI-compatible server (``transformers serve`` with the tiny checkpoint,
paperlab's ``openai_server`` fixture): the shipped EP file scored through the server equals the local backend on the
same model, item by item; a server failing one request in five leaves the others answered and the failures counted;
a run interrupted by SIGINT or SIGTERM resumes from its cache, asks the server only for what is missing, and scores
as an uninterrupted run; prompts are cut to the served context; the API key is never written."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from paperlab.config import compose, from_config
from roleinteract.experiment import EvalConfig, evaluate
from roleinteract.harness import cache_key, settings_key
from roleinteract.prompts import build_prompt
from roleinteract.synthetic import raw_item, write_items


def _cfg(*overrides: str) -> EvalConfig:
    return from_config(EvalConfig, compose("roleinteract", ["progress=false", "paper_rows=[]", *overrides]))


def _items(path: Path, n: int = 30) -> Path:
    """``n`` synthetic choice questions, each its own dialogue (so each its own prompt)."""
    rng = random.Random(0)
    items = [raw_item(label=[rng.choice("ABCD")]) for _ in range(n)]
    for i, item in enumerate(items):
        item["dialogue"][0]["value"] += f" number {i}"
    return write_items(path, items)


def _replies(cache: Path, model: str) -> dict[str, str | None]:
    records = [json.loads(line) for line in cache.read_text().splitlines()]
    return {
        r["item_id"]: (None if "error" in r else r["reply"].strip()) for r in records if r["model"] == model
    }


@pytest.mark.slow
def test_the_shipped_ep_file_through_the_server_scores_as_the_local_backend(
    openai_server, real_data, tmp_path
):
    """Oracle-free: ``endpoint:<served model>`` and ``hf:<the same checkpoint>`` on every item of the shipped
    emotional-perception file (969), greedy, with the eval experiment's answer budget (~50 s on one core)."""
    data = real_data("socialbench", "emotional_perception.json")
    ckpt = openai_server.checkpoint
    cfg = _cfg(
        f"data=[{data}]",
        f"models=[hf:{ckpt},endpoint:{openai_server.model}]",
        f"endpoint.base_url={openai_server.base_url}",
        "generation.batch_size=1",
        f"cache={tmp_path / 'answers.jsonl'}",
        "drift=false",
    )
    metrics = evaluate(cfg, tmp_path / "out")
    local, served = metrics["models"][f"hf:{ckpt}"], metrics["models"][f"endpoint:{openai_server.model}"]
    assert served["columns"] == local["columns"] and served["unparsed"] == local["unparsed"]
    assert served["failed"] == 0 and len(openai_server.completions()) == metrics["n_items"] == 969
    a, b = (
        _replies(tmp_path / "answers.jsonl", f"hf:{ckpt}"),
        _replies(tmp_path / "answers.jsonl", f"endpoint:{openai_server.model}"),
    )
    assert len(a) == 969 and a == b  # item by item, the same greedy reply
    assert "given files" in metrics["source"] and "shipped data" not in metrics["source"]


def test_one_request_in_five_failing_leaves_every_other_answered_and_counted(openai_server, tmp_path):
    data = _items(tmp_path / "items.json", 30)
    openai_server.fail_prompts(0.2)
    common = [
        f"data=[{data}]", f"models=[endpoint:{openai_server.model}]", f"endpoint.base_url={openai_server.base_url}",
        "endpoint.max_retries=1", "endpoint.backoff_s=0", f"cache={tmp_path / 'answers.jsonl'}", "drift=false",
    ]  # fmt: skip
    metrics = evaluate(_cfg(*common), tmp_path / "out")
    from roleinteract.data import load_items

    items = load_items(data)
    failing = [it.item_id for it in items if openai_server.would_fail(build_prompt(it))]
    summary = metrics["models"][f"endpoint:{openai_server.model}"]
    assert 1 <= len(failing) <= 12 and summary["failed"] == len(failing)
    replies = _replies(tmp_path / "answers.jsonl", f"endpoint:{openai_server.model}")
    assert len(replies) == 30 and sorted(i for i, r in replies.items() if r is None) == sorted(failing)
    assert summary["unparsed"] >= len(failing)  # counted as unparsed
    assert "failed" in (tmp_path / "out" / "results.md").read_text()
    openai_server.reset()  # the server is healthy again: only the failed ones are asked, and only when told
    evaluate(_cfg(*common), tmp_path / "out")
    assert openai_server.completions() == []
    again = evaluate(_cfg(*common, "retry_failed=true"), tmp_path / "out")
    assert len(openai_server.completions()) == len(failing)
    assert again["models"][f"endpoint:{openai_server.model}"]["failed"] == 0


def test_prompts_are_cut_to_the_served_context_keeping_the_question(openai_server, tmp_path):
    long = raw_item(label=["B"], turns=200)  # a CM-Long-like dialogue, far beyond a 512-token context
    data = write_items(tmp_path / "long.json", [long])
    cfg = _cfg(
        f"data=[{data}]", f"models=[endpoint:{openai_server.model}]", f"endpoint.base_url={openai_server.base_url}",
        "endpoint.context_tokens=512", f"endpoint.tokenizer={openai_server.checkpoint}", "drift=false",
        f"cache={tmp_path / 'answers.jsonl'}",
    )  # fmt: skip
    metrics = evaluate(cfg, tmp_path / "out")
    assert metrics["models"][f"endpoint:{openai_server.model}"]["failed"] == 0
    from paperlab.models import load_tokenizer

    sent = openai_server.completions()[-1]["messages"][-1]["content"]
    tokenizer = load_tokenizer(openai_server.checkpoint)
    room = 512 - cfg.endpoint.max_tokens - 16  # the answer budget and the chat template's margin
    assert len(tokenizer(sent, add_special_tokens=False)["input_ids"]) <= room
    from roleinteract.data import load_items

    prompt = build_prompt(load_items(data)[0])
    assert len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) > 512 and prompt.endswith(
        sent[-200:]
    )


def test_every_answer_changing_endpoint_setting_keys_new_answers(tmp_path):
    from roleinteract.experiment import answer_settings

    items = []
    base = _cfg("models=[endpoint:m]")
    key = settings_key(answer_settings("endpoint:m", base, items))
    for change in (
        "endpoint.system=be brief", "endpoint.max_tokens=5", "endpoint.base_url=http://other:1/v1",
        "endpoint.temperature=0.7", "endpoint.context_tokens=4096", "endpoint.tokenizer=/models/x",
    ):  # fmt: skip
        changed = settings_key(answer_settings("endpoint:m", _cfg("models=[endpoint:m]", change), items))
        assert changed != key, change
    assert cache_key("endpoint:m", "i", "p", key) != cache_key("endpoint:n", "i", "p", key)


def _run(args: list[str], cwd: Path, env: dict) -> subprocess.Popen:
    """The CLI with SIGINT at its default: a shell's background job (``make test &``) inherits SIGINT ignored, and
    Python then never raises KeyboardInterrupt (the run would finish and exit 0; seen on a backgrounded CI run)."""
    cmd = [sys.executable, "-m", "roleinteract", *args]
    return subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.slow
def test_a_run_interrupted_by_sigint_or_sigterm_resumes_asking_only_the_missing_items(
    openai_server, tmp_path
):
    data = _items(tmp_path / "items.json", 30)
    secret = "sk-roleinteract-test-9e8d7c"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PAPERLAB_RESULTS": str(tmp_path / "results"),
        "OPENAI_API_KEY": secret,
    }

    def args(cache: Path, name: str) -> list[str]:
        return [
            f"name={name}", f"data=[{data}]", f"models=[endpoint:{openai_server.model}]", "drift=false",
            f"endpoint.base_url={openai_server.base_url}", "endpoint.max_concurrency=1", f"cache={cache}",
            "progress=false", "paper_rows=[]",
        ]  # fmt: skip

    # the uninterrupted reference, in this process (the same evaluation the command runs)
    same = [
        a
        for a in args(tmp_path / "reference.jsonl", "reference")
        if not a.startswith(("progress=", "paper_"))
    ]
    reference = evaluate(_cfg(*same), tmp_path / "reference")
    assert len(openai_server.completions()) == 30
    expected = json.loads(json.dumps(reference["models"]))
    for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        openai_server.reset()
        openai_server.delay_s = 0.25  # a slow server: the signal lands while answers are still coming
        cache, name = tmp_path / f"{sig.name}.jsonl", sig.name.lower()
        proc = _run(args(cache, name), tmp_path, env)
        deadline = time.monotonic() + 300
        while _lines(cache) < 12 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(sig)
        returncode, output = proc.wait(timeout=120), proc.stdout.read()
        assert returncode == code, f"{sig.name} after {_lines(cache)} answers: {output}"
        assert secret not in output  # nor in the run's log output
        kept, sent = _lines(cache), len(openai_server.completions())
        assert 12 <= kept < 30 and kept <= sent <= kept + 1  # at most the one request in flight was lost
        openai_server.reset()
        rerun = _run(args(cache, name), tmp_path, env)
        assert rerun.wait(timeout=600) == 0, rerun.stdout.read()
        assert len(openai_server.completions()) == 30 - kept  # only the missing items
        got = json.loads((tmp_path / f"results/roleinteract/{name}/metrics.json").read_text())["models"]
        assert got == expected
    assert all(secret not in f.read_text(errors="ignore") for f in tmp_path.rglob("*") if f.is_file())
    assert {h.get("Authorization") for h in openai_server.headers} == {f"Bearer {secret}"}


@pytest.mark.parametrize("experiment", ["eval", "fixtures", "eval_paper"])
def test_local_and_endpoint_models_get_the_same_answer_budget(experiment):
    cfg = from_config(EvalConfig, compose("roleinteract", [f"experiment={experiment}"]))
    assert (cfg.endpoint.max_tokens, cfg.endpoint.max_tokens_open) == (
        cfg.generation.max_new_tokens,
        cfg.generation.max_new_tokens_open,
    )


# ----------------------------------------------------------------------------------------- data and columns
def test_a_named_data_file_that_does_not_exist_is_an_error_not_the_fixtures(tmp_path, monkeypatch):
    from paperlab.io import MissingFileError
    from roleinteract.experiment import resolve_data

    with pytest.raises(MissingFileError, match=r"nope\.json: no such file"):
        resolve_data(_cfg(f"data=[{tmp_path / 'nope.json'}]"))
    monkeypatch.setenv("PAPERLAB_DATA", str(tmp_path))  # a data folder that exists, without the file
    with pytest.raises(MissingFileError, match=r"socialbench/missing\.json: no such file"):
        resolve_data(_cfg("data=[socialbench/missing.json]"))
    monkeypatch.setenv("PAPERLAB_DATA", str(tmp_path / "absent"))  # no data folder at all: the fixtures
    paths, source = resolve_data(_cfg("data=[socialbench/emotional_perception.json]"))
    assert source == "hand-written fixtures (real data absent)" and len(paths) >= 1
    given = _items(tmp_path / "mine.json", 3)
    paths, source = resolve_data(_cfg(f"data=[{given}]"))
    assert paths == [given] and source == "given files"  # not "shipped data"


def test_the_humour_column_is_a_stated_choice(tmp_path):
    from roleinteract.data import EP_HUMOR, load_items
    from roleinteract.scoring import ScoreConfig, aggregate, column_of

    items = load_items(write_items(tmp_path / "h.json", [raw_item(EP_HUMOR, label=["A"])]))
    assert column_of(items[0], ScoreConfig()) == "EP Emo."
    assert column_of(items[0], ScoreConfig(humor_column="EP Situ.")) == "EP Situ."
    summary = aggregate(items, {items[0].item_id: 1.0}, ScoreConfig(humor_column="EP Situ."))
    assert summary["columns"]["EP Situ."] == 100.0 and summary["columns"]["EP Emo."] is None
    with pytest.raises(ValueError, match="humor_column"):
        ScoreConfig(humor_column="SA Style")
