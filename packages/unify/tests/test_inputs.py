"""A user's files are checked before any model is built, and a training checkpoint is never served stale (issue
28): the annotation loader parses or refuses every mutated file with a DataError naming it (fuzzed), and a rerun
with another setting does not resume from, or reuse, the checkpoint of the first run."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from paperlab.config import compose
from paperlab.fuzz import fuzz_loader
from paperlab.io import DataError, MissingFileError
from unify.data import FrameFolderDataset
from unify.experiment import load_config, run, training_key

ITEMS = [
    {"video_id": "v1", "caption": "a man is playing the guitar"},
    {"video_id": "v2", "caption": "a dog runs\u2028on the beach"},
    {"video_id": "v1", "caption": "someone plays music"},
]


@pytest.fixture(scope="module")
def frames_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("frames")
    for video in ("v1", "v2"):
        (root / video).mkdir()
        for i in range(2):
            Image.fromarray(np.full((8, 8, 3), 40 * i, dtype=np.uint8)).save(root / video / f"{i}.png")
    return root


def test_annotation_loader_fuzzed(frames_root) -> None:
    valid = json.dumps(ITEMS, ensure_ascii=False).encode("utf-8")
    counts = fuzz_loader(
        lambda p: FrameFolderDataset(p, frames_root, num_frames=2, image_size=8),
        valid,
        kind="json",
        name="unify.FrameFolderDataset",
        suffix=".json",
    )
    assert counts["parsed"] > 0 and counts["refused"] > 0, counts


def test_annotation_refusals_name_file_item_and_field(tmp_path, frames_root) -> None:
    ann = tmp_path / "ann.json"

    def refused(content, match: str, error=DataError) -> None:
        ann.write_text(content if isinstance(content, str) else json.dumps(content))
        with pytest.raises(error, match=match):
            FrameFolderDataset(ann, frames_root, 2, 8)

    refused([ITEMS[0], {"video_id": "v1", "caption": 3}], r"ann\.json: item 2: 'caption' must be a string")
    refused([{"video_id": ["v1"], "caption": "c"}], r"ann\.json: item 1: 'video_id' must be")
    refused([{"video_id": "v9", "caption": "c"}], r"ann\.json: item 1: video 'v9' has zero frames")
    refused(
        [{"video_id": "../v1", "caption": "c"}], r"ann\.json: item 1: 'video_id' '\.\./v1' is not a folder"
    )
    refused({"video_id": "v1"}, r"ann\.json: expected a JSON list")
    refused([], r"ann\.json: no items")
    refused("", r"ann\.json: empty file")
    refused(b"\xff\xfe".decode("latin-1"), r"ann\.json")
    with pytest.raises(MissingFileError, match=r"data\.train_annotations: .*absent\.json: no such file"):
        FrameFolderDataset(tmp_path / "absent.json", frames_root, 2, 8, "data.train_annotations")
    ann.write_text(json.dumps(ITEMS))
    with pytest.raises(MissingFileError, match=r"data\.frames_root"):
        FrameFolderDataset(ann, tmp_path / "no_frames", 2, 8)
    (frames_root / "bad").mkdir(exist_ok=True)
    (frames_root / "bad" / "0.png").write_bytes(b"not a png")
    ann.write_text(json.dumps([{"video_id": "bad", "caption": "c"}]))
    with pytest.raises(DataError, match=r"0\.png: not a readable image"):
        FrameFolderDataset(ann, frames_root, 2, 8)[0]


def test_a_bad_annotation_file_stops_the_run_before_any_model_is_built(
    tmp_path, monkeypatch, frames_root
) -> None:
    import unify.experiment

    def no_model(*args, **kwargs):
        raise AssertionError("a model was built before the data were checked")

    monkeypatch.setattr(unify.experiment, "build_model", no_model)
    bad = tmp_path / "train.json"
    bad.write_text('[{"video_id": "v1", "caption": ')
    args = ["data.kind=frames", f"data.frames_root={frames_root}", f"data.test_annotations={bad}"]
    with pytest.raises(DataError, match=r"train\.json: invalid JSON"):
        run(compose("unify", [*args, f"data.train_annotations={bad}"]))
    with pytest.raises(MissingFileError, match=r"data\.train_annotations: .*absent\.json"):
        run(compose("unify", [*args, f"data.train_annotations={tmp_path / 'absent.json'}"]))


def test_training_key_follows_what_changes_the_model(tmp_path, frames_root) -> None:
    base = ["experiment=tiny"]
    key = training_key(load_config(compose("unify", base)), "unify")
    assert training_key(load_config(compose("unify", base)), "latent") != key
    for changed in (
        "train.lr=0.01",
        "train.steps=400",
        "seed=1",
        "model.width=32",
        "data.synthetic.train_videos=9",
    ):
        assert training_key(load_config(compose("unify", [*base, changed])), "unify") != key, changed
    for same in ("train.checkpoint_every=7", "latent_weight=0.3", "name=other", "variants=[unify]"):
        assert training_key(load_config(compose("unify", [*base, same])), "unify") == key, same
    ann = tmp_path / "train.json"
    ann.write_text(json.dumps(ITEMS))
    frames = [*base, "data.kind=frames", f"data.train_annotations={ann}", f"data.frames_root={frames_root}"]
    before = training_key(load_config(compose("unify", [*frames, "data.test_annotations=x.json"])), "unify")
    assert (
        training_key(load_config(compose("unify", [*frames, "data.test_annotations=y.json"])), "unify")
        == before
    )
    ann.write_text(json.dumps(ITEMS[:2]))  # other training data
    assert (
        training_key(load_config(compose("unify", [*frames, "data.test_annotations=x.json"])), "unify")
        != before
    )


def test_a_rerun_with_another_setting_does_not_reuse_the_checkpoint(tmp_path, monkeypatch) -> None:
    """Before: both runs wrote and read ``results/unify/<name>/latent.ckpt``, so the second run (another learning
    rate) loaded the first run's finished checkpoint and reported its model."""
    monkeypatch.setenv("PAPERLAB_RESULTS", str(tmp_path))
    tiny = [
        "experiment=tiny",
        "name=stale",
        "variants=[latent]",
        "train.steps=3",
        "train.stage1_steps=1",
        "train.batch_size=8",
        "data.synthetic.train_videos=16",
        "data.synthetic.test_videos=8",
    ]
    out = tmp_path / "unify" / "stale"
    run(compose("unify", tiny))
    (first,) = out.glob("latent*.ckpt")
    weights = torch.load(first, weights_only=False)["model"]
    run(compose("unify", [*tiny, "train.lr=0.05"]))
    second = [p for p in out.glob("latent*.ckpt") if p != first]
    assert len(second) == 1, sorted(out.glob("*.ckpt"))
    other = torch.load(second[0], weights_only=False)["model"]
    assert any(not torch.equal(weights[k], other[k]) for k in weights)
