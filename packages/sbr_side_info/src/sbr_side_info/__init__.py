"""paperlab-sbr-side-info: session-based recommendation with side information — raw loaders for the survey's
benchmarks, the SR-GNN preprocessing protocol, ID-only and side-information models, one training loop and one
full-ranking evaluation protocol, and a generator that shows when side information helps."""

from sbr_side_info.evaluate import NonFiniteScoresError, evaluate, target_ranks, tie_aware_metrics
from sbr_side_info.loaders import (
    load_amazon,
    load_diginetica,
    load_gce_gnn,
    load_movielens_atomic,
    load_retailrocket,
    load_session_rec,
    load_tmall,
    load_yoochoose,
    prefix_augment,
    restricted_load,
)
from sbr_side_info.losses import bpr_max, top1_max
from sbr_side_info.models import MODELS, SIDE_INFO_MODELS, TWIN, build_model
from sbr_side_info.movielens import fetch_movielens
from sbr_side_info.preprocess import ProtocolConfig, load_prepared, prepare, save_prepared
from sbr_side_info.records import reproduction_table, write_run_record
from sbr_side_info.schema import Cases, DataFormatError, Prepared, RawDataset, Session
from sbr_side_info.sparsity import sparsify_item_ids
from sbr_side_info.synthetic import SyntheticConfig, generate, synthetic_prepared
from sbr_side_info.train import TrainConfig, train_model

__all__ = [
    "MODELS",
    "SIDE_INFO_MODELS",
    "TWIN",
    "Cases",
    "DataFormatError",
    "NonFiniteScoresError",
    "Prepared",
    "ProtocolConfig",
    "RawDataset",
    "Session",
    "SyntheticConfig",
    "TrainConfig",
    "bpr_max",
    "build_model",
    "evaluate",
    "fetch_movielens",
    "generate",
    "load_amazon",
    "load_diginetica",
    "load_gce_gnn",
    "load_movielens_atomic",
    "load_prepared",
    "load_retailrocket",
    "load_session_rec",
    "load_tmall",
    "load_yoochoose",
    "prefix_augment",
    "prepare",
    "reproduction_table",
    "restricted_load",
    "save_prepared",
    "sparsify_item_ids",
    "synthetic_prepared",
    "target_ranks",
    "tie_aware_metrics",
    "top1_max",
    "train_model",
    "write_run_record",
]
