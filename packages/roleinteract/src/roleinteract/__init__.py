"""paperlab-roleinteract: the RoleInteract (SocialBench) benchmark harness: loader, official prompts, backends,
official scoring, cached and resumable runs, and reports beside the paper's published numbers."""

from roleinteract.backends import (
    EndpointBackend,
    EndpointConfig,
    GenerationConfig,
    OracleBackend,
    Query,
    RandomBackend,
    TransformersBackend,
)
from roleinteract.data import (
    CATEGORIES,
    DataFormatError,
    Item,
    Turn,
    fixture_paths,
    load_benchmark,
    load_items,
)
from roleinteract.experiment import EvalConfig, evaluate
from roleinteract.harness import ask_all, preference_drift, replies_from_cache, score_replies
from roleinteract.prompts import build_prompt
from roleinteract.scoring import (
    PAPER_COLUMNS,
    ScoreConfig,
    aggregate,
    expected_random_columns,
    extract_options,
    score_reply,
)

__all__ = [
    "CATEGORIES",
    "PAPER_COLUMNS",
    "DataFormatError",
    "EndpointBackend",
    "EndpointConfig",
    "EvalConfig",
    "GenerationConfig",
    "Item",
    "OracleBackend",
    "Query",
    "RandomBackend",
    "ScoreConfig",
    "TransformersBackend",
    "Turn",
    "aggregate",
    "ask_all",
    "build_prompt",
    "evaluate",
    "expected_random_columns",
    "extract_options",
    "fixture_paths",
    "load_benchmark",
    "load_items",
    "preference_drift",
    "replies_from_cache",
    "score_replies",
    "score_reply",
]
