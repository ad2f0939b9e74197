"""Reading inputs into stored sets: records encoded in chunks (the alphabet detected from
the first records unless forced or fixed by a model), and whole series tables.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import os
import sys
from collections.abc import Iterable, Iterator

import numpy as np

from ..alphabets import (
    Alphabet,
    byte_histogram,
    count_kinds,
    detect_alphabet,
    get_alphabet,
    looks_like,
)
from ..encoding import Encoder, InvalidSymbol
from ..errors import DataError, UsageError, shorten
from ..io.fasta import FastaBlock, Record, RecordStream
from ..io.files import display_name
from ..io.series import SeriesOptions, SeriesReader
from ..io.sniff import TableText, read_input
from ..variants.series import SeriesSpec
from .sets import SequenceSet

log = logging.getLogger("bioseqnn")


CHUNK_RECORDS = 4096
SAMPLE_RECORDS = 2000


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
        if bad.char == "\t":
            hint = "a tab in a sequence line: spaces there are dropped, tabs are not; " + hint
        elif ord(bad.char) < 32 or bad.char == "\x7f":
            hint = "a control character, which no sequence holds: is the file damaged? " + hint
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
        codes, offsets, bad = self.encoder.encode_runs(*chunk.runs())
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
        self._texts: list[bytearray | memoryview] = []
        """The sequences, in runs one after another."""
        self._ends: list[list[int]] = []
        """Where each sequence ends in its run."""
        self._parts: list[tuple[int, FastaBlock | list[Record], int]] = []
        """(first index here, source, its index there) for each run of records."""

    @classmethod
    def of(cls, records: list[Record]) -> _Columns:
        chunk = cls()
        chunk.ids = [r.id for r in records]
        chunk._texts = [bytearray().join(r.seq for r in records)]
        chunk._ends = [list(itertools.accumulate(len(r.seq) for r in records))]
        chunk._parts.append((0, records, 0))
        return chunk

    def __len__(self) -> int:
        return len(self.ids)

    def add_block(self, block: FastaBlock, start: int, end: int) -> None:
        self._parts.append((len(self.ids), block, start))
        self.ids += block.ids[start:end]
        text, ends = block.span(start, end)
        self._texts.append(text)
        self._ends.append(ends)

    def add_record(self, record: Record) -> None:
        last = self._parts[-1] if self._parts else None
        if last is None or not isinstance(last[1], list):
            self._parts.append((len(self.ids), [], 0))
            self._texts.append(bytearray())  # grows in place
            self._ends.append([])
        records = self._parts[-1][1]
        assert isinstance(records, list)
        records.append(record)
        self.ids.append(record.id)
        text = self._texts[-1]
        assert isinstance(text, bytearray)
        text += record.seq
        self._ends[-1].append(len(text))

    def runs(self) -> tuple[list[bytearray | memoryview], np.ndarray]:
        """The chunk's sequences in runs (each run several sequences one after another),
        and the offsets of the sequences in the runs joined (len + 1)."""
        offsets = np.zeros(len(self.ids) + 1, dtype=np.int64)
        at, base = 1, 0
        for text, ends in zip(self._texts, self._ends, strict=True):
            offsets[at : at + len(ends)] = np.asarray(ends, dtype=np.int64) + base
            at += len(ends)
            base += len(text)
        return self._texts, offsets

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
