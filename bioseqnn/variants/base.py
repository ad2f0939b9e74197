"""What train hands to a variant's loader (the inputs and how to read them) and what the
loader gives back (the task, the alphabet or series spec, the training records and any
explicit validation records).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ..alphabets import Alphabet
from ..config import RunConfig
from ..data.sets import SequenceSet
from ..io.sniff import Sniffed, sniff
from ..structure import StructureInput
from ..tasks import TaskSpec
from .intervals import GenomeOptions
from .series import SeriesSpec


@dataclass(frozen=True)
class TrainInputs:
    """What train was given to read, as the user named it."""

    fasta: str | os.PathLike[str] | None
    labels: str | os.PathLike[str] | None
    val_fasta: str | os.PathLike[str] | None
    val_labels: str | os.PathLike[str] | None
    position_mask: str | os.PathLike[str] | None
    id_column: str
    targets: list[str] | None
    sequence_column: str | None
    task: str | None
    alphabet: str | None
    on_invalid: str
    ignore_unmatched: bool
    series_columns: list[str] | None
    genome: GenomeOptions | None

    @cached_property
    def fasta_input(self) -> Sniffed:
        """What the sequences input is: decided once, where first asked."""
        return sniff(self.fasta)

    @cached_property
    def labels_input(self) -> Sniffed:
        """What the labels input is (a table, or a FASTA of per-residue labels)."""
        return sniff(self.labels)

    def named(self, cfg: RunConfig) -> dict[str, Any]:
        """The inputs by the names the command line gives them (for path checks)."""
        return {
            "SEQUENCES": self.fasta,
            "LABELS": self.labels,
            "--val-fasta": self.val_fasta,
            "--val-labels": self.val_labels,
            "--position-mask": self.position_mask,
            "--init-from": cfg.training.init_from,
            **(self.genome.named() if self.genome is not None else {}),
        }


@dataclass
class Loaded:
    spec: TaskSpec
    alpha: Alphabet | SeriesSpec | StructureInput
    data: SequenceSet
    val: SequenceSet | None
    primary: str | os.PathLike[str]
    """Where the sequences are (the FASTA, or the labels table holding them)."""
