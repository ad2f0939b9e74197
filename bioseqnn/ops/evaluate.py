"""Evaluate a model file on labelled sequences: every metric of its task, per class or target."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import metrics
from ..alphabets import Alphabet, byte_histogram, detect_alphabet
from ..arguments import checked
from ..bundle import Bundle, given_model
from ..data.labels import LabeledData, LabelSource, load_labeled, target_names
from ..data.reading import SAMPLE_RECORDS, read_encoded
from ..data.sets import SequenceSet
from ..digest import canonical_codes, record_digests, seen_in_training
from ..encoding import check_fits, check_kinds
from ..engine.predict import infer, infer_scored, resolve_device
from ..errors import UsageError
from ..io.files import display_name
from ..io.outputs import atomic_output, check_one_stdin, check_output_path
from ..io.series import SeriesOptions
from ..io.sniff import read_sequences
from ..models.inputs import OneHot, featurizer
from ..runtime import configure_threads, keeps_threads
from ..structure import with_structure
from ..tasks import TaskSpec
from ..variants.intervals import GenomeOptions, as_genome, load_for_evaluation

log = logging.getLogger("bioseqnn")

DENSE_CONFUSION = 1000
"""Classes up to which the confusion matrix is kept (and written) whole: 10,000 classes
made 100 million cells (800 MB, a 300-MB block of the JSON); above, its nonzero cells."""
TABLE_CLASSES = 100
"""Classes shown in the per-class table on the terminal (the JSON holds every one)."""


@dataclass
class Evaluation:
    """The outcome of :func:`evaluate`: summary metrics, detail and the raw arrays behind them.

    ``y`` holds class indices (binary, multiclass), 0/1 columns (multilabel) or targets in
    their original units (regression); ``out`` holds what ``predict`` reports: class
    probabilities (N, K) (binary: (N, 2)) or predicted values (N, T).
    """

    task: TaskSpec
    dataset: str
    model: str
    ids: list[str]
    y: np.ndarray
    out: np.ndarray
    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    per_target: dict[str, dict[str, float]] = field(default_factory=dict)
    confusion: np.ndarray | None = None
    """The confusion matrix (true class x predicted), up to :data:`DENSE_CONFUSION`
    classes."""
    confusion_cells: np.ndarray | None = None
    """Above :data:`DENSE_CONFUSION` classes the matrix's nonzero cells instead, as rows
    (true class, predicted class, count)."""
    sources: list[str] = field(default_factory=list)
    """The input files as given (``dataset`` is their short form for titles)."""
    baseline: dict[str, float] = field(default_factory=dict)
    """The same metrics for a constant prediction (see :func:`baseline_metrics`)."""
    seen: dict[str, Any] | None = None
    """Test records whose sequence is a training sequence of the model (see
    :func:`training_overlap`); None when the model file keeps no training digests."""

    @property
    def records(self) -> int:
        return len(self.ids)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (NaN becomes null)."""
        doc: dict[str, Any] = {
            "model": self.model,
            "dataset": self.dataset,
            "sources": self.sources,
            "task": self.task.kind,
            "targets": self.task.targets,
            "records": self.records,
            "metrics": _clean(self.metrics),
        }
        if "positions" in doc["metrics"]:  # a count
            doc["metrics"]["positions"] = int(doc["metrics"]["positions"])
        if self.task.kind in ("binary", "multiclass", "per-position", "language-model"):
            doc["classes"] = self.task.classes
        if self.per_class:
            doc["per_class"] = _clean(self.per_class)
        if self.confusion is not None or self.confusion_cells is not None:
            matrix: dict[str, Any] = {
                "rows": "true class",
                "columns": "predicted class",
                "labels": self.task.classes,
            }
            if self.confusion is not None:
                matrix["matrix"] = self.confusion.tolist()
            else:
                assert self.confusion_cells is not None
                matrix["cells"] = (
                    "the nonzero cells as [true class, predicted class, count] "
                    "(indices into labels)"
                )
                matrix["nonzero"] = self.confusion_cells.tolist()
            doc["confusion_matrix"] = matrix
        if self.per_target:
            doc["per_target"] = _clean(self.per_target)
        if self.seen is not None:
            doc["seen_in_training"] = self.seen
        if self.baseline:
            doc["baseline"] = {
                "what": BASELINE_WHAT[self.task.kind],
                "metrics": _clean(self.baseline),
            }
        return doc


BASELINE_WHAT = {
    "binary": "always the most common class, with this data's class shares as probabilities",
    "multiclass": "always the most common class, with this data's class shares as probabilities",
    "per-position": "always the most common class, with this data's class shares as probabilities",
    "multilabel": "each label's positive share as its probability",
    "regression": "the mean of this data's targets (correlation 0)",
    "language-model": "the residue frequencies of this data, whatever came before",
}


def training_overlap(bundle: Bundle, data: SequenceSet, source: str) -> dict[str, Any] | None:
    """Which records of ``data`` have the sequence of one of the model's training records
    (their figures do not measure generalisation); said in one warning line."""
    if bundle.train_digest is None:
        log.info(
            "%s: the model file keeps no digests of its training sequences (written "
            "by an older bioseqnn): test records seen in training are not looked for",
            source,
        )
        return None
    seen = seen_in_training(
        record_digests(data, canonical_codes(bundle.input)), bundle.train_digest
    )
    ids = [data.ids[i] for i in np.flatnonzero(seen)]
    if ids:
        log.warning(
            "%s: %d of %d record(s) (%.1f%%) have the sequence of a record the model "
            "was trained or validated on (e.g. %s): their figures do not measure "
            "generalisation",
            source,
            len(ids),
            len(data),
            100 * len(ids) / max(len(data), 1),
            ", ".join(map(repr, ids[:3])),
        )
    return {"records": len(ids), "fraction": len(ids) / max(len(data), 1), "ids": ids[:20]}


def baseline_metrics(task: TaskSpec, y: np.ndarray) -> dict[str, float]:
    """What a constant prediction scores on labels ``y`` (as :attr:`Evaluation.y`): the
    most common class with the class shares as probabilities, each label's positive
    share, or the mean target. A model that does no better has learnt nothing usable."""
    n = len(y)
    if not n:
        return {}
    if task.kind == "regression":
        values = y.reshape(n, -1).astype(np.float64)
        err = values - values.mean(axis=0)
        # a constant has no correlation (undefined; reported as 0) and R2 0; targets that
        # are constant themselves leave both undefined (as the model's own figures)
        fixed = float("nan") if all(metrics.constant(v) for v in values.T) else 0.0
        out = {
            "mse": float((err**2).mean()),
            "mae": float(np.abs(err).mean()),
            "pearson": fixed,
            "spearman": fixed,
            "r2": fixed,
        }
        if values.shape[1] == 1:
            out["rmse"] = float(values.std())
        return out
    if task.kind == "multilabel":
        share = y.astype(np.float64).mean(axis=0)
        out = metrics.classification_metrics(
            y.astype(np.int64), np.broadcast_to(share, y.shape).copy(), multilabel=True
        )
        p = np.clip(share, 1e-12, 1 - 1e-12)
        out["loss"] = float(np.mean(-(share * np.log(p) + (1 - share) * np.log(1 - p))))
        return out
    k = len(task.classes)
    share = np.bincount(y.astype(np.int64), minlength=k) / n
    # a read-only view: a copy of 20,000 records x 10,000 classes took 1.6 GB
    constant = np.broadcast_to(share, (n, k))
    if task.kind == "language-model":
        out = metrics.next_residue_metrics(y.astype(np.int64), constant)
    else:
        out = metrics.classification_metrics(y.astype(np.int64), constant)
    present = share[share > 0]
    out["loss"] = float(-(present * np.log(present)).sum())
    return out


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def check_alphabet_fits(data: SequenceSet, model_alphabet: Alphabet, source: str) -> None:
    """Refuse e.g. DNA read by a protein model (ACGT are valid amino acids too)."""
    symbols = np.frombuffer("".join(model_alphabet.symbol_list).encode(), dtype=np.uint8)
    table = np.r_[np.uint8(ord("N")), symbols]
    sample = [
        table[data.codes[data.offsets[i] : data.offsets[i + 1]]].tobytes()
        for i in range(min(len(data), SAMPLE_RECORDS))
    ]
    counts = byte_histogram(sample)
    guess = detect_alphabet(counts)
    if guess.alphabet.name == "protein" or model_alphabet.name == "protein":
        check_fits(guess.alphabet, model_alphabet, source, residues=int(counts.sum()))
    check_kinds(data.ids[: len(sample)], sample, model_alphabet, source)


def score(
    bundle: Bundle,
    data: SequenceSet,
    values: list[list[str]],
    where: Sequence[str],
    dataset: str,
    model_name: str,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> Evaluation:
    """Evaluate ``bundle`` on already encoded sequences and their label strings."""
    task = bundle.task
    if task.kind not in ("binary", "multiclass", "multilabel", "regression"):
        raise UsageError(f"evaluate does not support the task {task.kind!r}")
    dev = torch.device(device)
    onehot = featurizer(bundle.features).to(dev)
    data = with_structure(data, bundle.features)
    logits = infer(bundle.model, onehot, data, batch_size, dev)
    out = task.outputs(logits).numpy().astype(np.float64)
    encoded = task.encode_labels(values, where)
    loss = float(task.loss(logits, torch.from_numpy(encoded)))
    summary = {"loss": loss, **task.metrics(encoded, out)}
    ev = Evaluation(task, dataset, model_name, list(data.ids), encoded, out, summary)
    ev.baseline = baseline_metrics(
        task,
        encoded
        if task.kind != "regression"
        else TaskSpec("regression", task.targets).encode_labels(values, where).astype(np.float64),
    )
    if task.kind in ("binary", "multiclass"):
        class_detail(ev, encoded, out)
    elif task.kind == "multilabel":
        for j, name in enumerate(task.targets):
            yj = encoded[:, j].astype(np.int64)
            row = metrics.classification_metrics(yj, np.stack([1 - out[:, j], out[:, j]], 1))
            row["support"] = int(yj.sum())
            ev.per_class[name] = row
    else:
        raw = TaskSpec("regression", task.targets).encode_labels(values, where).astype(np.float64)
        ev.y = raw
        for name, row in zip(task.targets, metrics.regression_detail(raw, out), strict=True):
            ev.per_target[name] = row
        # With one target the summary carries the rmse too.
        if len(task.targets) == 1:
            ev.metrics["rmse"] = ev.per_target[task.targets[0]]["rmse"]
    return ev


def class_detail(ev: Evaluation, encoded: np.ndarray, out: np.ndarray) -> None:
    """Confusion matrix and per-class scores of a single-label classifier (or of residues)."""
    k = len(ev.task.classes)
    pred = out.argmax(axis=1)
    if k <= DENSE_CONFUSION:
        ev.confusion = metrics.confusion(encoded, pred, k)
    else:
        ev.confusion_cells = metrics.confusion_cells(encoded, pred, k)
    scores = metrics.per_class_scores(encoded, pred, k)
    for c, name in enumerate(ev.task.classes):
        row = {key: float(scores[key][c]) for key in ("precision", "recall", "f1")}
        row["support"] = int(scores["support"][c])
        positives = (encoded == c).astype(np.int64)
        row["auroc"] = metrics.auroc(positives, out[:, c])
        row["auprc"] = metrics.auprc(positives, out[:, c])
        ev.per_class[name] = row


@keeps_threads
@checked
def evaluate(
    model: str | os.PathLike[str] | Bundle | Any,
    sequences: str | os.PathLike[str] | None,
    labels: str | os.PathLike[str] | None,
    *,
    id_column: str | None = None,
    sequence_column: str | None = None,
    batch_size: int = 256,
    device: str | None = None,
    threads: int = 0,
    on_invalid: str = "error",
    ignore_unmatched: bool = False,
    position_mask: str | os.PathLike[str] | None = None,
    targets: list[str] | None = None,
    genome: GenomeOptions | None = None,
) -> Evaluation:
    """Predict every labelled sequence with the model file and compute all task metrics.

    ``targets`` names the table's columns that hold the model's targets, in the model's
    order (default: columns named as the model's targets were in training).

    A per-position model reads per-residue labels (a FASTA or a column of label strings)
    and scores every position that ``position_mask`` (a 0/1 FASTA) keeps. A language
    model reads sequences alone (``labels`` None): perplexity, next-residue accuracy.
    With ``genome``, ``sequences`` are genome intervals; their labels come from ``labels``
    or, without a table, from their own columns named as the model's targets (``targets``).
    """
    if batch_size < 1:
        raise UsageError("batch-size must be at least 1")
    genome = as_genome(genome)
    targets = target_names(targets)
    check_one_stdin(SEQUENCES=sequences, LABELS=labels, **{"--position-mask": position_mask})
    configure_threads(threads)
    dev = resolve_device(device)
    bundle, _, model = given_model(model, dev)  # model: its name from here on
    task = bundle.task
    if task.kind == "language-model":
        if labels is not None or sequence_column is not None or position_mask is not None:
            raise UsageError(
                "a language model is evaluated on sequences alone: give a FASTA "
                "and no labels, --sequence-column or --position-mask"
            )
        assert sequences is not None
        return _evaluate_language_model(bundle, model, sequences, batch_size, dev, on_invalid)
    _check_labels_or_genome(bundle, labels, sequence_column, position_mask, genome)
    columns, hint = _target_columns(task, targets)
    if task.kind == "per-position":
        assert labels is not None  # genome intervals were refused above
        return _evaluate_positions(
            bundle,
            model,
            sequences,
            labels,
            position_mask,
            id_column or "id",
            sequence_column,
            batch_size,
            dev,
            on_invalid,
            ignore_unmatched,
            columns,
            hint,
        )
    if position_mask is not None:
        raise UsageError("--position-mask applies to per-position models")
    labeled = _read_labeled(
        bundle,
        sequences,
        labels,
        genome,
        columns,
        hint,
        id_column,
        sequence_column,
        on_invalid,
        ignore_unmatched,
    )
    return _score_labeled(bundle, labeled, model, sequences, labels, batch_size, dev)


def _check_labels_or_genome(
    bundle: Bundle,
    labels: str | os.PathLike[str] | None,
    sequence_column: str | None,
    position_mask: str | os.PathLike[str] | None,
    genome: GenomeOptions | None,
) -> None:
    """Refuse genome intervals for a model or options they do not fit, then open the
    genome; without one, require a labels table."""
    task = bundle.task
    if genome is not None:
        if task.kind in ("per-position", "language-model") or bundle.series is not None:
            raise UsageError(
                "--genome: only models with one output per sequence evaluate genome intervals"
            )
        if sequence_column is not None or position_mask is not None:
            raise UsageError(
                "--sequence-column and --position-mask do not apply to genome intervals"
            )
        genome.open()
    elif labels is None:
        raise UsageError("a labels table is required (or --sequence-column)")


def _target_columns(task: TaskSpec, targets: list[str] | None) -> tuple[list[str], str]:
    """The label columns that hold the model's targets, in its order, and the hint that a
    missing column's message ends with."""
    if targets and len(targets) != len(task.targets):
        raise UsageError(
            f"--target: {len(targets)} column(s) for the model's "
            f"{len(task.targets)} target(s) ({', '.join(task.targets)})"
        )
    columns = list(targets or task.targets)
    # a column named otherwise than in training: say how to name it
    hint = "" if targets else (" (the model's target; name the column that holds it with --target)")
    return columns, hint


def _read_labeled(
    bundle: Bundle,
    sequences: str | os.PathLike[str] | None,
    labels: str | os.PathLike[str] | None,
    genome: GenomeOptions | None,
    columns: list[str],
    hint: str,
    id_column: str | None,
    sequence_column: str | None,
    on_invalid: str,
    ignore_unmatched: bool,
) -> LabeledData:
    """Read the labelled records: genome intervals, or sequences (or series) joined to
    their labels by id."""
    if genome is not None:
        assert sequences is not None
        return load_for_evaluation(
            genome,
            bundle.manifest,
            sequences,
            labels,
            columns=columns,
            id_column=id_column or "id",
            alphabet=bundle.alphabet,
            on_invalid=on_invalid,
            ignore_unmatched=ignore_unmatched,
            missing_hint=hint,
        )
    assert labels is not None
    src = LabelSource(labels, id_column or "id", columns, sequence_column, hint)
    # --id-column names the series table's id column too, as in training
    series = SeriesOptions(id_column) if id_column and bundle.series is not None else None
    labeled, _ = load_labeled(sequences, src, bundle.input, on_invalid, ignore_unmatched, series)
    return labeled


def _score_labeled(
    bundle: Bundle,
    labeled: LabeledData,
    model: str | os.PathLike[str],
    sequences: str | os.PathLike[str] | None,
    labels: str | os.PathLike[str] | None,
    batch_size: int,
    dev: torch.device,
) -> Evaluation:
    """Check the records against the model, look for training sequences among them and
    score them."""
    sources = [display_name(p) for p in (sequences, labels) if p is not None]
    if bundle.series is None:
        check_alphabet_fits(labeled.data, bundle.alphabet, sources[0])
    dataset = " + ".join(_short(s) for s in sources)
    seen = training_overlap(bundle, labeled.data, sources[0])
    ev = score(
        bundle,
        labeled.data,
        labeled.label_values,
        labeled.where,
        dataset,
        display_name(model),
        batch_size,
        dev,
    )
    ev.seen = seen
    ev.sources = sources
    log.info("evaluated %d record(s) of %s", ev.records, dataset)
    return ev


def _evaluate_positions(
    bundle: Bundle,
    model: str | os.PathLike[str],
    sequences: str | os.PathLike[str] | None,
    labels: str | os.PathLike[str],
    mask: str | os.PathLike[str] | None,
    id_column: str,
    sequence_column: str | None,
    batch_size: int,
    dev: torch.device,
    on_invalid: str,
    ignore_unmatched: bool,
    columns: list[str],
    hint: str,
) -> Evaluation:
    """Per-residue metrics (accuracy = Q3 for three states) over the scored positions."""
    from ..io.sniff import sniff
    from ..variants.perposition import load_positions, score_positions

    task = bundle.task
    labels_input = sniff(labels)  # a FASTA of labels, or a table
    loaded = load_positions(
        sequences,
        labels_input,
        alphabet=bundle.alphabet,
        mask=mask,
        classes=task.classes,
        id_column=id_column,
        targets=None if labels_input.is_fasta else columns,
        sequence_column=sequence_column,
        on_invalid=on_invalid,
        ignore_unmatched=ignore_unmatched,
        missing_hint=hint,
    )
    sources = [display_name(p) for p in (sequences, labels, mask) if p is not None]
    check_alphabet_fits(loaded.data, bundle.alphabet, sources[0])
    seen = training_overlap(bundle, loaded.data, sources[0])
    summary, y, out, _ = score_positions(bundle, loaded, batch_size, dev)
    dataset = " + ".join(_short(s) for s in sources)
    ev = Evaluation(
        task,
        dataset,
        display_name(model),
        list(loaded.data.ids),
        y,
        out,
        summary,
        sources=sources,
        seen=seen,
    )
    class_detail(ev, y, out)
    ev.baseline = baseline_metrics(task, y)
    log.info("evaluated %d position(s) of %d record(s) of %s", len(y), ev.records, dataset)
    return ev


def _evaluate_language_model(
    bundle: Bundle,
    model: str | os.PathLike[str],
    sequences: str | os.PathLike[str],
    batch_size: int,
    dev: torch.device,
    on_invalid: str,
) -> Evaluation:
    """Perplexity and next-residue accuracy over every scored position (residues that
    are no ambiguity code, and each sequence's end)."""
    from ..models.base import check_lengths
    from ..variants.lm import position_targets

    source = display_name(sequences)
    data, _, _ = read_encoded(read_sequences(sequences), source, bundle.alphabet, on_invalid)
    check_alphabet_fits(data, bundle.alphabet, source)
    check_lengths(bundle.model, data.ids, data.lengths, source)
    seen = training_overlap(bundle, data, source)
    task = bundle.task
    data.positions = position_targets(data, bundle.alphabet)
    scored = infer_scored(
        bundle.model, OneHot(bundle.alphabet).to(dev), task, data, batch_size, dev
    )
    y = scored.y.numpy()
    out = task.outputs(scored.logits).numpy().astype(np.float64)
    summary = {
        "loss": scored.loss,
        **metrics.next_residue_metrics(y, out),
        "positions": float(len(y)),
    }
    ev = Evaluation(
        task,
        _short(source),
        display_name(model),
        list(data.ids),
        y,
        out,
        summary,
        sources=[source],
        seen=seen,
    )
    class_detail(ev, y, out)
    ev.baseline = baseline_metrics(task, y)
    log.info("evaluated %d position(s) of %d record(s) of %s", len(y), ev.records, ev.dataset)
    return ev


def _short(name: str) -> str:
    return name if name in ("-", "<stdin>", "stdin") else Path(name).name


HEADLINE = {
    "binary": ("accuracy", "balanced_accuracy", "f1", "mcc", "auroc", "auprc", "loss"),
    "multiclass": ("accuracy", "balanced_accuracy", "f1", "mcc", "auroc", "auprc", "loss"),
    "multilabel": ("accuracy", "balanced_accuracy", "f1", "mcc", "auroc", "auprc", "loss"),
    "per-position": (
        "accuracy",
        "balanced_accuracy",
        "f1",
        "mcc",
        "auroc",
        "auprc",
        "loss",
        "positions",
    ),
    "regression": ("pearson", "spearman", "r2", "mae", "rmse", "mse", "loss"),
    "language-model": ("perplexity", "accuracy", "loss", "positions"),
}


def ordered_metrics(ev: Evaluation) -> list[tuple[str, float]]:
    """The summary metrics in a fixed, readable order."""
    order = HEADLINE[ev.task.kind]
    known = [(k, ev.metrics[k]) for k in order if k in ev.metrics]
    rest = [(k, v) for k, v in ev.metrics.items() if k not in order]
    return known + rest


def metric_tables(ev: Evaluation) -> list[Any]:
    """Rich tables for a terminal: the summary, then per class (or target), then confusion."""
    from rich.markup import escape
    from rich.table import Table

    def num(v: float | None) -> str:
        return "n/a" if v is None or not math.isfinite(v) else f"{v:.4f}"

    tables = []
    # names (a file's, a class's) are escaped: brackets in them are no markup
    summary = Table(
        title=escape(f"{ev.task.kind} - {ev.dataset} ({ev.records} records)"),
        title_justify="left",
        show_header=True,
    )
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    if ev.baseline:
        summary.add_column("constant prediction", justify="right")
    for key, value in ordered_metrics(ev):
        cells = [key, str(int(value)) if key == "positions" else num(value)]
        if ev.baseline:
            cells.append(num(ev.baseline[key]) if key in ev.baseline else "")
        summary.add_row(*cells)
    tables.append(summary)
    if ev.per_class:
        tables.append(_per_class_table(ev, num))
    if ev.per_target and len(ev.per_target) > 1:
        per = Table(title="per target", title_justify="left")
        keys = ["pearson", "spearman", "r2", "mae", "rmse"]
        per.add_column("target")
        for key in keys:
            per.add_column(key, justify="right")
        for name, row in ev.per_target.items():
            per.add_row(escape(name), *[num(row[k]) for k in keys])
        tables.append(per)
    if ev.confusion is not None and len(ev.task.classes) <= 20:
        cm = Table(
            title="confusion matrix (rows: true class, columns: predicted)", title_justify="left"
        )
        cm.add_column("true \\ predicted")
        for name in ev.task.classes:
            cm.add_column(escape(name), justify="right")
        for name, row in zip(ev.task.classes, ev.confusion, strict=True):
            cm.add_row(escape(name), *[str(int(v)) for v in row])
        tables.append(cm)
    return tables


def _per_class_table(ev: Evaluation, num: Callable[[float | None], str]) -> Any:
    """The per-class (multilabel: per-label) table, its first :data:`TABLE_CLASSES` rows."""
    from rich.markup import escape
    from rich.table import Table

    label = "class" if ev.task.kind != "multilabel" else "label"
    per = Table(title=f"per {label}", title_justify="left")
    keys = ["precision", "recall", "f1", "support", "auroc", "auprc"]
    if ev.task.kind == "multilabel":
        keys = ["accuracy", "f1", "mcc", "support", "auroc", "auprc"]
    per.add_column(label)
    for key in keys:
        per.add_column(key, justify="right")
    for name, row in list(ev.per_class.items())[:TABLE_CLASSES]:
        per.add_row(
            escape(name), *[str(row[k]) if k == "support" else num(row.get(k)) for k in keys]
        )
    if len(ev.per_class) > TABLE_CLASSES:
        per.caption = (
            f"the first {TABLE_CLASSES} of {len(ev.per_class):,}; the JSON (-o) holds every one"
        )
    return per


def write_json(ev: Evaluation, output: str | os.PathLike[str]) -> None:
    """The metrics as JSON (NaN as null), written atomically; '-' is stdout."""
    check_output_path(output)
    with atomic_output(output) as fh:
        json.dump(ev.to_dict(), fh, indent=2, allow_nan=False)
        fh.write("\n")


MULTIQC_ID = "bioseqnn_evaluate"
"""The section id of ``evaluate --multiqc`` files: MultiQC merges the files that share it
into one table, a row per model and test set."""


def multiqc_section(ev: Evaluation) -> dict[str, Any]:
    """The summary metrics as MultiQC custom content: a table section (``id``,
    ``section_name``, ``description``, ``plot_type: table``, ``pconfig``, ``headers``)
    whose ``data`` holds one row, named ``MODEL: DATASET``. Metrics that are not numbers
    (NaN: undefined here) are left out of the row."""
    sample = f"{Path(_short(ev.model)).stem}: {ev.dataset}"
    row: dict[str, float | int] = {"records": ev.records}
    headers: dict[str, dict[str, Any]] = {
        "records": {"title": "Records", "description": "test records", "format": "{:,.0f}"}
    }
    for key, value in ordered_metrics(ev):
        if value is None or not math.isfinite(value):
            continue
        row[key] = int(value) if key == "positions" else float(value)
        bounded = key in ("accuracy", "balanced_accuracy", "f1", "auroc", "auprc")
        headers[key] = {
            "title": key.replace("_", " "),
            "format": "{:,.0f}" if key == "positions" else "{:,.4f}",
            **({"min": 0, "max": 1} if bounded else {}),
            **({"min": -1, "max": 1} if key in ("mcc", "pearson", "spearman") else {}),
        }
    return {
        "id": MULTIQC_ID,
        "section_name": "bioseqnn evaluate",
        "description": f"Metrics of each model on its test set ({ev.task.kind}), from "
        "bioseqnn evaluate.",
        "plot_type": "table",
        "pconfig": {"id": f"{MULTIQC_ID}_table", "title": "bioseqnn: test metrics"},
        "headers": headers,
        "data": {sample: row},
    }


def write_multiqc(ev: Evaluation, output: str | os.PathLike[str]) -> None:
    """The MultiQC custom-content file (see :func:`multiqc_section`), written atomically.
    MultiQC finds it by its name: it should end in ``_mqc.json``."""
    check_output_path(output)
    if str(output) != "-" and not str(output).endswith("_mqc.json"):
        log.warning(
            "%s: MultiQC finds custom content by the name's end, _mqc.json (e.g. %s_mqc.json)",
            output,
            Path(output).stem,
        )
    with atomic_output(output) as fh:
        json.dump(multiqc_section(ev), fh, indent=2, allow_nan=False)
        fh.write("\n")
