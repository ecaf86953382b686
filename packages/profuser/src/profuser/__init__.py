"""paperlab-profuser: ProFuser, progressive fusion of LLMs with inference- and training-mode advantage.

Pipeline: :mod:`profuser.align` (token alignment, MinED vocabulary mapping), :mod:`profuser.represent` (sparse top-k
source representations on disk), :mod:`profuser.advantage` (MinCE and reward selection), :mod:`profuser.schedule`
(the progressive schedule), :mod:`profuser.losses` and :mod:`profuser.trainer` (``ProFuserTrainer``), and
:mod:`profuser.experiment` (both scales end to end).
"""

from profuser.advantage import fuse, inference_mode_choice, training_mode_choice
from profuser.align import VocabMapping, VocabMappingError, align_tokens, tokenize
from profuser.losses import FusionLoss, fusion_loss
from profuser.represent import ModelSide, RepresentationError, RepresentationStore, Sample, SampleRep
from profuser.reward import ModelReward, RuleReward
from profuser.schedule import ProgressiveSampler, ScheduleConfig
from profuser.trainer import ProFuserConfig, ProFuserTrainer

__all__ = [
    "FusionLoss",
    "ModelReward",
    "ModelSide",
    "ProFuserConfig",
    "ProFuserTrainer",
    "ProgressiveSampler",
    "RepresentationError",
    "RepresentationStore",
    "RuleReward",
    "Sample",
    "SampleRep",
    "ScheduleConfig",
    "VocabMapping",
    "VocabMappingError",
    "align_tokens",
    "fuse",
    "fusion_loss",
    "inference_mode_choice",
    "tokenize",
    "training_mode_choice",
]
