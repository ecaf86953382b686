import pytest
import torch

from semmim.data import SceneConfig, WordTokenizer, make_split, vocabulary
from semmim.experiment import method_loss
from semmim.model import ModelConfig
from semmim.vlp import LossConfig, SemMIMModel

SMALL = dict(
    vision_width=32,
    vision_depth=1,
    vision_heads=2,
    text_width=32,
    text_depth=1,
    text_heads=2,
    fusion_depth=1,
    fusion_heads=2,
    embed_dim=16,
    prototypes=8,
    head_hidden=32,
    head_bottleneck=16,
)


@pytest.fixture(scope="session")
def tokenizer() -> WordTokenizer:
    return WordTokenizer(vocabulary(), 24)


@pytest.fixture(scope="session")
def corpus():
    cfg = SceneConfig(train_images=256, test_images=48)
    return make_split(cfg, "train"), make_split(cfg, "test")


@pytest.fixture
def make_model(tokenizer):
    def build(method: str = "semmim", loss: LossConfig | None = None, **overrides) -> SemMIMModel:
        cfg = ModelConfig(**{**SMALL, **overrides})
        torch.manual_seed(cfg.seed)
        return SemMIMModel(
            cfg,
            method_loss(loss or LossConfig(), method),
            tokenizer.vocab_size,
            tokenizer.special_ids,
            tokenizer.mask_id,
        )

    return build


@pytest.fixture
def batch(corpus, tokenizer):
    images, captions = corpus[0].batch(torch.arange(8))
    ids, attention = tokenizer(captions)
    return images, ids, attention
