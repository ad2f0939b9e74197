"""bioseqnn: neural networks on DNA, RNA and protein sequences.

The public API mirrors the command line::

    import bioseqnn
    outcome = bioseqnn.train("seqs.fasta", "labels.csv", "model.bsnn")
    bioseqnn.predict("model.bsnn", "new.fasta", "predictions.tsv")
"""

__version__ = "0.1.0"

import os as _os

# Large CPU tensors on transparent huge pages: torch reads this once, at its first
# allocation, so it is set before torch is imported. A training step allocates a few
# hundred MB of fresh activations; faulting them in 4 KiB pages cost up to a third of
# an LSTM step on long sequences. THP_MEM_ALLOC_ENABLE=0 in the environment turns it off.
_os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from . import runtime  # noqa: E402,F401  (sets flush-denormal before any torch work)
from .api import TrainOutcome, combine, generate, info, predict, train  # noqa: E402
from .bundle import Bundle, load_bundle  # noqa: E402
from .config import RunConfig, TrainConfig, load_config  # noqa: E402
from .errors import BioseqnnError, DataError, ModelFileError, UsageError  # noqa: E402
from .intervals import GenomeOptions  # noqa: E402
from .models import ModelConfig  # noqa: E402
from .variant_effects import score_variants  # noqa: E402

__all__ = [
    "BioseqnnError",
    "Bundle",
    "DataError",
    "GenomeOptions",
    "ModelConfig",
    "ModelFileError",
    "RunConfig",
    "TrainConfig",
    "TrainOutcome",
    "UsageError",
    "__version__",
    "combine",
    "generate",
    "info",
    "load_bundle",
    "load_config",
    "predict",
    "score_variants",
    "train",
]
