"""RNA secondary structure as input channels (``train --structure``).

Each sequence is folded with ViennaRNA (the ``ViennaRNA`` package, the optional extra
``bioseqnn[structure]``); DNA is folded as RNA (T read as U). Every position gets its
pairing state in the minimum free energy structure: unpaired (``.``), paired with a
partner downstream (``(``) or upstream (``)``); with ``bpp`` also its probability of
being paired at all (the sum of its base-pair probabilities from the partition
function; about three times the folding time). Ambiguity codes fold as N (unpaired).

The states are kept beside the residue codes, as a second column of the same uint8
array (code = state + 3 * round(63 * probability)), so subsets, batches and padding
work unchanged; the input layer (:class:`StructuredOneHot`) turns the pair into the
residue's one-hot channels followed by three state channels and, with ``bpp``, one
probability channel. The model file records the folding (tool, version, kind), and
every command that runs the model folds its input the same way first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .alphabets import Alphabet
from .config import STRUCTURE_KINDS as KINDS  # noqa: F401  (this module's name for them)
from .config import TrainConfig
from .errors import UsageError

if TYPE_CHECKING:  # numpy is imported where it is used, so that `info` starts without it
    import numpy as np

STATES = ".()"
LEVELS = 63
"""Pairing probabilities are kept in 64 steps (1/63 apart)."""
INSTALL_HINT = (
    "--structure needs ViennaRNA: pip install 'bioseqnn[structure]' (or pip install ViennaRNA)"
)
POOL_MIN = 64
"""Fewer sequences than this are folded in this process (a pool costs more to start)."""


def vienna() -> Any:
    """The ViennaRNA module, or a usage error saying how to install it."""
    try:
        import RNA
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    return RNA


@dataclass(frozen=True)
class StructureInput:
    """What a structure model reads: an alphabet's residues plus folding channels."""

    alphabet: Alphabet
    kind: str = "mfe"
    version: str = ""
    """The ViennaRNA version that folded the training data (recorded, not enforced)."""

    @property
    def size(self) -> int:
        return self.alphabet.size + len(STATES) + (1 if self.kind == "bpp" else 0)

    @property
    def name(self) -> str:
        return self.alphabet.name

    @property
    def channels(self) -> list[str]:
        extra = ["unpaired", "paired_downstream", "paired_upstream"]
        return [
            *self.alphabet.letters,
            *extra,
            *(["pair_probability"] if self.kind == "bpp" else []),
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": "ViennaRNA",
            "version": self.version,
            "kind": self.kind,
            "channels": self.channels[self.alphabet.size :],
        }

    @classmethod
    def from_dict(cls, alphabet: Alphabet, doc: dict[str, Any]) -> StructureInput:
        return cls(alphabet, doc["kind"], str(doc.get("version", "")))


def structure_input(alphabet: Alphabet, kind: str) -> StructureInput:
    """The input of a model trained with ``--structure kind`` on ``alphabet``."""
    if not alphabet.is_nucleotide:
        raise UsageError(
            f"--structure folds RNA (and DNA read as RNA); these sequences are {alphabet.name}"
        )
    return StructureInput(alphabet, kind, str(getattr(vienna(), "__version__", "")))


def _rna_table(alphabet: Alphabet) -> bytes:
    """Code -> the letter ViennaRNA folds: A, C, G, U, or N for padding and ambiguity."""
    table = bytearray(b"N" * 256)
    for code, symbol in enumerate(alphabet.symbol_list, start=1):
        letter = "U" if symbol == "T" else symbol
        table[code] = ord(letter) if letter in "ACGU" else ord("N")
    return bytes(table)


def fold_one(sequence: str, kind: str) -> np.ndarray:
    """The structure codes (state + 3 * probability level) of one RNA sequence."""
    import numpy as np

    rna = vienna()
    if not sequence:
        return np.zeros(0, dtype=np.uint8)
    compound = rna.fold_compound(sequence)
    dot_bracket, energy = compound.mfe()
    states = np.frombuffer(dot_bracket.encode(), dtype=np.uint8)
    codes = np.select([states == ord("("), states == ord(")")], [1, 2], 0).astype(np.uint8)
    if kind == "bpp":
        compound.exp_params_rescale(energy)
        compound.pf()
        pairs = np.asarray(compound.bpp(), dtype=np.float64)[1:, 1:]  # 1-based, upper part
        paired = np.clip(pairs.sum(axis=0) + pairs.sum(axis=1), 0.0, 1.0)
        codes += (3 * np.rint(paired * LEVELS)).astype(np.uint8)
    return codes


def _fold_many(job: tuple[list[str], str]) -> list[np.ndarray]:
    sequences, kind = job
    return [fold_one(s, kind) for s in sequences]


def _jobs(sequences: list[str], kind: str, size: int) -> Iterator[tuple[list[str], str]]:
    for start in range(0, len(sequences), size):
        yield sequences[start : start + size], kind


def fold_codes(
    codes: np.ndarray, offsets: np.ndarray, spec: StructureInput, workers: int = 0
) -> np.ndarray:
    """Residue codes (P,) of records at ``offsets`` -> (P, 2): the codes and their
    structure codes, folded in ``workers`` processes (0 = the CPUs this process may use)."""
    import numpy as np

    vienna()  # a missing install is a usage error before any work
    table = np.frombuffer(_rna_table(spec.alphabet), dtype=np.uint8)
    text = table[codes].tobytes().decode("ascii")
    sequences = [text[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
    workers = workers or _cpus()
    if workers > 1 and len(sequences) >= POOL_MIN:
        # a chunk per job keeps the pool busy without a message per sequence
        size = max(8, min(256, len(sequences) // (workers * 4) or 1))
        with ProcessPoolExecutor(max_workers=workers) as pool:
            parts = [
                s
                for chunk in pool.map(_fold_many, _jobs(sequences, spec.kind, size))
                for s in chunk
            ]
    else:
        parts = _fold_many((sequences, spec.kind))
    states = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint8)
    return np.stack([codes.astype(np.uint8), states], axis=1)


def _cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def with_structure(data: Any, spec: Any, workers: int = 0) -> Any:
    """``data`` (a SequenceSet) with its structure codes added when the model reads
    ``spec``, a :class:`StructureInput` (unchanged otherwise, or when already folded)."""
    if isinstance(spec, StructureInput) and data.codes.ndim == 1:
        data.codes = fold_codes(data.codes, data.offsets, spec, workers)
    return data


def check_structure_options(tc: TrainConfig, lm: bool) -> None:
    """What --structure cannot go with, said before any data is read."""
    if lm:
        raise UsageError(
            "--structure is not available for --task language-model (a "
            "folding reads the whole sequence, the future included)"
        )
    if tc.rc_augment or tc.rc_average:
        raise UsageError(
            "--structure cannot go with --rc-augment or --rc-average: the reverse "
            "complement folds otherwise"
        )
    vienna()  # installed, or a usage error that says how
