"""Joining labels to sequences by id (or reading sequences from a column of the labels
table), with one report of what did not join.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, overload, runtime_checkable

import numpy as np

from ..alphabets import (
    Alphabet,
)
from ..errors import BioseqnnError, DataError, UsageError, shorten
from ..io.fasta import Record
from ..io.files import display_name
from ..io.series import SeriesOptions
from ..io.sniff import read_sequences
from ..io.tables import Table, read_table
from ..tasks import CONTROL, MAX_NAME
from ..variants.series import SeriesSpec
from .reading import read_encoded, read_inputs
from .sets import SequenceSet

log = logging.getLogger("bioseqnn")


# --------------------------------------------------------------------------- labels


@dataclass
class LabelSource:
    """Where the labels come from and which columns to use."""

    table: str | os.PathLike[str]
    id_column: str = "id"
    targets: list[str] | None = None
    sequence_column: str | None = None
    missing_hint: str = ""
    """Ends the error for a missing target column (e.g. how to name another)."""


def target_names(targets: Any) -> list[str] | None:
    """``targets`` as the library takes them: a list of column names, one name alone (a
    string is not split into letters), or None (every column but the id)."""
    if targets is None or isinstance(targets, list):
        return targets
    if isinstance(targets, str):
        return [targets]
    if isinstance(targets, tuple):
        return list(targets)
    raise UsageError(f"targets: expected a column name or a list of them; got {targets!r}")


def _few(items: list[str], n: int = 3) -> str:
    """'(a, b, c, ...)': the first ``n`` items."""
    return (
        "("
        + ", ".join(repr(shorten(x, 30)) for x in items[:n])
        + (", ...)" if len(items) > n else ")")
    )


def _lines(items: list[str], lines: dict[str, list[int]], n: int = 3) -> str:
    """', lines 3, 9': where the first ``n`` items are, when known."""
    found = sorted(line for x in items[:n] for line in lines.get(x, []))[:5]
    return f", line{'s' if len(found) > 1 else ''} {', '.join(map(str, found))}" if found else ""


def duplicates(ids: list[str]) -> list[str]:
    """The ids that occur more than once, each once, in the order of their second
    occurrence."""
    if len(set(ids)) == len(ids):
        return []
    seen: set[str] = set()
    dups: dict[str, None] = {}
    for x in ids:
        if x in seen:
            dups[x] = None
        seen.add(x)
    return list(dups)


def _record_lines(
    fasta: str | os.PathLike[str] | RecordSource | None, wanted: set[str]
) -> dict[str, list[int]]:
    """Header lines of the records named ``wanted`` (re-reads the file; not for stdin)."""
    found: dict[str, list[int]] = {}
    if isinstance(fasta, RecordSource):
        return fasta.record_lines(wanted)
    if fasta is None or str(fasta) == "-" or not wanted:
        return found
    with contextlib.suppress(BioseqnnError, OSError):
        for rec in read_sequences(fasta):
            if rec.id in wanted:
                found.setdefault(rec.id, []).append(rec.line)
    return found


def target_columns(table: Table, src: LabelSource) -> list[str]:
    excluded = {src.id_column} | ({src.sequence_column} if src.sequence_column else set())
    targets = src.targets or [h for h in table.header if h not in excluded]
    twice = sorted({t for t in targets if targets.count(t) > 1})
    if twice:
        raise UsageError(f"--target {', '.join(map(repr, twice))} given more than once")
    for name in src.targets or []:
        if name in excluded:
            what = "id" if name == src.id_column else "sequence"
            raise UsageError(
                f"--target {name!r} is the {what} column; give a column of labels (or name "
                f"another {what} column with --{what}-column)"
            )
    for name in targets:
        if not name:
            k = table.header.index(name) + 1
            raise DataError(
                f"{table.source}: line {table.header_line}: column {k} has no name (a "
                "row index written by pandas? write the table with index=False); name "
                "it, remove it, or choose the label columns with --target"
            )
        if len(name) > MAX_NAME:
            raise DataError(
                f"{table.source}: line {table.header_line}: a column name of {len(name)} "
                "characters; target names become columns of the predictions: at most "
                f"{MAX_NAME}"
            )
        if CONTROL.search(name):
            raise DataError(
                f"{table.source}: line {table.header_line}: column {name!r} holds "
                "a control character; target names become columns of the "
                "predictions: remove it"
            )
    if not targets:
        raise DataError(
            f"{table.source}: no target column besides {src.id_column!r}; "
            "the table needs an id column and at least one label column"
        )
    for t in targets:
        table.column(t, src.missing_hint)
    return targets


@dataclass
class LabeledData:
    data: SequenceSet
    label_values: list[list[str]]
    where: Sequence[str]
    targets: list[str]
    source: str = ""
    """The labels table, for messages."""


class RowPlaces(Sequence[str]):
    """Where each labelled record's row is (\"labels.csv: line 7 (id 'x')\"), each made
    when a message asks for it: a table of millions of rows needs no string per row.
    ``line(k)``: the line of record ``k``'s row in ``source``."""

    def __init__(self, source: str, ids: list[str], line: Callable[[int], int]) -> None:
        self._source, self._ids, self._line = source, ids, line

    def __len__(self) -> int:
        return len(self._ids)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        k = range(len(self._ids))[i]  # a negative index counts from the end
        return f"{self._source}: line {self._line(k)} (id {shorten(self._ids[k])!r})"


@runtime_checkable
class RecordSource(Protocol):
    """Records made by bioseqnn itself rather than read from a FASTA (genome intervals,
    bioseqnn/variants/intervals.py): iterable, with a name for messages and the lines of their
    own file."""

    name: str

    def __iter__(self) -> Iterator[Record]: ...

    def record_lines(self, ids: set[str]) -> dict[str, list[int]]: ...

    def left_out(self) -> set[str]:
        """Ids of records left out on purpose: labels for them are no mismatch."""
        ...


def load_labeled(
    fasta: str | os.PathLike[str] | RecordSource | None,
    src: LabelSource,
    alphabet: str | Alphabet | SeriesSpec | None,
    on_invalid: str = "error",
    allow_unmatched: bool = False,
    series: SeriesOptions | None = None,
) -> tuple[LabeledData, Alphabet | SeriesSpec]:
    """Read sequences (or numeric series: ``fasta`` may be a series table) and labels and
    join them by id (in input order).

    Every join problem (ids only on one side, duplicates, empty labels) is reported
    in one message.
    """
    table = read_table(src.table)
    skipped: list[str] = []  # records --on-invalid skip dropped: their labels go too
    id_col = table.column(src.id_column)
    targets = target_columns(table, src)
    t_cols = [table.column(t) for t in targets]
    tname = table.source
    data, alpha, seq_source, series_lines = _read_sequences_of(
        fasta, src, table, alphabet, on_invalid, skipped, series
    )

    label_ids = [row[id_col] for row in table.rows]
    row_of = {rid: i for i, rid in enumerate(label_ids)}
    seq_set = set(data.ids)
    no_label = [x for x in data.ids if x not in row_of]
    dropped = set(skipped) | (fasta.left_out() if isinstance(fasta, RecordSource) else set())
    keep = [i for i, x in enumerate(data.ids) if x in row_of]
    row_index = [row_of[data.ids[i]] for i in keep]
    if len(t_cols) == 1:
        (c,) = t_cols
        values = [[table.rows[i][c]] for i in row_index]
    else:
        values = [[table.rows[i][c] for c in t_cols] for i in row_index]
    join = Join(
        dup_seq=duplicates(data.ids),
        dup_lab=duplicates(label_ids),
        # each id once, however many rows name it (the duplicates are reported apart)
        no_label=list(dict.fromkeys(no_label)),
        no_seq=list(dict.fromkeys(x for x in label_ids if x not in seq_set and x not in dropped)),
        empty=[data.ids[i] for i, cells in zip(keep, values, strict=True) if not all(cells)],
    )
    if join.any():
        lines = _sequence_lines(
            fasta, src, data, series_lines, join, _label_lines(table, label_ids)
        )
        report_join(join, seq_source, table.source, label_ids, lines, allow_unmatched)
    if not keep:
        raise DataError(f"no id is shared by {seq_source} and {tname}")
    if len(keep) < len(data):
        data = data.subset(np.asarray(keep))
    where = RowPlaces(tname, data.ids, lambda k: table.line_of(row_index[k]))
    return LabeledData(data, values, where, targets, tname), alpha


def _read_sequences_of(
    fasta: str | os.PathLike[str] | RecordSource | None,
    src: LabelSource,
    table: Table,
    alphabet: str | Alphabet | SeriesSpec | None,
    on_invalid: str,
    skipped: list[str],
    series: SeriesOptions | None,
) -> tuple[SequenceSet, Alphabet | SeriesSpec, str, list[int] | None]:
    """The sequences to label: from the labels table's sequence column, from records
    bioseqnn made, or from a FASTA or series table; (set, alphabet, name for messages,
    a series table's row lines)."""
    if src.sequence_column is not None:
        if fasta is not None:
            raise UsageError("give either a FASTA file or --sequence-column, not both")
        if isinstance(alphabet, SeriesSpec):
            raise UsageError(
                "--sequence-column reads sequences; this model reads numeric "
                "series (give their table, then the labels table)"
            )
        seq_source = f"{table.source} column {src.sequence_column!r}"
        data, alpha, _ = read_encoded(
            _column_records(table, src), seq_source, alphabet, on_invalid, skipped
        )
        return data, alpha, seq_source, None
    if fasta is None:
        raise UsageError("a FASTA file is required unless --sequence-column is given")
    if isinstance(fasta, RecordSource):
        if isinstance(alphabet, SeriesSpec):
            raise UsageError("this model reads numeric series, not genome intervals")
        data, alpha, _ = read_encoded(fasta, fasta.name, alphabet, on_invalid, skipped)
        return data, alpha, fasta.name, None
    data, read_as, series_lines = read_inputs(fasta, alphabet, on_invalid, skipped, series)
    return data, read_as, display_name(fasta), series_lines


def _column_records(table: Table, src: LabelSource) -> list[Record]:
    """The records of a labels table's sequence column."""
    assert src.sequence_column is not None
    id_col = table.column(src.id_column)
    s_col = table.column(src.sequence_column)
    records = []
    for i, row in enumerate(table.rows):
        seq = row[s_col].replace(" ", "")
        if not seq:
            raise DataError(
                f"{table.source}: line {table.line_of(i)}: empty sequence for id {row[id_col]!r}"
            )
        if not seq.isascii():
            raise DataError(
                f"{table.source}: line {table.line_of(i)}: non-ASCII sequence "
                f"for id {row[id_col]!r}"
            )
        records.append(Record(row[id_col], seq.encode("ascii")))
    return records


@dataclass
class Join:
    """What does not pair up between sequences and labels."""

    dup_seq: list[str]
    dup_lab: list[str]
    no_label: list[str]
    no_seq: list[str]
    empty: list[str]

    def any(self) -> bool:
        return bool(self.dup_seq or self.dup_lab or self.no_label or self.no_seq or self.empty)


def _label_lines(table: Table, label_ids: list[str]) -> dict[str, list[int]]:
    lab_lines: dict[str, list[int]] = {}
    for i, rid in enumerate(label_ids):
        lab_lines.setdefault(rid, []).append(table.line_of(i))
    return lab_lines


def _sequence_lines(
    fasta: str | os.PathLike[str] | RecordSource | None,
    src: LabelSource,
    data: SequenceSet,
    series_lines: list[int] | None,
    join: Join,
    lab_lines: dict[str, list[int]],
) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """(lines of the sequences the message names, lines of the labels): only found on
    the way to an error."""
    wanted = set(join.dup_seq[:3]) | set(join.no_label[:3])
    if src.sequence_column is not None:
        return lab_lines, lab_lines
    if series_lines is not None:  # a series table: its rows were counted
        seq_lines: dict[str, list[int]] = {}
        for i, x in enumerate(data.ids):
            if x in wanted:
                seq_lines.setdefault(x, []).append(series_lines[i])
        return seq_lines, lab_lines
    return _record_lines(fasta, wanted), lab_lines


def report_join(
    join: Join,
    seq_source: str,
    tname: str,
    label_ids: list[str],
    lines: tuple[dict[str, list[int]], dict[str, list[int]]],
    allow_unmatched: bool,
) -> None:
    """Every join problem of sequences (``seq_source``) and labels (``tname``) in one
    DataError, with the lines of the ids where known (unmatched ids only warned of with
    ``allow_unmatched``): the one join report of every task."""
    seq_lines, lab_lines = lines
    problems: list[str] = []
    unmatched: list[str] = []
    if join.dup_seq:
        problems.append(
            f"{len(join.dup_seq)} duplicate id(s) in {seq_source} "
            f"{_few(join.dup_seq)}{_lines(join.dup_seq, seq_lines)}"
        )
    if join.dup_lab:
        long = len(label_ids) >= 2 * len(set(label_ids))  # most ids on several rows
        problems.append(
            f"{len(join.dup_lab)} duplicate id(s) in {tname} "
            f"{_few(join.dup_lab)}{_lines(join.dup_lab, lab_lines)}"
            + (
                " (rows of time steps? a numeric series table goes first, then the labels)"
                if long
                else ""
            )
        )
    if join.empty:
        problems.append(
            f"{len(join.empty)} record(s) with an empty label "
            f"{_few(join.empty)} in {tname}{_lines(join.empty, lab_lines)}"
        )
    if join.no_label:
        unmatched.append(
            f"{len(join.no_label)} id(s) in {seq_source} missing from {tname} "
            f"{_few(join.no_label)}{_lines(join.no_label, seq_lines)}"
        )
    if join.no_seq:
        unmatched.append(
            f"{len(join.no_seq)} id(s) in {tname} missing from {seq_source} "
            f"{_few(join.no_seq)}{_lines(join.no_seq, lab_lines)}"
        )
    if allow_unmatched:
        for msg in unmatched:
            log.warning("ignoring %s", msg)
    else:
        problems.extend(unmatched)
    if problems:
        hint = (
            " (--ignore-unmatched drops records without a partner)"
            if unmatched and not allow_unmatched
            else ""
        )
        raise DataError("cannot join sequences and labels: " + "; ".join(problems) + hint)
