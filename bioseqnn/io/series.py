"""Series tables: one row per time step, an id column naming the series and one column
per channel, streamed in chunks of whole series with every check that names a line
(the layout is described in :mod:`bioseqnn.series`).
"""

from __future__ import annotations

import csv
import logging
import math
import operator
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError, UsageError, shorten
from .sniff import TableText
from .tables import pick_delimiter

log = logging.getLogger("bioseqnn")


MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "."})
"""Cell texts (lowercased) read as a missing value."""
BLOCK_ROWS = 65536
"""Rows parsed at a time (a longer series takes as many as it needs)."""
BLOCK_CHARS = 1 << 20
"""Characters of text read at a time."""
TIME_NAMES = frozenset(
    {"time", "t", "step", "position", "pos", "index", "timestamp", "seconds", "row", "unnamed: 0"}
)
"""Column names that usually order or count rows rather than measure anything."""
MAX_NAME = 1000
"""The longest channel name a model file holds."""


@dataclass
class SeriesOptions:
    """How to read a series table: its id column and the channel columns (None: every
    column but the id)."""

    id_column: str = "id"
    columns: list[str] | None = None
    from_model: bool = False
    """The columns are a model's channels (messages say so), not ``--series-columns``."""


@dataclass
class SeriesChunk:
    """Consecutive whole series: ids, their values (steps, channels) and offsets."""

    ids: list[str]
    values: np.ndarray
    offsets: np.ndarray
    lines: list[int] = field(default_factory=list)
    """The line of each series' first row."""


@dataclass
class _Series:
    id: str
    line: int
    values: np.ndarray
    problem: tuple[int, int, str, int] | None
    """(step index, channel index, cell text, line) of the first missing or invalid value."""


class SeriesReader:
    """Streams the series of a table, chunk by chunk, with every check that names a line.

    ``chunks()`` yields :class:`SeriesChunk` objects of whole series (at least
    ``chunk_rows`` rows each, but the last); ``channels`` is known once the header is read
    (at construction, so that a wrong column fails before any work).
    """

    def __init__(
        self, table: TableText, options: SeriesOptions, on_invalid: str = "error", hint: bool = True
    ) -> None:
        self.table = table
        self.name = table.name
        self.on_invalid = on_invalid
        self.hint = hint  # False: the command has no --on-invalid to suggest
        self.skipped = 0
        self.masked = 0
        self.skipped_ids: list[str] = []
        header_line = table.first_line
        self.delimiter = pick_delimiter(self.name, header_line)
        header = [h.strip() for h in next(csv.reader([header_line], delimiter=self.delimiter))]
        self.header = header
        self._check_header(header, options.id_column)
        self.id_index = header.index(options.id_column)
        columns = (
            self._all_channels(header, options.id_column)
            if options.columns is None
            else self._named_channels(header, options)
        )
        long = next((c for c in columns if len(c) > MAX_NAME), None)
        if long is not None:
            raise DataError(
                f"{self.name}: column name {shorten(long)!r} is longer than {MAX_NAME} characters"
            )
        self.channels = columns
        self.channel_index = [header.index(c) for c in columns]

    def _check_header(self, header: list[str], id_column: str) -> None:
        """A header row of distinct column names, the id column among them."""
        if all(_is_number(h) for h in header):
            raise DataError(
                f"{self.name}: the first line holds numbers, not column names: a "
                "series table starts with a header row (the id column's name, then "
                "the channels')"
            )
        if len(set(header)) != len(header):
            dup = sorted({h for h in header if header.count(h) > 1})
            raise DataError(
                f"{self.name}: duplicate column name(s) in the header: {', '.join(dup)}"
            )
        if id_column not in header:
            raise DataError(
                f"{self.name}: no id column {id_column!r} in the series "
                f"table; columns are: {', '.join(map(repr, header))} (name it "
                "with --id-column)"
            )

    def _all_channels(self, header: list[str], id_column: str) -> list[str]:
        """Every column but the id is a channel (none named)."""
        columns = [h for h in header if h != id_column]
        if not columns:
            raise DataError(
                f"{self.name}: the series table has no column besides the id column {id_column!r}"
            )
        if "" in columns:
            raise DataError(
                f"{self.name}: column {header.index('') + 1} of the header has "
                "no name (a row index written by pandas' to_csv? write the "
                "table with index=False, or name the channels with "
                "--series-columns)"
            )
        ordering = [c for c in columns if c.lower() in TIME_NAMES]
        if ordering:
            log.warning(
                "%s: column %r is read as a channel; if it only orders or counts "
                "the rows, choose the channels with --series-columns",
                self.name,
                ordering[0],
            )
        return columns

    def _named_channels(self, header: list[str], options: SeriesOptions) -> list[str]:
        """The channels named (--series-columns, or a model's), each in the header."""
        assert options.columns is not None
        columns = list(options.columns)
        missing = [c for c in columns if c not in header]
        if missing:
            what = (
                "a channel the model reads" if options.from_model else "named by --series-columns"
            )
            raise DataError(
                f"{self.name}: no column {missing[0]!r} in the series table "
                f"({what}); columns are: {', '.join(map(repr, header))}"
            )
        if options.id_column in columns:
            raise UsageError(f"the id column {options.id_column!r} cannot be a channel")
        return columns

    # ------------------------------------------------------------------ parsing

    def _rows(self, lines: list[str], numbers: np.ndarray) -> list[list[str]]:
        d = self.delimiter
        rows = [
            line.split(d) if '"' not in line else _csv_row(line, d, self.name, int(n))
            for line, n in zip(lines, numbers, strict=True)
        ]
        width = len(self.header)
        for row, n in zip(rows, numbers, strict=True):
            if len(row) != width:
                delim = "TAB" if d == "\t" else repr(d)
                raise DataError(
                    f"{self.name}: line {n}: {len(row)} field(s), the header has "
                    f"{width} (delimiter {delim})"
                )
        return rows

    def _fast(self, lines: list[str]) -> tuple[list[str], np.ndarray] | None:
        """Ids and values of clean lines (no quotes, the header's field count, every value
        a finite number) at C speed; None sends the block to :meth:`_general`, which finds
        and names whatever is wrong."""
        d, width = self.delimiter, len(self.header)
        if '"' in "".join(lines):
            return None
        if self.id_index == 0:
            ids = [line.split(d, 1)[0].strip() for line in lines]
        else:
            k = self.id_index
            try:
                ids = [line.split(d, k + 1)[k].strip() for line in lines]
            except IndexError:
                return None
        if not all(ids) or set(map(_count(d), lines)) != {width - 1}:
            return None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                values = np.loadtxt(
                    lines,
                    delimiter=d,
                    usecols=self.channel_index,
                    dtype=np.float64,
                    comments=None,
                    ndmin=2,
                )
        except ValueError:
            return None
        if values.shape != (len(lines), len(self.channels)):
            return None
        with np.errstate(over="ignore"):
            values32 = values.astype(np.float32)
        if not np.isfinite(values32).all():
            return None
        return ids, values32

    def _general(
        self, lines: list[str], numbers: np.ndarray
    ) -> tuple[list[str], np.ndarray, list[tuple[str, ...]]]:
        """Ids, values (NaN for a missing value, inf for text that is no number) and the
        cells by column, with an error for a line of the wrong shape or an empty id."""
        rows = self._rows(lines, numbers)
        again = next(
            (i for i, row in enumerate(rows) if [c.strip() for c in row] == self.header), None
        )
        if again is not None:
            raise DataError(
                f"{self.name}: line {numbers[again]}: the header row again (tables "
                "joined with their headers? keep the first header only)"
            )
        columns = list(zip(*rows, strict=True))
        ids = [x.strip() for x in columns[self.id_index]]
        empty = next((i for i, x in enumerate(ids) if not x), None)
        if empty is not None:
            raise DataError(
                f"{self.name}: line {numbers[empty]}: empty id in column "
                f"{self.header[self.id_index]!r}"
            )
        values = np.empty((len(rows), len(self.channels)), dtype=np.float32)
        for j, k in enumerate(self.channel_index):
            values[:, j] = _numbers(columns[k])
        return ids, values, columns

    def _parse(
        self, lines: list[str], numbers: np.ndarray, final: bool
    ) -> tuple[list[_Series], int]:
        """Whole series of the block, and where its unfinished last series starts (its
        lines go to the next block; ``final``: there is none)."""
        fast = self._fast(lines)
        columns: list[tuple[str, ...]] = []
        if fast is not None:
            ids, values = fast
        else:
            ids, values, columns = self._general(lines, numbers)
        starts = [0, *(i for i in range(1, len(ids)) if ids[i] != ids[i - 1])]
        rest = len(ids) if final else starts.pop()
        out = []
        bounds = [*starts, rest]
        for a, b in zip(bounds, bounds[1:], strict=False):
            block = values[a:b]
            problem = None
            if fast is None:
                bad = ~np.isfinite(block)
                if bad.any():
                    step, channel = map(int, np.argwhere(bad)[0])
                    text = columns[self.channel_index[channel]][a + step]
                    problem = (step, channel, text, int(numbers[a + step]))
            out.append(_Series(ids[a], int(numbers[a]), block, problem))
        return out, rest

    def _series(self) -> Iterator[_Series]:
        seen: dict[str, int] = {}
        for s in self._parsed():  # runs of one id are maximal: a repeat is a resumed series
            if s.id in seen:
                raise DataError(
                    f"{self.name}: line {s.line}: rows of series {shorten(s.id)!r} resume "
                    f"after other series (its first rows are at line {seen[s.id]}); the rows "
                    "of each series must be together, in time order (sort by id, keeping "
                    "the time order)"
                )
            seen[s.id] = s.line
            if s.problem is not None:
                kept = self._invalid(s)
                if kept is None:
                    continue
                s = kept
            yield s

    def _parsed(self) -> Iterator[_Series]:
        """Series in file order: lines are read in blocks and parsed BLOCK_ROWS or more at
        a time; the last, maybe unfinished series of a block is parsed again with the next
        (a block that is one series grows until it ends)."""
        target = BLOCK_ROWS
        buf: list[str] = []
        numbers = np.zeros(0, dtype=np.int64)
        for first, lines in self.table.lines.line_blocks(BLOCK_CHARS):
            found = np.arange(first, first + len(lines), dtype=np.int64)
            if not all(lines) or any(map(str.isspace, lines)):  # blank lines do not count
                keep = [i for i, line in enumerate(lines) if line and not line.isspace()]
                lines, found = [lines[i] for i in keep], found[keep]
            buf += lines
            numbers = np.concatenate([numbers, found])
            if len(buf) >= target:
                done, rest = self._parse(buf, numbers, final=False)
                if not done:  # one series fills the block: read on (geometric growth)
                    target *= 2
                    continue
                yield from done
                buf, numbers = buf[rest:], numbers[rest:]
                target = max(BLOCK_ROWS, 2 * len(buf))
        if buf:
            done, _ = self._parse(buf, numbers, final=True)
            yield from done

    def _invalid(self, s: _Series) -> _Series | None:
        step, channel, text, line = s.problem  # type: ignore[misc]
        shown = repr(shorten(text.strip(), 20))
        number = _plain_number(text)
        if text.strip().lower() in MISSING or (number is not None and math.isnan(number)):
            kind = "missing value"
        elif number is None:
            kind = f"not a number: {shown}"
        elif math.isinf(number):
            kind = f"not a finite number: {shown}"
        else:
            kind = f"{shown} is beyond the float32 range (+-3.4e38)"
        if self.on_invalid == "error":
            hint = (
                (
                    "use --on-invalid mask to read missing and invalid values as the "
                    "channel's mean, or skip to drop the series"
                )
                if self.hint
                else "correct or remove it"
            )
            if number is None and any(c.isalpha() for c in text):
                hint = (
                    "the table is read as a numeric series, one row per time step: a "
                    "column of sequences is read with --sequence-column, labels belong in "
                    "the labels table, --series-columns leaves other columns out; " + hint
                )
            raise DataError(
                f"{self.name}: line {line}, column {self.channels[channel]!r}: "
                f"series {shorten(s.id)!r}, step {step + 1}: {kind} ({hint})"
            )
        if self.on_invalid == "skip":
            self.skipped += 1
            self.skipped_ids.append(s.id)
            return None
        bad = ~np.isfinite(s.values)
        self.masked += int(bad.sum())
        s.values[bad] = np.nan
        return _Series(s.id, s.line, s.values, None)

    def chunks(self, chunk_rows: int = BLOCK_ROWS) -> Iterator[SeriesChunk]:
        try:
            ids: list[str] = []
            parts: list[np.ndarray] = []
            starts: list[int] = []
            rows = 0
            for s in self._series():
                ids.append(s.id)
                parts.append(s.values)
                starts.append(s.line)
                rows += len(s.values)
                if rows >= chunk_rows:
                    yield _chunk(ids, parts, starts, len(self.channels))
                    ids, parts, starts, rows = [], [], [], 0
            if ids:
                yield _chunk(ids, parts, starts, len(self.channels))
        finally:
            self.table.close()
        if self.skipped:
            log.warning(
                "%s: skipped %d series with missing or invalid values", self.name, self.skipped
            )
        if self.masked:
            log.warning(
                "%s: masked %d missing or invalid value(s) (read as the channel's mean)",
                self.name,
                self.masked,
            )


def _chunk(ids: list[str], parts: list[np.ndarray], lines: list[int], width: int) -> SeriesChunk:
    lengths = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    values = np.concatenate(parts) if parts else np.zeros((0, width), np.float32)
    return SeriesChunk(ids, values, offsets, lines)


def _count(delimiter: str) -> Callable[[str], int]:
    return operator.methodcaller("count", delimiter)


def _csv_row(line: str, delimiter: str, name: str, number: int) -> list[str]:
    if line.count('"') % 2:
        raise DataError(
            f"{name}: line {number}: a quoted field is left open (an odd number of '\"')"
        )
    try:
        return next(csv.reader([line], delimiter=delimiter))
    except (csv.Error, StopIteration) as exc:
        raise DataError(f"{name}: line {number}: {exc}") from None


def _plain_number(text: str) -> float | None:
    """The number a cell writes in plain ASCII digits (no '_' separators, no other
    scripts' digits, which Python's float() would take), or None."""
    if not text.isascii() or "_" in text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _is_number(text: str) -> bool:
    return _plain_number(text) is not None


def _numbers(cells: tuple[str, ...]) -> np.ndarray:
    """float32 values of a column's cells; NaN for missing values, +-inf for text that is
    no number and for numbers beyond float32 (the caller tells them apart by the text)."""
    joined = "".join(cells)
    with np.errstate(over="ignore"):
        if joined.isascii() and "_" not in joined:
            try:
                return np.array(cells, dtype=np.float64).astype(np.float32)
            except ValueError:
                pass
        out = np.empty(len(cells), dtype=np.float32)
        for i, cell in enumerate(cells):
            number = _plain_number(cell)
            if number is None:
                out[i] = np.nan if cell.strip().lower() in MISSING else np.inf
            else:
                out[i] = number
    return out
