"""paperlab-semmim: semantics-enhanced cross-modal masked image modeling for vision-language pretraining (SemMIM,
Liu et al., LREC-COLING 2024) on an ALBEF-style backbone. See the package README for what is from the paper.
Downstream fine-tuning: ``python -m semmim.finetune task=...`` (``semmim.finetune``)."""

from semmim.data import CaptionSet, SceneConfig, WordTokenizer, make_split, vocabulary
from semmim.evaluate import attribute_probe, attribute_probes, retrieval
from semmim.experiment import METHODS, ExperimentConfig, run
from semmim.finetune_data import soft_score, vqa_accuracy
from semmim.finetune_models import CaptionDecoder, RetrievalFinetuner, VQAClassifier
from semmim.masking import masked_count, patch_relevance, random_mask, text_guided_mask
from semmim.model import ModelConfig, SemanticHead
from semmim.train import TrainConfig, pretrain
from semmim.vlp import LossConfig, MIMConfig, SemMIMModel, load_weights, save_weights

__all__ = [
    "METHODS",
    "CaptionDecoder",
    "CaptionSet",
    "ExperimentConfig",
    "LossConfig",
    "MIMConfig",
    "ModelConfig",
    "RetrievalFinetuner",
    "SceneConfig",
    "SemMIMModel",
    "SemanticHead",
    "TrainConfig",
    "VQAClassifier",
    "WordTokenizer",
    "attribute_probe",
    "attribute_probes",
    "load_weights",
    "make_split",
    "masked_count",
    "patch_relevance",
    "pretrain",
    "random_mask",
    "retrieval",
    "run",
    "save_weights",
    "soft_score",
    "text_guided_mask",
    "vocabulary",
    "vqa_accuracy",
]
