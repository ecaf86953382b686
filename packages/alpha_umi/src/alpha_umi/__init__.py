"""paperlab-alpha-umi: alpha-UMi, the planner / caller / summarizer tool-use agent trained with GLPFT
(Shen et al. 2024, "Small LLMs Are Weak Tool Learners: A Multi-LLM Agent")."""

__all__ = [
    "data",
    "experiment",
    "infer",
    "metrics",
    "runtime",
    "scale",
    "tokens",
    "toolbench",
    "train",
    "world",
]
