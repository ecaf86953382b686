import pytest
import torch

from unify.data import SyntheticVideoConfig, make_synthetic_split, synthetic_vocabulary
from unify.model import ModelConfig, UnifyModel, build_clip
from unify.text import CaptionTokenizer


@pytest.fixture(scope="session")
def tokenizer() -> CaptionTokenizer:
    return CaptionTokenizer("word", synthetic_vocabulary(), context_length=16)


@pytest.fixture(scope="session")
def small_world() -> SyntheticVideoConfig:
    return SyntheticVideoConfig(train_videos=1200, test_videos=200)


@pytest.fixture(scope="session")
def splits(small_world):
    return make_synthetic_split(small_world, "train", 0), make_synthetic_split(small_world, "test", 0)


@pytest.fixture
def make_model(tokenizer):
    def build(**overrides) -> UnifyModel:
        cfg = ModelConfig(**overrides)
        torch.manual_seed(cfg.seed)
        clip = build_clip(cfg, tokenizer.vocab_size)
        return UnifyModel(
            clip, tokenizer.vocab_size, cfg.shared_layers, tokenizer.special_ids, cfg.max_frames
        )

    return build


@pytest.fixture(scope="session")
def mini_splits():
    """A cheaper world for training tests: 16x16 frames, 2 frames (4 patches of 8x8 per frame)."""
    world = SyntheticVideoConfig(
        image_size=16, num_frames=2, object_size=5, step_px=2, train_videos=800, test_videos=128, align=0
    )
    return make_synthetic_split(world, "train", 0), make_synthetic_split(world, "test", 0)
