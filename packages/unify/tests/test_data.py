import json

import numpy as np
import pytest
import torch
from PIL import Image

from unify.data import (
    FrameFolderDataset,
    SyntheticVideoConfig,
    caption_concepts,
    heldout_pairs,
    make_synthetic_split,
)


def _pairs(concepts):
    words = concepts
    return {(words[i], words[i + 1]) for i in range(0, len(words), 3)}


def test_compositional_split(small_world, splits):
    train, test = splits
    held = heldout_pairs(small_world)
    assert len(held) == 8  # one shape per colour (25% of 4 shapes)
    assert all(not (_pairs(c) & held) for c in train.concepts)
    assert all(_pairs(c) & held for c in test.concepts)
    assert train.frames.shape == (1200, 3, 3, 32, 32) and train.frames.dtype == torch.uint8
    caption = train.captions[0].split(" and ")
    assert len(caption) == 2 and all(len(part.split()) == 4 for part in caption)


def test_rendering_draws_the_named_colour_and_moves():
    from unify.data import render_video

    cfg = SyntheticVideoConfig(num_frames=4, object_size=9, step_px=3, align=0)
    video = render_video([("red", "square", "right")], [(5, 2)], cfg)
    assert video.shape == (4, 3, 32, 32)
    assert tuple(video[0, :, 6, 3]) == (230, 40, 40)
    cols = [np.nonzero(video[f, 0].any(0))[0].min() for f in range(4)]
    assert cols == [2, 5, 8, 11]  # 3 px per frame to the right


def test_aligned_world_puts_each_object_on_the_patch_grid(splits):
    train, _ = splits  # the default world: 8x8 objects on the 8-px grid, moving one patch per frame
    assert train.frames.shape[1:] == (3, 3, 32, 32)
    lit = train.frames[:50].amax(2) > 0  # (videos, frames, H, W): any channel on
    patches = lit.unflatten(2, (4, 8)).unflatten(4, (4, 8))  # (videos, frames, 4, 8, 4, 8)
    per_patch = patches.sum((3, 5))  # lit pixels per 8x8 patch
    # every object stays inside one patch in every frame and objects never overlap: a patch's lit-pixel count
    # is one whole shape's (circle 52, square 64, triangle 32, cross 28) or 0; two objects per video per frame
    from unify.data import SHAPES, _mask

    sizes = {int(_mask(s, 8).sum()) for s in SHAPES}
    assert set(per_patch.unique().tolist()) == sizes | {0}
    assert ((per_patch > 0).sum((2, 3)) == 2).all()


def test_split_bad_input():
    with pytest.raises(ValueError, match="split must be"):
        make_synthetic_split(SyntheticVideoConfig(train_videos=2, test_videos=2), "valid")
    with pytest.raises(ValueError, match=r"data\.heldout_fraction"):
        SyntheticVideoConfig(heldout_fraction=1.5)


def _write_frames(folder, n, size=(40, 30)):
    folder.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(np.full((size[1], size[0], 3), i * 20, dtype=np.uint8)).save(folder / f"{i:03d}.png")


def test_frame_folder_dataset(tmp_path):
    _write_frames(tmp_path / "frames" / "v1", 6)
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps([{"video_id": "v1", "caption": "A man is playing the guitar"}]))
    data = FrameFolderDataset(ann, tmp_path / "frames", num_frames=3, image_size=16)
    frames, _, concepts = data.batch(torch.tensor([0]))
    assert frames.shape == (1, 3, 3, 16, 16)
    # frames 0, 2 (2.5 rounds half to even) and 5 sampled uniformly; frame i holds value 20 * i
    assert torch.allclose(frames[0, :, 0, 0, 0] * 255, torch.tensor([0.0, 40.0, 100.0]), atol=1e-4)
    assert concepts == [["man", "playing", "guitar"]]
    assert caption_concepts("The dog, running!") == ["dog", "running"]


def test_frame_folder_bad_input(tmp_path):
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps([{"video_id": "v1"}]))
    with pytest.raises(ValueError, match=r"ann\.json: item 1 has no 'caption' field"):
        FrameFolderDataset(ann, tmp_path, 2, 16)
    ann.write_text(json.dumps([{"video_id": "v1", "caption": " "}]))
    with pytest.raises(ValueError, match="empty caption"):
        FrameFolderDataset(ann, tmp_path, 2, 16)
    ann.write_text(json.dumps([{"video_id": "v2", "caption": "a cat"}]))
    (tmp_path / "v2").mkdir()
    with pytest.raises(ValueError, match="zero frames"):
        FrameFolderDataset(ann, tmp_path, 2, 16)[0]
