import pytest

from paperlab.config import ConfigError, compose
from unify.experiment import load_config


def test_tiny_config_validates():
    cfg = load_config(compose("unify", ["experiment=tiny"]))
    assert cfg.data.kind == "synthetic" and cfg.model.backbone == "tiny"
    assert cfg.variants == ["latent", "lexicon", "unify"]


@pytest.mark.parametrize(
    "exp", ["msrvtt_paper", "msrvtt_b16_paper", "didemo_paper", "activitynet_paper", "msvd_paper"]
)
def test_paper_configs_load_and_validate_without_downloading(exp):
    cfg = load_config(compose("unify", [f"experiment={exp}"]))
    assert cfg.model.backbone in ("ViT-B-32", "ViT-B-16") and cfg.model.pretrained == "openai"
    assert cfg.model.image_size % cfg.model.patch_size == 0 and cfg.name == exp
    assert cfg.tokenizer == "clip" and cfg.data.kind == "frames"
    assert cfg.train.backbone_lr_scale == pytest.approx(1e-3)
    assert cfg.data.num_frames <= cfg.model.max_frames


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("variants=[latent,bogus]", "variants"),
        ("latent_weight=2.0", "latent_weight=2.0: expected a float in"),
        ("train.distill_direction=sideways", "train.distill_direction"),
        ("model.patch_size=5", "model.image_size=32: expected a multiple of patch_size=5"),
        ("data.kind=frames", "data.train_annotations"),
        ("+train.warmup=3", r"unknown field\(s\) \['warmup'\]"),
    ],
)
def test_bad_config_values_name_the_field(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(compose("unify", ["experiment=tiny", override]))
