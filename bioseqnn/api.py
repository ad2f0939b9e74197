"""The command-level functions the command line calls: files in, files out, each returning
a value. Each lives in its command's module of :mod:`bioseqnn.ops`; they are named here
together for library users who drive whole commands."""

from __future__ import annotations

from .ops.ensemble import combine
from .ops.generate import generate
from .ops.info import info
from .ops.predict import predict
from .ops.train import TrainOutcome, train

__all__ = [
    "TrainOutcome",
    "combine",
    "generate",
    "info",
    "predict",
    "train",
]
