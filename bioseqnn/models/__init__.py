"""Model families. Importing this package registers every architecture by name."""

from . import recurrent  # noqa: F401
from .base import (
    POOLINGS,
    REGISTRY,
    Backbone,
    ModelConfig,
    SequenceModel,
    count_parameters,
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
    "count_parameters",
    "get_architecture",
    "register",
    "resolve_pooling",
]
