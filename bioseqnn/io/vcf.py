"""VCF and BCF files through pysam: read record by record with the line of each record,
and an annotated VCF written atomically, bgzip-compressed for a .gz name.

htslib reads a plain or BGZF file itself. Everything else (plain gzip, which htslib
reads only as a stream; bzip2, xz and zstd; standard input, a pipe or /dev/fd/N, which
htslib would open a second time after bioseqnn read its first bytes) is read and
decompressed here and fed to htslib through a pipe by a thread. Either way the first
bytes are checked before htslib sees them, so a device or a large file of something
else is refused at once.
"""

from __future__ import annotations

import gzip
import logging
import os
import threading
import zlib
from collections.abc import Iterable, Iterator
from typing import IO, Any

from ..errors import DataError, UsageError, shorten
from .files import COMPRESSED, STDIO, display_name, nul_byte, open_binary
from .genome import compression_of, pysam_module
from .outputs import atomic_output
from .sniff import SNIFF

log = logging.getLogger("bioseqnn")


class VcfReader:
    """A VCF or BCF (plain, bgzip, gzip, bzip2, xz or zstd; '-' for stdin) read by pysam,
    record by record, with the line of each record where the input is text."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        self.name = display_name(path)
        self._feeder: threading.Thread | None = None
        self._pipe: IO[bytes] | None = None
        self._fed = _Fed()
        self.header_lines: int | None = None
        pysam = pysam_module()

        if self.path != STDIO:
            if not os.path.exists(self.path):
                raise UsageError(f"{self.name}: no such file")
            if os.path.isdir(self.path):
                raise UsageError(f"{self.name}: is a directory, not a VCF file")
        try:
            kind = _htslib_kind(self.path)
            if kind is not None:
                self.header_lines = _header_lines(self.path, self.name, kind)
                self.file = pysam.VariantFile(self.path)
            else:
                self.file = pysam.VariantFile(self._piped())
        except (ValueError, OSError) as exc:
            self.close()
            raise DataError(f"{self.name}: not a VCF or BCF file ({exc})") from None
        except DataError:
            self.close()
            raise
        self.number = 0
        self.last = ""

    def _piped(self) -> IO[bytes]:
        """The input, decompressed and checked from its first bytes here, through a pipe
        that a thread feeds."""
        source = open_binary(self.path)
        try:
            try:
                head = source.read(SNIFF)
            except (EOFError, zlib.error) as exc:
                raise _damaged(self.name, exc) from None
            _check_start(head, self.name)
        except BaseException:
            source.close()
            raise
        read, write = os.pipe()
        fed = self._fed

        def feed() -> None:
            count = not head.startswith(b"BCF")
            try:
                with os.fdopen(write, "wb") as sink:
                    try:
                        block = head
                        while block:
                            if count:
                                count = fed.header(block)
                            sink.write(block)
                            block = source.read(1 << 20)
                    except Exception as exc:  # reported by the thread that reads
                        fed.error = exc  # before the pipe closes: the reader sees it at EOF
            except OSError:
                pass  # the reader closed the pipe first
            finally:
                if self.path != STDIO:  # standard input stays open
                    source.close()

        self._feeder = threading.Thread(target=feed, daemon=True)
        self._feeder.start()
        self._pipe = os.fdopen(read, "rb")
        return self._pipe

    def __enter__(self) -> VcfReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if hasattr(self, "file"):
            self.file.close()
        if self._pipe is not None:
            self._pipe.close()

    def where(self) -> str:
        """The current record's place: its line, else its number."""
        header = self.header_lines if self.header_lines is not None else self._fed.lines
        if header is not None:
            return f"{self.name}: line {header + self.number}"
        return f"{self.name}: record {self.number}"

    def __iter__(self) -> Iterator[Any]:
        records = iter(self.file)
        while True:
            self.number += 1
            try:
                record = next(records)
            except StopIteration:
                self._check_fed(ended=True)
                return
            except (ValueError, OSError) as exc:
                self._check_fed(ended=False)
                after = f" (after {self.last})" if self.last else ""
                raise DataError(f"{self.where()}: not a valid VCF record{after}: {exc}") from None
            self.last = f"{record.chrom}:{record.pos}"
            yield record

    def _check_fed(self, ended: bool) -> None:
        """Where a thread fed the input, the data it could not read is the error. Once
        the input ended, that thread has ended too; on a bad record it may still be
        writing, and its error, if any, is already set."""
        if ended and self._feeder is not None:
            self._feeder.join(timeout=10)
        error = self._fed.error
        if error is None or isinstance(error, BrokenPipeError):
            return
        if isinstance(error, DataError):
            raise error
        if isinstance(error, (EOFError, zlib.error)):
            raise _damaged(self.name, error)
        raise DataError(f"{self.name}: cannot read: {error}")


def _htslib_kind(path: str) -> str | None:
    """'plain' or 'bgzf' where htslib reads ``path`` itself (a regular file, plain or
    BGZF-compressed), else None."""
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as fh:
        head = fh.read(18)
    kind = compression_of(head)
    if kind == "gzip" or any(head.startswith(m) for m in COMPRESSED):
        return None
    return kind


def _damaged(name: str, exc: BaseException) -> DataError:
    packing = getattr(exc, "packing", "gzip")  # files._Damaged names bzip2, xz, zstd
    return DataError(f"{name}: damaged or truncated {packing} data ({exc})")


class _Fed:
    """What the thread that feeds a piped input found: the header's lines (once the
    first record starts), and the error that stopped it."""

    def __init__(self) -> None:
        self.lines: int | None = None
        self.error: BaseException | None = None
        self.seen = 0
        self._at_start = True

    def header(self, block: bytes) -> bool:
        """Count the header lines in the next ``block``; False once the header ended."""
        start = 0
        while start < len(block):
            if self._at_start and block[start : start + 1] != b"#":
                self.lines = self.seen
                return False
            end = block.find(b"\n", start)
            if end < 0:
                self._at_start = False
                return True
            self.seen += 1
            self._at_start = True
            start = end + 1
        return True


def _check_start(head: bytes, name: str) -> None:
    """Refuse what is neither BCF nor a VCF (whose first line is ##fileformat=VCF...) from
    its first bytes, so that a device or a large file of something else is never read."""
    if head.startswith(b"BCF") or head.startswith(b"##fileformat=VCF"):
        return
    if b"\0" in head:
        raise nul_byte(name, 1)
    first = head.split(b"\n", 1)[0]
    raise DataError(
        f"{name}: not a VCF or BCF file (line 1 is {shorten(repr(first), 40)}; a VCF "
        "starts with ##fileformat=VCF)"
    )


def _header_lines(path: str, name: str, kind: str) -> int | None:
    """The lines of a text VCF (``kind``: plain or bgzf) before its first record (None for
    BCF), after checking its start (:func:`_check_start`). Lines are read in bounded
    pieces."""
    opener: Any = open if kind == "plain" else gzip.open
    counted = _Fed()
    try:
        with opener(path, "rb") as fh:
            head = fh.read(SNIFF)
            _check_start(head, name)
            if head.startswith(b"BCF"):
                return None
            block = head
            while block and counted.header(block):
                block = fh.read(1 << 20)
    except (OSError, EOFError):
        return None  # pysam reports what it cannot read
    return counted.lines if counted.lines is not None else counted.seen


def write_vcf(output: str | os.PathLike[str], header: str, lines: Iterable[str]) -> None:
    """The annotated VCF, atomically; bgzip-compressed for a .gz name (tabix and bcftools
    read it)."""
    lines = iter(lines)
    first = next(lines, None)
    with atomic_output(output, binary=True, bgzip=True) as fh:
        fh.write(header.encode())
        if first is None:
            return
        block = [first]
        size = len(first)
        for line in lines:
            block.append(line)
            size += len(line)
            if size >= 1 << 18:  # whole blocks: the BGZF writer copies what it buffers
                fh.write("".join(block).encode())
                block, size = [], 0
        fh.write("".join(block).encode())
