"""Inputs and outputs: '-' for stdin/stdout, gzip by content, FASTA/FASTQ, label tables,
and outputs that appear only complete (temporary file beside the target, then rename).
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import errno
import gzip
import importlib
import io
import itertools
import lzma
import os
import queue
import re
import stat
import sys
import tempfile
import threading
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from .errors import BioseqnnError, DataError, UsageError, shorten

STDIO = "-"
GZIP_MAGIC = b"\x1f\x8b"
COMPRESSED = {b"BZh": "bz2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zst"}
"""Magic bytes of the other compressions read (through xopen), and their formats; gzip
has its own reader (_Gunzip)."""
SUFFIXES = {".bz2": "bz2", ".xz": "xz", ".zst": "zst"}
"""Output names compressed (through xopen) by their suffix, besides .gz."""


def _xopen(fileobj: Any, mode: Literal["rb", "wb"], fmt: str) -> IO[bytes]:
    """bzip2, xz or zstd (de)compression of a file object, by xopen, in this process."""
    from xopen import xopen

    return xopen(fileobj, mode, threads=0, format=fmt)


CHUNK = 8192
"""Bytes per read: what io.TextIOWrapper asks its buffer for (its _CHUNK_SIZE)."""


def display_name(path: str | os.PathLike[str]) -> str:
    return "<stdin>" if str(path) == STDIO else str(path)


def open_binary(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a path (or '-') for reading bytes, decompressing gzip, bzip2, xz or zstd found
    by their magic bytes."""
    name = display_name(path)
    if str(path) == STDIO:
        raw: IO[bytes] = io.BufferedReader(sys.stdin.buffer.raw, 1 << 20)  # type: ignore[attr-defined,union-attr]
    else:
        try:
            raw = open(path, "rb", buffering=1 << 20)  # noqa: SIM115
        except FileNotFoundError:
            raise UsageError(f"{name}: no such file") from None
        except IsADirectoryError:
            raise UsageError(f"{name}: is a directory, not a file") from None
        except PermissionError:
            raise DataError(f"{name}: permission denied") from None
        except OSError as exc:  # a loop of symbolic links, an I/O error
            raise DataError(f"{name}: cannot read: {exc.strerror or exc}") from None
    head = raw.peek(6)[:6] if hasattr(raw, "peek") else b""
    if head[:2] == GZIP_MAGIC:
        return _Gunzip(raw)  # type: ignore[return-value]
    for magic, fmt in COMPRESSED.items():
        if head.startswith(magic):
            return io.BufferedReader(_Decompressed(_xopen(raw, "rb", fmt), raw, fmt), 1 << 20)
    return raw


def _zstd_errors() -> tuple[type[Exception], ...]:
    """zstd's error type (the standard library's from Python 3.14, else the backport
    that xopen installs), where present."""
    for module in ("compression.zstd", "backports.zstd"):
        try:
            return (importlib.import_module(module).ZstdError,)
        except (ImportError, AttributeError):
            continue
    return ()


class _Damaged(EOFError):
    """Damaged or truncated bzip2, xz or zstd data (the reader reports it as gzip's)."""

    def __init__(self, packing: str, message: str) -> None:
        super().__init__(message)
        self.packing = packing


class _Decompressed(io.RawIOBase):
    """A decompressing reader that closes the file beneath it too (xopen leaves a file
    object it was given open)."""

    def __init__(self, inner: IO[bytes], raw: IO[bytes], fmt: str) -> None:
        self._inner, self._raw, self.format = inner, raw, fmt

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._inner.read(len(buffer))
        except (EOFError, OSError, lzma.LZMAError) + _zstd_errors() as exc:
            message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise _Damaged(self.format, message) from None
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                self._inner.close()
            finally:
                self._raw.close()
        super().close()


class _Gunzip(io.BufferedIOBase):
    """gzip input, decompressed on a background thread while the caller parses.

    zlib releases the GIL while it inflates, so on two cores decompression (about
    300 MB/s a core) overlaps with parsing instead of adding to it. The thread inflates
    a megabyte of compressed input per step, so that it needs the GIL (which the parser
    holds nearly all the time) only briefly and rarely; gzip.GzipFile would take it back
    every 128 KB. Members are read one after another (concatenated files, bgzip), zero
    padding between or after them is skipped, and each member's CRC and length are
    checked (zlib does that with wbits=31), as GzipFile does. read1() hands the data
    out in slices of at most the size asked for; an error (damaged or truncated data) is
    raised by the read that reaches the point where it happened.
    """

    COMPRESSED = 2 << 20
    PIECE = 8 << 20
    DEPTH = 4
    SWITCH_INTERVAL = 0.0005
    """Seconds a thread may hold the GIL while another waits, while any _Gunzip is open.
    Python's default (5 ms) leaves the inflating thread waiting twice per step for the
    parser to let go: 190 against 260 MB/s of parse + encode from gzip on two cores."""

    _open = 0
    _saved_interval = 0.0
    _lock = threading.Lock()

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        with _Gunzip._lock:
            if _Gunzip._open == 0:
                _Gunzip._saved_interval = sys.getswitchinterval()
                sys.setswitchinterval(min(self.SWITCH_INTERVAL, _Gunzip._saved_interval))
            _Gunzip._open += 1
        self._raw = raw
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(self.DEPTH)
        self._stop = threading.Event()
        self._piece = memoryview(b"")
        self._done = False
        self._thread = threading.Thread(target=self._fill, name="bioseqnn-gunzip", daemon=True)
        self._thread.start()

    def _fill(self) -> None:
        try:
            inflate = zlib.decompressobj(31)
            in_member = False
            while not self._stop.is_set():
                # read1: what has arrived, up to COMPRESSED (a pipe does not stall)
                pending = self._raw.read1(self.COMPRESSED)  # type: ignore[attr-defined]
                if not pending:
                    if in_member:
                        raise EOFError(
                            "Compressed file ended before the end-of-stream marker was reached"
                        )
                    self._put(b"")
                    return
                while pending and not self._stop.is_set():
                    if not in_member:
                        pending = pending.lstrip(b"\x00")
                        if not pending:
                            break
                        inflate, in_member = zlib.decompressobj(31), True
                    out = inflate.decompress(pending, self.PIECE)
                    pending = inflate.unconsumed_tail
                    if inflate.eof:
                        pending, in_member = inflate.unused_data, False
                    if out:
                        self._put(out)
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
            self._put(exc)

    def _put(self, item: bytes | BaseException) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def readable(self) -> bool:
        return True

    def read1(self, size: int = -1) -> bytes:
        if not self._piece:
            if self._done:
                return b""
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._done = True
                raise item
            if not item:
                self._done = True
                return b""
            self._piece = memoryview(item)
        n = len(self._piece) if size is None or size < 0 else min(size, len(self._piece))
        out = bytes(self._piece[:n])
        self._piece = self._piece[n:]
        return out

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size >= 0:
            parts, want = [], size
            while want > 0 and (part := self.read1(want)):
                parts.append(part)
                want -= len(part)
            return b"".join(parts)
        return b"".join(iter(lambda: self.read1(self.PIECE), b""))

    def readinto(self, buffer: Any) -> int:
        data = self.read1(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self.closed:
            return
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        # A thread blocked reading a pipe that never ends (stdin) is left to finish on
        # its own (a daemon thread) rather than hang the caller.
        self._thread.join(timeout=5.0)
        if not self._thread.is_alive() and self._raw is not getattr(sys.stdin, "buffer", None):
            self._raw.close()
        with _Gunzip._lock:
            _Gunzip._open -= 1
            if _Gunzip._open == 0:
                sys.setswitchinterval(_Gunzip._saved_interval)
        super().close()


class _CheckedText(io.TextIOBase):
    """Line iterator over decoded text that turns decoding and gzip errors into DataError."""

    def __init__(self, binary: IO[bytes] | io.BufferedIOBase, name: str) -> None:
        self._text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline=None)  # type: ignore[arg-type,type-var]
        self._text._CHUNK_SIZE = CHUNK  # type: ignore[attr-defined]  # the default (8192); tests make it small
        self._name = name
        self.line = 0

    def __iter__(self) -> Iterator[str]:  # type: ignore[override]
        return self

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """Decoding and gzip errors become one DataError naming the line."""
        try:
            yield
        except UnicodeDecodeError:
            raise DataError(
                f"{self._name}: line {self.line + 1}: not text (undecodable bytes); "
                "is this a binary file?"
            ) from None
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            packing = exc.packing if isinstance(exc, _Damaged) else "gzip"
            raise DataError(f"{self._name}: damaged or truncated {packing} data ({exc})") from None

    def counting(self) -> Iterator[str]:
        """Lines at C speed (no readline call per line), still counted and checked."""
        with self._reading():
            for line in self._text:
                self.line += 1
                yield line

    def line_blocks(self, size: int) -> Iterator[tuple[int, list[str]]]:
        """The remaining lines, without their newlines, in lists of about ``size``
        characters of whole lines, each with the number of its first line."""
        rest = ""
        while True:
            with self._reading():
                text = self._text.read(size)
            if not text:
                break
            cut = text.rfind("\n")
            if cut < 0:
                rest += text
                continue
            lines = (rest + text[:cut]).split("\n")
            rest = text[cut + 1 :]
            first = self.line + 1
            self.line += len(lines)
            yield first, lines
        if rest:
            self.line += 1
            yield self.line, [rest]

    def __next__(self) -> str:  # type: ignore[override]
        with self._reading():
            line = self._text.readline()
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
    line: int = 0
    """Line of the record's header in its file (1-based; 0 = unknown)."""
    width: int = 0
    """Residues per sequence line when every line but the last has that many (0 = irregular)."""
    block: FastaBlock | None = field(default=None, repr=False, compare=False)
    """The block the record was read in: its text places a position when a message needs it."""
    index: int = field(default=0, repr=False, compare=False)

    def location(self, position: int, path: str | os.PathLike[str] | None = None) -> str:
        """Where the 1-based sequence ``position`` is in the file, as precisely as known.

        Records of the block reader are placed in the block's text; those of Biopython's
        parser, which does not keep line widths, are found by reading a file (not stdin)
        again.
        """
        if not self.width and self.block is not None:
            found = self.block.locate(self.index, position)
            if found:
                return f"line {found[0]}, column {found[1]}"
        if self.width and self.line:
            line, column = divmod(position - 1, self.width)
            return f"line {self.line + 1 + line}, column {column + 1}"
        if self.line and path is not None and str(path) not in (STDIO, "<stdin>"):
            found = _find_position(path, self.line, position)
            if found:
                return f"line {found[0]}, column {found[1]}"
        return f"line {self.line} (header)" if self.line else ""


def _find_position(
    path: str | os.PathLike[str], header_line: int, position: int
) -> tuple[int, int] | None:
    """Line and column of residue ``position`` of the record whose header is on header_line."""
    try:
        with open_text(path) as lines:
            seen = 0
            for line in lines.counting():
                if lines.line <= header_line:
                    continue
                if line.startswith(">"):
                    return None
                residues = line.rstrip("\r\n")
                # Spaces are not residues (Biopython drops them too).
                count = len(residues) - residues.count(" ")
                if seen + count >= position:
                    column, k = 0, seen
                    for column, char in enumerate(residues, start=1):
                        if char != " ":
                            k += 1
                            if k == position:
                                return lines.line, column
                seen += count
    except (OSError, BioseqnnError):
        return None
    return None


def _regular_file(path: str | os.PathLike[str]) -> bool:
    """A file on disk, as opposed to stdin, a named pipe or /dev/fd/N of a process."""
    return str(path) != STDIO and os.path.isfile(path)


def _first_content_line(lines: _CheckedText) -> str | None:
    for line in lines:
        if line.strip():
            return line
    return None


def read_sequences(path: str | os.PathLike[str]) -> RecordStream:
    """Stream records from FASTA or FASTQ (detected from the first character).

    The id is the header up to the first whitespace; the rest is the description.
    Windows line endings and a UTF-8 byte-order mark are accepted; blank lines are
    ignored. Every format error raises :class:`DataError` naming the file and line.
    The input is opened and its first line checked at once (a missing or non-FASTA
    file fails here, before a caller writes anything); records are read as iterated.
    """
    opened = _open_input(path, tables=False)
    assert isinstance(opened, RecordStream)
    return opened


@dataclass
class TableText:
    """A delimited text table opened by :func:`read_input`: its first content line (the
    header) is read, the rest is in ``lines``."""

    name: str
    first_line: str
    lines: _CheckedText

    def close(self) -> None:
        self.lines.close()


def read_input(path: str | os.PathLike[str], expect: str | None = None) -> RecordStream | TableText:
    """Open an input that holds either sequences (FASTA/FASTQ: a :class:`RecordStream`,
    as :func:`read_sequences` gives) or a delimited table (a numeric series table:
    :class:`TableText`), told apart by the first line; stdin and gzip included.
    ``expect='series'``: an input that is neither gets an error about series tables."""
    return _open_input(path, tables=True, expect=expect)


def _open_input(
    path: str | os.PathLike[str], tables: bool, expect: str | None = None
) -> RecordStream | TableText:
    name = display_name(path)
    binary = open_binary(path)
    try:
        chunks = _Chunks(binary, name, stream=not _regular_file(path))
        # The first non-blank bytes decide what the input is, in time that does not grow
        # with the input: a first line that starts no record is judged (a table, or an
        # error) from its first SNIFF bytes, read by the line-based reader itself (the
        # reference: the same line, line number and decoding errors). Whatever that
        # reader would check at once is checked by it unless the first line is plainly
        # a clean FASTA header.
        content = _first_content(chunks)
        if chunks.data[content : content + 1] not in (b"", b">", b"@"):
            first, line = _sniff(chunks, content)
            if first is not None and not first.startswith((">", "@")):
                if tables and ("\t" in first or "," in first):
                    lines = chunks.fallback(0, 1)
                    first = _first_content_line(lines)
                    assert first is not None
                    return TableText(name, first.rstrip("\r\n"), lines)
                raise not_records(first, line, name, expect)
        end = _read_line(chunks, content)
        release = None if name == "<stdin>" else binary.close
        if chunks.data.startswith(b">") and end > 0 and chunks.fine_end() > end:
            return RecordStream(_fast_fasta(chunks, name), release)
        return RecordStream(_start_lines(chunks.fallback(0, 1), name, expect), release)
    except BaseException:
        if name != "<stdin>":
            binary.close()
        raise


SNIFF = 1 << 16
"""Bytes of a first line that starts no record read to decide what the input is (a TAB
or a comma: a table) and to name it in an error."""
_BLANK = b" \t\r\n\x0b\x0c\x1c\x1d\x1e\x1f"
"""The ASCII characters str.strip() removes."""
_CONTENT = re.compile(b"[^" + re.escape(_BLANK) + b"]")
BOM = b"\xef\xbb\xbf"


def _first_content(chunks: _Chunks) -> int:
    """Read until ``chunks.data`` holds a byte that is not blank (after a byte-order
    mark); its offset, or ``len(data)`` when the input ends first. Each byte is looked at
    once and the buffer grows geometrically: linear in the blanks before it."""
    while len(chunks.data) < len(BOM) and chunks.more(CHUNK):
        pass
    scan = len(BOM) if chunks.data.startswith(BOM) else 0
    while True:
        found = _CONTENT.search(chunks.data, scan)
        if found is not None:
            return found.start()
        scan = len(chunks.data)
        if not chunks.more(max(CHUNK, scan)):
            return len(chunks.data)


def _sniff(chunks: _Chunks, content: int) -> tuple[str | None, int]:
    """The first non-blank line (content at ``chunks.data[content]``), at most its first
    SNIFF bytes, and its number, as the line-based reader reads them: the same
    decoding errors; a NUL byte in it is an error too (a binary file, /dev/zero)."""
    head = chunks.bounded(_read_line(chunks, content, SNIFF))
    try:
        first = _first_content_line(head)
        line = head.line
    finally:
        head.close()
    if first is not None and "\x00" in first:
        raise DataError(
            f"{chunks.name}: line {line}: not text (a NUL byte); is this a binary file?"
        )
    return first, line


def _read_line(chunks: _Chunks, start: int, limit: int | None = None) -> int:
    """Read until the line holding ``chunks.data[start]`` ends, or ``limit`` bytes past
    ``start``, or the input ends; the offset of its newline (-1: none read). Linear, as
    :func:`_first_content`."""
    scan = start
    while True:
        end = chunks.data.find(b"\n", scan)
        if end >= 0 or (limit is not None and len(chunks.data) - start >= limit):
            return end
        scan = len(chunks.data)
        if not chunks.more(max(CHUNK, scan)):
            return -1


def _looks_like_table(data: bytes) -> bool:
    """The first non-blank line holds a TAB or a comma and starts no FASTA/FASTQ record."""
    line = data.removeprefix(BOM).lstrip(_BLANK).split(b"\n", 1)[0]
    return bool(line) and not line.startswith((b">", b"@")) and (b"\t" in line or b"," in line)


def is_table(path: str | os.PathLike[str] | None) -> bool:
    """Whether a file (not stdin) starts as a delimited table, not FASTA/FASTQ; plain or
    gzip (what :func:`read_input` would open as a table)."""
    if path is None or str(path) == STDIO or not os.path.isfile(path):
        return False
    try:
        with open_binary(path) as fh:
            head = fh.read(1 << 16)
    except (OSError, BioseqnnError, EOFError, zlib.error):
        return False
    return _looks_like_table(head)


def _read_by_lines(path: str | os.PathLike[str]) -> RecordStream:
    """:func:`read_sequences` through the line-based path alone (the reference)."""
    name = display_name(path)
    return RecordStream(_start_lines(_CheckedText(open_binary(path), name), name))


_FORMATS = [
    (re.compile(r"LOCUS\s"), "GenBank"),
    (re.compile(r"ID   \S"), "EMBL (or UniProt text)"),
    (re.compile(r"# STOCKHOLM"), "a Stockholm alignment"),
    (re.compile(r"CLUSTAL"), "a Clustal alignment"),
    (re.compile(r"#NEXUS", re.IGNORECASE), "NEXUS"),
    (re.compile(r"##gff-version"), "GFF"),
    (re.compile(r"@HD\t|@SQ\t"), "SAM"),
]
"""First lines of formats that hold sequences but are not FASTA/FASTQ."""


def _known_format(first: str) -> str | None:
    return next((what for pattern, what in _FORMATS if pattern.match(first)), None)


def not_records(first: str, line: int, name: str, expect: str | None = None) -> DataError:
    """The error for an input whose first line (``first``, on ``line``) starts no FASTA or
    FASTQ record, with a hint at what it is. ``expect='series'``: a series table was
    wanted."""
    if "\x00" in first:  # as _sniff says it (the reference must agree)
        return DataError(f"{name}: line {line}: not text (a NUL byte); is this a binary file?")
    found = shorten(first.strip())
    other = next((d for d in ";|" if d in first), None)
    separated = (
        (f" separated by {other!r}? Tables are read with commas (.csv) or tabs (.tsv)")
        if other
        else ""
    )
    if expect == "series":
        hint = (
            "; remove the comment line(s) at the top"
            if first.lstrip().startswith("#")
            else f"; is it{separated}"
            if other
            else ""
        )
        return DataError(
            f"{name}: line {line}: expected the header of a series table (an id "
            f"column and the channels, separated by TAB or ','), found {found!r}{hint}"
        )
    hint = ""
    known = _known_format(first)
    if known:
        hint = f"; this looks like {known}, which is not read: convert it to FASTA"
    elif other:
        hint = f"; is this a table{separated}"
    elif first.lstrip().startswith(("{", "<", "#", "id,", "id\t")):
        hint = "; is this a table or another format?"
    return DataError(
        f"{name}: line {line}: expected a FASTA header starting with '>' "
        f"(or '@' for FASTQ), found {found!r}{hint}"
    )


def _start_lines(lines: _CheckedText, name: str, expect: str | None = None) -> Iterator[Record]:
    """The line-based reader from the first line on: checks the first line at once.
    ``expect='series'``: a first line that starts no record is described as a series
    table's missing header."""
    try:
        first = _first_content_line(lines)
        if first is None:
            what = "series" if expect == "series" else "sequence records"
            raise DataError(f"{name}: empty input, no {what}")
        if not first.startswith((">", "@")):
            raise not_records(first, lines.line, name, expect)
    except BaseException:
        lines.close()
        raise
    parse = _parse_fasta if first.startswith(">") else _parse_fastq
    return _closing(parse(first, lines, name), lines)


# --------------------------------------------------------------------------- fast FASTA
#
# FASTA is read by Biopython's SimpleFastaParser (the reference, in _parse_fasta), fed
# decoded text lines. That costs a str object per line and a UTF-8 decode of every
# residue, which caps parse+encode far below what the rest of the pipeline does
# (issue 8 asks for 200 MB/s). So plain, clean FASTA is cut into records in large byte
# blocks instead (bytes.find and bytes.replace: C speed, nothing per line), and as soon
# as the input holds anything the block path does not handle exactly like the
# reference (non-ASCII, '\r', whitespace inside sequence lines, empty records or
# headers, a read error), the rest of the input, from a record header on, goes to
# SimpleFastaParser. The block path reads the input in the same read1() chunks that
# the reference's TextIOWrapper reads and replays them to it, so the reference sees
# exactly the bytes, chunk by chunk, that it would have seen on its own: records,
# line numbers and error messages (even which record comes before an error) are
# those of the reference. tests/test_fasta_fast.py checks that on tricky inputs.

BLOCK = 4 << 20
"""Bytes the block path reads at a time (more when a record is longer)."""
_WHITESPACE = tuple(bytes([c]) for c in b" \t\x0b\x0c\x1c\x1d\x1e\x1f")
"""ASCII characters other than newlines that str.rstrip/split treat as whitespace."""
_NOT_PLAIN = re.compile(rb"[\r\x80-\xff]")


class _Chunks:
    """The input as read so far, in the chunks TextIOWrapper would read it in.

    ``data`` starts at a chunk boundary; ``starts`` holds the offsets of its chunks.
    """

    def __init__(self, binary: IO[bytes], name: str, stream: bool = False) -> None:
        self.binary = binary
        self.name = name
        self.stream = stream
        """A pipe or terminal: take what has arrived rather than wait for ``want``."""
        self.data = b""
        self.starts: list[int] = []
        self.eof = False
        self.error: Exception | None = None

    def more(self, want: int) -> bool:
        """Read at least ``want`` more bytes, fewer at the end of the input or on an
        error (kept, for the line-based path to raise where it would have met it), or,
        from a stream, once what has arrived so far is read: records are then handed on
        as they come, as a pipeline expects, instead of after megabytes more."""
        parts: list[bytes] = []
        size = len(self.data)
        got = 0
        while got < want and not self.eof and self.error is None:
            try:
                chunk = self.binary.read1(CHUNK)  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001 - raised again by _Replay
                self.error = exc
                break
            if not chunk:
                self.eof = True
                break
            self.starts.append(size + got)
            parts.append(chunk)
            got += len(chunk)
            if self.stream and len(chunk) < CHUNK:
                break  # the buffer ran dry: nothing more has arrived yet
        if parts:
            self.data = self.data + b"".join(parts) if self.data else b"".join(parts)
        return got > 0

    def fine_end(self) -> int:
        """Length of the leading whole chunks that are plain ASCII without '\r' (the
        reference decodes them without error and splits their lines on '\n' alone)."""
        data = self.data
        bad = data.find(b"\r")
        if not data.isascii() or bad >= 0:
            found = _NOT_PLAIN.search(data)
            assert found is not None
            bad = found.start()
            return self.starts[bisect.bisect_right(self.starts, bad) - 1]
        return len(data)

    def drop(self, pos: int, line: int) -> tuple[int, int]:
        """Forget the chunks wholly before ``data[pos]`` (a header on ``line``).
        Returns the new ``pos`` and the newlines before the new ``data``."""
        k = bisect.bisect_right(self.starts, pos) - 1
        base = self.starts[k] if k >= 0 else 0
        newlines = line - 1 - self.data.count(b"\n", base, pos)
        if base:
            self.data = self.data[base:]
            self.starts = [s - base for s in self.starts[k:]]
        return pos - base, newlines

    def bounded(self, end: int) -> _CheckedText:
        """The line-based reader over the chunks read so far up to the one that holds
        ``data[end]`` (all of them: ``end`` < 0), then the end of the input (or the error
        met reading it, if that is where the input stopped)."""
        k = bisect.bisect_right(self.starts, end) if end >= 0 else len(self.starts)
        stop = self.starts[k] if k < len(self.starts) else len(self.data)
        bounds = [*self.starts[:k], stop]
        view = memoryview(self.data)
        replay = [view[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
        error = self.error if stop == len(self.data) else None
        return _CheckedText(_Replay(replay, io.BytesIO(), error, self.name), self.name)

    def fallback(self, pos: int, line: int) -> _CheckedText:
        """The line-based reader, positioned so that its next line is ``data[pos:]``
        (a line start on ``line``), having read from the chunk that holds ``pos`` on."""
        k = bisect.bisect_right(self.starts, pos) - 1
        if k < 0:
            k, base = 0, len(self.data)
        else:
            base = self.starts[k]
        view = memoryview(self.data)
        bounds = [*self.starts[k:], len(self.data)]
        replay = [view[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
        lines = _CheckedText(_Replay(replay, self.binary, self.error, self.name), self.name)
        lines.line = line - 1 - self.data.count(b"\n", base, pos)
        try:
            while lines.line < line - 1:
                next(lines)
        except BaseException:
            lines.close()
            raise
        return lines


class _Replay(io.BufferedIOBase):
    """Chunks already read, then the rest of the input (or the error met reading it)."""

    def __init__(
        self, chunks: list[memoryview], binary: IO[bytes], error: Exception | None, name: str
    ) -> None:
        super().__init__()
        self._chunks = chunks[::-1]
        self._binary = binary
        self._error = error
        self._name = name

    def readable(self) -> bool:
        return True

    def read1(self, size: int = -1) -> bytes:
        if self._chunks:
            chunk = self._chunks.pop()
            if 0 <= size < len(chunk):
                self._chunks.append(chunk[size:])
                chunk = chunk[:size]
            return bytes(chunk)
        if self._error is not None:
            raise self._error
        return self._binary.read1(size)  # type: ignore[attr-defined, no-any-return]

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while part := self.read1(CHUNK):
                parts.append(part)
            return b"".join(parts)
        return self.read1(size)

    def close(self) -> None:
        if not self.closed:
            super().close()
            if self._name != "<stdin>":
                self._binary.close()


@dataclass
class FastaBlock:
    """Consecutive FASTA records in columns: the block path's unit."""

    headers: list[str]
    """Header lines without their '>'."""
    ids: list[str]
    lines: list[int]
    seqs: list[bytes]
    raw: bytes = b""
    """The block's text, so that an error can name a residue's line and column (stdin
    cannot be read again to find them)."""
    starts: list[int] = field(default_factory=list)
    """Where each record's '>' is in ``raw``."""

    def __len__(self) -> int:
        return len(self.ids)

    def record(self, i: int) -> Record:
        parts = self.headers[i].strip().split(None, 1)
        return Record(
            self.ids[i],
            self.seqs[i],
            parts[1] if len(parts) > 1 else "",
            self.lines[i],
            block=self,
            index=i,
        )

    def records(self) -> Iterator[Record]:
        for i in range(len(self.ids)):
            yield self.record(i)

    def locate(self, i: int, position: int) -> tuple[int, int] | None:
        """Line and column of residue ``position`` (1-based) of record ``i``, found in the
        block's text (for messages: stdin cannot be read again to find it)."""
        if not self.raw or i >= len(self.starts):
            return None
        end = self.starts[i + 1] if i + 1 < len(self.starts) else len(self.raw)
        seen = 0
        for k, line in enumerate(self.raw[self.starts[i] : end].split(b"\n")[1:], start=1):
            if seen + len(line) >= position:
                return self.lines[i] + k, position - seen
            seen += len(line)
        return None


class RecordStream(Iterator[Record]):
    """The records of one input, as :func:`read_sequences` reads them.

    Iterating yields :class:`Record` objects; :meth:`batches` yields the same records
    as they come, in :class:`FastaBlock` columns where the block path read them.
    """

    def __init__(self, items: Iterator[FastaBlock | Record], release: Any = None) -> None:
        self._items = items
        self._pending: Iterator[Record] = iter(())
        self._release = release
        """Closes the input (a generator closed before its first step does not run its
        own cleanup)."""

    def __iter__(self) -> RecordStream:
        return self

    def __next__(self) -> Record:
        while True:
            for record in self._pending:
                return record
            item = next(self._items)
            if isinstance(item, Record):
                return item
            self._pending = item.records()

    def batches(self) -> Iterator[FastaBlock | Record]:
        yield from self._pending
        yield from self._items

    def close(self) -> None:
        close = getattr(self._items, "close", None)
        if close is not None:
            close()
        if self._release is not None:
            self._release()


def _fast_fasta(chunks: _Chunks, name: str) -> Iterator[FastaBlock | Record]:
    """FASTA records in blocks while the input is clean, then from the line-based path."""
    pos, line = 0, 1  # the next record's '>' in chunks.data, and its line
    handed_over = False
    try:
        while True:
            block, pos, line, clean = _cut_block(chunks, pos, line)
            if block:
                yield block
            if chunks.eof and pos >= len(chunks.data):
                return
            if not clean:
                handed_over = True
                lines = chunks.fallback(pos, line)
                try:
                    yield from _parse_fasta(next(lines), lines, name)
                finally:
                    lines.close()
                return
            pos, _ = chunks.drop(pos, line)
            chunks.more(max(BLOCK, len(chunks.data) - pos))
    finally:
        if not handed_over and name != "<stdin>":
            chunks.binary.close()


def _cut_block(chunks: _Chunks, pos: int, line: int) -> tuple[FastaBlock | None, int, int, bool]:
    """Records from ``chunks.data[pos]`` (a header on ``line``) as far as they are clean.

    Returns the block (None if empty), where the next record starts and its line, and
    False when that record is for the line-based path: not clean, or the input is
    not all plain from it on, or reading failed. A record is taken only once its
    successor's header line is in the plain part, as the reference reads that line
    before it yields the record.
    """
    data = chunks.data
    fine = chunks.fine_end()
    last_ok = chunks.eof and fine == len(data)  # the final record may end the input
    spaces = [c for c in _WHITESPACE if data.find(c, pos, fine) >= 0]
    find = data.find
    headers: list[bytes] = []
    seqs: list[bytes] = []
    lines: list[int] = []
    starts: list[int] = []
    clean = True
    nl = find(b"\n", pos, fine)
    while nl >= 0:
        j = find(b">", nl, fine)
        while j > 0 and data[j - 1] != 10:  # a '>' inside a sequence line
            j = find(b">", j + 1, fine)
        if j >= 0:
            nl_next = find(b"\n", j, fine)
            if nl_next < 0:
                break
        elif last_ok:
            j, nl_next = len(data), -1
        else:
            break
        seq = data[nl + 1 : j].replace(b"\n", b"")
        if not seq or nl == pos + 1 or (spaces and any(c in seq for c in spaces)):
            clean = False
            break
        headers.append(data[pos + 1 : nl])
        seqs.append(seq)
        lines.append(line)
        starts.append(pos)
        line += j - nl - len(seq)
        pos, nl = j, nl_next
    if pos < len(data) and (fine < len(data) or chunks.error is not None or chunks.eof):
        clean = False  # more input would not make the next record plain
    if not seqs:
        return None, pos, line, clean
    text = b"\n".join(headers).decode("ascii").split("\n")
    ids = []
    for k, header in enumerate(text):
        parts = header.split(None, 1)
        if not parts:  # no id: the line-based path says so
            pos, line, clean = starts[k], lines[k], False
            del text[k:], seqs[k:], lines[k:]
            break
        ids.append(parts[0])
    if not ids:
        return None, pos, line, clean
    base = starts[0]
    return (
        FastaBlock(
            text, ids, lines, seqs, bytes(data[base:pos]), [p - base for p in starts[: len(ids)]]
        ),
        pos,
        line,
        clean,
    )


def _closing(records: Iterator[Record], lines: _CheckedText) -> Iterator[Record]:
    try:
        yield from records
    finally:
        lines.close()


def _record(name: str, header: str, line: int, seq: str, width: int) -> Record:
    """Build a Record from a header (without its '>' or '@') and the joined sequence."""
    parts = header.split(None, 1)
    if not parts:
        raise DataError(f"{name}: line {line}: header has no id")
    rid = parts[0]
    if not seq:
        raise DataError(f"{name}: line {line}: record {shorten(rid)!r} has no sequence")
    try:
        data = seq.encode("ascii")
    except UnicodeEncodeError as exc:
        rec = Record(rid, b"", line=line, width=width)
        raise DataError(
            f"{name}: {rec.location(exc.start + 1, name)}: record {shorten(rid)!r}: non-ASCII "
            f"character {seq[exc.start]!r} at position {exc.start + 1}"
        ) from None
    return Record(rid, data, parts[1] if len(parts) > 1 else "", line, width)


class _Lines:
    """Sequence lines of one record: joined, with the line width when it is regular."""

    __slots__ = ("parts", "width", "regular")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.width = 0
        self.regular = True

    def add(self, line: str) -> None:
        if " " in line:  # spaces inside sequence lines are dropped (as Biopython does)
            line = line.replace(" ", "")
            self.regular = False
        if self.parts and len(self.parts[-1]) != self.width:
            self.regular = False  # a short line that was not the last one
        if not self.parts:
            self.width = len(line)
        self.parts.append(line)

    def result(self) -> tuple[str, int]:
        seq = "".join(self.parts)
        regular = self.regular and (len(self.parts) < 2 or len(self.parts[-1]) <= self.width)
        return seq, self.width if regular else 0


def _parse_fasta(first: str, lines: _CheckedText, name: str) -> Iterator[Record]:
    """FASTA through Biopython's SimpleFastaParser, fed lines that are counted on the way.

    The parser yields a record once it has read the next header, so the line count at
    each yield is the next record's header line.
    """
    header_line = lines.line
    # Imported here: Bio.SeqIO costs ~0.15 s of start-up (it loads its XML readers), and
    # clean FASTA never gets here.
    from Bio.SeqIO.FastaIO import SimpleFastaParser

    for title, seq in SimpleFastaParser(itertools.chain((first,), lines.counting())):
        line, header_line = header_line, lines.line
        yield _record(name, title.strip(), line, seq, 0)


_NOT_QUALITY = re.compile("[^!-~]")
"""A quality is one of the printable ASCII characters from '!' (0) to '~' (93)."""


def _parse_fastq(first: str, lines: _CheckedText, name: str) -> Iterator[Record]:
    """FASTQ, including sequences and qualities wrapped over several lines.

    Damage is reported where it is: a header line ('@') where a sequence continues (a
    record without its '+' and quality lines), a '+' line that names another record, a
    quality that ends where the next record's header starts, and a character that is no
    quality."""
    pending: str | None = first
    while True:
        if pending is None:
            pending = _first_content_line(lines)
            if pending is None:
                return
        if not pending.startswith("@"):
            raise DataError(
                f"{name}: line {lines.line}: expected a FASTQ header starting with '@', "
                f"found {shorten(pending.strip())!r}"
            )
        header, header_line = pending[1:].strip(), lines.line
        rid = shorten((header.split(None, 1) or [""])[0])
        pending = None
        body = _Lines()
        for line in lines:
            if line.startswith("+"):
                break
            if line.startswith("@") and body.parts:
                raise DataError(
                    f"{name}: line {lines.line}: record {rid!r} (line {header_line}): a "
                    f"header {shorten(line.strip())!r} where its sequence continues or its "
                    "'+' line belongs; are its '+' and quality lines missing?"
                )
            line = line.rstrip()
            if line:
                body.add(line)
        else:
            raise DataError(
                f"{name}: line {lines.line}: FASTQ record starting at line {header_line} "
                "ends before its '+' line (truncated file?)"
            )
        plus = line[1:].strip()
        if plus and plus not in (header, header.split(None, 1)[0] if header else ""):
            raise DataError(
                f"{name}: line {lines.line}: record {rid!r}: the '+' line names "
                f"{shorten(plus)!r}, not the record's header (line {header_line})"
            )
        seq, width = body.result()
        record = _record(name, header, header_line, seq, width)
        _read_quality(lines, name, record.id, len(seq))
        yield record


def _read_quality(lines: _CheckedText, name: str, rid: str, length: int) -> None:
    """Read and check a FASTQ record's quality lines, ``length`` characters in all."""
    quality = 0
    # the first quality line that starts with '@' (a quality, or the next header when
    # the record's quality is missing): its line, the quality before it, its text
    header_like: tuple[int, int, str] | None = None
    while quality < length:
        qline: str | None = next(lines, None)
        if qline is None:
            raise DataError(
                f"{name}: line {lines.line}: record {shorten(rid)!r}: quality "
                f"ends after {quality} of {length} characters (truncated file?)"
            )
        text = qline.rstrip("\r\n")
        if text.startswith("@") and header_like is None:
            header_like = (lines.line, quality, text)
        if header_like is not None and quality + len(text) > length:
            # the lengths disagree: the '@' line was the next record's header
            at, before, found = header_like
            raise DataError(
                f"{name}: line {at - 1}: record {shorten(rid)!r}: quality "
                f"ends after {before} of {length} characters, before the header on "
                f"line {at} ({shorten(found.strip())!r})"
            )
        bad = _NOT_QUALITY.search(text)
        if bad:
            raise DataError(
                f"{name}: line {lines.line}, column {bad.start() + 1}: record "
                f"{shorten(rid)!r}: {bad.group()!r} is no quality character ('!' "
                "to '~')"
            )
        quality += len(text)
    if quality != length:
        raise DataError(
            f"{name}: line {lines.line}: record {shorten(rid)!r}: quality has "
            f"{quality} characters, the sequence {length}"
        )


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


# --------------------------------------------------------------------------- tables


@dataclass
class Table:
    source: str
    header: list[str]
    rows: list[list[str]]
    delimiter: str
    lines: list[int] = field(default_factory=list)
    """The line each row starts on (1-based)."""
    header_line: int = 1

    def column(self, name: str, hint: str = "") -> int:
        """The index of column ``name``; ``hint`` ends the error when it is missing."""
        try:
            return self.header.index(name)
        except ValueError:
            if len(self.header) == 1:
                other = next((d for d in ";| " if d in self.header[0]), None)
                if other:
                    hint = (
                        f"; the header is one column: is the table separated by "
                        f"{other!r}? Use commas (.csv) or tabs (.tsv)"
                    ) + hint
            raise DataError(
                f"{self.source}: no column {name!r}; columns are: "
                f"{', '.join(map(repr, self.header))}{hint}"
            ) from None

    def line_of(self, row_index: int) -> int:
        return self.lines[row_index] if self.lines else row_index + 2


@contextlib.contextmanager
def _open_table_text(path: str | os.PathLike[str]) -> Iterator[_CheckedText]:
    """:func:`open_text` for a table, whose first non-blank line is checked first from
    its first bytes (a binary file or /dev/zero is refused at once)."""
    name = display_name(path)
    binary = open_binary(path)
    try:
        chunks = _Chunks(binary, name, stream=not _regular_file(path))
        content = _first_content(chunks)
        if content < len(chunks.data):
            _sniff(chunks, content)
        lines = chunks.fallback(0, 1)
    except BaseException:
        if name != "<stdin>":
            binary.close()
        raise
    try:
        yield lines
    finally:
        lines.close()


def pick_delimiter(name: str, header_line: str) -> str:
    """',' or TAB: from the name's suffix (.csv, .tsv, .tab), corrected by the header line."""
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
    """Read a CSV or TSV table with a header row (delimiter from the name or the header).

    Blank lines are ignored; a row with another number of fields than the header, a
    quoted field left open, or a table without rows is an error naming the line.
    """
    name = display_name(path)
    delim_name = {"\t": "TAB", ",": "','"}
    with _open_table_text(path) as lines:
        first = _first_content_line(lines)
        if first is None:
            raise DataError(f"{name}: empty table, expected a header row")
        if first.startswith(">"):
            raise DataError(
                f"{name}: line {lines.line}: a FASTA header where a table's "
                "header row belongs; is the order of the arguments right "
                "(the FASTA first, then the labels table)?"
            )
        offset = lines.line - 1
        delimiter = pick_delimiter(name, first)
        reader = csv.reader(_chain(first, lines), delimiter=delimiter)
        rows: list[list[str]] = []
        starts: list[int] = []
        try:
            header = [h.strip() for h in next(reader)]
            end = reader.line_num
            for row in reader:
                start, end = offset + end + 1, reader.line_num
                if not row or not any(c.strip() for c in row):
                    continue
                if any("\n" in c for c in row):
                    raise DataError(
                        f"{name}: line {start}: a quoted field runs over several lines; "
                        "is a '\"' left open?"
                    )
                if len(row) != len(header):
                    raise DataError(
                        f"{name}: line {start}: {len(row)} field(s), the header has "
                        f"{len(header)} (delimiter {delim_name[delimiter]})"
                    )
                rows.append([c.strip() for c in row])
                starts.append(start)
        except csv.Error as exc:
            raise DataError(f"{name}: line {offset + reader.line_num}: {exc}") from None
    if len(set(header)) != len(header):
        dup = sorted({h for h in header if header.count(h) > 1})
        raise DataError(f"{name}: duplicate column name(s) in the header: {', '.join(dup)}")
    if not rows:
        raise DataError(f"{name}: a header row but no data rows")
    return Table(name, header, rows, delimiter, starts, offset + 1)


# --------------------------------------------------------------------------- outputs


def table_delimiter(path: str | os.PathLike[str]) -> str:
    lower = str(path).lower().removesuffix(".gz")
    return "," if lower.endswith(".csv") else "\t"


def silence_stdout() -> None:
    """Point stdout at /dev/null once its reader has gone (a broken pipe), so that the
    interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def check_one_stdin(**inputs: str | os.PathLike[str] | None) -> None:
    """Standard input can be read once: at most one input may be '-'."""
    named = [name for name, value in inputs.items() if value is not None and str(value) == STDIO]
    if len(named) > 1:
        raise UsageError(
            f"only one input can be '-' (standard input); {' and '.join(named)} both are"
        )


Inputs = Mapping[str, "str | os.PathLike[str] | None"]
"""The inputs of a command that an output must not be: what each is (e.g. 'SEQUENCES',
'--val-labels') -> its path (None: not given)."""


def check_output_path(path: str | os.PathLike[str], inputs: Inputs | None = None) -> None:
    """Fail early (before hours of training) when an output cannot be created, or when it
    is one of the command's ``inputs`` (writing it would destroy that input)."""
    if str(path) == STDIO:
        return
    if inputs:
        check_not_an_input(path, inputs)
    if str(path).endswith(("/", os.sep)):
        raise UsageError(f"{path}: names a directory; give a file name (e.g. {path}out.tsv)")
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        problem = "is not a directory" if parent.exists() else "does not exist"
        raise UsageError(f"{path}: cannot write: directory {str(parent)!r} {problem}")
    if target.is_dir():
        raise UsageError(f"{path}: cannot write: it is a directory")
    if target.is_symlink():
        try:
            target.stat()
        except OSError as exc:  # a loop: there is no file to replace, and the link stays
            if exc.errno == errno.ELOOP:
                raise UsageError(f"{path}: cannot write: {exc.strerror}") from None
    if not os.access(parent, os.W_OK) and not _is_special(target):
        raise UsageError(f"{path}: cannot write: directory {str(parent)!r} is not writable")


def check_not_an_input(output: str | os.PathLike[str], inputs: Inputs) -> None:
    """Refuse an output that is one of ``inputs``: the same file (device and inode),
    whatever the names, after following symbolic links; a hard link is the same file too.
    Standard input and output, /dev/null and other outputs that are no regular file are
    written directly and destroy nothing, so they are not compared."""
    if str(output) == STDIO:
        return
    try:
        out = os.stat(output)
    except (OSError, ValueError):
        return  # not there yet (or unreadable): no input can be it
    if not stat.S_ISREG(out.st_mode):
        return
    for what, path in inputs.items():
        if path is None:
            continue
        try:  # '-': whatever standard input reads, a file given with '<' say
            found = os.fstat(0) if str(path) == STDIO else os.stat(path)
        except (OSError, ValueError):
            continue
        if (found.st_dev, found.st_ino) == (out.st_dev, out.st_ino):
            same = (
                ""
                if os.path.abspath(path) == os.path.abspath(output)
                else f" {display_name(path)}, the same file"
            )
            raise UsageError(
                f"{output}: cannot write: it is an input ({what}{same}); writing "
                "it would destroy it: choose another output name"
            )


def _is_special(target: Path) -> bool:
    """True for an existing output that is no regular file: /dev/null, a FIFO, a terminal."""
    try:
        return not stat.S_ISREG(target.stat().st_mode)
    except OSError:
        return False


class _KeepOpen:
    """A binary sink whose close() only flushes (Bio.bgzf closes the handle it writes)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw

    def write(self, data: bytes) -> int:
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:
        self.raw.flush()


@contextlib.contextmanager
def _encoded(raw: IO[bytes], name: str, binary: bool, bgzip: bool = False) -> Iterator[IO[Any]]:
    """Wrap a binary sink: gzip when ``name`` ends in .gz (BGZF blocks with ``bgzip``,
    which tabix and htslib can index), bzip2, xz or zstd for .bz2, .xz, .zst; UTF-8 text
    unless ``binary``."""
    sink: IO[Any] = raw
    gz: Any = None
    fmt = SUFFIXES.get(os.path.splitext(name)[1].lower())
    if fmt is not None:
        gz = _xopen(_KeepOpen(raw), "wb", fmt)
        sink = gz
    elif name.endswith(".gz") and bgzip:
        from Bio import bgzf

        gz = bgzf.BgzfWriter(fileobj=_KeepOpen(raw))
        sink = gz
    elif name.endswith(".gz"):
        gz = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0)
        sink = gz  # type: ignore[assignment]
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


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike[str], binary: bool = False, bgzip: bool = False
) -> Iterator[IO[Any]]:
    """Yield a handle whose content appears at ``path`` only if the block succeeds.

    '-' yields stdout (never closed). A name ending in .gz is gzip-compressed (in BGZF
    blocks with ``bgzip``: binary output only, e.g. a VCF for tabix), one ending in .bz2,
    .xz or .zst bzip2-, xz- or zstd-compressed. A
    symbolic link is followed (the file it points to is replaced, the link kept); an
    existing output that is no regular file (/dev/null, a named pipe) is written directly.
    Failing writes (disk full, file too large) raise :class:`DataError` naming the output.
    """
    if str(path) == STDIO:
        stream: IO[Any] = sys.stdout.buffer if binary else sys.stdout
        try:
            yield stream
            stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise DataError(f"<stdout>: cannot write: {exc.strerror or exc}") from None
        return
    check_output_path(path)
    if _is_special(Path(path)):
        try:
            with open(path, "wb") as raw, _encoded(raw, str(path), binary, bgzip) as sink:
                yield sink
        except OSError as exc:
            raise DataError(f"{path}: cannot write: {exc.strerror or exc}") from None
        return
    target = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as exc:
        raise DataError(f"{path}: cannot write: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as raw:
            with _encoded(raw, target.name, binary, bgzip) as sink:
                yield sink
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


def write_table(
    output: str | os.PathLike[str], header: list[str], rows: Iterable[list[str]]
) -> None:
    """A header and rows as TSV (CSV for a .csv name), written atomically.

    The first row is made before anything is written, so an input refused at its first
    chunk (wrong alphabet, an invalid symbol, no records) leaves stdout empty too."""
    rows = iter(rows)
    first = next(rows, None)
    with atomic_output(output) as fh:
        writer = csv.writer(fh, delimiter=table_delimiter(output), lineterminator="\n")
        writer.writerow(header)
        if first is not None:
            writer.writerow(first)
        writer.writerows(rows)
