"""What an input is, decided once from its first line: sequences (FASTA/FASTQ) or a
delimited table; opened as a record stream or a table text accordingly.
"""

from __future__ import annotations

import os
import re
import zlib
from dataclasses import dataclass

from . import files
from .fasta import RecordStream, _Chunks, _fast_fasta, _start_lines, not_records
from .files import (
    MAX_TABLE_LINE,
    STDIO,
    _CheckedText,
    _first_content_line,
    _regular_file,
    display_name,
    nul_byte,
    open_binary,
)


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
                    lines = chunks.fallback(0, 1, MAX_TABLE_LINE)
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
    while len(chunks.data) < len(BOM) and chunks.more(files.CHUNK):
        pass
    scan = len(BOM) if chunks.data.startswith(BOM) else 0
    while True:
        found = _CONTENT.search(chunks.data, scan)
        if found is not None:
            return found.start()
        scan = len(chunks.data)
        if not chunks.more(max(files.CHUNK, scan)):
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
        raise nul_byte(chunks.name, line)
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
        if not chunks.more(max(files.CHUNK, scan)):
            return -1


def _looks_like_table(data: bytes) -> bool:
    """The first non-blank line holds a TAB or a comma and starts no FASTA/FASTQ record."""
    line = data.removeprefix(BOM).lstrip(_BLANK).split(b"\n", 1)[0]
    return bool(line) and not line.startswith((b">", b"@")) and (b"\t" in line or b"," in line)


@dataclass(frozen=True)
class Sniffed:
    """What an input is, decided once from its first bytes by :func:`sniff` and handed
    down to whatever reads it; the readers still check every line.

    ``kind`` is ``"fasta"``, ``"fastq"`` or ``"table"`` (a first line with a TAB or a
    comma), or None where it is known only once read: standard input, a pipe, a missing
    file (the reader says so), damaged compressed data, or anything else."""

    path: str | os.PathLike[str] | None
    kind: str | None = None
    head: bytes = b""
    """The input's first SNIFF bytes, decompressed (empty where ``kind`` is None)."""

    @property
    def is_fasta(self) -> bool:
        return self.kind == "fasta"

    @property
    def is_table(self) -> bool:
        """A delimited table, not FASTA/FASTQ (what :func:`read_input` opens as a table)."""
        return self.kind == "table"

    def head_lines(self) -> list[str]:
        """The whole lines of the head (the last one dropped when the input goes on)."""
        text = self.head.decode("utf-8-sig", errors="replace")
        lines = text.splitlines()
        return lines[:-1] if len(self.head) >= SNIFF and not text.endswith("\n") else lines


def sniff(path: str | os.PathLike[str] | None) -> Sniffed:
    """What a file on disk (plain or compressed) is, from its first non-blank line. The
    one place that opens an input to decide; a file that cannot be opened is an error
    here, as it would be when read."""
    if path is None or str(path) == STDIO or not os.path.isfile(path):
        return Sniffed(path)
    with open_binary(path) as fh:
        try:
            head = fh.read(SNIFF)
        except (OSError, EOFError, zlib.error):
            return Sniffed(path)  # damaged: the reader names the line
    first = head.removeprefix(BOM).lstrip(_BLANK)
    kind = (
        "fasta"
        if first.startswith(b">")
        else "fastq"
        if first.startswith(b"@")
        else "table"
        if _looks_like_table(head)
        else None
    )
    return Sniffed(path, kind, head)
