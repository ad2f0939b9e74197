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
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config import TrainConfig
from ..errors import DataError, UsageError
from ..io.files import STDIO, display_name
from ..io.sniff import Sniffed
from ..io.tables import pick_delimiter

if TYPE_CHECKING:  # numpy and the series reader are imported where they are used
    import numpy as np

    from ..data.sets import SequenceSet
    from ..io.series import SeriesOptions

log = logging.getLogger("bioseqnn")

KIND = "series"


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


# --------------------------------------------------------------------------- normalisation


def fit_normalisation(values: np.ndarray, spec: SeriesSpec, source: str) -> SeriesSpec:
    """The spec with each channel's mean and standard deviation over ``values`` (every
    step of the training records; missing values left out)."""
    import numpy as np

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
    from ..structure import StructureInput

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
    from ..io.series import SeriesOptions

    return SeriesOptions(id_column)


def _rows_per_id(table: Sniffed, id_column: str, limit: int = 5000) -> float:
    """Rows per distinct id among the first ``limit`` rows of a table's head, as sniffed
    (0: not a table, or no such column); enough to tell a series table from a labels
    table."""
    if not table.is_table:
        return 0.0
    lines = [line for line in table.head_lines() if line.strip()]
    try:
        delimiter = pick_delimiter(display_name(table.path or "-"), lines[0])
        header, *rows = csv.reader(lines[: limit + 1], delimiter=delimiter)
        k = [h.strip() for h in header].index(id_column)
    except (ValueError, IndexError, csv.Error):
        return 0.0
    ids = [row[k].strip() for row in rows if len(row) > k and row[k].strip()]
    return len(ids) / len(set(ids)) if ids else 0.0


def series_warnings(spec: SeriesSpec, data: SequenceSet, targets: list[str], source: str) -> None:
    """What is probably a mistake in a series table, said once before training."""
    if int(data.lengths.max()) == 1:
        log.warning(
            "%s: every series is one time step long; a series table has one row per "
            "time step (is this the right table?)",
            source,
        )
    leaked = [c for c in spec.channels if c in targets]
    if leaked:
        log.warning(
            "%s: channel %r has the name of a target column: is the target among "
            "the inputs? (choose the channels with --series-columns)",
            source,
            leaked[0],
        )


def check_series_inputs(
    sniffed: Sniffed,
    labels_input: Sniffed,
    kind: tuple[bool, bool],
    sequence_column: str | None,
    tc: TrainConfig,
    id_column: str = "id",
) -> None:
    """What a numeric series table (``sniffed``, given where sequences go) cannot train
    (``kind``: a language model, per-position labels), with the labels as sniffed."""
    lm, per_position = kind
    table, labels = sniffed.path, labels_input.path
    assert table is not None
    name = display_name(table)
    if (
        labels is not None
        and str(labels) != STDIO
        and os.path.exists(labels)
        and os.path.samefile(table, labels)
    ):
        raise UsageError(
            f"{name} is given as the series table and as the labels table; "
            "give the series (one row per time step), then the labels"
        )
    if lm:
        raise UsageError(f"--task language-model learns from sequences (FASTA); {name} is a table")
    if per_position and labels_input.is_fasta:
        raise UsageError(
            f"{name} is a table and {display_name(labels or '')} a FASTA: are the "
            "arguments in the right order (the sequences or series first, then the "
            "labels)? Per-position labels are for sequences"
        )
    if per_position:
        raise UsageError(
            "--task per-position is for sequences; a numeric series model "
            "predicts one row per series"
        )
    if (
        labels is not None
        and labels_input.is_table
        and _rows_per_id(sniffed, id_column) == 1.0
        and _rows_per_id(labels_input, id_column) > 1.0
    ):
        raise UsageError(
            f"{name} has one row per id and {display_name(labels)} several: are "
            "the arguments swapped? The series table (one row per time step) goes "
            "first, then the labels"
        )
    if sequence_column is not None:
        raise UsageError(
            f"--sequence-column reads sequences from the labels table; {name} is "
            "a table of its own (a numeric series: give it without "
            "--sequence-column)"
        )
    refuse_strands(tc)


def refuse_strands(tc: TrainConfig) -> None:
    if tc.rc_augment or tc.rc_average:
        raise UsageError("--rc-augment and --rc-average are for DNA/RNA, not numeric series")


def refuse_series_columns(sequences: str | os.PathLike[str]) -> None:
    raise UsageError(
        "--series-columns applies to a numeric series table; "
        f"{display_name(sequences)} holds sequences"
    )
