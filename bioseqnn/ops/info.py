"""The info command: a model file's validated manifest, read without building the model."""

from __future__ import annotations

import logging
import os
from typing import Any

from ..bundle import Bundle, load_bundle
from ..modelfile import read_manifest

log = logging.getLogger("bioseqnn")


def info(model: str | os.PathLike[str]) -> dict[str, Any]:
    """The model file's manifest (validated), without building the model."""
    manifest, _ = read_manifest(model)
    return manifest


def load(model: str | os.PathLike[str], device: str = "cpu") -> Bundle:
    return load_bundle(model, device)
