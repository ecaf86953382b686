"""Bad input (issue 28): the caption and VQA file loaders parse or refuse every mutated list file or image with a
DataError naming it (fuzzed), runs on caption files are keyed by the files as well as the settings (a changed file
is retrained, not served from the cache), and a missing init file stops fine-tuning before anything is built."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import pytest
from PIL import Image

from paperlab.config import compose, from_config
from paperlab.fuzz import fuzz_loader
from paperlab.io import DataError, MissingFileError
from semmim.data import read_caption_file
from semmim.experiment import ExperimentConfig, _config_key, run
from semmim.finetune_data import read_caption_images, read_vqa_file


def _png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, format="PNG")
    return buffer.getvalue()


IMAGES = {"a.png": _png((230, 40, 40)), "b.png": _png((50, 80, 240))}
KINDS = {"a.png": "text", "b.png": "text"}  # an image is mutated as bytes: cut, flipped, re-encoded, emptied
CAPTIONS = [
    {"image": "a.png", "caption": "a small red circle top left"},
    {"image": "b.png", "caption": "a large blue square bottom right"},
    {"image": "a.png", "caption": "a small red circle"},
]
VQA = [
    {"image": "a.png", "question": "what colour is the object?", "answers": ["red", "red", "pink"]},
    {"image": "b.png", "question": "how many objects?", "answers": ["1"]},
]


def _decoded(data):
    """Every image of a lazily read task file, decoded (where a broken image is found)."""
    return data, [data.images[i] for i in range(len(data.images))]


@pytest.mark.parametrize(
    "name, load, rows",
    [
        ("captions", lambda folder: list(read_caption_file(folder / "list.json", 16)), CAPTIONS),  # decoded
        ("caption_images", lambda folder: _decoded(read_caption_images(folder / "list.json", 16)), CAPTIONS),
        ("vqa", lambda folder: _decoded(read_vqa_file(folder / "list.json", 16)), VQA),
    ],
)
def test_fuzz_list_files_and_their_images(name, load, rows) -> None:
    files = {"list.json": json.dumps(rows).encode(), **IMAGES}
    counts = fuzz_loader(load, files, kind={"list.json": "json", **KINDS}, name=f"semmim.{name}")
    assert counts["parsed"] > 0 and counts["refused"] > 0


def test_bad_caption_files_name_the_file_item_and_field(tmp_path) -> None:
    path = tmp_path / "captions.json"
    with pytest.raises(MissingFileError, match=r"captions\.json"):
        read_caption_file(path, 16)
    path.write_text(json.dumps({"image": "a.png"}))
    with pytest.raises(
        DataError, match=r"captions\.json: expected a JSON list of image/caption rows, got dict"
    ):
        read_caption_file(path, 16)
    path.write_text(json.dumps([CAPTIONS[0], {"image": "a.png", "caption": 3}]))
    with pytest.raises(DataError, match=r"captions\.json: item 2: field 'caption' is int 3"):
        read_caption_file(path, 16)
    (tmp_path / "a.png").write_bytes(IMAGES["a.png"][:40])  # a cut PNG
    path.write_text(json.dumps(CAPTIONS[:1]))
    lazy = read_caption_file(path, 16)  # images are decoded when an item is asked for
    with pytest.raises(DataError, match=r"captions\.json: item 1: image .*a\.png cannot be read"):
        lazy[0]


SMALL = [
    "model.vision_width=32",
    "model.vision_depth=1",
    "model.vision_heads=2",
    "model.text_width=32",
    "model.text_depth=1",
    "model.text_heads=2",
    "model.fusion_depth=1",
    "model.fusion_heads=2",
    "model.embed_dim=16",
    "model.prototypes=8",
    "model.head_hidden=32",
    "model.head_bottleneck=16",
]


def _files_cfg(path, *more: str) -> ExperimentConfig:
    overrides = [
        "corpus.kind=files",
        f"corpus.train_file={path}",
        "model.image_size=16",
        "model.patch_size=8",
        "train.steps=3",
        "train.warmup=1",
        "train.batch=2",
        "train.log_every=1",
        "methods=[base]",
        "rerank_k=2",
        "progress=false",
        "name=files",
        *SMALL,
        *more,
    ]
    return from_config(ExperimentConfig, compose("semmim", overrides))


def _write_corpus(folder, rows) -> object:
    for name, data in IMAGES.items():
        (folder / name).write_bytes(data)
    path = folder / "captions.json"
    path.write_text(json.dumps(rows))
    return path


def test_run_key_follows_the_settings_and_the_caption_files(tmp_path) -> None:
    path = _write_corpus(tmp_path, CAPTIONS)
    cfg = _files_cfg(path)
    key = _config_key(cfg)
    assert _config_key(replace(cfg, name="x", seeds=[3], train=replace(cfg.train, checkpoint_every=2))) == key
    assert _config_key(replace(cfg, train=replace(cfg.train, lr=5e-4))) != key
    path.write_text(json.dumps(CAPTIONS[:2]))  # the same path, another file (the old key missed it)
    assert _config_key(cfg) != key


def test_a_changed_caption_file_is_retrained_not_served_from_the_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PAPERLAB_RESULTS", str(tmp_path / "results"))
    path = _write_corpus(tmp_path, CAPTIONS)
    cfg = _files_cfg(path, "train.checkpoint_every=2")
    run(cfg)
    cache = tmp_path / "results" / "semmim" / "files" / "runs.jsonl"
    assert cache.read_text().count("\n") == 1
    run(cfg)
    assert cache.read_text().count("\n") == 1  # the same settings and file: served from the cache
    path.write_text(json.dumps([*CAPTIONS, {"image": "b.png", "caption": "a large blue square"}]))
    run(cfg)
    assert cache.read_text().count("\n") == 2  # another file: retrained
    assert len(list(cache.parent.glob("checkpoint_base_0_*.pt"))) == 2  # one checkpoint per key


def test_long_captions_for_the_tiny_tokenizer_are_named_before_training(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PAPERLAB_RESULTS", str(tmp_path / "results"))
    path = _write_corpus(tmp_path, [CAPTIONS[0], {"image": "b.png", "caption": "red " * 30}])
    with pytest.raises(DataError, match=r"captions\.json: item 2: the caption has 30 words"):
        run(_files_cfg(path))


def test_a_missing_init_file_stops_finetuning_first(tmp_path, monkeypatch) -> None:
    import semmim.finetune as F

    monkeypatch.setenv("PAPERLAB_RESULTS", str(tmp_path))

    def nothing(*args, **kwargs):
        raise AssertionError("data was loaded")

    monkeypatch.setattr(F, "load_task_data", nothing)
    cfg = from_config(
        F.FinetuneConfig, compose("semmim", ["task=vqa_tiny", f"init={tmp_path / 'no.pt'}"], "finetune")
    )
    with pytest.raises(MissingFileError, match=r"init: .*no\.pt: no such file"):
        F.run(cfg)
