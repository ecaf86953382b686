"""Every experiment config loads and validates offline (paper scale included); bad values name the field."""

import pytest

from paperlab.config import ConfigError, compose, from_config
from semmim.experiment import METHODS, ExperimentConfig, _config_key, method_loss


def _load(*overrides: str) -> ExperimentConfig:
    return from_config(ExperimentConfig, compose("semmim", list(overrides)))


def test_tiny_study_claim_and_paper_configs_validate():
    tiny = _load("experiment=tiny")
    assert tiny.methods == ["base", "pixel", "semmim"] and tiny.corpus.kind == "synthetic"
    assert tiny.model.num_patches == 16 and not tiny.loss.mim.enabled
    study = _load("experiment=study")
    assert len(study.seeds) >= 5 and {"semmim_random_mask", "semmim_no_text_target"} <= set(study.methods)
    claim = _load("experiment=claim")
    assert claim.methods == ["base", "pixel", "semmim"] and len(set(claim.seeds)) == 18
    # the claim's cache holds the study's runs: the two differ only in methods, seeds and name
    assert _config_key(claim) == _config_key(study)
    assert (tiny.loss.mim.view_hue_p, tiny.loss.mim.view_gray_p) == (0.8, 0.2) and not tiny.save_weights
    paper = _load("experiment=paper")
    assert paper.model.vision == "vit_base_patch16_224" and paper.model.text == "bert-base-uncased"
    assert (paper.model.image_size, paper.model.patch_size, paper.model.num_patches) == (224, 16, 196)
    assert paper.corpus.kind == "files" and set(paper.corpus.datasets) == {
        "coco",
        "visual_genome",
        "sbu",
        "cc3m",
    }
    assert paper.loss.itc_queue == 65536 and paper.train.checkpoint_every > 0 and paper.save_weights


def test_methods_switch_the_ablations():
    tiny = _load("experiment=tiny")
    assert not method_loss(tiny.loss, "base").mim.enabled
    pixel = method_loss(tiny.loss, "pixel").mim
    assert (pixel.enabled, pixel.target, pixel.masking) == (True, "pixels", "random")
    sem = method_loss(tiny.loss, "semmim").mim
    assert (sem.target, sem.masking, sem.text_in_target, sem.agreement) == ("semantic", "text", True, True)
    assert not method_loss(tiny.loss, "semmim_no_text_target").mim.text_in_target
    assert method_loss(tiny.loss, "semmim_random_mask").mim.masking == "random"
    assert set(METHODS) >= {"feature", "semmim_no_agreement"}


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("model.image_size=30", r"model\.image_size"),
        ("loss.mim.mask_ratio=1.2", r"mim\.mask_ratio"),
        ("loss.mim.mask_ratio=0", r"mim\.mask_ratio"),
        ("loss.mim.target=tokens", r"mim\.target"),
        ("loss.mim.masking=attention", r"mim\.masking"),
        ("loss.mim.tau_teacher=0.5", r"mim\.tau_teacher"),
        ("loss.mim.tau_teacher_patch=0.5", r"mim\.tau_teacher_patch"),
        ("loss.mim.teacher=kmeans", r"mim\.teacher"),
        ("methods=[base,magic]", "methods"),
        ("data.image_size=48", r"model\.image_size"),
        ("corpus.kind=web", r"corpus\.kind"),
        ("+train.nonsense=1", "nonsense"),
    ],
)
def test_bad_values_name_the_field(override, field):
    with pytest.raises(ConfigError, match=field):
        _load("experiment=tiny", override)
