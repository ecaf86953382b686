"""Both scales' configs load and validate without downloading anything; bad values name the field."""

import pytest

from paperlab.config import ConfigError, compose, from_config
from profuser.experiment import ExperimentConfig, SourceConfig


def _load(*overrides: str) -> ExperimentConfig:
    return from_config(ExperimentConfig, compose("profuser", list(overrides)))


def test_tiny_and_paper_configs_validate():
    tiny = _load("experiment=tiny")
    assert tiny.is_tiny and [s.skill for s in tiny.sources] == ["add", "rev", "safe"]
    assert len({s.vocab_size for s in tiny.sources} | {tiny.target.vocab_size}) == 4  # four tokenizers
    paper = _load("experiment=paper")
    assert not paper.is_tiny and paper.target.model == "lmsys/vicuna-7b-v1.5"
    assert [s.model for s in paper.sources] == [
        "lmsys/vicuna-7b-v1.5",
        "meta-llama/Llama-2-7b-chat-hf",
        "mosaicml/mpt-7b-8k-chat",
    ]
    assert paper.fusion.lam == 0.9 and paper.fusion.k == 10 and paper.fusion.schedule.kind == "stages"
    assert paper.train.bf16 and paper.train.save_steps > 0 and paper.eval_tasks


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("methods=[SFT,Magic]", "methods"),
        ("fusion.schedule.kind=cosine", r"schedule\.kind"),
        ("fusion.lam=1.5", r"fusion\.lam"),
        ("world.gt_error=0.7", r"world\.gt_error"),
        ("fusion.reward=some/model", r"fusion\.reward"),
        ("+train.nonsense=1", "nonsense"),
    ],
)
def test_bad_values_name_the_field(override, field):
    with pytest.raises(ConfigError, match=field):
        _load("experiment=tiny", override)


def test_source_skill_and_paper_data_are_checked():
    with pytest.raises(ConfigError, match=r"sources\[x\]\.skill"):
        SourceConfig(name="x", skill="copy")
    with pytest.raises(ConfigError, match=r"data\.dataset"):
        _load("experiment=paper", "data.dataset=")
