"""Alphabets, IUPAC ambiguity codes, detection and validation.

Every alphabet maps each accepted symbol to a small integer code (0 is padding) and
each code to a row of a fractional one-hot matrix: an ambiguity code spreads its unit
mass over the letters it stands for (N = 0.25 each base, R = 0.5 A + 0.5 G, X = 1/20
for each amino acid). Lowercase (soft-masked) symbols read as uppercase.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

from .errors import DataError, UsageError

if TYPE_CHECKING:  # numpy is imported where it is used, so that `info` starts without it
    import numpy as np

INVALID = 255

_NUCLEOTIDE_CODES = {
    "N": "ACGT",
    "R": "AG",
    "Y": "CT",
    "S": "CG",
    "W": "AT",
    "K": "GT",
    "M": "AC",
    "B": "CGT",
    "D": "AGT",
    "H": "ACT",
    "V": "ACG",
}

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
_PROTEIN_CODES = {
    "X": AMINO_ACIDS,
    "B": "DN",
    "Z": "EQ",
    "J": "IL",
    "U": "C",  # selenocysteine, encoded as its closest standard residue
    "O": "K",  # pyrrolysine, likewise
}

# Complements of the IUPAC nucleotide codes (A<->T, R<->Y, K<->M, B<->V, D<->H; S, W, N self).
_COMPLEMENT = {
    "A": "T", "C": "G", "G": "C", "T": "A", "U": "A", "N": "N", "R": "Y", "Y": "R",
    "S": "S", "W": "W", "K": "M", "M": "K", "B": "V", "V": "B", "D": "H", "H": "D",
}  # fmt: skip


@dataclass(frozen=True)
class Alphabet:
    """An alphabet: the one-hot channels and every symbol accepted as input."""

    name: str
    letters: str
    """One channel per letter, in this order."""
    symbols: dict[str, str] = field(repr=False)
    """Every accepted uppercase symbol -> the channel letters it stands for."""

    @property
    def size(self) -> int:
        return len(self.letters)

    @property
    def is_nucleotide(self) -> bool:
        return self.name in ("dna", "rna")

    @property
    def symbol_list(self) -> list[str]:
        """Symbols in code order: code ``i + 1`` is ``symbol_list[i]``."""
        return list(self.symbols)

    def byte_table(self) -> np.ndarray:
        """A 256-entry uint8 table from an input byte to its code (255 = invalid)."""
        import numpy as np

        table = np.full(256, INVALID, dtype=np.uint8)
        for code, sym in enumerate(self.symbol_list, start=1):
            table[ord(sym)] = code
            table[ord(sym.lower())] = code
        return table

    def onehot_table(self) -> np.ndarray:
        """A float32 matrix (codes x channels); row 0 (padding) is all zero."""
        import numpy as np

        mat = np.zeros((len(self.symbols) + 1, self.size), dtype=np.float32)
        for code, sym in enumerate(self.symbol_list, start=1):
            stands_for = self.symbols[sym]
            for letter in stands_for:
                mat[code, self.letters.index(letter)] = 1.0 / len(stands_for)
        return mat

    def complement_codes(self) -> np.ndarray:
        """Code -> code of the complementary symbol (nucleotide alphabets only)."""
        import numpy as np

        if not self.is_nucleotide:
            raise UsageError(f"the {self.name} alphabet has no complement")
        index = {sym: code for code, sym in enumerate(self.symbol_list, start=1)}
        out = np.zeros(len(self.symbols) + 1, dtype=np.uint8)
        for sym, code in index.items():
            comp = _COMPLEMENT[sym]
            if comp not in index:  # U in DNA / T in RNA: both mean the same channel
                comp = self.letters[3]
            out[code] = index[comp]
        return out

    def compatible_with(self, other: Alphabet) -> bool:
        """True when sequences of ``other`` can be fed to a model of this alphabet."""
        return self.name == other.name or (self.is_nucleotide and other.is_nucleotide)


def _nucleotide(name: str, letters: str) -> Alphabet:
    t_or_u = letters[3]
    symbols = {c: c for c in letters}
    symbols["U" if t_or_u == "T" else "T"] = t_or_u  # T read as U and U as T
    for sym, bases in _NUCLEOTIDE_CODES.items():
        symbols[sym] = bases.replace("T", t_or_u)
    return Alphabet(name, letters, symbols)


DNA = _nucleotide("dna", "ACGT")
RNA = _nucleotide("rna", "ACGU")
PROTEIN = Alphabet("protein", AMINO_ACIDS, {**{c: c for c in AMINO_ACIDS}, **_PROTEIN_CODES})

ALPHABETS = {a.name: a for a in (DNA, RNA, PROTEIN)}


def get_alphabet(name: str) -> Alphabet:
    try:
        return ALPHABETS[name.lower()]
    except KeyError:
        raise UsageError(
            f"unknown alphabet {name!r}; choose one of: {', '.join(ALPHABETS)}"
        ) from None


def _byte_set(symbols: str) -> np.ndarray:
    """A 256-entry mask of the bytes of ``symbols``, in either case."""
    import numpy as np

    mask = np.zeros(256, dtype=bool)
    for c in symbols:
        mask[ord(c)] = mask[ord(c.lower())] = True
    return mask


@cache
def _nucleotide_bytes() -> np.ndarray:
    return _byte_set("ACGTUN" + "".join(_NUCLEOTIDE_CODES))


@cache
def _core_nucleotide_bytes() -> np.ndarray:
    return _byte_set("ACGTUN")


@dataclass
class AlphabetGuess:
    alphabet: Alphabet
    reason: str


def detect_alphabet(byte_counts: np.ndarray) -> AlphabetGuess:
    """Guess the alphabet from a histogram of input bytes (length 256).

    Nucleotide when every letter is a nucleotide IUPAC symbol and at least 90% are
    A/C/G/T/U/N; RNA when it has U and no T. Otherwise protein. Bytes that are no letter
    of either (alignment gaps, '*', digits) say nothing about the alphabet: they are
    left to the encoding, which names them.
    """
    total = int(byte_counts.sum())
    if total == 0:
        raise DataError("cannot detect the alphabet of empty sequences")
    present = byte_counts > 0
    letters = _protein_bytes() | _nucleotide_bytes()
    total = int(byte_counts[letters].sum()) or total
    core = int(byte_counts[_core_nucleotide_bytes()].sum())
    if not present[letters & ~_nucleotide_bytes()].any() and core >= 0.9 * total:
        has_u = byte_counts[ord("U")] + byte_counts[ord("u")] > 0
        has_t = byte_counts[ord("T")] + byte_counts[ord("t")] > 0
        if has_u and not has_t:
            return AlphabetGuess(RNA, "only nucleotide symbols, with U and no T")
        share = f"{100 * core / total:.1f}% A/C/G/T/U/N"
        return AlphabetGuess(DNA, f"only nucleotide symbols ({share})")
    return AlphabetGuess(PROTEIN, "symbols outside the nucleotide alphabet")


HISTOGRAM_SLICE = 1 << 24
"""Bytes of a sequence counted at a time: np.bincount makes an int64 copy of what it is
given (8 bytes per residue), so a 1-Gb record counted whole took 8 GB."""


def byte_histogram(seqs: Iterable[bytes]) -> np.ndarray:
    """How often each byte value occurs in ``seqs``."""
    import numpy as np

    counts = np.zeros(256, dtype=np.int64)
    for s in seqs:
        codes = np.frombuffer(s, dtype=np.uint8)
        for start in range(0, len(codes), HISTOGRAM_SLICE):
            counts += np.bincount(codes[start : start + HISTOGRAM_SLICE], minlength=256)
    return counts


@cache
def _amino_only_bytes() -> np.ndarray:
    return _byte_set("EFILPQ")  # amino acids that are no nucleotide code


@cache
def _protein_bytes() -> np.ndarray:
    return PROTEIN.byte_table() != INVALID


def looks_like(seq: bytes) -> Alphabet | None:
    """The alphabet one sequence clearly belongs to, or None when it is not clear.

    Nucleotide: at least 20 symbols, all nucleotide codes, at least 90% A/C/G/T/U/N
    (a peptide that long made of those letters is very unlikely). Protein: only protein
    symbols, at least 10% of them (and two or more) amino acids that are no nucleotide
    code (E, F, I, L, P, Q). Used to tell a user that a file mixes alphabets.
    """
    import numpy as np

    raw = np.frombuffer(seq.removesuffix(b"*"), dtype=np.uint8)
    if len(raw) == 0:
        return None
    if len(raw) >= 20 and _nucleotide_bytes()[raw].all():
        guess = detect_alphabet(np.bincount(raw, minlength=256))
        return guess.alphabet if guess.alphabet.is_nucleotide else None
    distinct = int(_amino_only_bytes()[raw].sum())
    if _protein_bytes()[raw].all() and distinct >= max(2, 0.1 * len(raw)):
        return PROTEIN
    return None


def count_kinds(seqs: Iterable[bytes]) -> tuple[list[int], list[int]]:
    """Indices of the sequences that clearly look nucleotide, and of those that look protein."""
    nucleotide: list[int] = []
    protein: list[int] = []
    for i, seq in enumerate(seqs):
        kind = looks_like(seq)
        if kind is not None:
            (nucleotide if kind.is_nucleotide else protein).append(i)
    return nucleotide, protein


@cache
def _protein_only_bytes() -> np.ndarray:
    return _byte_set("EFILPQJOXZ")


def protein_only_fraction(byte_counts: np.ndarray) -> float:
    """Share of the bytes that are amino-acid letters never used for nucleotides."""
    total = int(byte_counts.sum())
    return float(byte_counts[_protein_only_bytes()].sum()) / total if total else 0.0
