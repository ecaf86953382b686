"""IRFT / RFT on a causal LM: the public names of the LLM pipeline, one module per idea.

- :mod:`irl_sft.data`: demonstrations and preference pairs (JSONL / hub, columns / chat), the stage plan;
- :mod:`irl_sft.generation`: pi_t's completions (greedy or sampled), sharded over the ranks;
- :mod:`irl_sft.stages`: the config and the stage loop (:func:`run_llm`) on ``paperlab.scale``;
- :mod:`irl_sft.reward`: the explicit variant RFT (reward model + RLOO per stage) and reward scores;
- :mod:`irl_sft.evaluate`: the per-stage evaluation (implicit-reward ranking, likelihood, judge, lm-eval).
"""

from irl_sft.data import DataConfig, load_demos, load_prefs, stage_plan, synthetic_demos, synthetic_prefs
from irl_sft.evaluate import EvalConfig, completion_logps, evaluate
from irl_sft.generation import generate_completions, generation_kwargs, generation_prompt
from irl_sft.reward import RFTConfig, reward_scores
from irl_sft.stages import LLMConfig, load_stage_models, run_llm

__all__ = [
    "DataConfig",
    "EvalConfig",
    "LLMConfig",
    "RFTConfig",
    "completion_logps",
    "evaluate",
    "generate_completions",
    "generation_kwargs",
    "generation_prompt",
    "load_demos",
    "load_prefs",
    "load_stage_models",
    "reward_scores",
    "run_llm",
    "stage_plan",
    "synthetic_demos",
    "synthetic_prefs",
]
