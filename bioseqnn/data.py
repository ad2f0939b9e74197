"""Datasets: compact storage (uint8 codes), joining labels, splits and bucketed batches."""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from .alphabets import (
    Alphabet,
    byte_histogram,
    count_kinds,
    detect_alphabet,
    get_alphabet,
    looks_like,
)
from .encoding import Encoder, InvalidSymbol, pad_codes
from .errors import BioseqnnError, DataError, UsageError, shorten
from .io.fasta import FastaBlock, Record, RecordStream
from .io.files import display_name
from .io.series import SeriesOptions, SeriesReader
from .io.sniff import TableText, read_input, read_sequences
from .io.tables import Table, read_table
from .series import SeriesSpec
from .tasks import TaskSpec, detect_task

log = logging.getLogger("bioseqnn")

CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
"""Control characters, refused in names that are written as columns or cells."""
CHUNK_RECORDS = 4096
SAMPLE_RECORDS = 2000
SUBSET_BLOCK = 1 << 20
"""Residues copied per step by :meth:`SequenceSet.subset` (bounds its temporaries)."""


@dataclass
class SequenceSet:
    """Sequences as one flat uint8 code array plus offsets, with optional targets."""

    ids: list[str]
    codes: np.ndarray
    offsets: np.ndarray
    targets: np.ndarray | None = None
    """One row of targets per record (classes, 0/1 columns or scaled values)."""
    positions: np.ndarray | None = None
    """Per-position tasks: one int8 target per residue, aligned with ``codes`` (-1 = not
    scored). Flat like the codes, so a long record costs its own length, not the longest
    length times every record; :func:`position_batch` pads a batch's share."""
    _fingerprint: str | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def subset(self, index: np.ndarray) -> SequenceSet:
        index = np.asarray(index, dtype=np.int64)
        offsets = _offsets(self.lengths[index])
        codes = np.empty((int(offsets[-1]), *self.codes.shape[1:]), dtype=self.codes.dtype)
        self._gather(index, offsets, codes, self.codes)
        positions = None
        if self.positions is not None:
            positions = np.empty(int(offsets[-1]), dtype=self.positions.dtype)
            self._gather(index, offsets, positions, self.positions)
        return SequenceSet(
            [self.ids[i] for i in index],
            codes,
            offsets,
            None if self.targets is None else self.targets[index],
            positions,
        )

    def split(self, keep: np.ndarray, out: np.ndarray) -> tuple[SequenceSet, SequenceSet | None]:
        """``(self.subset(keep), self.subset(out))`` (None for an empty ``out``) without a
        second copy of the kept codes: they move to the front of this set's own array.

        ``keep`` must ascend. This set then holds ids, lengths and its fingerprint only
        (its codes are gone), so a training split needs ~1.1x the codes, not 2x.
        """
        keep = np.asarray(keep, dtype=np.int64)
        if len(keep) > 1 and not (np.diff(keep) > 0).all():
            raise ValueError("split: keep must be ascending")
        self._fingerprint = self.fingerprint()
        other = self.subset(out) if len(out) else None
        offsets = _offsets(self.lengths[keep])
        # every record moves left (or stays): a block never overwrites codes still to read
        self._gather(keep, offsets, self.codes, self.codes)
        positions = None
        if self.positions is not None:
            self._gather(keep, offsets, self.positions, self.positions)
            positions = self.positions[: int(offsets[-1])]
        kept = SequenceSet(
            [self.ids[i] for i in keep],
            self.codes[: int(offsets[-1])],
            offsets,
            None if self.targets is None else self.targets[keep],
            positions,
        )
        self.codes = np.zeros(0, dtype=np.uint8)
        self.positions = None
        return kept, other

    def _gather(
        self, index: np.ndarray, offsets: np.ndarray, into: np.ndarray, source: np.ndarray
    ) -> None:
        """Copy the residues (of ``source``: the codes, or the position targets) of records
        ``index`` to ``into`` at ``offsets``.

        The position of every residue (each record's start, shifted to its new place) is
        built in blocks, so the int64 positions (8 bytes per residue) never cover a whole
        large set (a 1 GB FASTA would need 8 GB of them at once).
        """
        lengths = np.diff(offsets)
        start = 0
        while start < len(index):
            end = int(np.searchsorted(offsets, offsets[start] + SUBSET_BLOCK, "right")) - 1
            end = min(max(end, start + 1), len(index))
            shift = np.repeat(
                self.offsets[index[start:end]] - offsets[start:end], lengths[start:end]
            )
            lo, hi = int(offsets[start]), int(offsets[end])
            into[lo:hi] = source[np.arange(lo, hi, dtype=np.int64) + shift]
            start = end

    def fingerprint(self) -> str:
        if self._fingerprint is not None:  # kept by split(), which gives the codes away
            return self._fingerprint
        h = hashlib.sha256()
        h.update("\n".join(self.ids).encode())
        h.update(self.offsets.tobytes())
        h.update(np.ascontiguousarray(self.codes).data)  # no copy (tobytes would double it)
        if self.targets is not None:
            h.update(np.ascontiguousarray(self.targets).tobytes())
        if self.positions is not None:
            h.update(np.ascontiguousarray(self.positions).data)
        return h.hexdigest()


def _offsets(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def choose_alphabet(sample: list[bytes], forced: str | None, source: str) -> Alphabet:
    if forced and forced != "auto":
        alphabet = get_alphabet(forced)
        log.info("alphabet: %s (forced)", alphabet.name)
        return alphabet
    guess = detect_alphabet(byte_histogram(sample))
    log.info(
        "alphabet: %s (detected from %s: %s; force with --alphabet)",
        guess.alphabet.name,
        source,
        guess.reason,
    )
    return guess.alphabet


class SequenceEncoder:
    """Encode a stream of records chunk by chunk into codes, detecting the alphabet first.

    ``alphabet`` is a name to force ('auto' or None detects it from the first records),
    or an :class:`Alphabet` fixed by a model.
    """

    def __init__(
        self, source: str, alphabet: str | Alphabet | None, on_invalid: str, hint: bool = True
    ) -> None:
        self.source = source
        self.hint = hint  # False: the command has no --on-invalid to suggest
        self.forced = alphabet
        self.on_invalid = on_invalid
        self.encoder: Encoder | None = None
        self.skipped = 0

    @property
    def alphabet(self) -> Alphabet:
        assert self.encoder is not None
        return self.encoder.alphabet

    @property
    def detected(self) -> bool:
        return not isinstance(self.forced, Alphabet) and self.forced in (None, "auto")

    def _start(self, records: list[Record]) -> Encoder:
        if isinstance(self.forced, Alphabet):
            return Encoder(self.forced, self.on_invalid)
        sample = records[:SAMPLE_RECORDS]
        alphabet = choose_alphabet([r.seq for r in sample], self.forced, self.source)
        if self.detected and not alphabet.is_nucleotide:
            nucleotide, protein = count_kinds(r.seq for r in sample)
            if nucleotide and protein:
                dna, prot = sample[nucleotide[0]], sample[protein[0]]
                log.warning(
                    "%s: the records seem to mix nucleotide and protein sequences: %d of the "
                    "first %d look like DNA/RNA (e.g. %r, line %d), others like protein (e.g. "
                    "%r, line %d); all are read as protein (choose with --alphabet)",
                    self.source,
                    len(nucleotide),
                    len(sample),
                    shorten(dna.id),
                    dna.line,
                    shorten(prot.id),
                    prot.line,
                )
        return Encoder(alphabet, self.on_invalid)

    def describe_invalid(self, bad: InvalidSymbol, record: Record) -> str:
        """One line naming file, line, record and position, with the likely cause."""
        assert self.encoder is not None
        alphabet = self.alphabet.name
        kind = looks_like(record.seq)
        if isinstance(self.forced, Alphabet):
            hint = "use --on-invalid skip or mask" if self.hint else "correct or remove it"
            if kind is not None and not self.alphabet.compatible_with(kind):
                hint = f"the record looks like {kind.name} but the model reads {alphabet}; " + hint
        else:
            hint = "use --on-invalid skip or mask, or --alphabet"
            if kind is not None and not self.alphabet.compatible_with(kind):
                how = "detected from the first records" if self.detected else "forced"
                hint = (
                    f"the record looks like {kind.name} but the alphabet is {alphabet} "
                    f"({how}): does the file mix {alphabet} and {kind.name}? " + hint
                )
        return self.encoder.describe_invalid(
            bad, record.id, self.source, record.location(bad.position, self.source), hint
        )

    def encode_chunk(self, records: list[Record]) -> tuple[list[Record], np.ndarray, np.ndarray]:
        """Encode records; returns the kept records, their codes and offsets."""
        keep, codes, offsets = self.encode_columns(_Columns.of(records))
        return (records if keep is None else [records[i] for i in keep]), codes, offsets

    def encode_columns(self, chunk: _Columns) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """Encode a chunk; returns the indices kept (None: all), their codes and offsets."""
        if self.encoder is None:
            self.encoder = self._start(chunk.sample(SAMPLE_RECORDS))
        codes, offsets, bad = self.encoder.encode(chunk.seqs)
        if bad and self.on_invalid == "error":
            raise DataError(self.describe_invalid(bad[0], chunk.record(bad[0].index)))
        if bad and self.on_invalid == "skip":
            drop = {b.index for b in bad}
            self.skipped += len(drop)
            keep = np.array([i for i in range(len(chunk)) if i not in drop], dtype=np.int64)
            sub = (
                SequenceSet(chunk.ids, codes, offsets).subset(keep)
                if len(keep)
                else SequenceSet([], np.zeros(0, np.uint8), np.zeros(1, np.int64))
            )
            return keep, sub.codes, sub.offsets
        return None, codes, offsets


class _Columns:
    """A chunk of records as columns (ids, sequences); whole :class:`Record` objects are
    made only when asked for (the alphabet sample, error messages)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.seqs: list[bytes] = []
        self._parts: list[tuple[int, FastaBlock | list[Record], int]] = []
        """(first index here, source, its index there) for each run of records."""

    @classmethod
    def of(cls, records: list[Record]) -> _Columns:
        chunk = cls()
        chunk.ids = [r.id for r in records]
        chunk.seqs = [r.seq for r in records]
        chunk._parts.append((0, records, 0))
        return chunk

    def __len__(self) -> int:
        return len(self.ids)

    def add_block(self, block: FastaBlock, start: int, end: int) -> None:
        self._parts.append((len(self.ids), block, start))
        self.ids += block.ids[start:end]
        self.seqs += block.seqs[start:end]

    def add_record(self, record: Record) -> None:
        last = self._parts[-1] if self._parts else None
        if last is None or not isinstance(last[1], list):
            self._parts.append((len(self.ids), [], 0))
        records = self._parts[-1][1]
        assert isinstance(records, list)
        records.append(record)
        self.ids.append(record.id)
        self.seqs.append(record.seq)

    def record(self, i: int) -> Record:
        first, source, there = self._parts[bisect.bisect_right([p[0] for p in self._parts], i) - 1]
        k = there + i - first
        return source[k] if isinstance(source, list) else source.record(k)

    def sample(self, n: int) -> list[Record]:
        return [self.record(i) for i in range(min(n, len(self)))]


def chunked(items: Iterable[Record], size: int = CHUNK_RECORDS) -> Iterator[list[Record]]:
    chunk: list[Record] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _column_chunks(records: Iterable[Record], size: int = CHUNK_RECORDS) -> Iterator[_Columns]:
    """``chunked`` as columns: the same chunks of ``size`` records (so that errors and the
    alphabet sample are the same), taking the block reader's columns as they come."""
    items: Iterable[FastaBlock | Record] = (
        records.batches() if isinstance(records, RecordStream) else records
    )
    chunk = _Columns()
    for item in items:
        if isinstance(item, FastaBlock):
            start = 0
            while start < len(item):
                end = min(len(item), start + size - len(chunk))
                chunk.add_block(item, start, end)
                start = end
                if len(chunk) >= size:
                    yield chunk
                    chunk = _Columns()
        else:
            chunk.add_record(item)
            if len(chunk) >= size:
                yield chunk
                chunk = _Columns()
    if len(chunk):
        yield chunk


def read_encoded(
    records: Iterable[Record],
    source: str,
    alphabet: str | Alphabet | None,
    on_invalid: str,
    skipped_ids: list[str] | None = None,
) -> tuple[SequenceSet, Alphabet, int]:
    """Read every record into a compact SequenceSet. Returns (set, alphabet, skipped);
    ``skipped_ids``, when given, receives the ids of the records skipped."""
    enc = SequenceEncoder(source, alphabet, on_invalid)
    ids: list[str] = []
    # One growing buffer rather than a list of parts joined at the end: the join would
    # hold every code twice; a large bytearray grows in place (realloc/mremap).
    code_buffer = bytearray()
    length_parts: list[np.ndarray] = []
    for chunk in _column_chunks(records):
        keep, codes, offsets = enc.encode_columns(chunk)
        ids.extend(chunk.ids if keep is None else [chunk.ids[i] for i in keep])
        if keep is not None and skipped_ids is not None:
            kept = set(int(i) for i in keep)
            skipped_ids.extend(rid for i, rid in enumerate(chunk.ids) if i not in kept)
        code_buffer += np.ascontiguousarray(codes, dtype=np.uint8).data
        length_parts.append(np.diff(offsets))
    if enc.encoder is None:
        raise DataError(f"{source}: no sequence records")
    lengths = np.concatenate(length_parts) if length_parts else np.zeros(0, np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    codes = np.frombuffer(code_buffer, dtype=np.uint8) if code_buffer else np.zeros(0, np.uint8)
    if enc.skipped:
        log.warning("%s: skipped %d record(s) with invalid symbols", source, enc.skipped)
    if not ids:
        raise DataError(f"{source}: every record was skipped for invalid symbols")
    return SequenceSet(ids, codes, offsets), enc.alphabet, enc.skipped


def read_series_set(
    table: TableText,
    options: SeriesOptions,
    on_invalid: str,
    skipped_ids: list[str] | None = None,
    hint: bool = True,
) -> tuple[SequenceSet, SeriesSpec, list[int]]:
    """Read a whole numeric series table into a SequenceSet of float32 values (steps,
    channels). Returns the set, the (unfitted) spec of its channels and the line of each
    series' first row."""
    reader = SeriesReader(table, options, on_invalid, hint=hint)
    whole = list(reader.chunks(chunk_rows=sys.maxsize))  # one chunk, or none at all
    if skipped_ids is not None:
        skipped_ids.extend(reader.skipped_ids)
    if not whole:
        raise DataError(
            f"{table.name}: no series"
            + (
                " left: every series was skipped for missing or invalid values"
                if reader.skipped
                else " (a header row but no data rows)"
            )
        )
    chunk = whole[0]
    spec = SeriesSpec(tuple(reader.channels), id_column=options.id_column)
    log.info("input: %s: %s, %d series", table.name, spec.describe(), len(chunk.ids))
    return SequenceSet(chunk.ids, chunk.values, chunk.offsets), spec, chunk.lines


def read_inputs(
    path: str | os.PathLike[str],
    alphabet: str | Alphabet | SeriesSpec | None,
    on_invalid: str,
    skipped_ids: list[str] | None = None,
    series: SeriesOptions | None = None,
) -> tuple[SequenceSet, Alphabet | SeriesSpec, list[int] | None]:
    """Read a FASTA/FASTQ of sequences or a numeric series table, whichever ``path``
    holds (a model's ``alphabet`` or SeriesSpec says which it must be). Returns the set,
    its alphabet or series spec, and for a series table the line of each series."""
    source = display_name(path)
    opened = open_as(path, alphabet if isinstance(alphabet, (Alphabet, SeriesSpec)) else None)
    if isinstance(opened, TableText):
        if isinstance(alphabet, str) and alphabet != "auto":
            opened.close()
            raise UsageError(
                f"--alphabet {alphabet} applies to sequences; {source} is a "
                "table (read as a numeric series, one row per time step)"
            )
        if isinstance(alphabet, SeriesSpec):  # a model's: its channels, by name
            options = SeriesOptions(
                series.id_column if series else alphabet.id_column,
                list(alphabet.channels),
                from_model=True,
            )
        else:
            options = series or SeriesOptions()
        data, spec, lines = read_series_set(opened, options, on_invalid, skipped_ids)
        return data, (alphabet if isinstance(alphabet, SeriesSpec) else spec), lines
    assert not isinstance(alphabet, SeriesSpec)  # open_as refused sequences for a series model
    data, alpha, _ = read_encoded(opened, source, alphabet, on_invalid, skipped_ids)
    return data, alpha, None


def open_as(
    path: str | os.PathLike[str], reads: Alphabet | SeriesSpec | None
) -> RecordStream | TableText:
    """Open an input of sequences or a series table; given what a model ``reads``, an
    input of the other kind is an error that names what the model reads."""
    source = display_name(path)
    opened = read_input(path, "series" if isinstance(reads, SeriesSpec) else None)
    if isinstance(opened, TableText) and isinstance(reads, Alphabet):
        opened.close()
        raise DataError(
            f"{source}: a table, but the model reads {reads.name} sequences (FASTA/FASTQ)"
        )
    if isinstance(opened, RecordStream) and isinstance(reads, SeriesSpec):
        opened.close()
        raise DataError(
            f"{source}: sequences (FASTA/FASTQ), but the model reads numeric "
            "series: a table with an id column and the channels "
            f"{', '.join(reads.channels)}"
        )
    return opened


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


def _duplicates(ids: list[str]) -> list[str]:
    seen: set[str] = set()
    dups: list[str] = []
    for x in ids:
        if x in seen and x not in dups:
            dups.append(x)
        seen.add(x)
    return dups


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
    for name in targets:
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
    where: list[str]
    targets: list[str]
    source: str = ""
    """The labels table, for messages."""


@runtime_checkable
class RecordSource(Protocol):
    """Records made by bioseqnn itself rather than read from a FASTA (genome intervals,
    bioseqnn/intervals.py): iterable, with a name for messages and the lines of their
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
    join = _Join(
        dup_seq=_duplicates(data.ids),
        dup_lab=_duplicates(label_ids),
        no_label=no_label,
        no_seq=[x for x in label_ids if x not in seq_set and x not in dropped],
        empty=[
            data.ids[i] for i in keep if any(not table.rows[row_of[data.ids[i]]][c] for c in t_cols)
        ],
    )
    if join.any():
        lines = _sequence_lines(
            fasta, src, data, series_lines, join, _label_lines(table, label_ids)
        )
        _report_join(join, seq_source, table, label_ids, lines, allow_unmatched)
    if not keep:
        raise DataError(f"no id is shared by {seq_source} and {tname}")
    if len(keep) < len(data):
        data = data.subset(np.asarray(keep))
    rows = [table.rows[row_of[x]] for x in data.ids]
    values = [[row[c] for c in t_cols] for row in rows]
    where = [f"{tname}: line {table.line_of(row_of[x])} (id {shorten(x)!r})" for x in data.ids]
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
class _Join:
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
    join: _Join,
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


def _report_join(
    join: _Join,
    seq_source: str,
    table: Table,
    label_ids: list[str],
    lines: tuple[dict[str, list[int]], dict[str, list[int]]],
    allow_unmatched: bool,
) -> None:
    """Every join problem in one DataError (unmatched ids only warned of with
    ``allow_unmatched``)."""
    seq_lines, lab_lines = lines
    tname = table.source
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


def prepare_task(labeled: LabeledData, forced: str | None) -> TaskSpec:
    columns = [list(col) for col in zip(*labeled.label_values, strict=True)]
    task, reason = detect_task(labeled.targets, columns, forced, labeled.source)
    for name in task.classes:
        if CONTROL.search(name):
            i = next(i for i, row in enumerate(labeled.label_values) if row[0] == name)
            raise DataError(
                f"{labeled.where[i]}: class {name!r} holds a control character; "
                "class names become columns and cells of the predictions (a TAB "
                "or a newline would break their rows): remove it"
            )
    n = len(labeled.label_values)
    if task.kind in ("binary", "multiclass") and n >= 20 and len(task.classes) >= 0.9 * n:
        raise DataError(
            f"{labeled.source}: column {task.targets[0]!r} holds {len(task.classes)} distinct "
            f"labels in {n} records, nearly one class per record: is it the right column "
            "(--target)? Label strings with one letter per residue need --task per-position"
        )
    log.info("task: %s (%s%s)", task.kind, reason, "" if forced else "; override with --task")
    if task.kind == "regression":
        plain = TaskSpec("regression", task.targets)
        raw = plain.encode_labels(labeled.label_values, labeled.where)
        task.fit_scaling(raw)
    return task


# --------------------------------------------------------------------------- splits


def split_indices(
    n: int, fraction: float, seed: int, strata: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (and, given strata, stratified) train/validation split of range(n)."""
    rng = np.random.default_rng([seed, 1])
    if fraction <= 0:
        return np.arange(n), np.zeros(0, dtype=np.int64)
    if strata is None:
        perm = rng.permutation(n)
        n_val = max(1, int(round(n * fraction)))
        if n_val >= n:
            raise DataError(f"a validation fraction of {fraction} leaves no training data")
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])
    val_parts = []
    for cls in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == cls))
        k = int(round(len(members) * fraction))
        if len(members) >= 2:
            k = min(max(k, 1), len(members) - 1)
        val_parts.append(members[:k])
    val = np.sort(np.concatenate(val_parts)) if val_parts else np.zeros(0, np.int64)
    train = np.setdiff1d(np.arange(n), val)
    if len(val) == 0:
        raise DataError("the validation split is empty; use a larger --val-fraction")
    return train, val


# --------------------------------------------------------------------------- batches


def batch_indices(
    lengths: np.ndarray,
    batch_size: int,
    rng: np.random.Generator | None = None,
    window: int = 50,
    max_tokens: int | None = None,
    ranks: int = 1,
) -> list[np.ndarray]:
    """Batches of similar length.

    With an rng (training) the order is shuffled, then sorted by length within windows
    of ``window`` batches, and the batches themselves are shuffled. Without (inference)
    all records are sorted by length; callers restore the input order.

    ``max_tokens`` caps the padded size of a batch (records x its longest length), so
    batches of long sequences hold fewer records; a record longer than the cap is a
    batch of its own. With ``ranks`` > 1 (distributed training) each batch is a global
    batch that :func:`shard` deals out to the ranks: it holds up to ``batch_size *
    ranks`` records, and each rank's share keeps within ``batch_size`` and ``max_tokens``.
    """
    n = len(lengths)
    size = batch_size * ranks
    if rng is None:
        return cut_sorted(np.argsort(lengths, kind="stable"), lengths, size, max_tokens, ranks)
    perm = rng.permutation(n)
    span = size * window
    batches = []
    for start in range(0, n, span):
        part = perm[start : start + span]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(cut_sorted(part, lengths, size, max_tokens, ranks))
    return [batches[i] for i in rng.permutation(len(batches))]


def cut_sorted(
    order: np.ndarray,
    lengths: np.ndarray,
    size: int,
    max_tokens: int | None = None,
    ranks: int = 1,
) -> list[np.ndarray]:
    """Cut ``order`` (records sorted by ascending length) into consecutive batches of at
    most ``size`` records whose padded size per rank stays within ``max_tokens``."""
    if not max_tokens:
        return [order[i : i + size] for i in range(0, len(order), size)]
    sorted_lengths = lengths[order].astype(np.int64)
    batches = []
    start = 0
    while start < len(order):
        head = sorted_lengths[start : start + size]
        # k records pad to head[k - 1] (lengths ascend); the largest rank share is
        # ceil(k / ranks) records
        k = np.arange(1, len(head) + 1, dtype=np.int64)
        fits = (k + ranks - 1) // ranks * head <= max_tokens
        take = max(1, int(np.argmin(fits)) if not fits.all() else len(head))
        batches.append(order[start : start + take])
        start += take
    return batches


def shard(index: np.ndarray, rank: int, ranks: int) -> np.ndarray:
    """This rank's share of a global batch: every ``ranks``-th record from ``rank`` on."""
    return index[rank::ranks]


def collate(data: SequenceSet, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The codes of records ``index`` padded to (B, longest) (a series: (B, longest,
    channels), padded with NaN, which its input layer reads as 0) and their lengths."""
    fill = np.nan if data.codes.dtype.kind == "f" else 0
    codes, lengths = pad_codes(data.codes, data.offsets, index, fill=fill)  # type: ignore[arg-type]
    return torch.from_numpy(codes), torch.from_numpy(lengths)


def position_batch(data: SequenceSet, index: np.ndarray, end: int | None = None) -> torch.Tensor:
    """The per-position targets of records ``index``: (B, longest) int64, -1 past each
    length. ``end`` (a language model's end class) adds a column and puts ``end`` at
    each record's length, after its last residue."""
    assert data.positions is not None
    out, lengths = pad_codes(
        data.positions, data.offsets, index, fill=-1, extra=0 if end is None else 1
    )
    y = out.astype(np.int64)
    if end is not None:
        y[np.arange(len(lengths)), lengths] = end
    return torch.from_numpy(y)


def batch_targets(task: TaskSpec, data: SequenceSet, index: np.ndarray) -> torch.Tensor:
    """The targets of records ``index`` in the form ``task.loss`` takes."""
    if task.kind == "per-position":
        return position_batch(data, index)
    if task.kind == "language-model":  # the end class is the last
        return position_batch(data, index, end=task.n_outputs - 1)
    assert data.targets is not None
    return torch.from_numpy(data.targets[np.asarray(index, dtype=np.int64)])
