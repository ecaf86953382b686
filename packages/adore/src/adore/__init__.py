"""paperlab-adore: KV-cache release and rebuild (ADORE): a releasable cache that keeps original positions, the
decode loop that rebuilds released tokens in the same forward, a learned controller trained on oracle top-K
attention, and baseline policies (window, StreamingLLM, H2O, TOVA, SnapKV, random, oracle)."""

from adore.cache import ReleasableCache, ReleasableLayer
from adore.controller import (
    AdorePolicy,
    Controller,
    ControllerConfig,
    SplitHead,
    recall_at_k,
    train_controller,
)
from adore.decode import DecodeConfig, causal_mask, full_attention_map, run_sequence
from adore.generate import AdoreCache
from adore.policies import (
    H2O,
    TOVA,
    FullCache,
    Observation,
    OracleTopK,
    Policy,
    RandomPolicy,
    SlidingWindow,
    SnapKV,
    StreamingLLM,
    select,
)
from adore.registry import POLICIES, budget_tokens
from adore.tasks import RecallConfig, sample, train_recall_lm

__all__ = [
    "H2O",
    "POLICIES",
    "TOVA",
    "AdoreCache",
    "AdorePolicy",
    "Controller",
    "ControllerConfig",
    "DecodeConfig",
    "FullCache",
    "Observation",
    "OracleTopK",
    "Policy",
    "RandomPolicy",
    "RecallConfig",
    "ReleasableCache",
    "ReleasableLayer",
    "SlidingWindow",
    "SnapKV",
    "SplitHead",
    "StreamingLLM",
    "budget_tokens",
    "causal_mask",
    "full_attention_map",
    "recall_at_k",
    "run_sequence",
    "sample",
    "select",
    "train_controller",
    "train_recall_lm",
]
