"""paperlab: the thin, paper-agnostic common layer shared by every paperlab package.

Submodules (import what you use; heavy libraries load lazily):

- :mod:`paperlab.models`   hub/local loading and tiny offline models, tokenizers, vision towers
- :mod:`paperlab.metrics`  ranking and text metrics
- :mod:`paperlab.device`   device/dtype choice, CUDA memory and timing helpers
- :mod:`paperlab.io`       atomic writes, JSONL cache with resume, checkpoints
- :mod:`paperlab.seed`     seeding and RNG state capture
- :mod:`paperlab.report`   Markdown/CSV tables and matplotlib plots
- :mod:`paperlab.config`   Hydra glue and dataclass config validation
- :mod:`paperlab.data`     where the real data lives (``PAPERLAB_DATA``)
"""

from paperlab.data import DataUnavailableError, data_path, data_root, repo_root
from paperlab.seed import seed_everything

__version__ = "0.1.0"

__all__ = [
    "DataUnavailableError",
    "__version__",
    "data_path",
    "data_root",
    "repo_root",
    "seed_everything",
]
