"""Per-position labelling: one label per residue (e.g. secondary structure H/E/C).

Labels come as a FASTA of label letters with the same ids and lengths as the sequences
(``bioseqnn train seqs.fasta ss3.fasta``: a FASTA given as LABELS means this task), or as
a table column of label strings with ``--task per-position``. An optional mask FASTA
(``--position-mask``: one 0/1 per residue, e.g. resolved residues) excludes positions
from loss and metrics; records it does not name are scored at every position.

Targets are stored as an (N, longest) array of class indices padded with -1 (padding and
masked positions), so that selecting records, batching and the training loop treat them
like any other target array; the loss crops them to the batch's width.
"""

from __future__ import annotations

import csv
import itertools
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import metrics
from ..alphabets import Alphabet
from ..bundle import Bundle
from ..data.labels import Join, LabelSource, duplicates, load_labeled, report_join
from ..data.reading import read_encoded
from ..data.sets import SequenceSet
from ..engine.inputs import PredictStats, encoded_chunks
from ..engine.predict import (
    OOM_ERRORS,
    BatchLimit,
    batches_in_memory,
    infer_scored,
)
from ..errors import DataError, UsageError, shorten
from ..io.fasta import Record
from ..io.files import display_name
from ..io.outputs import atomic_output, table_delimiter
from ..io.sniff import Sniffed, read_sequences, sniff
from ..models.base import ModelConfig, SequenceModel, check_keeps_positions
from ..models.inputs import featurizer
from ..structure import with_structure
from ..tasks import PER_POSITION_KINDS, TaskSpec

log = logging.getLogger("bioseqnn")

KIND = "per-position"
PAD = -1
FORMATS = ("tsv", "fasta")


def read_letters(path: str | os.PathLike[str], what: str) -> dict[str, bytes]:
    """id -> letters of a FASTA of per-residue labels or mask digits (unique ids)."""
    found: dict[str, bytes] = {}
    for rec in read_sequences(path):
        if rec.id in found:
            raise DataError(
                f"{display_name(path)}: line {rec.line}: duplicate id "
                f"{shorten(rec.id)!r} in the {what} FASTA"
            )
        found[rec.id] = rec.seq
    if not found:
        raise DataError(f"{display_name(path)}: no {what} records")
    return found


@dataclass
class PositionLabels:
    """Sequences with per-residue targets (``data.positions``, flat; -1 = not scored)."""

    data: SequenceSet
    alphabet: Alphabet
    classes: list[str]
    scored: int
    """Positions that count in loss and metrics."""
    target: str = "label"
    """The label column's name ('label' for a FASTA of labels)."""


def load_positions(
    fasta: str | os.PathLike[str] | None,
    labels: str | os.PathLike[str] | Sniffed,
    *,
    alphabet: str | Alphabet | None,
    mask: str | os.PathLike[str] | None = None,
    classes: list[str] | None = None,
    id_column: str = "id",
    targets: list[str] | None = None,
    sequence_column: str | None = None,
    on_invalid: str = "error",
    ignore_unmatched: bool = False,
    missing_hint: str = "",
) -> PositionLabels:
    """Read sequences and their per-residue labels (a FASTA, or a table column of strings).

    ``classes`` (from a model) fixes the label letters; without it they are the sorted
    letters found. Every label string must be as long as its sequence. ``labels`` may
    come sniffed (:func:`bioseqnn.io.sniff.sniff`), as the command decided what it is.
    """
    seen = labels if isinstance(labels, Sniffed) else sniff(labels)
    assert seen.path is not None
    labels = seen.path
    source = display_name(labels)
    if seen.is_fasta:
        if sequence_column is not None:
            raise UsageError(
                "per-position labels as a FASTA need the sequences as a FASTA too, "
                "not --sequence-column"
            )
        if fasta is None:
            raise UsageError("a FASTA file of sequences is required")
        data, alpha, label_strings = _fasta_labels(
            fasta, labels, alphabet, on_invalid, ignore_unmatched
        )
        target = "label"
    else:
        src = LabelSource(labels, id_column, targets, sequence_column, missing_hint)
        data, alpha, target, label_strings = _table_labels(
            fasta, src, alphabet, on_invalid, ignore_unmatched
        )
    codes, classes = _position_codes(label_strings, data, classes, source)
    if mask is not None:
        codes[~_mask_flags(mask, data)] = PAD
    data.positions = codes.astype(np.int8)  # flat, like the codes
    scored = int((codes != PAD).sum())
    if scored == 0:
        raise DataError(f"{source}: no position is left to score (every one is masked)")
    return PositionLabels(data, alpha, list(classes), scored, target)


def _fasta_labels(
    fasta: str | os.PathLike[str],
    labels: str | os.PathLike[str],
    alphabet: str | Alphabet | None,
    on_invalid: str,
    ignore_unmatched: bool,
) -> tuple[SequenceSet, Alphabet, list[bytes]]:
    """Sequences from ``fasta``, joined by id with a FASTA of label strings."""
    data, alpha, _ = read_encoded(read_sequences(fasta), display_name(fasta), alphabet, on_invalid)
    strings = _join(
        data,
        read_letters(labels, "label"),
        display_name(fasta),
        display_name(labels),
        ignore_unmatched,
    )
    if len(strings) < len(data):
        data = data.subset(np.asarray([i for i, x in enumerate(data.ids) if x in strings]))
    return data, alpha, [strings[x] for x in data.ids]


def _table_labels(
    fasta: str | os.PathLike[str] | None,
    src: LabelSource,
    alphabet: str | Alphabet | None,
    on_invalid: str,
    ignore_unmatched: bool,
) -> tuple[SequenceSet, Alphabet, str, list[bytes]]:
    """Sequences joined with a table column of label strings (or read from its sequence
    column); the column's name is the target's."""
    labeled, read_as = load_labeled(fasta, src, alphabet, on_invalid, ignore_unmatched)
    if not isinstance(read_as, Alphabet):
        raise UsageError(
            "per-position labels are for sequences; "
            f"{display_name(fasta or '-')} is a numeric series table"
        )
    if len(labeled.targets) != 1:
        raise UsageError(
            f"--task per-position takes one label column, got "
            f"{len(labeled.targets)}: {', '.join(labeled.targets)}; choose "
            "one with --target"
        )
    strings = [v[0].replace(" ", "").encode() for v in labeled.label_values]
    return labeled.data, read_as, labeled.targets[0], strings


def _position_codes(
    label_strings: list[bytes], data: SequenceSet, classes: list[str] | None, source: str
) -> tuple[np.ndarray, list[str]]:
    """Each residue's class index (flat, like the codes) and the classes: ``classes`` or
    the sorted letters found. Every label string must be as long as its sequence."""
    lengths = data.lengths
    for i, text in enumerate(label_strings):
        if len(text) != lengths[i]:
            raise DataError(
                f"{source}: the labels of {shorten(data.ids[i])!r} have "
                f"{len(text)} positions, its sequence has {int(lengths[i])}; "
                "give one label per residue"
            )
    flat = np.frombuffer(b"".join(label_strings), dtype=np.uint8)
    if classes is None:
        classes = _label_letters(flat, data, source)
    index = np.full(256, PAD, dtype=np.int16)
    for i, c in enumerate(classes):
        index[ord(c)] = i
    codes = index[flat]
    if (codes == PAD).any():
        at = int(np.flatnonzero(codes == PAD)[0])
        rec = int(np.searchsorted(data.offsets, at, side="right") - 1)
        raise DataError(
            f"{source}: record {shorten(data.ids[rec])!r}, position "
            f"{at - int(data.offsets[rec]) + 1}: label {chr(flat[at])!r} is not "
            f"one of the classes ({', '.join(classes)})"
        )
    return codes, list(classes)


def _label_letters(flat: np.ndarray, data: SequenceSet, source: str) -> list[str]:
    """The sorted label letters found (printable ASCII, at least two)."""
    letters = np.unique(flat)
    odd = letters[(letters < 0x21) | (letters > 0x7E)]
    if len(odd):  # a control character (or a piece of a non-ASCII one)
        at = int(np.flatnonzero(flat == odd[0])[0])
        rec = int(np.searchsorted(data.offsets, at, side="right") - 1)
        raise DataError(
            f"{source}: record {shorten(data.ids[rec])!r}, position "
            f"{at - int(data.offsets[rec]) + 1}: label {chr(odd[0])!r} is no "
            "printable ASCII letter; label letters become columns of the "
            "predictions (prob_<letter>)"
        )
    classes = [chr(c) for c in letters]
    if len(classes) < 2:
        raise DataError(
            f"{source}: the labels hold a single class "
            f"({classes[0] if classes else 'none'}); a classifier needs at "
            "least two"
        )
    return classes


def _join(
    data: SequenceSet,
    labels: dict[str, bytes],
    seq_source: str,
    source: str,
    ignore_unmatched: bool,
) -> dict[str, bytes]:
    """The label string of each sequence, joined by id (labels FASTA ids are unique: read
    by :func:`read_letters`), with the join report labelled records get."""
    ids = set(data.ids)
    join = Join(
        dup_seq=duplicates(data.ids),
        dup_lab=[],
        no_label=list(dict.fromkeys(x for x in data.ids if x not in labels)),
        no_seq=[x for x in labels if x not in ids],
        empty=[],
    )
    if join.any():
        report_join(join, seq_source, source, list(labels), ({}, {}), ignore_unmatched)
    kept = {x: labels[x] for x in data.ids if x in labels}
    if not kept:
        raise DataError(f"no id is shared by {seq_source} and {source}")
    return kept


def _mask_flags(mask: str | os.PathLike[str], data: SequenceSet) -> np.ndarray:
    """True where a residue is scored: the mask's 1s; records it does not name: everywhere."""
    name = display_name(mask)
    masks = read_letters(mask, "mask")
    flags = np.ones(len(data.codes), dtype=bool)
    missing = 0
    for i, rid in enumerate(data.ids):
        text = masks.get(rid)
        if text is None:
            missing += 1
            continue
        start, end = int(data.offsets[i]), int(data.offsets[i + 1])
        if len(text) != end - start:
            raise DataError(
                f"{name}: the mask of {shorten(rid)!r} has {len(text)} positions, "
                f"its sequence has {end - start}"
            )
        digits = np.frombuffer(text, dtype=np.uint8)
        bad = (digits != ord("0")) & (digits != ord("1"))
        if bad.any():
            at = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{name}: record {shorten(rid)!r}, position {at + 1}: mask "
                f"symbol {chr(digits[at])!r} is not 0 or 1"
            )
        flags[start:end] = digits == ord("1")
    if missing:
        log.info(
            "%s names no mask for %d record(s): every position of those is scored", name, missing
        )
    return flags


def position_task(classes: list[str], target: str = "label") -> TaskSpec:
    return TaskSpec(KIND, [target], classes=list(classes))


def build(config: ModelConfig, alphabet: Alphabet, classes: list[str]) -> SequenceModel:
    model = SequenceModel(config, alphabet.size, len(classes), per_position=True)
    check_keeps_positions(model, config, alphabet.size)
    return model


# --------------------------------------------------------------------------- predict


def predict_positions(
    bundle: Bundle,
    records: Iterable[Record],
    source: str,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    on_invalid: str = "error",
) -> Iterator[tuple[str, bytes, np.ndarray]]:
    """(id, sequence, probabilities (L, K)) of every record, in input order."""
    dev = torch.device(device)
    task = bundle.task
    onehot = featurizer(bundle.features).to(dev)
    stats = PredictStats()
    limit = BatchLimit(batch_size)
    was_training = bundle.model.training
    bundle.model.eval()
    for kept, data in encoded_chunks(bundle, records, source, batch_size, on_invalid, stats):
        # each record keeps its own (L, K): a chunk costs its residues, not its records
        # times its longest record
        probs: list[np.ndarray] = [np.zeros(0)] * len(data)
        lengths = data.lengths
        with torch.inference_mode():
            for index, logits in batches_in_memory(
                bundle.model, onehot, data, batch_size, dev, limit, OOM_ERRORS
            ):
                out = task.outputs(logits).numpy()
                for row, i in enumerate(index):
                    probs[i] = out[row, : int(lengths[i])].copy()
        for i, rec in enumerate(kept):
            yield rec.id, rec.seq, probs[i]
    bundle.model.train(was_training)


def write_positions(
    bundle: Bundle,
    predictions: Iterable[tuple[str, bytes, np.ndarray]],
    output: str | os.PathLike[str],
    fmt: str = "tsv",
) -> int:
    """Long format (id, position, residue, predicted, prob_<class>...) or a FASTA of
    predicted labels. Returns the number of records written."""
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of: {', '.join(FORMATS)}")
    classes = np.array(bundle.task.classes)
    n = 0
    # the first record is predicted before anything is written: an input refused at its
    # first chunk leaves stdout empty too
    ahead = iter(predictions)
    first = next(ahead, None)
    predictions = itertools.chain([] if first is None else [first], ahead)
    with atomic_output(output) as fh:
        if fmt == "fasta":
            for rid, _, probs in predictions:
                fh.write(f">{rid}\n{''.join(classes[probs.argmax(axis=1)])}\n")
                n += 1
            return n
        writer = csv.writer(fh, delimiter=table_delimiter(output), lineterminator="\n")
        writer.writerow(["id", "position", "residue", "predicted", *(f"prob_{c}" for c in classes)])
        for rid, seq, probs in predictions:
            best = classes[probs.argmax(axis=1)]
            residues = seq.decode("ascii", "replace")
            writer.writerows(
                [rid, j + 1, residues[j], best[j], *(f"{p:.6g}" for p in row)]
                for j, row in enumerate(probs)
            )
            n += 1
    return n


# --------------------------------------------------------------------------- evaluate


def score_positions(
    bundle: Bundle, labels: PositionLabels, batch_size: int, device: torch.device | str
) -> tuple[dict[str, float], np.ndarray, np.ndarray, float]:
    """Summary metrics over scored positions, their labels (M,) and probabilities (M, K)."""
    dev = torch.device(device)
    task = bundle.task
    scored = infer_scored(
        bundle.model,
        featurizer(bundle.features).to(dev),
        task,
        with_structure(labels.data, bundle.features),
        batch_size,
        dev,
    )
    y = scored.y.numpy()
    out = task.outputs(scored.logits).numpy().astype(np.float64)
    summary = {
        "loss": scored.loss,
        **metrics.classification_metrics(y, out),
        "positions": float(len(y)),
    }
    return summary, y, out, scored.loss


def describe_counts(labels: PositionLabels) -> dict[str, Any]:
    assert labels.data.positions is not None
    t = labels.data.positions
    counts = np.bincount(t[t >= 0].astype(np.int64), minlength=len(labels.classes))
    return {c: int(k) for c, k in zip(labels.classes, counts, strict=True)}


# --------------------------------------------------------------------------- training


def load_for_training(
    fasta: str | os.PathLike[str] | None,
    labels: str | os.PathLike[str] | Sniffed,
    val_fasta: str | os.PathLike[str] | None,
    val_labels: str | os.PathLike[str] | None,
    *,
    alphabet: str | None,
    mask: str | os.PathLike[str] | None,
    id_column: str,
    targets: list[str] | None,
    sequence_column: str | None,
    on_invalid: str,
    ignore_unmatched: bool,
) -> tuple[TaskSpec, Alphabet, SequenceSet, SequenceSet | None]:
    """The task, alphabet, training records and the explicit validation records (if any).

    One mask FASTA serves both: it is looked up by id.
    """
    common: dict[str, Any] = {
        "mask": mask,
        "id_column": id_column,
        "targets": targets,
        "sequence_column": sequence_column,
        "on_invalid": on_invalid,
        "ignore_unmatched": ignore_unmatched,
    }
    train = load_positions(fasta, labels, alphabet=alphabet, **common)
    spec = position_task(train.classes, train.target)
    log.info(
        "task: per-position (%d classes: %s; %d scored positions)",
        len(train.classes),
        ", ".join(f"{c} {k}" for c, k in describe_counts(train).items()),
        train.scored,
    )
    val = None
    if val_labels is not None:
        val = load_positions(
            val_fasta, val_labels, alphabet=train.alphabet, classes=train.classes, **common
        ).data
    return spec, train.alphabet, train.data, val


def class_weight_targets(spec: TaskSpec, data: SequenceSet) -> np.ndarray:
    """The labels that class weights are counted from: the scored positions (and, for a
    language model, every record's end)."""
    if spec.kind not in PER_POSITION_KINDS:
        assert data.targets is not None
        return data.targets
    assert data.positions is not None
    scored = data.positions[data.positions >= 0]
    if spec.kind == KIND:
        return scored
    return np.concatenate([scored, np.full(len(data), spec.n_outputs - 1, dtype=scored.dtype)])
