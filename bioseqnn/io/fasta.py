"""FASTA and FASTQ records: the line-based reader (Biopython's parser, the reference) and
the block reader that cuts clean FASTA at C speed and hands anything else to the reference.
"""

from __future__ import annotations

import bisect
import ctypes
import io
import itertools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from .. import kernels
from ..errors import BioseqnnError, DataError, shorten
from . import files
from .files import (
    STDIO,
    _CheckedText,
    _first_content_line,
    display_name,
    open_binary,
    open_text,
)


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
        return files.nul_byte(name, line)
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
# those of the reference. tests/unit/test_io_fasta.py checks that on tricky inputs.

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
        self.nul = False
        """A NUL byte was read (checked per chunk as it arrives, not per scan of data)."""
        self.whole = (
            not stream
            and isinstance(binary, io.BufferedReader)
            and isinstance(binary.raw, io.FileIO)
        )
        """A file on disk read as it is: ``read1(CHUNK)`` would return whole chunks up to
        its end, so :meth:`more` reads many in one call and knows where each starts."""

    def more(self, want: int) -> bool:
        """Read at least ``want`` more bytes, fewer at the end of the input or on an
        error (kept, for the line-based path to raise where it would have met it), or,
        from a stream, once what has arrived so far is read: records are then handed on
        as they come, as a pipeline expects, instead of after megabytes more."""
        if self.whole:
            return self._more_whole(want)
        parts: list[bytes] = []
        size = len(self.data)
        got = 0
        while got < want and not self.eof and self.error is None:
            try:
                chunk = self.binary.read1(files.CHUNK)  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001 - raised again by _Replay
                self.error = exc
                break
            if not chunk:
                self.eof = True
                break
            self.starts.append(size + got)
            parts.append(chunk)
            self.nul = self.nul or chunk.find(b"\0") >= 0
            got += len(chunk)
            if self.stream and len(chunk) < files.CHUNK:
                break  # the buffer ran dry: nothing more has arrived yet
        if parts:
            self.data = self.data + b"".join(parts) if self.data else b"".join(parts)
        return got > 0

    def _more_whole(self, want: int) -> bool:
        """:meth:`more` for a file on disk: the same chunks, read in one call."""
        if self.eof or self.error is not None:
            return False
        size = len(self.data)
        ask = -(-want // files.CHUNK) * files.CHUNK
        try:
            block = self.binary.read(ask)
        except Exception as exc:  # noqa: BLE001 - raised again by _Replay
            self.error = exc
            return False
        if len(block) < ask:
            self.eof = True  # a file on disk reads short only at its end
        if not block:
            return False
        self.starts.extend(range(size, size + len(block), files.CHUNK))
        self.nul = self.nul or block.find(b"\0") >= 0
        self.data = self.data + block if self.data else block
        return True

    def fine_end(self) -> int:
        """Length of the leading whole chunks that are plain ASCII without '\r' (the
        reference decodes them without error and splits their lines on '\n' alone) and
        without a line that holds a NUL byte and runs past NUL_RUN bytes (/dev/zero, a
        binary file: the reference refuses it at its line, where this reader would grow
        a record without end)."""
        data = self.data
        cuts = []
        if not data.isascii() or data.find(b"\r") >= 0:
            found = _NOT_PLAIN.search(data)
            assert found is not None
            cuts.append(found.start())
        if self.nul and (at := _long_nul_line(data)) >= 0:
            cuts.append(at)
        if not cuts:
            return len(data)
        return self.starts[bisect.bisect_right(self.starts, min(cuts)) - 1]

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

    def fallback(self, pos: int, line: int, max_line: int | None = None) -> _CheckedText:
        """The line-based reader, positioned so that its next line is ``data[pos:]``
        (a line start on ``line``), having read from the chunk that holds ``pos`` on;
        ``max_line``: the bytes a line may run to (a table's), None for no bound."""
        k = bisect.bisect_right(self.starts, pos) - 1
        if k < 0:
            k, base = 0, len(self.data)
        else:
            base = self.starts[k]
        view = memoryview(self.data)
        bounds = [*self.starts[k:], len(self.data)]
        replay = [view[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
        replayed = _Replay(replay, self.binary, self.error, self.name)
        lines = _CheckedText(replayed, self.name, max_line)
        lines.line = line - 1 - self.data.count(b"\n", base, pos)
        lines.first_line = lines.line + 1
        try:
            while lines.line < line - 1:
                next(lines)
        except BaseException:
            lines.close()
            raise
        return lines


def _long_nul_line(data: bytes) -> int:
    """Where the first line of ``data`` that holds a NUL byte and runs past NUL_RUN bytes
    starts, or -1 (a NUL in a short line is left to the parsers, which name its column)."""
    nul = data.find(b"\0")
    while nul >= 0:
        start = data.rfind(b"\n", 0, nul) + 1
        end = data.find(b"\n", nul)
        if end < 0:
            return start if len(data) - start > files.NUL_RUN else -1
        if end - start > files.NUL_RUN:
            return start
        nul = data.find(b"\0", end)
    return -1


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
            while part := self.read1(files.CHUNK):
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
    joined: bytes | bytearray | memoryview
    """The records' sequences one after another, without their newlines."""
    ends: list[int]
    """Where each record's sequence ends in ``joined``."""
    raw: bytes | memoryview = b""
    """The block's text, so that an error can name a residue's line and column (stdin
    cannot be read again to find them): a view of the text as read, not a copy."""
    starts: list[int] = field(default_factory=list)
    """Where each record's '>' is in ``raw``."""

    def __len__(self) -> int:
        return len(self.ids)

    def seq(self, i: int) -> bytes:
        return bytes(memoryview(self.joined)[self.ends[i - 1] if i else 0 : self.ends[i]])

    def span(self, start: int, end: int) -> tuple[memoryview, list[int]]:
        """The sequences of records ``start`` to ``end`` (exclusive), one after another,
        and where each ends in them."""
        base = self.ends[start - 1] if start else 0
        view = memoryview(self.joined)[base : self.ends[end - 1]]
        return view, [e - base for e in self.ends[start:end]]

    def record(self, i: int) -> Record:
        parts = self.headers[i].strip().split(None, 1)
        return Record(
            self.ids[i],
            self.seq(i),
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
        text = bytes(self.raw[self.starts[i] : end])
        for k, line in enumerate(text.split(b"\n")[1:], start=1):
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
    cut = _cut_records_c if kernels.available() else _cut_records_py
    joined, ends, heads, starts, lines, pos, line, clean = cut(
        data, pos, fine, last_ok, spaces, line
    )
    if pos < len(data) and (fine < len(data) or chunks.error is not None or chunks.eof):
        clean = False  # more input would not make the next record plain
    if not ends:
        return None, pos, line, clean
    text = heads.decode("ascii").split("\n")
    if not any(c in heads for c in _WHITESPACE):
        ids = text.copy()  # no descriptions: each header line is its id
    else:
        ids = []
        for k, header in enumerate(text):
            parts = header.split(None, 1)
            if not parts:  # no id: the line-based path says so
                pos, line, clean = starts[k], lines[k], False
                del text[k:], ends[k:], lines[k:]
                break
            ids.append(parts[0])
    if not ids:
        return None, pos, line, clean
    base = starts[0]
    return (
        FastaBlock(
            text,
            ids,
            lines,
            joined,
            ends,
            memoryview(data)[base:pos],
            [p - base for p in starts[: len(ids)]],
        ),
        pos,
        line,
        clean,
    )


_Cut = tuple[bytes | memoryview, list[int], bytes, list[int], list[int], int, int, bool]
"""The records cut from a block: their sequences one after another, where each ends,
their header lines joined by newlines, each '>' and its line; then where the next
record starts, its line, and whether the cut stopped for want of input (True) rather
than at a record that is not clean."""


def _cut_records_py(
    data: bytes, pos: int, fine: int, last_ok: bool, spaces: list[bytes], line: int
) -> _Cut:
    """The records of ``data[pos:fine]``, cut by :func:`_cut_block`'s rules in Python."""
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
    ends = list(itertools.accumulate(map(len, seqs)))
    return b"".join(seqs), ends, b"\n".join(headers), starts, lines, pos, line, clean


def _cut_records_c(
    data: bytes, pos: int, fine: int, last_ok: bool, spaces: list[bytes], line: int
) -> _Cut:
    """:func:`_cut_records_py` by the compiled code (bioseqnn/csrc/fasta.c)."""
    import numpy as np  # not at import: `info` and `--help` read this module without it

    cut = kernels.library().bsnn_fasta_cut
    c_long = np.dtype(f"i{ctypes.sizeof(ctypes.c_long)}")  # 4 bytes on Windows
    room = max(fine - pos, 0)
    # Buffers left unset (the code writes what is kept): zeroing them cost as much as
    # the cut itself. The copy stores whole 32-byte vectors: 32 bytes of room past.
    seqs = np.empty(room + 32, dtype=np.uint8)
    heads = np.empty(room, dtype=np.uint8)
    state = (ctypes.c_long * 5)(pos, line, 0, 0, 0)
    found: list[np.ndarray] = []
    most = room // 256 + 64  # records; more room is given when they are shorter
    while True:
        rec = np.empty(4 * most, dtype=c_long)
        n = cut(
            data,
            fine,
            len(data),
            last_ok,
            bool(spaces),
            seqs.ctypes.data,
            heads.ctypes.data,
            rec.ctypes.data,
            most,
            state,
        )
        found.append(rec[: 4 * n])
        if state[2] != 2:
            break
        most *= 4
    rec = found[0] if len(found) == 1 else np.concatenate(found)
    return (
        seqs.data[: state[3]],
        rec[2::4].tolist(),
        heads[: state[4]].tobytes(),
        rec[0::4].tolist(),
        rec[3::4].tolist(),
        state[0],
        state[1],
        bool(state[2]),
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
