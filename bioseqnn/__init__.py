"""bioseqnn: neural networks on DNA, RNA and protein sequences.

The public API mirrors the command line, with settings as keyword arguments and results
as values::

    import bioseqnn
    run = bioseqnn.train("seqs.fasta", "labels.csv", "model.bsnn", arch="cnn", epochs=20)
    table = bioseqnn.predict(run.model, "new.fasta")  # a DataFrame (pandas installed)
    ev = bioseqnn.evaluate("model.bsnn", "test.fasta", "test.csv")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

# Importing bioseqnn loads nothing heavy and changes no process-wide setting: the names
# below are imported on first use (so `bioseqnn --help` never loads torch), and the
# thread, allocator, denormal and huge-page settings are applied by the command line or
# by bioseqnn.runtime.tune().
_HOMES = {
    "TrainOutcome": "ops.train",
    "combine": "ops.ensemble",
    "generate": "ops.generate",
    "info": "ops.info",
    "History": "notebook",
    "Trained": "notebook",
    "predict": "notebook",
    "train": "notebook",
    "Evaluation": "ops.evaluate",
    "evaluate": "notebook",
    "Explanation": "ops.explain",
    "explain": "notebook",
    "ExportResult": "ops.export",
    "export": "ops.export",
    "Bundle": "bundle",
    "load_bundle": "bundle",
    "RunConfig": "config",
    "TrainConfig": "config",
    "load_config": "config",
    "BioseqnnError": "errors",
    "DataError": "errors",
    "ModelFileError": "errors",
    "UsageError": "errors",
    "GenomeOptions": "variants.intervals",
    "ModelConfig": "models",
    "score_variants": "ops.variant_effects",
    "tune": "search.study",
    "TuneOutcome": "search.study",
}

if TYPE_CHECKING:
    from .bundle import Bundle, load_bundle
    from .config import RunConfig, TrainConfig, load_config
    from .errors import BioseqnnError, DataError, ModelFileError, UsageError
    from .models import ModelConfig
    from .notebook import History, Trained, evaluate, explain, predict, train
    from .ops.ensemble import combine
    from .ops.evaluate import Evaluation
    from .ops.explain import Explanation
    from .ops.export import ExportResult, export
    from .ops.generate import generate
    from .ops.info import info
    from .ops.train import TrainOutcome
    from .ops.variant_effects import score_variants
    from .search.study import TuneOutcome, tune
    from .variants.intervals import GenomeOptions


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'bioseqnn' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value  # once imported, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))


__all__ = [
    "BioseqnnError",
    "Bundle",
    "DataError",
    "Evaluation",
    "Explanation",
    "ExportResult",
    "GenomeOptions",
    "History",
    "ModelConfig",
    "ModelFileError",
    "RunConfig",
    "TrainConfig",
    "TrainOutcome",
    "Trained",
    "TuneOutcome",
    "UsageError",
    "__version__",
    "combine",
    "evaluate",
    "explain",
    "export",
    "generate",
    "info",
    "load_bundle",
    "load_config",
    "predict",
    "score_variants",
    "train",
    "tune",
]
