import dataclasses
import sys
import textwrap

import pytest

from paperlab.config import ConfigError, compose, from_config, require


@dataclasses.dataclass
class OptimConfig:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)

    def __post_init__(self) -> None:
        require(self.lr > 0, "optim.lr", self.lr, "a positive float")


@dataclasses.dataclass
class RunConfig:
    name: str
    steps: int = 10
    mode: str = "tiny"
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    tags: list[str] = dataclasses.field(default_factory=list)
    budget: float | None = None


def test_from_config_builds_nested_dataclasses_and_converts_types():
    cfg = from_config(
        RunConfig, {"name": "x", "steps": 3, "optim": {"lr": 1, "betas": [0.5, 0.6]}, "budget": 2}
    )
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.betas == (0.5, 0.6)
    assert cfg.budget == 2.0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"name": "x", "stepz": 3}, r"unknown field\(s\) \['stepz'\].*valid fields"),
        ({"steps": 3}, r"name: required field of RunConfig is missing"),
        ({"name": "x", "steps": "ten"}, r"steps='ten': expected an integer"),
        ({"name": "x", "optim": {"lr": -1.0}}, r"optim.*lr=-1.0: expected a positive float"),
        ({"name": "x", "tags": "a"}, r"tags='a': expected a list"),
        ({"name": "x", "steps": True}, r"steps=True: expected an integer"),
    ],
)
def test_from_config_errors_name_the_field(raw, message):
    with pytest.raises(ConfigError, match=message):
        from_config(RunConfig, raw)


def test_from_config_accepts_omegaconf():
    from omegaconf import OmegaConf

    cfg = from_config(RunConfig, OmegaConf.create({"name": "${mode}", "mode": "paper"}))
    assert cfg.name == "paper"


def test_compose_loads_a_package_config_with_overrides(tmp_path, monkeypatch):
    pkg = tmp_path / "fakepkg"
    (pkg / "conf" / "experiment").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "conf" / "__init__.py").write_text("")
    (pkg / "conf" / "config.yaml").write_text(
        textwrap.dedent(
            """
            defaults:
              - _self_
              - experiment: tiny
            name: base
            steps: 1
            """
        )
    )
    (pkg / "conf" / "experiment" / "tiny.yaml").write_text("# @package _global_\nsteps: 5\n")
    (pkg / "conf" / "experiment" / "tiny_paper.yaml").write_text("# @package _global_\nsteps: 50000\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = compose("fakepkg")
    assert cfg.steps == 5
    paper = compose("fakepkg", ["experiment=tiny_paper", "name=p"])
    assert (paper.steps, paper.name) == (50000, "p")
    assert from_config(RunConfig, paper).steps == 50000
    sys.modules.pop("fakepkg", None)
    sys.modules.pop("fakepkg.conf", None)
