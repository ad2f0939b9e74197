"""VCF and BCF files through pysam: read record by record with the line of each record
(plain gzip decompressed on a thread, since htslib reads it only as a stream), and an
annotated VCF written atomically, bgzip-compressed for a .gz name.
"""

from __future__ import annotations

import gzip
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from typing import IO, Any

from ..errors import DataError, UsageError
from .files import STDIO, display_name
from .genome import compression, pysam_module
from .outputs import atomic_output

log = logging.getLogger("bioseqnn")


class VcfReader:
    """A VCF or BCF (plain, bgzip or gzip; '-' for stdin) read by pysam, record by record,
    with the line of each record where the input is text."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        self.name = display_name(path)
        self._feeder: threading.Thread | None = None
        self._pipe: IO[bytes] | None = None
        self.header_lines: int | None = None
        pysam = pysam_module()

        if self.path != STDIO:
            if not os.path.exists(self.path):
                raise UsageError(f"{self.name}: no such file")
            if os.path.isdir(self.path):
                raise UsageError(f"{self.name}: is a directory, not a VCF file")
            self.header_lines = _count_header_lines(self.path)
        try:
            if self.path != STDIO and compression(self.path) == "gzip":
                # htslib reads plain gzip only as a stream: decompress it on a thread
                self.file = pysam.VariantFile(self._piped(self.path))
            else:
                self.file = pysam.VariantFile(self.path)
        except (ValueError, OSError) as exc:
            self.close()
            raise DataError(f"{self.name}: not a VCF or BCF file ({exc})") from None
        self.number = 0
        self.last = ""

    def _piped(self, path: str) -> IO[bytes]:
        read, write = os.pipe()

        def feed() -> None:
            try:
                with os.fdopen(write, "wb") as sink, gzip.open(path, "rb") as src:
                    while block := src.read(1 << 20):
                        sink.write(block)
            except (OSError, EOFError, gzip.BadGzipFile):
                pass  # the reader stopped, or the data ended early: pysam says which

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
        if self.header_lines is not None:
            return f"{self.name}: line {self.header_lines + self.number}"
        return f"{self.name}: record {self.number}"

    def __iter__(self) -> Iterator[Any]:
        records = iter(self.file)
        while True:
            self.number += 1
            try:
                record = next(records)
            except StopIteration:
                return
            except (ValueError, OSError) as exc:
                after = f" (after {self.last})" if self.last else ""
                raise DataError(f"{self.where()}: not a valid VCF record{after}: {exc}") from None
            self.last = f"{record.chrom}:{record.pos}"
            yield record


def _count_header_lines(path: str) -> int | None:
    """The lines of a text VCF before its first record (None for BCF)."""
    opener: Any = open if compression(path) == "plain" else gzip.open
    count = 0
    try:
        with opener(path, "rb") as fh:
            if fh.peek(4)[:3] == b"BCF":
                return None
            for line in fh:
                if not line.startswith(b"#"):
                    break
                count += 1
    except (OSError, EOFError):
        return None
    return count


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
