"""Sequence digests: repeated sequences in training data, and test records seen in training.

Each record's residues (its codes: case, line breaks and T or U do not matter; a
series' values) are hashed to 64 bits with BLAKE2b. Within a training input, equal
digests with different labels are sequences that occur more than once with conflicting
labels. The model file keeps the sorted distinct digests of its training records (the
validation part included: it chose the epoch), 8 bytes per sequence, so that
``evaluate`` can say which test records a model has already seen. Two different
sequences share a digest with probability about n^2 / 2^65 (for a million sequences,
1 in 37 million).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .alphabets import Alphabet

if TYPE_CHECKING:  # numpy is imported where it is used, so that `info` starts without it
    import numpy as np

    from .data.sets import SequenceSet

TENSOR = "bioseqnn.train_digest"
"""The model file's tensor that holds the digests (int64: the uint64 bits)."""
DESCRIPTION = "BLAKE2b-64 of each distinct training sequence's residue codes"


def canonical_codes(alphabet: Any) -> np.ndarray | None:
    """Code -> the first code that stands for the same letters (T and U of a nucleotide
    alphabet, say), so that a sequence's digest is the same however it was written; None
    for what has no alphabet (a numeric series)."""
    import numpy as np

    alphabet = getattr(alphabet, "alphabet", alphabet)  # a StructureInput: its residues
    if not isinstance(alphabet, Alphabet):
        return None
    first: dict[str, int] = {}
    table = np.zeros(256, dtype=np.uint8)
    for code, symbol in enumerate(alphabet.symbol_list, start=1):
        table[code] = first.setdefault(alphabet.symbols[symbol], code)
    return table


DIGEST_BLOCK = 1 << 24
"""Residues mapped through the canonical table at a time: a copy of the whole code
array would double a large training set's memory for a moment."""


def record_digests(data: SequenceSet, canonical: np.ndarray | None = None) -> np.ndarray:
    """One uint64 per record of ``data``: the hash of its residues (through the
    ``canonical`` code table, see canonical_codes) or of its series values. Records are
    hashed a block of about DIGEST_BLOCK residues at a time."""
    import numpy as np

    codes = (
        data.codes[:, 0] if data.codes.ndim == 2 and data.codes.dtype == np.uint8 else data.codes
    )
    width = codes.itemsize * (int(np.prod(codes.shape[1:])) if codes.ndim > 1 else 1)
    offsets = data.offsets
    out = np.empty(len(data), dtype=np.uint64)
    first = 0
    while first < len(data):
        # records first..last-1: about DIGEST_BLOCK residues, at least one record
        last = int(np.searchsorted(offsets, offsets[first] + DIGEST_BLOCK, "right")) - 1
        last = min(max(last, first + 1), len(data))
        base = int(offsets[first])
        part = codes[base : int(offsets[last])]
        if canonical is not None:
            part = canonical[part]
        blob = np.ascontiguousarray(part).view(np.uint8).reshape(-1).data
        for i in range(first, last):
            piece = blob[(int(offsets[i]) - base) * width : (int(offsets[i + 1]) - base) * width]
            out[i] = int.from_bytes(hashlib.blake2b(piece, digest_size=8).digest(), "little")
        first = last
    return out


def label_digests(data: SequenceSet) -> np.ndarray:
    """One uint64 per record for its labels (targets row, or per-residue labels)."""
    import numpy as np

    out = np.empty(len(data), dtype=np.uint64)
    for i in range(len(data)):
        h = hashlib.blake2b(digest_size=8)
        if data.targets is not None:
            h.update(np.ascontiguousarray(data.targets[i]).tobytes())
        if data.positions is not None:
            h.update(data.positions[data.offsets[i] : data.offsets[i + 1]].tobytes())
        out[i] = int.from_bytes(h.digest(), "little")
    return out


@dataclass
class Conflicts:
    """Sequences that occur more than once with different labels."""

    sequences: int
    """How many distinct sequences have conflicting labels."""
    records: int
    """How many records hold them."""
    examples: list[list[str]]
    """The ids of a few such sequences' records (each list: one sequence)."""


def conflicting_labels(data: SequenceSet, digests: np.ndarray, examples: int = 3) -> Conflicts:
    """The sequences of ``data`` whose records disagree about the label."""
    import numpy as np

    _, group, counts = np.unique(digests, return_inverse=True, return_counts=True)
    repeated = np.flatnonzero(counts[group] > 1)
    if not len(repeated):
        return Conflicts(0, 0, [])
    labels = (
        label_digests(data.subset(repeated)) if len(repeated) < len(data) else label_digests(data)
    )
    pairs = np.unique(np.stack([group[repeated], labels]), axis=1)
    kinds, per_group = np.unique(pairs[0], return_counts=True)
    bad = kinds[per_group > 1]
    in_bad = np.isin(group, bad)
    shown = [[data.ids[i] for i in np.flatnonzero(group == g)[:4]] for g in bad[:examples]]
    return Conflicts(len(bad), int(in_bad.sum()), shown)


def seen_in_training(digests: np.ndarray, train_digests: np.ndarray) -> np.ndarray:
    """A mask of the records whose digest is among the (sorted) training digests."""
    import numpy as np

    if not len(train_digests):
        return np.zeros(len(digests), dtype=bool)
    where = np.searchsorted(train_digests, digests)
    where = np.minimum(where, len(train_digests) - 1)
    return train_digests[where] == digests
