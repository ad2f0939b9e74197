"""Interval files: BED3/BED6+ (0-based, half-open; a '#' header line right before the
first interval may name every column) or a CSV/TSV table with chrom, start and end
columns, read with the line of each interval. The rules of windows, ids and hold-out
are in :mod:`bioseqnn.variants.intervals`.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import DataError, shorten
from .files import display_name, open_text
from .tables import pick_delimiter

log = logging.getLogger("bioseqnn")


BED_NAMES = ["chrom", "start", "end", "name", "score", "strand"]


TABLE_NAMES = {
    "chrom": ("chrom", "chr", "chromosome", "seqnames", "seqname", "seqid", "contig"),
    "start": ("start", "chromstart", "begin"),
    "end": ("end", "chromend", "stop"),
    "name": ("name", "id"),
    "strand": ("strand",),
}


SKIPPED = ("track", "browser")
MAX_LINE = 1 << 24
"""Characters of an interval file's line read at most (a BED line is short; a table's
row of many label columns may be long)."""


@dataclass
class Interval:
    chrom: str
    start: int
    end: int
    name: str
    """The name column ('' when absent or '.')."""
    strand: str
    """'+', '-' or '.' (none)."""
    line: int
    fields: list[str]

    @property
    def id(self) -> str:
        if self.name:
            return self.name
        strand = f"({self.strand})" if self.strand in "+-" else ""
        return f"{self.chrom}:{self.start}-{self.end}{strand}"


class IntervalFile:
    """The intervals of a BED file or a chrom/start/end table (plain or gzip, '-' for
    stdin), read line by line."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self.name = display_name(path)
        self.columns: list[str] = []
        self.table = False

    def __iter__(self) -> Iterator[Interval]:
        with open_text(self.path) as lines:
            comment = ""
            first = True
            split: Any = None
            where: dict[str, int] = {}
            for raw in lines.bounded(MAX_LINE, "an interval file (BED, or a table)"):
                text = raw.rstrip("\r\n")
                if not text.strip() or (first and text.startswith(SKIPPED)):
                    continue
                if text.startswith("#"):
                    comment = text
                    continue
                if first:
                    first = False
                    split, where = self._start(text, comment, lines.line)
                    if self.table:
                        continue
                yield self._interval(split(text), lines.line, where)
            if first:
                raise DataError(f"{self.name}: no intervals (an empty file?)")

    def _start(self, text: str, comment: str, line: int) -> tuple[Any, dict[str, int]]:
        """How lines split into fields and where the coordinates are: a table's header
        (this line), or BED (named by the ``comment`` line right before, if it fits)."""
        delimiter = pick_delimiter(self.name, text)
        header = [h.strip() for h in next(csv.reader([text], delimiter=delimiter))]
        lower = [h.lower().lstrip("#") for h in header]
        found = {
            key: next((i for i, h in enumerate(lower) if h in names), -1)
            for key, names in TABLE_NAMES.items()
        }
        if min(found["chrom"], found["start"], found["end"]) >= 0:
            self.table = True
            self.columns = header
            self._unique(line)

            def split_table(row: str) -> list[str]:
                return [c.strip() for c in next(csv.reader([row], delimiter=delimiter))]

            return split_table, found

        def split_bed(row: str) -> list[str]:
            return row.split("\t") if "\t" in row else row.split()

        fields = split_bed(text)
        names = split_bed(comment.lstrip("#")) if comment else []
        if len(names) == len(fields) and len(fields) >= 3:
            self.columns = [n.strip() for n in names]
            self._unique(line - 1)
        else:
            self.columns = BED_NAMES[: len(fields)] + [
                f"col{i + 1}" for i in range(len(BED_NAMES), len(fields))
            ]
        # BED's places, whatever this line has (lines may differ: BED3 beside BED6)
        return split_bed, {"chrom": 0, "start": 1, "end": 2, "name": 3, "strand": 5}

    def _unique(self, line: int) -> None:
        dup = sorted({c for c in self.columns if self.columns.count(c) > 1})
        if dup:
            raise DataError(
                f"{self.name}: line {line}: duplicate column name(s) {', '.join(map(repr, dup))}"
            )

    def _interval(self, fields: list[str], line: int, where: dict[str, int]) -> Interval:
        at = f"{self.name}: line {line}"
        if self.table and len(fields) != len(self.columns):
            raise DataError(f"{at}: {len(fields)} field(s), the header has {len(self.columns)}")
        if len(fields) < 3:
            raise DataError(
                f"{at}: {len(fields)} field(s); an interval needs chrom, start "
                "and end (BED is separated by TABs)"
            )
        start, end = (_coordinate(fields[where[k]], k, at) for k in ("start", "end"))
        if end < start:
            raise DataError(f"{at}: end {end} is before start {start}")
        name = fields[where["name"]].strip() if 0 <= where["name"] < len(fields) else ""
        strand = fields[where["strand"]].strip() if 0 <= where["strand"] < len(fields) else "."
        if strand not in ("+", "-", ".", ""):
            raise DataError(f"{at}: strand {shorten(strand)!r} is not '+', '-' or '.'")
        return Interval(
            fields[where["chrom"]].strip(),
            start,
            end,
            "" if name == "." else name,
            strand or ".",
            line,
            fields,
        )

    def column(self, name: str, hint: str = "") -> int:
        """The index of the column ``name`` (a header name, or colN: the Nth column)."""
        if name in self.columns:
            return self.columns.index(name)
        if name.startswith("col") and name[3:].isdigit() and int(name[3:]) >= 1:
            return int(name[3:]) - 1
        raise DataError(
            f"{self.name}: no column {name!r}; its columns are "
            f"{', '.join(map(repr, self.columns))} (colN names the Nth column)"
            f"{hint}"
        )


def _coordinate(text: str, what: str, at: str) -> int:
    digits = text.strip()
    if digits.startswith("-") and digits[1:].isdigit() and digits[1:].isascii():
        raise DataError(f"{at}: {what} {digits} is negative")
    if not (digits.isdigit() and digits.isascii()):  # int() would take '+5', '1_000'
        raise DataError(
            f"{at}: {what} {shorten(text)!r} is not a whole number (BED "
            "coordinates are 0-based integers, digits only)"
        )
    return int(digits)
