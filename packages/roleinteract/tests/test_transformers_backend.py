"""The local transformers backend: any path or hub name, chat template, batching, left truncation."""

from __future__ import annotations

from pathlib import Path

from roleinteract.backends import GenerationConfig, Query, TransformersBackend
from roleinteract.data import fixture_paths, load_benchmark
from roleinteract.prompts import build_prompt


def test_tiny_model_saved_to_disk_loads_by_path_and_answers_every_query(tmp_path: Path) -> None:
    items = load_benchmark(fixture_paths())
    queries = [Query(it, build_prompt(it)) for it in items]
    gen = GenerationConfig(max_new_tokens=3, max_new_tokens_open=3, batch_size=4, max_input_tokens=64)
    tiny = TransformersBackend.tiny([q.prompt for q in queries], seed=0, gen=gen)
    assert tiny.tokenizer.chat_template  # the chat template is applied
    assert "<|" in tiny._text("hello") or tiny._text("hello") != "hello"
    tiny.model.save_pretrained(tmp_path / "m")
    tiny.tokenizer.save_pretrained(tmp_path / "m")

    loaded = TransformersBackend.from_pretrained(str(tmp_path / "m"), gen, dtype="float32", device="cpu")
    assert loaded.name == f"hf:{tmp_path / 'm'}"
    a = dict(tiny.iter_answers(queries))
    b = dict(loaded.iter_answers(queries))
    assert sorted(a) == list(range(len(queries)))  # every index answered once, whatever the batching
    assert a == b  # greedy and deterministic: the saved model answers as the built one


def test_batch_size_does_not_change_greedy_answers() -> None:
    items = load_benchmark(fixture_paths())
    queries = [Query(it, build_prompt(it)) for it in items]
    one = TransformersBackend.tiny([q.prompt for q in queries], gen=GenerationConfig(4, 4, batch_size=1))
    many = TransformersBackend.tiny([q.prompt for q in queries], gen=GenerationConfig(4, 4, batch_size=8))
    assert dict(one.iter_answers(queries)) == dict(many.iter_answers(queries))
