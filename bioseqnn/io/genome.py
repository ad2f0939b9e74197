"""The reference genome: an indexed FASTA, plain or bgzip, read at random through pysam.

pysam (htslib, the library of samtools and bcftools) reads both the genome (through its
``.fai`` index, and ``.gzi`` for bgzip) and VCF/BCF files (bioseqnn/ops/variant_effects.py):
one optional dependency, the readers the rest of the field uses, C speed. The index is
built on first use when the FASTA's folder is writable (and rebuilt when the FASTA is
newer than it); otherwise the error says how to build it.

A window is fetched as bytes, padded with N where it runs off a chromosome end. Windows
come from a block of the chromosome kept from the last fetch, so intervals or variants
in sorted order cost one read per block, not one per window (and a chromosome is never
loaded whole).
"""

from __future__ import annotations

import contextlib
import difflib
import gzip
import itertools
import logging
import os
from collections.abc import Iterator
from typing import Any

from ..errors import DataError, UsageError, shorten
from .files import STDIO, display_name
from .sniff import SNIFF

log = logging.getLogger("bioseqnn")

INSTALL_HINT = (
    "--genome and 'bioseqnn variants' need pysam: pip install 'bioseqnn[genome]' "
    "(or pip install pysam)"
)
BLOCK = 1 << 18
"""The most bases a fetch reads ahead of a window (for the windows after it)."""
_COMPLEMENT = bytes.maketrans(
    b"ACGTURYKMBVDHNSWacgturykmbvdhnsw", b"TGCAAYRMKVBHDNSWtgcaayrmkvbhdnsw"
)


def pysam_module() -> Any:
    """pysam, or a usage error saying how to install it."""
    try:
        import pysam
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    return pysam


@contextlib.contextmanager
def quiet_htslib() -> Iterator[Any]:
    """pysam with htslib's own messages off (they would be extra lines on stderr; the
    errors bioseqnn raises say what went wrong)."""
    pysam = pysam_module()
    previous = pysam.set_verbosity(0)
    try:
        yield pysam
    finally:
        pysam.set_verbosity(previous)


def reverse_complement(seq: bytes) -> bytes:
    """The other strand of a nucleotide sequence (IUPAC codes and case kept)."""
    return seq.translate(_COMPLEMENT)[::-1]


def compression(path: str | os.PathLike[str]) -> str:
    """'bgzf', 'gzip' or 'plain', from the first bytes of a file."""
    with open(path, "rb") as fh:
        return compression_of(fh.read(18))


def compression_of(head: bytes) -> str:
    """'bgzf', 'gzip' or 'plain', from a file's first 18 bytes (or fewer at its end)."""
    if head[:2] != b"\x1f\x8b":
        return "plain"
    # BGZF: a gzip member with the extra field 'BC' (the block size)
    return "bgzf" if len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC" else "gzip"


class Genome:
    """An indexed reference FASTA (plain or bgzip): chromosome names and lengths, and
    windows of any chromosome as bytes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        self.name = display_name(path)
        if self.path == STDIO:
            raise UsageError(
                "--genome needs a file (it is read at random through its index), not '-'"
            )
        if not os.path.exists(self.path):
            raise UsageError(f"--genome {self.name}: no such file")
        if os.path.isdir(self.path):
            raise UsageError(f"--genome {self.name}: is a directory, not a FASTA file")
        if not os.path.isfile(self.path):
            raise UsageError(
                f"--genome {self.name}: not a regular file; the genome is read at random "
                "through its index, so it cannot be a pipe or a device"
            )
        kind = compression(self.path)
        if kind == "gzip":
            raise DataError(
                f"{self.name}: gzip-compressed, but not with bgzip, so it cannot be read at "
                f"random: recompress it (zcat {self.name} | bgzip > genome.fa.gz; bgzip comes "
                "with htslib and samtools) or decompress it"
            )
        with quiet_htslib() as pysam:
            self._index(kind)
            try:
                self.fasta = pysam.FastaFile(self.path)
            except (OSError, ValueError) as exc:
                raise DataError(
                    f"{self.name}: cannot be read as an indexed FASTA ({exc}); "
                    f"{_fasta_problem(self.path)}"
                ) from None
        self.lengths: dict[str, int] = dict(
            zip(self.fasta.references, self.fasta.lengths, strict=True)
        )
        if not self.lengths:
            raise DataError(f"{self.name}: no sequences (an empty FASTA?)")
        if kind == "plain":
            self._check_index()
        self._chrom = ""
        self._start = 0
        self._block = b""
        self._hits = 0

    def _index(self, kind: str) -> None:
        """Build the .fai (and .gzi) index if it is missing or older than the FASTA."""
        needed = [self.path + ".fai"] + ([self.path + ".gzi"] if kind == "bgzf" else [])
        missing = [p for p in needed if not os.path.exists(p)]
        mtime = os.path.getmtime(self.path)
        stale = [p for p in needed if p not in missing and os.path.getmtime(p) < mtime]
        if not missing and not stale:
            return
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.access(folder, os.W_OK):
            if missing:
                raise DataError(
                    f"{self.name}: no index ({', '.join(map(display_name, missing))}) and "
                    f"its folder {folder!r} is not writable to build one: build it where "
                    f"the FASTA can be written (samtools faidx {self.name}), or copy the "
                    "FASTA to a writable folder"
                )
            log.warning(
                "%s: the index %s is older than the FASTA and cannot be rebuilt "
                "here (folder not writable); it is used as it is",
                self.name,
                stale[0],
            )
            return
        for p in stale:
            os.unlink(p)
        pysam = pysam_module()
        try:
            pysam.faidx(self.path)
        except Exception:  # pysam.SamtoolsError or OSError: htslib's own words are off
            for p in needed:
                with contextlib.suppress(OSError):
                    if os.path.getsize(p) == 0:
                        os.unlink(p)
            raise DataError(
                f"{self.name}: cannot build its index: {_fasta_problem(self.path)}"
            ) from None
        log.info("%s: built the index %s", self.name, ", ".join(map(display_name, needed)))

    def _check_index(self) -> None:
        """A .fai that does not describe this FASTA (written for another version of it,
        or edited) makes every window wrong: each sequence must end within the file and
        the first and last must start after a header line. Plain FASTA only (a bgzip
        file's offsets are into its blocks)."""
        fai = self.path + ".fai"
        size = os.path.getsize(self.path)
        try:
            with open(fai) as fh:
                rows = [line.rstrip("\n").split("\t") for line in fh if line.strip()]
            entries = [(int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows]
        except (OSError, ValueError, IndexError):
            entries = []
        bad = not entries
        for length, offset, bases, width in entries:
            if bases <= 0 or width < bases or offset < 1:
                bad = True
                break
            if offset + (length // bases) * width + length % bases > size:
                bad = True
                break
        if not bad:
            with open(self.path, "rb") as fa:
                for _, offset, _, _ in {entries[0], entries[-1]}:
                    fa.seek(offset - 1)
                    if fa.read(1) not in (b"\n", b"\r"):
                        bad = True
        if bad:
            raise DataError(
                f"{display_name(fai)}: this index does not describe {self.name} (made for "
                f"another version of it?): delete it, and it is built again"
            )

    def close(self) -> None:
        self.fasta.close()

    # ----------------------------------------------------------------- names

    def length(self, chrom: str, where: str) -> int:
        """The length of ``chrom``; a name the genome lacks is an error that starts with
        ``where`` and names the closest names present."""
        found = self.lengths.get(chrom)
        if found is None:
            raise DataError(
                f"{where}: chromosome {chrom!r} is not in {self.name}{self.closest(chrom)}"
            )
        return found

    def closest(self, chrom: str) -> str:
        """'; closest names there: ...' and the chr1-versus-1 hint where it applies."""
        names = list(self.lengths)
        close = difflib.get_close_matches(chrom, names, n=3, cutoff=0.5)
        text = (
            f" (closest names there: {', '.join(map(repr, close))})"
            if close
            else (
                f" (its names: {', '.join(repr(n) for n in names[:5])}"
                f"{', ...' if len(names) > 5 else ''})"
            )
        )
        other = _other_style(chrom, self.lengths)
        if other is not None:
            text += (
                f"; the genome calls it {other!r}: one side names chromosomes UCSC-style "
                "('chr1', 'chrM'), the other Ensembl-style ('1', 'MT'): rename one of "
                "them"
            )
        return text

    def check_names(self, names: list[str], flag: str) -> None:
        """Chromosome names given in an option (``flag``) must be in the genome."""
        for name in names:
            if name not in self.lengths:
                raise UsageError(
                    f"{flag}: chromosome {name!r} is not in {self.name}{self.closest(name)}"
                )

    # ----------------------------------------------------------------- sequence

    def fetch(self, chrom: str, start: int, end: int) -> bytes:
        """Bases [start, end) of ``chrom`` (0-based, half-open) as bytes, with N for the
        positions before 0 or past the chromosome's end."""
        length = self.lengths[chrom]
        lo, hi = max(start, 0), min(end, length)
        if hi <= lo:
            return b"N" * (end - start)
        if chrom != self._chrom or lo < self._start or hi > self._start + len(self._block):
            # sorted input reads ahead (the block grows while windows keep landing in it);
            # scattered input reads about what it needs
            ahead = min(BLOCK, max(hi - lo, 4096) << min(self._hits, 6))
            self._hits = 0
            self._chrom, self._start = chrom, lo
            self._block = self.fasta.fetch(chrom, lo, max(hi, min(lo + ahead, length))).encode(
                "ascii", "replace"
            )
        self._hits += 1
        seq = self._block[lo - self._start : hi - self._start]
        if lo > start or hi < end:
            seq = b"N" * (lo - start) + seq + b"N" * (end - hi)
        return seq


def _other_style(chrom: str, names: dict[str, int]) -> str | None:
    """The genome's name for ``chrom`` in the other naming style (chr1 / 1, chrM / MT)."""
    special = {"MT": "chrM", "M": "chrM", "chrM": "MT", "chrMT": "MT"}
    candidates = [chrom[3:] if chrom.startswith("chr") else "chr" + chrom, special.get(chrom, "")]
    return next((c for c in candidates if c and c in names), None)


def _fasta_problem(path: str) -> str:
    """What keeps a FASTA from being indexed, found by reading it (only on the way to an
    error): the first line that breaks the rules of an indexed FASTA."""
    opener: Any = gzip.open if compression(path) != "plain" else open
    try:
        with opener(path, "rb") as fh:
            width = 0
            short = 0  # the line of a short sequence line, which must be the record's last
            record = ""
            first = fh.readline(SNIFF)  # a file of one huge line is not read whole
            if first.startswith(b"\xef\xbb\xbf>"):
                return (
                    "it starts with a UTF-8 byte-order mark, which the index of a genome "
                    "(samtools faidx, read in place) does not take; remove it, e.g. "
                    "sed -i '1s/^\\xEF\\xBB\\xBF//' FILE"
                )
            if not first.startswith(b">"):
                return f"line 1 is not a FASTA header: {shorten(repr(first[:40]))} (is it FASTA?)"
            for number, raw in enumerate(itertools.chain([first], fh), 1):
                line = raw.rstrip(b"\r\n")
                if line.startswith(b">"):
                    record = (
                        line[1:].split(maxsplit=1)[0].decode(errors="replace")
                        if line[1:].strip()
                        else ""
                    )
                    if not record:
                        return f"line {number}: a header without a name"
                    width, short = 0, 0
                    continue
                if short:
                    return (
                        f"line {short}: record {record!r} has sequence lines of different "
                        "lengths (every line but the last must be equally long to be "
                        "indexed); rewrap it, e.g. with seqkit seq -w 60"
                    )
                if not width:
                    width = len(line)
                elif len(line) > width:
                    return (
                        f"line {number}: record {record!r} has sequence lines of "
                        "different lengths (every line but the last must be equally "
                        "long to be indexed); rewrap it, e.g. with seqkit seq -w 60"
                    )
                elif len(line) < width:
                    short = number
    except (OSError, EOFError) as exc:
        return f"it cannot be read ({exc})"
    return "is it a valid FASTA file?"
