"""Issue 30, item 6 and the determinism acceptance point: no import circle inside the package, one policy registry,
one budget rule, policies that own their details, and a recall table that does not depend on the thread count."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import adore
from adore.policies import H2O, Observation, SnapKV
from adore.registry import GENERATE_POLICIES, POLICY_NAMES, budget_tokens, manual

PACKAGE = Path(adore.__file__).parent


def _imports(path: Path) -> set[str]:
    """``adore`` modules that ``path`` imports anywhere (module level or inside a function)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("adore.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "adore":
                found |= {f"adore.{a.name}" for a in node.names if (PACKAGE / f"{a.name}.py").is_file()}
            elif node.module.startswith("adore."):
                found.add(node.module)
    return found


def test_no_import_circle_inside_the_package() -> None:
    graph = {f"adore.{p.stem}": _imports(p) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                pytest.fail("import circle: " + " -> ".join([*path[path.index(nxt) :], nxt]))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert len(graph) >= 12  # every module was read


def test_one_budget_rule_by_hand() -> None:
    # round(fraction * length), at least StreamingLLM's 4 sinks + the newest and ADORE's sink + newest + R
    assert [budget_tokens(f, 54, rebuild=2) for f in (0.1, 0.25, 0.5)] == [5, 14, 27]
    assert [budget_tokens(f, 256, rebuild=2) for f in (0.1, 0.25, 0.5)] == [26, 64, 128]
    assert budget_tokens(0.1, 42, rebuild=2) == 5  # QA used max(R + 6, ...) = 8 here before
    assert budget_tokens(0.1, 42, rebuild=8) == 11
    with pytest.raises(ValueError, match="fraction"):
        budget_tokens(0.0, 54)


def test_one_registry_serves_every_experiment() -> None:
    from adore.lm import LMExperimentConfig
    from adore.qa import QAExperimentConfig
    from adore.recall import RecallExperimentConfig
    from paperlab.config import ConfigError

    for name in POLICY_NAMES:  # every registered method is accepted by the manual-loop experiments
        RecallExperimentConfig(policies=[name])
        LMExperimentConfig(policies=[name])
    assert set(GENERATE_POLICIES) == {n for n in POLICY_NAMES if n not in ("h2o", "tova", "snapkv", "oracle")}
    QAExperimentConfig(policies=list(GENERATE_POLICIES))
    with pytest.raises(ConfigError, match="policies"):
        QAExperimentConfig(policies=["h2o"])  # reads attention weights: not inside generate()
    # StreamingLLM keeps 4 sinks at every budget (one factory said budget // 4, the other 4)
    for budget in (5, 14, 27):
        policy, cfg, _ = manual("streaming_llm", budget, controller=None)
        assert policy.sinks == cfg.sinks == 4


def test_policies_own_their_details() -> None:
    assert H2O().recent_tokens(20, 1) == 10 and H2O(recent_fraction=0.25).recent_tokens(20, 1) == 5
    # SnapKV: votes of the last `window` prompt queries, max-pooled over `kernel` neighbours
    attn = torch.zeros(6, 6)
    attn[-2:, 1] = torch.tensor([0.5, 0.25])
    attn[-2:, 4] = 0.125
    obs = Observation(torch.arange(6), torch.arange(6))
    SnapKV(window=2, kernel=3).prefill(attn, obs)
    assert obs.extra["prompt_scores"].tolist() == [0.75, 0.75, 0.75, 0.25, 0.25, 0.25]
    scored = SnapKV().score(Observation(torch.tensor([1, 3, 7]), torch.zeros(3), extra=obs.extra))
    assert scored.tolist() == [0.75, 0.25, 7 + 1e6]  # generated tokens ranked by recency, above the prompt


def test_recall_table_does_not_depend_on_the_thread_count(tmp_path: Path, monkeypatch) -> None:
    """The fresh-clone discrepancy of issue 30: the same code, run with 1 or 2 torch threads (OMP_NUM_THREADS),
    trained different weights and printed another table. The experiment now pins ``threads``."""
    from adore.recall import RecallExperimentConfig, run_recall
    from paperlab.config import compose, from_config

    monkeypatch.setenv("PAPERLAB_RESULTS", str(tmp_path / "results"))
    args = [
        "experiment=recall",
        "budgets=[0.25]",
        "progress=false",
        "lm_steps=12",
        "eval_sequences=3",
        "controller.sequences=2",
        "controller.epochs=1",
        "policies=[full,tova,adore+rebuild]",
        "finetune.steps=3",
        "finetune.sequences=4",
        "finetune.batch_size=2",
    ]
    cfg = from_config(RecallExperimentConfig, compose("adore", args))
    before = torch.get_num_threads()
    tables = []
    try:
        for threads in (2, 1):
            monkeypatch.setenv("PAPERLAB_CACHE", str(tmp_path / f"cache{threads}"))
            torch.set_num_threads(threads)  # what OMP_NUM_THREADS=<threads> gives the process
            tables.append(run_recall(cfg)["rows"])
    finally:
        torch.set_num_threads(before)
    assert tables[0] == tables[1]  # every float (perplexities included) to the last digit
