"""paperlab-semmim: semantics-enhanced cross-modal masked image modeling for vision-language pretraining (SemMIM,
Liu et al., LREC-COLING 2024) on an ALBEF-style backbone. See the package README for what is from the paper."""

from semmim.data import CaptionSet, SceneConfig, WordTokenizer, make_split, vocabulary
from semmim.evaluate import attribute_probe, attribute_probes, retrieval
from semmim.experiment import METHODS, ExperimentConfig, run
from semmim.masking import masked_count, patch_relevance, random_mask, text_guided_mask
from semmim.model import ModelConfig, SemanticHead
from semmim.train import TrainConfig, pretrain
from semmim.vlp import LossConfig, MIMConfig, SemMIMModel

__all__ = [
    "METHODS",
    "CaptionSet",
    "ExperimentConfig",
    "LossConfig",
    "MIMConfig",
    "ModelConfig",
    "SceneConfig",
    "SemMIMModel",
    "SemanticHead",
    "TrainConfig",
    "WordTokenizer",
    "attribute_probe",
    "attribute_probes",
    "make_split",
    "masked_count",
    "patch_relevance",
    "pretrain",
    "random_mask",
    "retrieval",
    "run",
    "text_guided_mask",
    "vocabulary",
]
