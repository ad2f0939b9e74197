"""Sequence encoding as array operations.

Sequences are stored as uint8 codes (one byte per residue, 0 = padding); the one-hot
matrix is produced per batch by indexing a small table, so a training set costs one
byte per residue in memory and no Python loop ever touches a character. That table
lookup, a torch module, is in bioseqnn/models/inputs.py: this module needs no torch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import kernels
from .alphabets import INVALID, Alphabet, count_kinds
from .errors import DataError, UsageError, shorten

log = logging.getLogger("bioseqnn")

ON_INVALID = ("error", "skip", "mask")


@dataclass
class InvalidSymbol:
    index: int
    """Index of the offending sequence in the batch."""
    position: int
    """1-based position in that sequence."""
    char: str


def _drop_stops(joined: bytearray, offsets: np.ndarray) -> tuple[bytearray, np.ndarray]:
    """Drop each sequence's terminal stop '*' (a protein's translation ends with one).

    A sequence that is a stop alone keeps it: dropped, it would leave a record of no
    residues (which the model would predict as NaN); kept, it is an invalid symbol at
    position 1, refused, skipped or masked as --on-invalid says."""
    lengths = np.diff(offsets)
    raw = np.frombuffer(joined, dtype=np.uint8)
    last = offsets[1:][lengths > 1] - 1
    stops = last[raw[last] == ord("*")]
    if not len(stops):
        return joined, offsets
    keep = np.ones(len(raw), dtype=bool)
    keep[stops] = False
    dropped = np.zeros(len(offsets), dtype=np.int64)
    dropped[np.searchsorted(offsets, stops, side="right")] += 1  # stops are ends - 1
    return bytearray(raw[keep]), offsets - np.cumsum(dropped)


def _vector_translate() -> Any:
    """The compiled translation (bsnn_translate), where it runs with vector instructions;
    None elsewhere (its plain-C form is no faster than ``bytes.translate``)."""
    if not kernels.available():
        return None
    lib = kernels.library()
    return lib.bsnn_translate if lib.bsnn_isa() >= 1 else None


class Encoder:
    """Turns raw sequences into uint8 codes for one alphabet."""

    def __init__(self, alphabet: Alphabet, on_invalid: str = "error") -> None:
        if on_invalid not in ON_INVALID:
            raise UsageError(f"--on-invalid must be one of {', '.join(ON_INVALID)}")
        self.alphabet = alphabet
        self.on_invalid = on_invalid
        self.table = alphabet.byte_table()
        # bytes.translate does the 256-entry lookup in C at memory speed (several times
        # faster than numpy fancy indexing on uint8).
        self._translation = self.table.tobytes()
        # The fully ambiguous symbol (N or X) replaces invalid ones under 'mask'.
        wildcard = "X" if alphabet.name == "protein" else "N"
        self.wildcard = alphabet.symbol_list.index(wildcard) + 1

    def encode(self, seqs: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray, list[InvalidSymbol]]:
        """Encode a batch of sequences in one table lookup.

        Returns the concatenated codes, the offsets (len(seqs) + 1) and the invalid
        symbols found (one per offending sequence, the first in it). Under 'error' and
        'skip' the offending sequences are still present; callers decide what to do.
        A protein's terminal stop '*' is dropped.
        """
        lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return self.encode_joined(bytearray().join(seqs), offsets)

    def encode_joined(
        self, joined: bytearray, offsets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, list[InvalidSymbol]]:
        """:meth:`encode` for sequences given one after another, with their offsets
        (a bytearray: its translation is the writable array of codes)."""
        if self.alphabet.name == "protein":
            joined, offsets = _drop_stops(joined, offsets)
        translated = joined.translate(self._translation)
        codes = np.frombuffer(translated, dtype=np.uint8)  # writable: a bytearray
        bad: list[InvalidSymbol] = []
        if translated.find(INVALID) >= 0:
            raw = np.frombuffer(joined, dtype=np.uint8)
            invalid = codes == INVALID
            where = np.flatnonzero(invalid)
            seq_idx = np.searchsorted(offsets, where, side="right") - 1
            first = np.unique(seq_idx, return_index=True)[1]
            for k in first:
                i = int(seq_idx[k])
                pos = int(where[k] - offsets[i])
                bad.append(InvalidSymbol(i, pos + 1, chr(raw[where[k]])))
            if self.on_invalid == "mask":
                codes[invalid] = self.wildcard
        return codes, offsets, bad

    def encode_runs(
        self, texts: Sequence[bytes | bytearray | memoryview], offsets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, list[InvalidSymbol]]:
        """:meth:`encode_joined` for sequences given in runs, each run several sequences
        one after another (the FASTA reader's blocks), ``offsets`` over them all.

        Where the compiled code has vector instructions, the runs are translated by it
        straight into one array of codes, five times the speed of ``bytes.translate``
        and without joining them first; an invalid symbol found there sends the chunk
        the general way, which names it. A protein's stop '*' is invalid in the table,
        so a chunk with terminal stops goes the general way too, which drops them."""
        translate = _vector_translate()
        if translate is not None:
            codes = np.empty(int(offsets[-1]), dtype=np.uint8)
            table = self.table.ctypes.data
            at = 0
            for text in texts:
                src = np.frombuffer(text, dtype=np.uint8)
                if translate(src.ctypes.data, len(src), table, codes[at:].ctypes.data) >= 0:
                    break
                at += len(src)
            else:
                return codes, offsets, []
        only = texts[0] if len(texts) == 1 else None
        joined = only if isinstance(only, bytearray) else bytearray().join(texts)
        return self.encode_joined(joined, offsets)

    def describe_invalid(
        self,
        bad: InvalidSymbol,
        record_id: str,
        source: str,
        where: str = "",
        hint: str = "use --on-invalid skip or mask, or --alphabet",
    ) -> str:
        """One line: file, location (``where``, e.g. 'line 4, column 7'), record, symbol."""
        location = f"{source}: {where}: " if where else f"{source}: "
        return (
            f"{location}record {shorten(record_id)!r}: invalid {self.alphabet.name} symbol "
            f"{bad.char!r} at position {bad.position} ({hint})"
        )


def pad_codes(
    codes: np.ndarray,
    offsets: np.ndarray,
    index: Sequence[int] | np.ndarray,
    fill: float = 0,
    extra: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Gather sequences ``index`` into a right-padded (B, Lmax + extra) matrix of the
    codes' dtype (``fill`` past each length) and their lengths. Also used for per-position
    targets, which are laid out like the codes, and for numeric series, whose codes have
    a channel axis: (steps, C) -> (B, Lmax + extra, C)."""
    index = np.asarray(index, dtype=np.int64)
    starts = offsets[index]
    lengths = offsets[index + 1] - starts
    width = (int(lengths.max()) if len(index) else 0) + extra
    pos = np.arange(width, dtype=np.int64)
    valid = pos[None, :] < lengths[:, None]
    gather = np.where(valid, starts[:, None] + pos[None, :], 0)
    trailing = codes.shape[1:]
    mask = valid.reshape(valid.shape + (1,) * len(trailing))
    out = np.where(mask, codes[gather] if len(codes) else fill, fill).astype(codes.dtype)
    return out, lengths


NUCLEOTIDE_EVIDENCE = 50
"""Residues of nucleotide letters only, below which a protein model still reads them: a few
short peptides (GAGTCA) can be made of those letters alone; real DNA rarely is that short."""


def check_fits(
    alphabet: Alphabet, model_alphabet: Alphabet, source: str, residues: int | None = None
) -> None:
    """Refuse input of another alphabet than the model's (DNA is valid protein text).

    ``residues``: how many the guess ``alphabet`` rests on; a nucleotide guess from fewer
    than NUCLEOTIDE_EVIDENCE does not refuse input to a protein model."""
    if (
        residues is not None
        and residues < NUCLEOTIDE_EVIDENCE
        and alphabet.is_nucleotide
        and model_alphabet.name == "protein"
    ):
        return
    if not model_alphabet.compatible_with(alphabet):
        raise DataError(
            f"{source}: the sequences look like {alphabet.name} but the model was trained on "
            f"{model_alphabet.name}; check that this is the right model for this input"
        )


def check_kinds(
    ids: Sequence[str],
    seqs: Sequence[bytes],
    model_alphabet: Alphabet,
    source: str,
    lines: Sequence[int] | None = None,
) -> None:
    """Refuse, or warn about, records that look like DNA/RNA one by one for a protein
    model, judged as train judges a file that mixes alphabets (alphabets.looks_like).

    check_fits judges a sample as a whole: a few records with a symbol of protein alone
    (an 'X') or with many ambiguity codes made a DNA file look like protein, and a
    protein model silently scored the reads. At least half of the sample (and
    NUCLEOTIDE_EVIDENCE residues) is refused; fewer records are a warning naming one.
    """
    if model_alphabet.name != "protein":
        return
    nucleotide, _ = count_kinds(seqs)
    if not nucleotide:
        return
    first = nucleotide[0]
    line = f", line {lines[first]}" if lines is not None and lines[first] else ""
    what = (
        f"{len(nucleotide)} of the first {len(seqs)} records look like DNA/RNA (e.g. "
        f"{shorten(ids[first])!r}{line})"
    )
    residues = sum(len(seqs[i]) for i in nucleotide)
    if 2 * len(nucleotide) >= len(seqs) and residues >= NUCLEOTIDE_EVIDENCE:
        raise DataError(
            f"{source}: {what}, but the model was trained on protein; check that "
            "this is the right model for this input"
        )
    log.warning("%s: %s; the model reads protein and scores them as protein", source, what)
