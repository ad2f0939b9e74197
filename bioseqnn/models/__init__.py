"""Model families. Importing this package registers every architecture by name."""

# registration order is the order 'bioseqnn config' and the README list them
from . import recurrent  # noqa: F401, I001
from . import conv, hybrid, transformer  # noqa: F401
from .base import (
    POOLINGS,
    REGISTRY,
    Backbone,
    ModelConfig,
    SequenceModel,
    check_lengths,
    count_parameters,
    describe,
    get_architecture,
    register,
    resolve_pooling,
)

__all__ = [
    "POOLINGS",
    "REGISTRY",
    "Backbone",
    "ModelConfig",
    "SequenceModel",
    "check_lengths",
    "count_parameters",
    "describe",
    "get_architecture",
    "register",
    "resolve_pooling",
]
