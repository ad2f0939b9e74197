"""Stored sets of sequences: one flat uint8 code array (or float32 values for a series)
with offsets, targets and per-position labels, copied and subset without a Python object
per record.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

SUBSET_BLOCK = 1 << 20
"""Residues copied per step by :meth:`SequenceSet.subset` (bounds its temporaries)."""


@dataclass
class SequenceSet:
    """Sequences as one flat uint8 code array plus offsets, with optional targets."""

    ids: list[str]
    codes: np.ndarray
    offsets: np.ndarray
    targets: np.ndarray | None = None
    """One row of targets per record (classes, 0/1 columns or scaled values)."""
    positions: np.ndarray | None = None
    """Per-position tasks: one int8 target per residue, aligned with ``codes`` (-1 = not
    scored). Flat like the codes, so a long record costs its own length, not the longest
    length times every record; :func:`position_batch` pads a batch's share."""
    _fingerprint: str | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def subset(self, index: np.ndarray) -> SequenceSet:
        index = np.asarray(index, dtype=np.int64)
        offsets = _offsets(self.lengths[index])
        codes = np.empty((int(offsets[-1]), *self.codes.shape[1:]), dtype=self.codes.dtype)
        self._gather(index, offsets, codes, self.codes)
        positions = None
        if self.positions is not None:
            positions = np.empty(int(offsets[-1]), dtype=self.positions.dtype)
            self._gather(index, offsets, positions, self.positions)
        return SequenceSet(
            [self.ids[i] for i in index],
            codes,
            offsets,
            None if self.targets is None else self.targets[index],
            positions,
        )

    def split(self, keep: np.ndarray, out: np.ndarray) -> tuple[SequenceSet, SequenceSet | None]:
        """``(self.subset(keep), self.subset(out))`` (None for an empty ``out``) without a
        second copy of the kept codes: they move to the front of this set's own array.

        ``keep`` must ascend. This set then holds ids, lengths and its fingerprint only
        (its codes are gone), so a training split needs ~1.1x the codes, not 2x.
        """
        keep = np.asarray(keep, dtype=np.int64)
        if len(keep) > 1 and not (np.diff(keep) > 0).all():
            raise ValueError("split: keep must be ascending")
        self._fingerprint = self.fingerprint()
        other = self.subset(out) if len(out) else None
        offsets = _offsets(self.lengths[keep])
        # every record moves left (or stays): a block never overwrites codes still to read
        self._gather(keep, offsets, self.codes, self.codes)
        positions = None
        if self.positions is not None:
            self._gather(keep, offsets, self.positions, self.positions)
            positions = self.positions[: int(offsets[-1])]
        kept = SequenceSet(
            [self.ids[i] for i in keep],
            self.codes[: int(offsets[-1])],
            offsets,
            None if self.targets is None else self.targets[keep],
            positions,
        )
        self.codes = np.zeros(0, dtype=np.uint8)
        self.positions = None
        return kept, other

    def _gather(
        self, index: np.ndarray, offsets: np.ndarray, into: np.ndarray, source: np.ndarray
    ) -> None:
        """Copy the residues (of ``source``: the codes, or the position targets) of records
        ``index`` to ``into`` at ``offsets``.

        The position of every residue (each record's start, shifted to its new place) is
        built in blocks, so the int64 positions (8 bytes per residue) never cover a whole
        large set (a 1 GB FASTA would need 8 GB of them at once).
        """
        lengths = np.diff(offsets)
        start = 0
        while start < len(index):
            end = int(np.searchsorted(offsets, offsets[start] + SUBSET_BLOCK, "right")) - 1
            end = min(max(end, start + 1), len(index))
            shift = np.repeat(
                self.offsets[index[start:end]] - offsets[start:end], lengths[start:end]
            )
            lo, hi = int(offsets[start]), int(offsets[end])
            into[lo:hi] = source[np.arange(lo, hi, dtype=np.int64) + shift]
            start = end

    def fingerprint(self) -> str:
        if self._fingerprint is not None:  # kept by split(), which gives the codes away
            return self._fingerprint
        h = hashlib.sha256()
        h.update("\n".join(self.ids).encode())
        h.update(self.offsets.tobytes())
        h.update(np.ascontiguousarray(self.codes).data)  # no copy (tobytes would double it)
        if self.targets is not None:
            h.update(np.ascontiguousarray(self.targets).tobytes())
        if self.positions is not None:
            h.update(np.ascontiguousarray(self.positions).data)
        return h.hexdigest()


def _offsets(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets
