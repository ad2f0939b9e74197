"""The train command: check the settings and outputs, load the data the way its variant
reads it, split or fold it, train one model, an ensemble or cross-validation members, and
write the model file with its manifest.

:mod:`.checks` refuses what cannot run before anything is read, :mod:`.data` prepares the
records (read, folded, digested, split, weighed) and :mod:`.run` trains the members and
writes the model file.
"""

from __future__ import annotations

from .checks import default_oof_path
from .run import TrainOutcome, train

__all__ = ["TrainOutcome", "default_oof_path", "train"]
