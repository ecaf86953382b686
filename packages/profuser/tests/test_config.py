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
    assert paper.fusion.lam == 0.9 and paper.fusion.k == 10
    assert paper.train.save_steps > 0 and paper.eval.lm_eval_tasks
    # a full fine-tune of the 7B target on 8 A100-80GB: ZeRO-3, fp32 master weights under bf16 autocast
    s = paper.train.scale
    assert (s.launch, s.num_gpus, s.gpu_memory_gib, s.precision) == ("zero3", 8, 80.0, "bf16-mixed")
    assert (
        s.gradient_checkpointing
        and tiny.train.scale.launch == "single"
        and tiny.train.scale.precision == "fp32"
    )
    # vicuna ships no chat template: the v1.1 conversation is named for it, and for the target
    templates = {src.name: src.chat_template for src in paper.sources}
    assert templates["vicuna-7b-v1.5"] == "vicuna_v1.1" and paper.target.chat_template == "vicuna_v1.1"


def test_paper_runs_the_progressive_schedule_not_the_two_stage_ablation():
    """The README's study: the hard two-stage switch is level with FuseLLM, the gradual hand-over wins; the paper
    transitions progressively (abstract). ProFuser in the paper config is the gradual one."""
    paper = _load("experiment=paper")
    assert paper.fusion.schedule.kind == "linear"
    assert "ProFuser" in paper.methods


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("methods=[SFT,Magic]", "methods"),
        ("fusion.schedule.kind=cosine", r"schedule\.kind"),
        ("fusion.lam=1.5", r"fusion\.lam"),
        ("world.gt_error=0.7", r"world\.gt_error"),
        ("fusion.reward=some/model", r"fusion\.reward"),
        ("+train.nonsense=1", "nonsense"),
        ("train.scale.launch=horovod", r"scale\.launch"),
        ("train.scale.precision=bf16", r"scale\.precision"),
        ("target.chat_template=alpaca", r"chat_template"),
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


def test_a_source_generation_batch_is_checked():
    from profuser.config import SourceConfig

    with pytest.raises(ConfigError, match=r"sources\[mpt\]\.generation_batch"):
        SourceConfig(name="mpt", model="mosaicml/mpt-7b-8k-chat", generation_batch=-1)
    assert SourceConfig(name="mpt", model="mosaicml/mpt-7b-8k-chat", generation_batch=4).generation_batch == 4
