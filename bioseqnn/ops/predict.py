"""The predict command: one model file applied to one or more inputs, rows streamed in
input order to one output.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..arguments import checked
from ..bundle import Bundle, given_model, model_file
from ..engine.inputs import PredictStats, open_model_input
from ..engine.predict import (
    output_header,
    predict_rows,
    resolve_device,
)
from ..errors import UsageError
from ..io.fasta import Record
from ..io.files import STDIO, display_name
from ..io.outputs import (
    check_one_stdin,
    check_output_path,
    write_table,
)
from ..io.sniff import read_sequences
from ..runtime import configure_threads, keeps_threads
from ..variants.intervals import GenomeOptions, IntervalRecords, as_genome
from ..variants.lm import KIND as LANGUAGE_MODEL
from ..variants.lm import score_columns, score_rows
from ..variants.perposition import (
    predict_positions,
    write_positions,
)

log = logging.getLogger("bioseqnn")


@keeps_threads
@checked
def predict(
    model: str | os.PathLike[str] | Bundle,
    sequences: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str] = STDIO,
    *,
    batch_size: int = 256,
    max_tokens: int = 0,
    device: str | None = None,
    threads: int = 0,
    on_invalid: str = "error",
    rc_average: bool | None = None,
    fmt: str = "tsv",
    id_column: str | None = None,
    genome: GenomeOptions | None = None,
) -> PredictStats:
    """Predict every record of ``sequences`` and write one row per record to ``output``.

    The command-level function behind ``bioseqnn predict`` (a file in, a table out,
    streamed); :func:`bioseqnn.predict` returns the rows instead. ``model`` is a model
    file or a loaded :class:`~bioseqnn.bundle.Bundle`. ``sequences`` may be several
    files: their rows follow one another in the order given, each file's in its own
    order; ids are kept as they are, and an id found in an earlier file is a warning
    (the rows stay, told apart by their place).

    A numeric series model reads a series table instead (``id_column``: its id column,
    default the one the model was trained with), one row per series.

    ``rc_average`` (DNA/RNA) reports the mean of both strands; None: the model's default.
    With ``genome``, ``sequences`` are genome intervals (BED or a chrom/start/end table),
    cut from its reference in windows of the model's width unless it says otherwise.
    A per-position model writes one row per residue (``fmt='tsv'``: id, position, residue,
    predicted, prob_<class>...) or a FASTA of predicted labels (``fmt='fasta'``).
    """
    genome = as_genome(genome)
    paths = _check_predict_paths(model, sequences, output, batch_size, max_tokens, genome)
    configure_threads(threads)
    log.debug("%d CPU thread(s)", torch.get_num_threads())
    dev = resolve_device(device)
    bundle, _, _ = given_model(model, dev)
    _check_predict_reading(bundle, paths, genome, id_column)

    run = _Reading(bundle, dev, batch_size, max_tokens or None, on_invalid, genome)
    stats = PredictStats()
    if bundle.task.kind == LANGUAGE_MODEL:
        if rc_average or fmt != "tsv":
            raise UsageError(
                "a language model scores each sequence (one row per record); "
                f"{'--rc-average' if rc_average else '--format ' + fmt} does not "
                "apply"
            )
        scores = _across_files(paths, lambda p: run.scores(p, stats))
        write_table(output, score_columns(), scores)
        return stats
    if bundle.task.kind == "per-position":
        if rc_average:
            raise UsageError("--rc-average is not available for per-position models")
        predictions = itertools.chain.from_iterable(run.positions(p) for p in paths)
        stats.records = write_positions(bundle, predictions, output, fmt)
        return stats
    if fmt != "tsv":
        raise UsageError(
            f"--format {fmt} is for per-position models; this model predicts "
            "one row per sequence (a .csv output name gives CSV)"
        )
    if rc_average and bundle.series is not None:
        raise UsageError("--rc-average is for DNA/RNA models; this model reads numeric series")
    rows = _across_files(paths, lambda p: run.rows(p, stats, rc_average, id_column))
    write_table(output, output_header(bundle), rows)
    return stats


@dataclass(frozen=True)
class _Reading:
    """How one predict run reads each input and hands it to the model's variant."""

    bundle: Bundle
    dev: torch.device
    batch_size: int
    max_tokens: int | None
    on_invalid: str
    genome: GenomeOptions | None

    def records(self, path: str | os.PathLike[str]) -> Iterable[Record]:
        """The records of an input: genome intervals cut from the reference, or FASTA/FASTQ."""
        if self.genome is None:
            return read_sequences(path)
        return IntervalRecords(self.genome, path, self.genome.width(self.bundle.manifest))

    def scores(self, path: str | os.PathLike[str], stats: PredictStats) -> Iterable[list[str]]:
        """A language model's rows: each sequence's log-likelihood and perplexity."""
        return score_rows(
            self.bundle,
            self.records(path),
            display_name(path),
            self.batch_size,
            self.dev,
            self.on_invalid,
            stats,
            max_tokens=self.max_tokens,
        )

    def positions(self, path: str | os.PathLike[str]) -> Iterator[tuple[str, bytes, np.ndarray]]:
        """A per-position model's predictions, record by record."""
        return predict_positions(
            self.bundle,
            self.records(path),
            display_name(path),
            self.batch_size,
            self.dev,
            self.on_invalid,
        )

    def rows(
        self,
        path: str | os.PathLike[str],
        stats: PredictStats,
        rc_average: bool | None,
        id_column: str | None,
    ) -> Iterable[list[str]]:
        """One row per record (or series): the input as the model reads it."""
        opened = (
            self.records(path)
            if self.genome is not None
            else open_model_input(self.bundle, path, self.on_invalid, id_column)
        )
        return predict_rows(
            self.bundle,
            opened,
            display_name(path),
            self.batch_size,
            self.dev,
            self.on_invalid,
            stats,
            rc_average=rc_average,
            max_tokens=self.max_tokens,
        )


def _check_predict_paths(
    model: str | os.PathLike[str] | Bundle,
    sequences: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    batch_size: int,
    max_tokens: int,
    genome: GenomeOptions | None = None,
) -> list[str | os.PathLike[str]]:
    """The inputs as a list, once the sizes and the output are checked against them."""
    if batch_size < 1:
        raise UsageError("batch-size must be at least 1")
    if max_tokens < 0:
        raise UsageError("max-tokens must be >= 0 (0 = no cap)")
    paths = _input_list(sequences)
    source = model_file(model)
    check_one_stdin(**named_inputs(source, paths, None))
    check_output_path(output, named_inputs(source, paths, genome))
    return paths


def named_inputs(
    model: str | os.PathLike[str] | None,
    paths: Sequence[str | os.PathLike[str]],
    genome: GenomeOptions | None,
) -> dict[str, str | os.PathLike[str] | None]:
    """The inputs of a prediction, named for the messages (the model file, each input,
    the reference genome and its index files): what no output may replace."""
    inputs: dict[str, str | os.PathLike[str] | None] = {"MODEL": model}
    for i, p in enumerate(paths):
        inputs[f"SEQUENCES ({i + 1} of {len(paths)})" if len(paths) > 1 else "SEQUENCES"] = p
    return inputs | (genome.named() if genome is not None else {})


def _check_predict_reading(
    bundle: Bundle,
    paths: list[str | os.PathLike[str]],
    genome: GenomeOptions | None,
    id_column: str | None,
) -> None:
    """--genome and --id-column against what the model reads."""
    if genome is not None:
        if bundle.series is not None:
            raise UsageError("--genome: this model reads numeric series, not sequences")
        if len(paths) > 1:
            raise UsageError("--genome reads one intervals file at a time")
    if id_column is not None and bundle.series is None:
        raise UsageError(
            "--id-column names the id column of a numeric series table; this model reads sequences"
        )


def _input_list(
    sequences: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
) -> list[str | os.PathLike[str]]:
    """One input or several, as a list (a str or path is one input)."""
    if isinstance(sequences, (str, os.PathLike)):
        return [sequences]
    paths = list(sequences) if isinstance(sequences, (list, tuple)) else []
    if not paths:
        raise UsageError(f"sequences: expected a file or a list of files; got {sequences!r:.60}")
    if not all(isinstance(p, (str, os.PathLike)) for p in paths):
        raise UsageError(
            "sequences: expected a file or a list of files; got a list of other values"
        )
    return paths


def _across_files(
    paths: list[str | os.PathLike[str]],
    rows_of: Callable[[str | os.PathLike[str]], Iterable[list[str]]],
) -> Iterator[list[str]]:
    """The rows of each input in turn (each opened when the one before is done); an id
    met in an earlier input is said once, in a warning naming both inputs."""
    if len(paths) == 1:
        yield from rows_of(paths[0])
        return
    seen: dict[str, str] = {}
    warned = False
    for path in paths:
        name = display_name(path)
        here: set[str] = set()
        for row in rows_of(path):
            rid = row[0]
            if not warned and rid in seen:
                log.warning(
                    "id %r is in %s and in %s: both rows are kept, in input order "
                    "(tell them apart by position, or make ids unique)",
                    rid,
                    seen[rid],
                    name,
                )
                warned = True
            here.add(rid)
            yield row
        for rid in here:
            seen.setdefault(rid, name)
