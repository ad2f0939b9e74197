"""Opening inputs: paths and '-' (standard input), gzip, bzip2, xz and zstd found by
their magic bytes, and text read line by line with decoding errors that name the line.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib
import io
import lzma
import os
import queue
import sys
import threading
import zlib
from collections.abc import Iterator
from typing import IO, Any, Literal

from ..errors import DataError, UsageError

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
        # Python gives no sys.stdin to a process started with it closed (<&-, as a
        # scheduler or daemon may start one)
        if sys.stdin is None or sys.stdin.closed:
            raise UsageError(
                "'-' reads standard input, which is closed here: pipe the input in "
                "(... | bioseqnn ...) or give a file name"
            )
        if sys.stdin.isatty():
            raise UsageError(
                "'-' reads standard input, which is a terminal here: pipe the input in "
                "(... | bioseqnn ...) or give a file name"
            )
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
    for magic, what in _NOT_TEXT.items():
        if head.startswith(magic):
            if name != "<stdin>":
                raw.close()
            raise DataError(f"{name}: {what}")
    return raw


_NOT_TEXT = {
    b"PK\x03\x04": "a zip archive (an Excel .xlsx workbook?), not text; save the sheet as "
    "CSV or TSV, or unzip it",
    b"\xd0\xcf\x11\xe0": "an Excel .xls workbook (or another OLE2 file), not text; save the "
    "sheet as CSV or TSV",
}
"""Containers that people hand over for a table or a FASTA, by their magic bytes."""


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


def _inflate_module() -> Any:
    """The module whose decompressobj(31) inflates gzip members: ISA-L's isal_zlib (the
    isal package, which xopen installs on x86-64 and ARM64), about twice zlib's speed,
    where present, else zlib. Both check each member's CRC and length; both have zlib's
    interface, and their errors are raised as zlib.error."""
    try:
        from isal import isal_zlib
    except ImportError:
        return zlib
    return isal_zlib


def _is_bgzip_header(head: bytes) -> bool:
    """Whether a gzip member's header is bgzip's: an extra field (FLG.FEXTRA) whose first
    subfield is 'BC' (the block's size). Headers shorter than that are not."""
    return len(head) >= 16 and bool(head[3] & 4) and head[12:14] == b"BC"


class _Gunzip(io.BufferedIOBase):
    """gzip input, decompressed on a background thread while the caller parses.

    The decompressor (_inflate_module) releases the GIL while it inflates, so on two cores
    decompression overlaps with parsing instead of adding to it. The thread inflates
    a megabyte of compressed input per step, so that it needs the GIL (which the parser
    holds nearly all the time) only briefly and rarely; gzip.GzipFile would take it back
    every 128 KB. Members are read one after another (concatenated files, bgzip), zero
    padding between or after them is skipped, and each member's CRC and length are
    checked (zlib does that with wbits=31), as GzipFile does. A bgzip file (its first
    member's header holds the 'BC' field) must end with bgzip's end-of-file block, an
    empty member: a file cut between two of its 64 KB blocks (an interrupted download
    or copy) is otherwise whole members, and would be read as shorter data, its last
    record cut mid-sequence, without a word. read1() hands the data
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
        inflating = _inflate_module()
        try:
            inflate = inflating.decompressobj(31)
            in_member = False
            bgzip: bool | None = None  # decided by the first member's header
            member_bytes = 0  # what the member being read (or the last one) gave
            while not self._stop.is_set():
                # read1: what has arrived, up to COMPRESSED (a pipe does not stall)
                pending = self._raw.read1(self.COMPRESSED)  # type: ignore[attr-defined]
                if not pending:
                    if in_member:
                        raise EOFError(
                            "Compressed file ended before the end-of-stream marker was reached"
                        )
                    if bgzip and member_bytes:  # bgzip's end-of-file block is empty
                        raise _Damaged(
                            "bgzip",
                            "it ends without bgzip's end-of-file block: cut short, as an "
                            "interrupted download or copy leaves a file; if it is whole, "
                            "compress it again with bgzip",
                        )
                    self._put(b"")
                    return
                while pending and not self._stop.is_set():
                    if not in_member:
                        pending = pending.lstrip(b"\x00")
                        if not pending:
                            break
                        if bgzip is None:
                            bgzip = _is_bgzip_header(pending)
                        inflate, in_member, member_bytes = inflating.decompressobj(31), True, 0
                    out = inflate.decompress(pending, self.PIECE)
                    member_bytes += len(out)
                    pending = inflate.unconsumed_tail
                    if inflate.eof:
                        pending, in_member = inflate.unused_data, False
                    if out:
                        self._put(out)
        except inflating.error as exc:
            self._put(zlib.error(str(exc)))
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


def nul_byte(name: str, line: int) -> DataError:
    """The error for a NUL byte on ``line``: no text format has one."""
    return DataError(f"{name}: line {line}: not text (a NUL byte); is this a binary file?")


NUL_RUN = 1 << 16
"""Bytes a line that holds a NUL byte may run to before it is refused as not text."""
MAX_TABLE_LINE = 1 << 26
"""Bytes of a table's line read at most (a row of ids and labels; FASTA lines, which may
hold a whole chromosome, have no such bound)."""


class _LineStop(Exception):
    """A line ran past a bound: ``newlines`` came before it; ``limit`` is the bound of a
    long line, None for a line with a NUL byte."""

    def __init__(self, newlines: int, limit: int | None = None) -> None:
        super().__init__(newlines)
        self.newlines = newlines
        self.limit = limit


class _NulGuard(io.BufferedIOBase):
    """The bytes under a line-based reader, stopped where a line that holds a NUL byte
    (no text has one) runs past NUL_RUN bytes: /dev/zero, or a binary file without
    newlines, is an error at its line in bounded memory instead of one endless line. A
    NUL in a short line is left to the parsers, which name its record and column."""

    def __init__(self, binary: IO[bytes] | io.BufferedIOBase, max_line: int | None) -> None:
        super().__init__()
        self._binary = binary
        self._max = max_line
        self._newlines = 0
        self._run = 0  # bytes since the last newline
        self._nul = False  # a NUL byte since the last newline
        self.before = (0, 0)
        """Newlines and bytes since the last one before the latest data handed out: where
        a decoding error in that data is (see :meth:`_CheckedText.undecodable`)."""

    def readable(self) -> bool:
        return True

    def _checked(self, data: bytes) -> bytes:
        self.before = (self._newlines, self._run)
        if not self._nul and data.find(b"\0") < 0:  # the usual case: two memchr passes
            last = data.rfind(b"\n")
            if last >= 0:
                self._newlines += data.count(b"\n")
                self._run = len(data) - last - 1
            else:
                self._run += len(data)
            if self._max is not None and self._run > self._max:
                raise _LineStop(self._newlines, self._max)
            return data
        start = 0  # a NUL byte here, or in the line this data continues: line by line
        while True:
            end = data.find(b"\n", start)
            stop = len(data) if end < 0 else end
            self._nul = self._nul or data.find(b"\0", start, stop) >= 0
            self._run += stop - start
            if self._nul and self._run > NUL_RUN:
                raise _LineStop(self._newlines)
            if end < 0:
                return data
            self._newlines += 1
            self._run, self._nul, start = 0, False, end + 1

    def read1(self, size: int = -1) -> bytes:
        return self._checked(self._binary.read1(size))  # type: ignore[union-attr]

    def read(self, size: int | None = -1) -> bytes:
        return self._checked(self._binary.read(-1 if size is None else size))

    def close(self) -> None:
        if not self.closed:
            super().close()
            self._binary.close()


class _CheckedText(io.TextIOBase):
    """Line iterator over decoded text that turns decoding and gzip errors into DataError."""

    def __init__(
        self, binary: IO[bytes] | io.BufferedIOBase, name: str, max_line: int | None = None
    ) -> None:
        guard = self._guard = _NulGuard(binary, max_line)
        self._text = io.TextIOWrapper(guard, encoding="utf-8-sig", newline=None)  # type: ignore[arg-type,type-var]
        self.first_line = 1
        """The line of the first byte of ``binary`` (a reader that starts mid-input)."""
        self._text._CHUNK_SIZE = CHUNK  # type: ignore[attr-defined]  # the default (8192); tests make it small
        self._name = name
        self.line = 0

    def __iter__(self) -> Iterator[str]:  # type: ignore[override]
        return self

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Decoding and gzip errors become one DataError naming the line."""
        try:
            yield
        except UnicodeDecodeError as exc:
            raise self.undecodable(exc) from None
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            packing = exc.packing if isinstance(exc, _Damaged) else "gzip"
            raise DataError(f"{self._name}: damaged or truncated {packing} data ({exc})") from None
        except _LineStop as exc:
            line = self.first_line + exc.newlines
            if exc.limit is None:
                raise nul_byte(self._name, line) from None
            raise DataError(
                f"{self._name}: line {line}: longer than {exc.limit:,} bytes; is this a table?"
            ) from None

    def undecodable(self, exc: UnicodeDecodeError) -> DataError:
        """The error for bytes that are not UTF-8, at their line and column, saying what
        the text looks like: UTF-16, a one-byte encoding such as Latin-1, or no text."""
        raw = bytes(exc.object)  # the data being decoded: the latest read, after at most
        head = raw[: exc.start]  # three bytes of an unfinished character before it
        newlines, run = self._guard.before
        cut = head.rfind(b"\n")
        line = self.first_line + newlines + head.count(b"\n")
        column = exc.start - cut if cut >= 0 else run + exc.start + 1
        around = raw[max(0, exc.start - 40) : exc.start + 40]
        plain = sum(32 <= b < 127 or b in b"\t\r\n" for b in around)
        byte = raw[exc.start]
        if newlines == 0 and raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
            what = "UTF-16 text, not UTF-8; save it as UTF-8"
        elif plain >= 0.75 * len(around):
            what = (
                f"byte 0x{byte:02X} is not UTF-8 (Latin-1 or Windows-1252 text?); save the "
                "file as UTF-8"
            )
        else:
            what = "not text (undecodable bytes); is this a binary file?"
        return DataError(f"{self._name}: line {line}, column {column}: {what}")

    def uncounted(self) -> Iterator[str]:
        """The remaining lines at C speed, not counted: read them inside
        :meth:`reading`, and count lines another way (a csv reader's ``line_num``)."""
        return iter(self._text)

    def counting(self) -> Iterator[str]:
        """Lines at C speed (no readline call per line), still counted and checked."""
        with self.reading():
            for line in self._text:
                self.line += 1
                yield line

    def line_blocks(self, size: int) -> Iterator[tuple[int, list[str]]]:
        """The remaining lines, without their newlines, in lists of about ``size``
        characters of whole lines, each with the number of its first line."""
        rest = ""
        while True:
            with self.reading():
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

    def bounded(self, size: int, what: str) -> Iterator[str]:
        """The remaining lines, for files whose lines are short by nature: a line longer
        than ``size`` characters, or with a NUL byte, is an error that asks whether the
        file is ``what``, read no further than ``size`` characters (a file of something
        else, /dev/zero)."""
        while True:
            with self.reading():
                line = self._text.readline(size + 1)
            if not line:
                return
            self.line += 1
            if "\0" in line:
                raise nul_byte(self._name, self.line)
            if len(line) > size and not line.endswith("\n"):
                raise DataError(
                    f"{self._name}: line {self.line}: longer than {size:,} characters; "
                    f"is this {what}?"
                )
            yield line

    def __next__(self) -> str:  # type: ignore[override]
        with self.reading():
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


def _regular_file(path: str | os.PathLike[str]) -> bool:
    """A file on disk, as opposed to stdin, a named pipe or /dev/fd/N of a process."""
    return str(path) != STDIO and os.path.isfile(path)


def _first_content_line(lines: _CheckedText) -> str | None:
    for line in lines:
        if line.strip():
            return line
    return None
