"""paperlab-sbr-side-info: session-based recommendation with side information — raw loaders for the survey's
benchmarks, the SR-GNN preprocessing protocol, ID-only and side-information models, one training loop and one
full-ranking evaluation protocol, and a generator that shows when side information helps."""

from sbr_side_info.evaluate import evaluate, target_ranks
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
from sbr_side_info.models import MODELS, SIDE_INFO_MODELS, TWIN, build_model
from sbr_side_info.movielens import fetch_movielens
from sbr_side_info.preprocess import ProtocolConfig, load_prepared, prepare, save_prepared
from sbr_side_info.schema import Cases, DataFormatError, Prepared, RawDataset, Session
from sbr_side_info.synthetic import SyntheticConfig, generate, synthetic_prepared
from sbr_side_info.train import TrainConfig, train_model

__all__ = [
    "MODELS",
    "SIDE_INFO_MODELS",
    "TWIN",
    "Cases",
    "DataFormatError",
    "Prepared",
    "ProtocolConfig",
    "RawDataset",
    "Session",
    "SyntheticConfig",
    "TrainConfig",
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
    "restricted_load",
    "save_prepared",
    "synthetic_prepared",
    "target_ranks",
    "train_model",
]
