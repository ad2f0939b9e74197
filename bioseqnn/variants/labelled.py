"""Labelled records, the plain variant: sequences (or numeric series) joined by id with a
labels table, or read from its sequence column; one row of targets per record.
"""

from __future__ import annotations

import os

from ..config import TrainConfig
from ..data.labels import LabelSource, load_labeled
from ..data.sets import SequenceSet
from ..io.files import display_name
from ..io.series import SeriesOptions
from ..tasks import prepare_task
from .base import Loaded, TrainInputs
from .series import (
    SeriesSpec,
    fit_normalisation,
    refuse_series_columns,
    refuse_strands,
    series_warnings,
)


def load_labelled(
    src: TrainInputs,
    labels: str | os.PathLike[str],
    tc: TrainConfig,
    primary: str | os.PathLike[str],
) -> Loaded:
    series = SeriesOptions(src.id_column, src.series_columns)
    lsrc = LabelSource(labels, src.id_column, src.targets, src.sequence_column)
    labeled, alpha = load_labeled(
        src.fasta, lsrc, src.alphabet, src.on_invalid, src.ignore_unmatched, series
    )
    if isinstance(alpha, SeriesSpec):
        refuse_strands(tc)  # a table from stdin is known as one only now
        # every record of the training input (the validation part too: label-free
        # statistics, so that members trained with other seeds read alike)
        alpha = fit_normalisation(labeled.data.codes, alpha, display_name(primary))
        series_warnings(alpha, labeled.data, labeled.targets, display_name(primary))
    elif src.series_columns:
        refuse_series_columns(primary)
    spec = prepare_task(labeled, src.task)
    data = labeled.data
    data.targets = spec.encode_labels(labeled.label_values, labeled.where)
    val: SequenceSet | None = None
    if src.val_labels is not None:
        vsrc = LabelSource(src.val_labels, src.id_column, labeled.targets, src.sequence_column)
        vlabeled, _ = load_labeled(
            src.val_fasta, vsrc, alpha, src.on_invalid, src.ignore_unmatched, series
        )
        val = vlabeled.data
        val.targets = spec.encode_labels(vlabeled.label_values, vlabeled.where)
    return Loaded(spec, alpha, data, val, primary)
