"""Numeric series input: a table of numbers per time step instead of a FASTA.

A series table is long: one row per time step, an id column naming the series and one
column per channel (a physiological signal, a sensor axis, a coverage track)::

    id      dim_1   dim_2
    walk_1  0.08    0.39
    walk_1  0.11    0.42
    run_7   1.95    -0.2

The rows of one series are contiguous and in time order; series may differ in length.
Labels come from a separate table joined by id, as for sequences. Channels are the
columns the user names (``--series-columns``), else every column but the id.

Values are stored as float32, one row per time step (``SequenceSet.codes`` of shape
(steps, channels)), and normalised per channel inside the model's input layer
(:class:`SeriesInput`) with the mean and standard deviation of the training records,
which the model file keeps: predict, explain and export take raw values. A missing value
(an empty cell, NA, NaN, null) or a cell that is no finite number is an error naming line,
column and record, unless ``--on-invalid`` skips the series or masks the value (read as
the channel's mean).
"""

from __future__ import annotations

import csv
import logging
import math
import operator
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import DataError, UsageError, shorten
from .io.sniff import TableText
from .io.tables import pick_delimiter

log = logging.getLogger("bioseqnn")

KIND = "series"
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


@dataclass(frozen=True)
class SeriesSpec:
    """What a series model reads: its channels (table columns) and their normalisation.

    ``mean`` and ``std`` are empty until :func:`fit_normalisation` sets them from the
    training records.
    """

    channels: tuple[str, ...]
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    id_column: str = "id"

    name = KIND  # what messages call the input kind, where an alphabet would be named

    @property
    def size(self) -> int:
        return len(self.channels)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "id_column": self.id_column,
            "channels": list(self.channels),
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SeriesSpec:
        return cls(
            tuple(d["channels"]),
            tuple(float(x) for x in d["mean"]),
            tuple(float(x) for x in d["std"]),
            str(d.get("id_column", "id")),
        )

    def describe(self) -> str:
        names = ", ".join(self.channels[:8]) + (", ..." if self.size > 8 else "")
        return f"numeric series, {self.size} channel{'s' if self.size != 1 else ''} ({names})"


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
        if options.id_column not in header:
            raise DataError(
                f"{self.name}: no id column {options.id_column!r} in the series "
                f"table; columns are: {', '.join(map(repr, header))} (name it "
                "with --id-column)"
            )
        self.id_index = header.index(options.id_column)
        if options.columns is None:
            columns = [h for h in header if h != options.id_column]
            if not columns:
                raise DataError(
                    f"{self.name}: the series table has no column besides the id "
                    f"column {options.id_column!r}"
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
        else:
            columns = list(options.columns)
            missing = [c for c in columns if c not in header]
            if missing:
                what = (
                    "a channel the model reads"
                    if options.from_model
                    else "named by --series-columns"
                )
                raise DataError(
                    f"{self.name}: no column {missing[0]!r} in the series table "
                    f"({what}); columns are: {', '.join(map(repr, header))}"
                )
            if options.id_column in columns:
                raise UsageError(f"the id column {options.id_column!r} cannot be a channel")
        long = next((c for c in columns if len(c) > MAX_NAME), None)
        if long is not None:
            raise DataError(
                f"{self.name}: column name {shorten(long)!r} is longer than {MAX_NAME} characters"
            )
        self.channels = columns
        self.channel_index = [header.index(c) for c in columns]

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


# --------------------------------------------------------------------------- normalisation


def fit_normalisation(values: np.ndarray, spec: SeriesSpec, source: str) -> SeriesSpec:
    """The spec with each channel's mean and standard deviation over ``values`` (every
    step of the training records; missing values left out)."""
    with np.errstate(invalid="ignore"):
        present = ~np.isnan(values)
        counts = present.sum(axis=0)
        empty = [spec.channels[j] for j in np.flatnonzero(counts == 0)]
        if empty:
            raise DataError(f"{source}: channel {empty[0]!r} has no value in the training records")
        filled = np.where(present, values, 0).astype(np.float64)
        mean = filled.sum(axis=0) / counts
        deviation = np.where(present, values - mean, 0).astype(np.float64)
        std = np.sqrt((deviation * deviation).sum(axis=0) / counts)
    flat = [spec.channels[j] for j in np.flatnonzero(~(std > 1e-12))]
    if flat:
        log.warning(
            "%s: channel(s) %s are constant in the training records (read as "
            "float32, about 7 significant digits); they are centred but not scaled",
            source,
            ", ".join(map(repr, flat[:5])),
        )
    # float32 keeps about 7 significant digits: a spread far below the offset is rounding
    coarse = [spec.channels[j] for j in np.flatnonzero((std > 1e-12) & (std < 1e-5 * np.abs(mean)))]
    if coarse:
        log.warning(
            "%s: channel(s) %s vary by less than 1e-5 of their mean; values are read "
            "as float32 (about 7 significant digits), so subtract the offset in the "
            "table first",
            source,
            ", ".join(map(repr, coarse[:5])),
        )
    std = np.where(std > 1e-12, std, 1.0)
    return SeriesSpec(
        spec.channels, tuple(float(x) for x in mean), tuple(float(x) for x in std), spec.id_column
    )


def input_fields(spec: Any) -> dict[str, Any]:
    """The model file's fields that say what it reads: ``alphabet`` and ``encoding`` for
    sequences (and ``structure`` when they are folded), ``input`` and ``encoding`` for a
    numeric series."""
    from .structure import StructureInput

    if isinstance(spec, StructureInput):
        fields = input_fields(spec.alphabet)
        fields["structure"] = spec.to_dict()
        fields["encoding"]["structure"] = (
            "ViennaRNA minimum free energy pairing state per "
            "position (unpaired, paired downstream, paired "
            "upstream)"
            + (" and pairing probability" if spec.kind == "bpp" else "")
            + ", after the residue channels"
        )
        return fields
    if isinstance(spec, SeriesSpec):
        return {
            "input": spec.to_dict(),
            "encoding": {
                "kind": "numeric series",
                "normalisation": "per channel, (value - mean) / std over the "
                "training records; a missing value reads as 0",
            },
        }
    return {
        "alphabet": spec.name,
        "encoding": {
            "kind": "one-hot",
            "channels": spec.letters,
            "ambiguity": "fractional IUPAC (N = 1/4 per base, X = 1/20 per residue)",
        },
    }


def series_options(bundle: Any, id_column: str | None) -> SeriesOptions | None:
    """How a command reads a model's series table when ``--id-column`` names its id column
    (None: the model's own); a sequence model has no such column to name."""
    if id_column is None:
        return None
    if bundle.series is None:
        raise UsageError(
            "--id-column names the id column of a numeric series table; this model reads sequences"
        )
    return SeriesOptions(id_column)
