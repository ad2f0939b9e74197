"""Genome intervals as sequences: BED or a chrom/start/end table, cut from a reference.

Rules (README, "Genome intervals and variant effects"):

- BED3/BED6+: 0-based, half-open; column 4 is the name, 5 the score, 6 the strand (``-``:
  the window is read as the reverse complement); further columns are ``col7``, ``col8``,
  ... unless a ``#`` header line right before the first interval names every column.
  ``track``/``browser`` lines, ``#`` comments and blank lines are skipped. A table (CSV or
  TSV) whose header has chrom, start and end columns is read the same way (same
  coordinates), with optional name/id and strand columns.
- ``window`` W: each interval is centred on W bases, starting at
  ``start + floor((end - start - W) / 2)``; without one, the interval's own bases.
- Windows that run off a chromosome end are padded with N (``on_edge='pad'``) or refused
  (``'error'``).
- Ids: the name column, else ``chrom:start-end(strand)`` (``chrom:start-end`` when there
  is no strand), with the interval's own coordinates.
- Chromosome hold-out: ``holdout_chroms`` are the validation set, ``exclude_chroms`` are
  left out of training altogether (for evaluate to test on); explicit validation
  intervals may not share a chromosome with the training intervals.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..alphabets import Alphabet, get_alphabet
from ..config import MODEL_NUMBER_MAX
from ..data.labels import LabeledData, LabelSource, RowPlaces, load_labeled
from ..data.reading import read_encoded
from ..data.sets import SequenceSet
from ..errors import DataError, UsageError, shorten
from ..io.fasta import Record
from ..io.files import display_name
from ..io.genome import Genome, pysam_module, reverse_complement
from ..io.intervals import Interval, IntervalFile
from ..tasks import TaskSpec, prepare_task

log = logging.getLogger("bioseqnn")


ON_EDGE = ("pad", "error")


def parse_chroms(text: str | None, flag: str) -> list[str]:
    """'chr8,chr9' -> ['chr8', 'chr9']."""
    if not text:
        return []
    names = [x.strip() for x in text.split(",")]
    if any(not x for x in names):
        raise UsageError(f"{flag} {text!r}: an empty chromosome name")
    return names


@dataclass
class GenomeOptions:
    """Where sequences come from when they are genome intervals (``--genome``)."""

    reference: str
    window: int | None = None
    """Bases per window; None: the default (the model's window, or each interval's own
    length in training); 0: each interval's own length."""
    on_edge: str = "pad"
    holdout_chroms: list[str] = field(default_factory=list)
    exclude_chroms: list[str] = field(default_factory=list)
    chroms: list[str] = field(default_factory=list)
    """Only intervals on these chromosomes (empty: all)."""
    summary: dict[str, Any] = field(default_factory=dict, init=False)
    """What training did (for the model file): filled by :func:`load_for_training`."""
    _genome: Genome | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.on_edge not in ON_EDGE:
            raise UsageError(f"--on-edge must be one of {', '.join(ON_EDGE)}")
        if self.window is not None and self.window < 0:
            raise UsageError("--window must be at least 1 (0: each interval's own length)")
        if self.window is not None and self.window > MODEL_NUMBER_MAX:
            raise UsageError(f"--window must be at most {MODEL_NUMBER_MAX:,} bases")
        both = set(self.holdout_chroms) & set(self.exclude_chroms)
        if both:
            raise UsageError(
                f"--holdout-chroms and --exclude-chroms both name {', '.join(sorted(both))}"
            )

    def named(self) -> dict[str, str]:
        """The files ``--genome`` reads, by the names an error gives them (for path
        checks): the FASTA and its index files, which reading builds where missing."""
        return {
            "--genome": self.reference,
            "--genome's index": self.reference + ".fai",
            "--genome's bgzip index": self.reference + ".gzi",
        }

    def open(self) -> Genome:
        if self._genome is None:
            self._genome = Genome(self.reference)
            for flag, names in (
                ("--holdout-chroms", self.holdout_chroms),
                ("--exclude-chroms", self.exclude_chroms),
                ("--chroms", self.chroms),
            ):
                self._genome.check_names(names, flag)
        return self._genome

    def width(self, manifest: dict[str, Any] | None = None) -> int | None:
        """The window width to use: the option's, else the model's (None: own lengths)."""
        if self.window is not None:
            return self.window or None
        if manifest is not None:
            return model_window(manifest)
        return None


def genome_options(
    reference: str | None,
    *,
    window: int | None = None,
    on_edge: str | None = None,
    holdout_chroms: str | None = None,
    exclude_chroms: str | None = None,
    chroms: str | None = None,
) -> GenomeOptions | None:
    """The options of ``--genome`` as given on a command line (None without --genome;
    its other options without it are a usage error)."""
    given = {
        "--window": window,
        "--on-edge": on_edge,
        "--holdout-chroms": holdout_chroms,
        "--exclude-chroms": exclude_chroms,
        "--chroms": chroms,
    }
    if reference is None:
        named = [k for k, v in given.items() if v is not None]
        if named:
            raise UsageError(
                f"{', '.join(named)} appl{'ies' if len(named) == 1 else 'y'} to "
                "genome intervals: give --genome ref.fa too"
            )
        return None
    pysam_module()  # the extra is installed, or a usage error says how
    return GenomeOptions(
        reference,
        window,
        on_edge or "pad",
        parse_chroms(holdout_chroms, "--holdout-chroms"),
        parse_chroms(exclude_chroms, "--exclude-chroms"),
        parse_chroms(chroms, "--chroms"),
    )


def as_genome(genome: Any) -> GenomeOptions | None:
    """``genome`` as the library takes it: :class:`GenomeOptions`, a reference FASTA's
    path (``--window`` and ``--on-edge`` at their defaults), or None."""
    if genome is None or isinstance(genome, GenomeOptions):
        return genome
    if isinstance(genome, (str, os.PathLike)):
        return genome_options(os.fspath(genome))
    raise UsageError(
        f"genome: expected a reference FASTA's path or GenomeOptions; got {type(genome).__name__}"
    )


def model_window(manifest: dict[str, Any]) -> int | None:
    """The window a model was trained on (``train --genome --window``), if any."""
    genome = (manifest.get("data") or {}).get("genome")
    window = genome.get("window") if isinstance(genome, dict) else None
    return window if isinstance(window, int) and window > 0 else None


class IntervalRecords:
    """The sequences of an interval file, cut from the genome, as records (iterable
    again; each pass reads the file again). Remembers each id's chromosome and lines,
    and with ``targets`` the values of those columns (labels read from the file)."""

    def __init__(
        self,
        options: GenomeOptions,
        path: str | os.PathLike[str],
        window: int | None,
        targets: list[str] | None = None,
        training: bool = False,
    ) -> None:
        self.options = options
        self.genome = options.open()
        self.file = IntervalFile(path)
        self.name = self.file.name
        self.window = window
        self.targets = targets or []
        self.training = training
        self.chrom_of: dict[str, str] = {}
        self.line_of: dict[str, list[int]] = {}
        self.values: dict[str, list[str]] = {}
        self.padded = 0
        self.dropped: set[str] = set()

    def _kept(self, chrom: str) -> bool:
        o = self.options
        if o.chroms and chrom not in o.chroms:
            return False
        return not (self.training and chrom in o.exclude_chroms)

    def __iter__(self) -> Iterator[Record]:
        self.chrom_of.clear()
        self.line_of.clear()
        self.values.clear()
        self.padded = 0
        self.dropped.clear()
        columns: list[int] | None = None
        for iv in self.file:
            if columns is None:
                columns = [
                    self.file.column(
                        t,
                        " (--target names a column of the intervals when no labels table is given)",
                    )
                    for t in self.targets
                ]
            at = f"{self.name}: line {iv.line}"
            length = self.genome.length(iv.chrom, at)
            if not self._kept(iv.chrom):
                self.dropped.add(iv.id)
                continue
            if iv.start >= length and not iv.start == iv.end == length:
                raise DataError(
                    f"{at}: interval {shorten(iv.id)!r} ({iv.chrom}:{iv.start}-{iv.end}) "
                    f"starts past the end of {iv.chrom} (length {length:,}) in "
                    f"{self.genome.name}: are the intervals from another assembly?"
                )
            if iv.end > length:
                raise DataError(
                    f"{at}: interval {shorten(iv.id)!r} ({iv.chrom}:{iv.start}-{iv.end}) "
                    f"ends past the end of {iv.chrom} (length {length:,}) in "
                    f"{self.genome.name}: are the intervals from another assembly?"
                )
            start, end = iv.start, iv.end
            if self.window:
                start = iv.start + (iv.end - iv.start - self.window) // 2
                end = start + self.window
            elif end == start:
                raise DataError(
                    f"{at}: interval {shorten(iv.id)!r} is empty (start = end "
                    f"= {start}); give --window to centre a window on it"
                )
            elif end - start > MODEL_NUMBER_MAX:
                raise DataError(
                    f"{at}: interval {shorten(iv.id)!r} is {end - start:,} bases long, more "
                    f"than the {MODEL_NUMBER_MAX:,} read whole; give --window to centre a "
                    "window on it"
                )
            if start < 0 or end > length:
                if self.options.on_edge == "error":
                    raise DataError(
                        f"{at}: interval {shorten(iv.id)!r}: window {iv.chrom}:{start}-{end} "
                        f"runs off {iv.chrom} (length {length}); --on-edge pad fills the "
                        "missing bases with N"
                    )
                self.padded += 1
            seq = self.genome.fetch(iv.chrom, start, end)
            if iv.strand == "-":
                seq = reverse_complement(seq)
            rid = iv.id
            self.chrom_of[rid] = iv.chrom
            self.line_of.setdefault(rid, []).append(iv.line)
            if columns:
                self.values[rid] = [_cell(iv, c) for c in columns]
            yield Record(rid, seq, f"{iv.chrom}:{start}-{end}({iv.strand})")
        if self.padded:
            log.info(
                "%s: %d window(s) run off a chromosome end and are padded with N",
                self.name,
                self.padded,
            )

    def record_lines(self, ids: set[str]) -> dict[str, list[int]]:
        """The lines of the intervals ``ids`` (of the last pass)."""
        return {i: self.line_of[i] for i in ids if i in self.line_of}

    def left_out(self) -> set[str]:
        """The ids of the intervals on chromosomes left out (of the last pass)."""
        return self.dropped


def _cell(iv: Interval, column: int) -> str:
    value = iv.fields[column].strip() if column < len(iv.fields) else ""
    return "" if value == "." else value


def _alphabet(alphabet: str | Alphabet | None) -> str | Alphabet:
    """A genome holds DNA: 'auto' reads it as DNA; protein is refused."""
    if alphabet is None or alphabet == "auto":
        log.info("alphabet: dna (genome intervals)")
        return get_alphabet("dna")
    name = alphabet.name if isinstance(alphabet, Alphabet) else alphabet
    if name == "protein":
        raise UsageError("genome intervals are DNA; a protein alphabet (or model) cannot read them")
    return alphabet


def labeled_intervals(
    options: GenomeOptions,
    path: str | os.PathLike[str],
    labels: str | os.PathLike[str] | None,
    *,
    window: int | None,
    id_column: str = "id",
    targets: list[str] | None = None,
    alphabet: str | Alphabet | None = None,
    on_invalid: str = "error",
    ignore_unmatched: bool = False,
    training: bool = False,
    missing_hint: str = "",
) -> tuple[LabeledData, Alphabet, list[str]]:
    """Intervals with their labels: from a table joined by interval id, or (no table)
    from the interval file's own columns named by ``targets``. Returns the labelled set,
    its alphabet and each record's chromosome."""
    if labels is None and not targets:
        raise UsageError(
            f"labels for {display_name(path)}: give a labels table (joined by "
            "interval id) or name columns of the intervals with --target"
        )
    records = IntervalRecords(
        options, path, window, None if labels is not None else targets, training
    )
    if labels is not None:
        src = LabelSource(labels, id_column, targets, None, missing_hint)
        labeled, alpha = load_labeled(
            records, src, _alphabet(alphabet), on_invalid, ignore_unmatched
        )
        assert isinstance(alpha, Alphabet)
    else:
        assert targets is not None
        data, alpha, _ = read_encoded(records, records.name, _alphabet(alphabet), on_invalid)
        dup = [i for i, lines in records.line_of.items() if len(lines) > 1]
        if dup:
            shown = ", ".join(
                f"{shorten(i)!r} (lines {', '.join(map(str, records.line_of[i][:3]))})"
                for i in dup[:3]
            )
            raise DataError(
                f"{records.name}: {len(dup)} duplicate interval id(s): {shown}; "
                "ids (the name column) must be unique to train or evaluate"
            )
        values = [records.values[i] for i in data.ids]
        ids = data.ids
        where = RowPlaces(records.name, ids, lambda k: records.line_of[ids[k]][0])
        empty = [where[k] for k, row in enumerate(values) if not all(row)]
        if empty:
            raise DataError(
                f"{len(empty)} interval(s) with an empty label ('.' or nothing) "
                f"in column(s) {', '.join(targets)}: {'; '.join(empty[:3])}"
            )
        labeled = LabeledData(data, values, where, list(targets), records.name)
    if records.dropped:
        log.info(
            "%s: %d interval(s) left out (%s)",
            records.name,
            len(records.dropped),
            "--exclude-chroms" if training else "--chroms",
        )
    if not len(labeled.data):
        raise DataError(f"{records.name}: no interval left to use")
    return labeled, alpha, [records.chrom_of[i] for i in labeled.data.ids]


def check_genome_training(
    options: GenomeOptions,
    *,
    lm: bool,
    task: str | None,
    sequence_column: str | None,
    series_columns: list[str] | None,
    position_mask: str | os.PathLike[str] | None,
) -> None:
    """What genome intervals cannot train, said before anything is read; then the genome
    is opened (its index built if need be)."""
    if lm or task == "per-position":
        raise UsageError(
            f"--genome trains models with one output per interval; --task "
            f"{task} is not available with it"
        )
    for flag, value in (
        ("--sequence-column", sequence_column),
        ("--series-columns", series_columns),
        ("--position-mask", position_mask),
    ):
        if value:
            raise UsageError(f"{flag} does not apply to genome intervals (--genome)")
    if options.chroms:
        raise UsageError(
            "--chroms selects intervals to evaluate; in training, "
            "--exclude-chroms leaves chromosomes out"
        )
    options.open()


def load_for_training(
    options: GenomeOptions,
    path: str | os.PathLike[str],
    labels: str | os.PathLike[str] | None,
    val_path: str | os.PathLike[str] | None,
    val_labels: str | os.PathLike[str] | None,
    *,
    task: str | None,
    id_column: str = "id",
    targets: list[str] | None = None,
    alphabet: str | None = None,
    on_invalid: str = "error",
    ignore_unmatched: bool = False,
    cv: int = 0,
) -> tuple[TaskSpec, Alphabet, SequenceSet, SequenceSet | None]:
    """The training set (and validation set, if chosen by chromosome or given) of genome
    intervals: (task, alphabet, data, validation or None for a random split). Fills
    ``options.summary`` for the model file."""
    if options.holdout_chroms and (val_path is not None or cv):
        raise UsageError(
            "--holdout-chroms chooses the validation set by chromosome; "
            f"drop {'--val-fasta' if val_path is not None else '--cv'}"
        )
    if val_labels is not None and val_path is None:
        raise UsageError("--val-labels goes with --val-fasta (the validation intervals)")
    window = options.width()
    labeled, alpha, chroms = labeled_intervals(
        options,
        path,
        labels,
        window=window,
        id_column=id_column,
        targets=targets,
        alphabet=alphabet,
        on_invalid=on_invalid,
        ignore_unmatched=ignore_unmatched,
        training=True,
    )
    spec = prepare_task(labeled, task)
    data = labeled.data
    data.targets = spec.encode_labels(labeled.label_values, labeled.where)
    val: SequenceSet | None = None
    val_chroms: list[str] = []
    if val_path is not None:
        val, val_chroms = _given_validation(
            options,
            (path, val_path, val_labels if val_labels is not None else labels),
            spec,
            labeled.targets,
            alpha,
            chroms,
            window=window,
            id_column=id_column,
            on_invalid=on_invalid,
            ignore_unmatched=ignore_unmatched,
        )
    elif options.holdout_chroms:
        data, val, chroms, val_chroms = _hold_out(options, path, data, chroms)
    elif not cv:
        log.info(
            "validation: a random part of the intervals (--val-fraction); overlapping "
            "or neighbouring windows then fall on both sides: --holdout-chroms holds "
            "out whole chromosomes"
        )
    options.summary = {
        "reference": options.open().name,
        "window": window,
        "on_edge": options.on_edge,
        "train_chroms": sorted(set(chroms)),
        "validation_chroms": val_chroms,
        "excluded_chroms": list(options.exclude_chroms),
    }
    return spec, alpha, data, val


def _given_validation(
    options: GenomeOptions,
    paths: tuple[str | os.PathLike[str], str | os.PathLike[str], str | os.PathLike[str] | None],
    spec: TaskSpec,
    targets: list[str],
    alpha: Alphabet,
    chroms: list[str],
    *,
    window: int | None,
    id_column: str,
    on_invalid: str,
    ignore_unmatched: bool,
) -> tuple[SequenceSet, list[str]]:
    """The validation intervals given (--val-fasta; ``paths``: the training intervals,
    the validation intervals and their labels), on chromosomes of their own."""
    path, val_path, val_labels = paths
    vlabeled, _, val_chroms = labeled_intervals(
        options,
        val_path,
        val_labels,
        window=window,
        id_column=id_column,
        targets=targets,
        alphabet=alpha,
        on_invalid=on_invalid,
        ignore_unmatched=ignore_unmatched,
        training=True,
    )
    shared = sorted(set(chroms) & set(val_chroms))
    if shared:
        raise DataError(
            f"{display_name(val_path)}: validation interval(s) on {_names(shared)}, which "
            f"also hold training intervals in {display_name(path)}: a chromosome "
            "hold-out keeps each chromosome on one side (move them, or choose the "
            "validation chromosomes with --holdout-chroms)"
        )
    val = vlabeled.data
    val.targets = spec.encode_labels(vlabeled.label_values, vlabeled.where)
    return val, sorted(set(val_chroms))


def _hold_out(
    options: GenomeOptions, path: str | os.PathLike[str], data: SequenceSet, chroms: list[str]
) -> tuple[SequenceSet, SequenceSet | None, list[str], list[str]]:
    """--holdout-chroms: the intervals on those chromosomes validate, the others train.
    Returns the training set, the validation set, their chromosomes (the training
    intervals', each; the validation set's, distinct)."""
    held = np.array([c in options.holdout_chroms for c in chroms])
    if not held.any():
        raise DataError(
            f"{display_name(path)}: no interval on the hold-out "
            f"chromosome(s) {_names(options.holdout_chroms)} (the intervals "
            f"are on {_names(sorted(set(chroms)))})"
        )
    if held.all():
        raise DataError(
            f"{display_name(path)}: every interval is on a hold-out "
            f"chromosome ({_names(options.holdout_chroms)}): none is left "
            "to train on"
        )
    val_chroms = sorted({c for c, h in zip(chroms, held, strict=True) if h})
    data, val = data.split(np.flatnonzero(~held), np.flatnonzero(held))
    chroms = [c for c, h in zip(chroms, held, strict=True) if not h]
    log.info(
        "validation: %d interval(s) on %s; training: %d on %d other chromosome(s)",
        len(val or []),
        _names(val_chroms),
        len(data),
        len(set(chroms)),
    )
    return data, val, chroms, val_chroms


def load_for_evaluation(
    options: GenomeOptions,
    manifest: dict[str, Any],
    path: str | os.PathLike[str],
    labels: str | os.PathLike[str] | None,
    *,
    columns: list[str],
    id_column: str,
    alphabet: Alphabet,
    on_invalid: str,
    ignore_unmatched: bool,
    missing_hint: str,
) -> LabeledData:
    """Labelled intervals to evaluate a model on (windows as the model was trained, unless
    ``options.window`` says otherwise); warns when they lie on the model's training or
    validation chromosomes."""
    if options.holdout_chroms or options.exclude_chroms:
        raise UsageError(
            "--holdout-chroms and --exclude-chroms are for training; "
            "--chroms selects the intervals to evaluate"
        )
    labeled, _, chroms = labeled_intervals(
        options,
        path,
        labels,
        window=options.width(manifest),
        id_column=id_column,
        targets=columns,
        alphabet=alphabet,
        on_invalid=on_invalid,
        ignore_unmatched=ignore_unmatched,
        missing_hint=missing_hint,
    )
    check_chromosomes(manifest, chroms, display_name(path))
    return labeled


def check_chromosomes(manifest: dict[str, Any], chroms: list[str], source: str) -> None:
    """Warn when test intervals lie on chromosomes the model trained on."""
    genome = (manifest.get("data") or {}).get("genome")
    if not isinstance(genome, dict):
        return
    trained = set(genome.get("train_chroms") or []) | set(genome.get("validation_chroms") or [])
    seen = [c for c in chroms if c in trained]
    if seen:
        log.warning(
            "%s: %d of %d interval(s) lie on chromosomes the model was trained or "
            "validated on (%s): their figures do not measure generalisation to other "
            "chromosomes (choose others with --chroms)",
            source,
            len(seen),
            len(chroms),
            _names(sorted(set(seen))),
        )


def _names(names: list[str], n: int = 5) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")
