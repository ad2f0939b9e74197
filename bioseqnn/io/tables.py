"""Delimited label tables (CSV/TSV): the delimiter by name or header, and whole tables
read with the line of each row.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..errors import DataError
from .fasta import _Chunks
from .files import (
    MAX_TABLE_LINE,
    _CheckedText,
    _first_content_line,
    _regular_file,
    display_name,
    open_binary,
)
from .sniff import _first_content, _sniff


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
            cased = [h for h in self.header if h.lower() == name.lower()]
            if cased:
                hint = f"; did you mean {cased[0]!r}? (column names are case-sensitive)" + hint
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
        lines = chunks.fallback(0, 1, MAX_TABLE_LINE)
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
        reader = csv.reader(itertools.chain((first,), lines.uncounted()), delimiter=delimiter)
        rows: list[list[str]] = []
        starts: list[int] = []
        try:
            with lines.reading():
                header = [h.strip() for h in next(reader)]
                end = reader.line_num
                width = len(header)
                for row in reader:
                    start, previous, end = offset + end + 1, end, reader.line_num
                    joined = "".join(row)
                    if " " in joined or not joined.isprintable():  # whitespace somewhere
                        if not joined.strip():
                            continue
                        if end - previous > 1 and "\n" in joined:
                            raise DataError(
                                f"{name}: line {start}: a quoted field runs over several "
                                "lines; is a '\"' left open?"
                            )
                        row = [c.strip() for c in row]
                    elif not joined:
                        continue
                    if len(row) != width:
                        raise DataError(
                            f"{name}: line {start}: {len(row)} field(s), the header has "
                            f"{width} (delimiter {delim_name[delimiter]})"
                        )
                    rows.append(row)
                    starts.append(start)
        except csv.Error as exc:
            raise DataError(f"{name}: line {offset + reader.line_num}: {exc}") from None
    while len(header) > 1 and not header[-1] and not any(row[-1] for row in rows):
        # a delimiter at the end of every line (spreadsheet exports): no column
        header.pop()
        for row in rows:
            row.pop()
    if len(set(header)) != len(header):
        dup = sorted({h for h in header if header.count(h) > 1})
        raise DataError(f"{name}: duplicate column name(s) in the header: {', '.join(dup)}")
    if not rows:
        raise DataError(f"{name}: a header row but no data rows")
    return Table(name, header, rows, delimiter, starts, offset + 1)
