"""Inputs and outputs: '-' for stdin/stdout, gzip by content, FASTA/FASTQ, label tables,
and outputs that appear only complete (temporary file beside the target, then rename).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import os
import sys
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from Bio.SeqIO.FastaIO import SimpleFastaParser
from Bio.SeqIO.QualityIO import FastqGeneralIterator

from .errors import DataError, UsageError, shorten

STDIO = "-"
GZIP_MAGIC = b"\x1f\x8b"


def display_name(path: str | os.PathLike[str]) -> str:
    return "<stdin>" if str(path) == STDIO else str(path)


def open_binary(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a path (or '-') for reading bytes, decompressing gzip found by its magic bytes."""
    name = display_name(path)
    if str(path) == STDIO:
        raw: IO[bytes] = io.BufferedReader(sys.stdin.buffer.raw, 1 << 20)  # type: ignore[attr-defined]
    else:
        try:
            raw = open(path, "rb", buffering=1 << 20)  # noqa: SIM115
        except FileNotFoundError:
            raise UsageError(f"{name}: no such file") from None
        except IsADirectoryError:
            raise DataError(f"{name}: is a directory, not a file") from None
        except PermissionError:
            raise DataError(f"{name}: permission denied") from None
    head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    if head == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


class _CheckedText(io.TextIOBase):
    """Line iterator over decoded text that turns decoding and gzip errors into DataError."""

    def __init__(self, binary: IO[bytes], name: str) -> None:
        self._text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline=None)  # type: ignore[arg-type]
        self._name = name
        self.line = 0

    def __iter__(self) -> Iterator[str]:  # type: ignore[override]
        return self

    def __next__(self) -> str:
        try:
            line = self._text.readline()
        except UnicodeDecodeError:
            raise DataError(
                f"{self._name}: line {self.line + 1}: not text (undecodable bytes); "
                "is this a binary file?"
            ) from None
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise DataError(f"{self._name}: damaged or truncated gzip data ({exc})") from None
        if not line:
            raise StopIteration
        self.line += 1
        return line

    def close(self) -> None:
        if str(self._name) != "<stdin>":
            self._text.close()


@contextlib.contextmanager
def open_text(path: str | os.PathLike[str]) -> Iterator[_CheckedText]:
    name = display_name(path)
    handle = _CheckedText(open_binary(path), name)
    try:
        yield handle
    finally:
        handle.close()


@dataclass(frozen=True)
class Record:
    id: str
    seq: bytes
    description: str = ""


def _first_content_line(lines: _CheckedText) -> str | None:
    for line in lines:
        if line.strip():
            return line
    return None


def read_sequences(path: str | os.PathLike[str]) -> Iterator[Record]:
    """Stream records from FASTA or FASTQ (detected from the first character).

    The id is the header up to the first whitespace; the rest is the description.
    Windows line endings and a UTF-8 byte-order mark are accepted.
    """
    name = display_name(path)
    with open_text(path) as lines:
        first = _first_content_line(lines)
        if first is None:
            raise DataError(f"{name}: empty input, no sequence records")
        start_line = lines.line
        chained: Iterator[str] = _chain(first, lines)
        if first.startswith(">"):
            parser: Iterator[tuple[str, ...]] = SimpleFastaParser(chained)
            fmt = "FASTA"
        elif first.startswith("@"):
            parser = FastqGeneralIterator(chained)
            fmt = "FASTQ"
        else:
            kind = "GenBank" if first.startswith("LOCUS") else "FASTA"
            hint = "; GenBank files are not read, convert to FASTA" if kind == "GenBank" else ""
            raise DataError(
                f"{name}: line {start_line}: expected a FASTA header starting with '>', "
                f"found {shorten(first.strip())!r}{hint}"
            )
        index = 0
        try:
            for item in parser:
                index += 1
                title, seq = item[0], item[1]
                parts = title.split(None, 1)
                if not parts:
                    raise DataError(
                        f"{name}: record {index}{_at_line(path, index)}: header has no id"
                    )
                rid = parts[0]
                if not seq:
                    raise DataError(
                        f"{name}: record {rid!r}{_at_line(path, index)}: no sequence"
                    )
                try:
                    data = seq.encode("ascii")
                except UnicodeEncodeError as exc:
                    raise DataError(
                        f"{name}: record {shorten(rid)!r}: non-ASCII character "
                        f"{seq[exc.start]!r} at position {exc.start + 1}"
                    ) from None
                yield Record(rid, data.replace(b" ", b""), parts[1] if len(parts) > 1 else "")
        except ValueError as exc:  # FASTQ structure errors from Biopython
            raise DataError(f"{name}: malformed {fmt} after record {index}: {exc}") from None


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _at_line(path: str | os.PathLike[str], record_index: int) -> str:
    """', line N' for the header of the record_index-th record (1-based), when re-readable."""
    line = locate_record(path, record_index)
    return f", line {line}" if line else ""


def locate_record(path: str | os.PathLike[str], record_index: int) -> int | None:
    """Line number of the header of the ``record_index``-th FASTA record (files only)."""
    if str(path) == STDIO:
        return None
    try:
        with open_text(path) as lines:
            seen = 0
            for line in lines:
                if line.startswith(">"):
                    seen += 1
                    if seen == record_index:
                        return lines.line
    except (OSError, DataError):
        return None
    return None


# --------------------------------------------------------------------------- tables


@dataclass
class Table:
    source: str
    header: list[str]
    rows: list[list[str]]
    delimiter: str

    def column(self, name: str) -> int:
        try:
            return self.header.index(name)
        except ValueError:
            raise DataError(
                f"{self.source}: no column {name!r}; columns are: {', '.join(self.header)}"
            ) from None

    def line_of(self, row_index: int) -> int:
        return row_index + 2


def _pick_delimiter(name: str, header_line: str) -> str:
    lower = name.lower().removesuffix(".gz")
    by_name = "," if lower.endswith(".csv") else "\t" if lower.endswith((".tsv", ".tab")) else None
    tabs, commas = header_line.count("\t"), header_line.count(",")
    if by_name == "," and commas == 0 and tabs > 0:
        return "\t"
    if by_name == "\t" and tabs == 0 and commas > 0:
        return ","
    if by_name:
        return by_name
    return "\t" if tabs >= commas and tabs > 0 else ","


def read_table(path: str | os.PathLike[str]) -> Table:
    """Read a CSV or TSV table with a header row (delimiter from the name or the header)."""
    name = display_name(path)
    with open_text(path) as lines:
        first = _first_content_line(lines)
        if first is None:
            raise DataError(f"{name}: empty table, expected a header row")
        delimiter = _pick_delimiter(name, first)
        reader = csv.reader(_chain(first, lines), delimiter=delimiter)
        try:
            header = [h.strip() for h in next(reader)]
            rows = [row for row in reader if row and any(c.strip() for c in row)]
        except csv.Error as exc:
            raise DataError(f"{name}: line {lines.line}: {exc}") from None
    if len(set(header)) != len(header):
        dup = sorted({h for h in header if header.count(h) > 1})
        raise DataError(f"{name}: duplicate column name(s) in the header: {', '.join(dup)}")
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise DataError(
                f"{name}: line {i + 2}: {len(row)} fields, the header has {len(header)} "
                f"(delimiter {'TAB' if delimiter == chr(9) else repr(delimiter)})"
            )
    return Table(name, header, [[c.strip() for c in r] for r in rows], delimiter)


# --------------------------------------------------------------------------- outputs


def table_delimiter(path: str | os.PathLike[str]) -> str:
    lower = str(path).lower().removesuffix(".gz")
    return "," if lower.endswith(".csv") else "\t"


def check_output_path(path: str | os.PathLike[str]) -> None:
    """Fail early (before hours of training) when an output cannot be created."""
    if str(path) == STDIO:
        return
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{path}: cannot write: directory {str(parent)!r} does not exist")
    if target.is_dir():
        raise UsageError(f"{path}: cannot write: it is a directory")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{path}: cannot write: directory {str(parent)!r} is not writable")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], binary: bool = False) -> Iterator[IO[Any]]:
    """Yield a handle whose content appears at ``path`` only if the block succeeds.

    '-' yields stdout (never closed). A name ending in .gz is gzip-compressed.
    """
    if str(path) == STDIO:
        stream: IO[Any] = sys.stdout.buffer if binary else sys.stdout
        yield stream
        stream.flush()
        return
    check_output_path(path)
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            sink: IO[Any] = raw
            gz = None
            if target.name.endswith(".gz"):
                gz = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0)
                sink = gz
            text = None
            if not binary:
                text = io.TextIOWrapper(sink, encoding="utf-8", newline="")  # type: ignore[arg-type]
                sink = text
            yield sink
            if text is not None:
                text.flush()
                text.detach()
            if gz is not None:
                gz.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except OSError as exc:
        _remove(tmp)
        raise DataError(f"{path}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        _remove(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_output(path, binary=True) as fh:
        fh.write(data)
