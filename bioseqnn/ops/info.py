"""The info command: a model file's validated manifest, read without building the model."""

from __future__ import annotations

import os
from typing import Any

from ..arguments import checked
from ..modelfile import read_manifest


@checked
def info(model: str | os.PathLike[str]) -> dict[str, Any]:
    """The model file's manifest (validated), without building the model."""
    manifest, _ = read_manifest(model)
    return manifest
