"""What prediction reads, before any network runs: a model's input opened as what it
reads, its records encoded a chunk at a time and checked against the model (alphabet,
max-length). No torch here: a run that never needs it (bioseqnn/engine/light.py) reads
its input the same way."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..alphabets import Alphabet, byte_histogram, detect_alphabet, protein_only_fraction
from ..data.reading import SequenceEncoder, chunked, open_as
from ..data.sets import SequenceSet
from ..encoding import check_fits, check_kinds
from ..errors import DataError
from ..io.fasta import Record, RecordStream
from ..io.series import SeriesOptions, SeriesReader
from ..modelspec import check_lengths
from ..structure import with_structure
from ..variants.series import series_options

log = logging.getLogger("bioseqnn")

SERIES_CHUNK_ROWS = 1 << 18
"""Time steps of a series table read at a time by predict (whole series: a longer one is
read whole)."""


@dataclass
class PredictStats:
    records: int = 0
    skipped: int = 0


def open_model_input(
    bundle: Any,
    path: str | os.PathLike[str],
    on_invalid: str = "error",
    id_column: str | None = None,
) -> RecordStream | SeriesReader:
    """The input of a model, opened as what it reads: sequences (FASTA/FASTQ), or for a
    numeric series model a table with its channel columns (by name; other columns are
    left alone) and ``id_column`` (default: the one it was trained with)."""
    series_options(bundle, id_column)  # refuses --id-column for a sequence model
    opened = open_as(path, bundle.input)
    if isinstance(opened, RecordStream):
        return opened
    spec = bundle.series
    assert spec is not None
    options = SeriesOptions(id_column or spec.id_column, list(spec.channels), from_model=True)
    return SeriesReader(opened, options, on_invalid)


def encoded_chunks(
    bundle: Any,
    records: Iterable[Record] | SeriesReader,
    source: str,
    batch_size: int,
    on_invalid: str,
    stats: PredictStats,
) -> Iterator[tuple[list[Record], SequenceSet]]:
    """The records to predict, a chunk at a time (memory stays flat): the kept records
    and their codes in the model's alphabet. The first chunk is checked against that
    alphabet and every chunk against the model's max-length. ``stats`` counts the records
    read, and at the end the skipped ones; no record at all is an error.

    From a :class:`SeriesReader` (a numeric series model) the chunks are whole series,
    with no records (an empty list)."""
    if isinstance(records, SeriesReader):
        yield from _series_chunks(bundle, records, source, batch_size, stats)
        return
    encoder = SequenceEncoder(source, bundle.alphabet, on_invalid)
    for i, chunk in enumerate(chunked(records, max(batch_size * 16, 1024))):
        if i == 0:
            check_first_chunk(chunk, bundle.alphabet, source, on_invalid)
        kept, codes, offsets = encoder.encode_chunk(chunk)
        stats.records += len(chunk)
        if not kept:
            continue
        data = SequenceSet([r.id for r in kept], codes, offsets)
        check_lengths(bundle.model, data.ids, data.lengths, source)
        yield kept, with_structure(data, bundle.features)
    stats.skipped = encoder.skipped
    if stats.records == 0:
        raise DataError(f"{source}: no sequence records")
    if stats.skipped:
        log.warning("%s: skipped %d record(s) with invalid symbols", source, stats.skipped)


def _series_chunks(
    bundle: Any,
    reader: SeriesReader,
    source: str,
    batch_size: int,
    stats: PredictStats,
) -> Iterator[tuple[list[Record], SequenceSet]]:
    rows = max(batch_size * 1024, SERIES_CHUNK_ROWS)
    for chunk in reader.chunks(rows):
        data = SequenceSet(chunk.ids, chunk.values, chunk.offsets)
        stats.records += len(data)
        check_lengths(bundle.model, data.ids, data.lengths, source)
        yield [], data
    stats.records += reader.skipped  # the reader has said how many it skipped
    stats.skipped = reader.skipped
    if stats.records == 0:
        raise DataError(f"{source}: no series (a header row but no data rows)")


def check_first_chunk(
    chunk: list[Record], model_alphabet: Alphabet, source: str, on_invalid: str
) -> None:
    """Refuse input of another alphabet, judged on the first chunk of records.

    A nucleotide model refuses input only where protein-only letters are common, and not
    under --on-invalid skip or mask, which drop or mask the records of the other kind; a
    stray invalid symbol is left to the encoder, which names its position. A protein model
    refuses nucleotide input (valid protein text) from NUCLEOTIDE_EVIDENCE residues on.
    """
    sample = chunk[:2000]
    counts = byte_histogram(r.seq for r in sample)
    if not counts.sum():
        return
    guess = detect_alphabet(counts)
    if model_alphabet.name == "protein" or (
        on_invalid == "error" and protein_only_fraction(counts) > 0.1
    ):
        check_fits(guess.alphabet, model_alphabet, source, residues=int(counts.sum()))
    check_kinds(
        [r.id for r in sample],
        [r.seq for r in sample],
        model_alphabet,
        source,
        [r.line for r in sample],
    )
