"""Train's data: read as its variant reads it, folded (--structure), digested, checked for
conflicting labels and validation records seen in training, split or cut into folds, and
its classes weighed.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...alphabets import Alphabet
from ...config import RunConfig, TrainConfig
from ...data.batches import split_indices
from ...data.sets import SequenceSet
from ...digest import canonical_codes, conflicting_labels, record_digests, seen_in_training
from ...engine.cv import assign_folds
from ...engine.finetune import Parent, check_input, check_overlap
from ...engine.train import (
    Imbalance,
    find_imbalance,
    resolve_class_weights,
    resolve_monitor,
)
from ...errors import DataError, UsageError
from ...io.files import display_name
from ...models.base import (
    resolve_model,
)
from ...structure import StructureInput, structure_input, with_structure
from ...tasks import TaskSpec
from ...variants.base import Loaded, TrainInputs
from ...variants.intervals import load_for_training as load_intervals_for_training
from ...variants.labelled import load_labelled
from ...variants.lm import KIND as LANGUAGE_MODEL
from ...variants.lm import load_lm
from ...variants.perposition import (
    class_weight_targets,
    load_for_training,
)
from ...variants.series import SeriesSpec
from .checks import check_kernels, check_reading, check_size

log = logging.getLogger("bioseqnn")


@dataclass
class Ready:
    """A run's data, read, folded when asked, digested and split, with the settings made
    concrete: what its members are trained from."""

    cfg: RunConfig
    tc: TrainConfig
    """The training settings as resolved (class weights, monitor); ``cfg.training`` keeps
    them as given."""
    spec: TaskSpec
    alpha: Alphabet | SeriesSpec | StructureInput
    data: SequenceSet
    folds: np.ndarray | None
    train_set: SequenceSet
    val_set: SequenceSet | None
    digests: _Digests
    names: tuple[str, str]
    """The training and validation inputs, for messages."""


def prepare(
    src: TrainInputs,
    cfg: RunConfig,
    parent: Parent | None,
    kind: tuple[bool, bool],
    on_ready: Callable[[dict[str, Any]], None] | None,
) -> Ready:
    """Read the data as its variant does (``kind``: language model, per-position), fold,
    digest, resolve the automatic model settings, split and weigh the classes."""
    lm, per_position = kind
    tc = cfg.training
    loaded = _load_training_data(src, cfg, lm, per_position)
    spec, alpha, data, explicit_val = loaded.spec, loaded.alpha, loaded.data, loaded.val
    if tc.structure != "none":
        alpha = _fold(alpha, tc, data, explicit_val)
    if parent is not None:
        check_input(parent, alpha)
    digests = _Digests.of(alpha, data, explicit_val, parent)
    labels_name = display_name(src.labels or loaded.primary)
    if not lm:
        _report_conflicts(spec, data, digests.train, labels_name)
    # the automatic settings (arch 'auto': the default recipe's network, a language model's
    # reading left to right; empty pool sizes, by task and sequence length) made concrete:
    # the model file records them
    median = float(np.median(data.lengths)) if len(data) else None
    cfg = dataclasses.replace(cfg, model=resolve_model(cfg.model, per_position, lm, median))
    check_kernels(cfg.model, _longest(data, explicit_val))
    folds, train_set, val_set = _split(data, explicit_val, spec, tc, labels_name)
    if parent is not None:
        check_overlap(parent, digests.held_out(folds is not None, val_set))
    if digests.given_val is not None:
        _check_val_overlap(digests, display_name(src.val_fasta or src.val_labels or ""))
    validated = folds is not None or (val_set is not None and len(val_set) > 0)
    tc = _weigh_classes(spec, train_set, tc, cfg.training, validated)
    if on_ready is not None:
        on_ready(_run_facts(spec, tc, alpha, (data, explicit_val), per_position or lm))
    check_size(cfg, tc.cv or tc.ensemble, alpha, spec, per_position or lm)
    val_name = src.val_fasta or src.val_labels or loaded.primary
    names = (display_name(loaded.primary), display_name(val_name))
    return Ready(cfg, tc, spec, alpha, data, folds, train_set, val_set, digests, names)


@dataclass
class _Digests:
    """Every training sequence's digest: repeated sequences with conflicting labels are
    found with them, and the model file keeps them for evaluate to find test records seen
    in training."""

    canonical: Any
    train: np.ndarray
    """Of the training input's records."""
    saved: np.ndarray
    """Written into the model file: the given validation records' too, and a fine-tuned
    model's parent's (it has learnt those as well)."""
    given_val: np.ndarray | None = None
    """Of the records of --val-fasta, when given."""

    @classmethod
    def of(
        cls,
        alpha: Alphabet | SeriesSpec | StructureInput,
        data: SequenceSet,
        val: SequenceSet | None,
        parent: Parent | None,
    ) -> _Digests:
        canonical = canonical_codes(alpha)
        digests = record_digests(data, canonical)
        given_val = None if val is None else record_digests(val, canonical)
        saved = digests if given_val is None else np.concatenate([digests, given_val])
        if parent is not None and parent.train_digest is not None:
            saved = np.concatenate([saved, parent.train_digest])
        return cls(canonical, digests, saved, given_val)

    def held_out(self, cv: bool, val_set: SequenceSet | None) -> np.ndarray:
        """The digests of the records that validate (every record under --cv)."""
        if cv:
            return self.train
        if self.given_val is not None:
            return self.given_val
        if val_set is not None:
            return record_digests(val_set, self.canonical)
        return np.zeros(0, np.uint64)


def _run_facts(
    spec: TaskSpec,
    tc: TrainConfig,
    alpha: Alphabet | SeriesSpec | StructureInput,
    parts: tuple[SequenceSet, SequenceSet | None],
    per_residue: bool,
) -> dict[str, Any]:
    """What a search needs to know of the run (train's ``on_ready``)."""
    return {
        "task": spec.kind,
        "monitor": tc.monitor,
        "strands": isinstance(alpha, Alphabet) and alpha.name in ("dna", "rna") and not per_residue,
        "longest": _longest(*parts),
    }


def _longest(*parts: SequenceSet | None) -> int:
    """The longest sequence of the parts given (0 for none)."""
    return max((int(p.lengths.max()) for p in parts if p is not None and len(p)), default=0)


def _load_training_data(src: TrainInputs, cfg: RunConfig, lm: bool, per_position: bool) -> Loaded:
    """Read the training (and given validation) records of whichever variant this is:
    a language model's sequences, genome intervals, per-residue labels, or labelled
    records (sequences or numeric series)."""
    tc = cfg.training
    fasta, labels = src.fasta, src.labels
    primary = check_reading(src, cfg, lm, per_position)
    if lm:
        assert fasta is not None
        return load_lm(fasta, src, primary)
    if src.genome is not None:
        assert fasta is not None
        spec, alpha, data, val = load_intervals_for_training(
            src.genome,
            fasta,
            labels,
            src.val_fasta,
            src.val_labels,
            task=src.task,
            id_column=src.id_column,
            targets=src.targets,
            alphabet=src.alphabet,
            on_invalid=src.on_invalid,
            ignore_unmatched=src.ignore_unmatched,
            cv=tc.cv,
        )
        return Loaded(spec, alpha, data, val, primary)
    if labels is None:
        raise UsageError(
            "a labels table is required (or --sequence-column; --task "
            f"{LANGUAGE_MODEL} learns from sequences alone)"
        )
    if per_position:
        spec, alpha, data, val = load_for_training(
            fasta,
            src.labels_input,  # as sniffed: a FASTA of labels, or a table
            src.val_fasta,
            src.val_labels,
            alphabet=src.alphabet,
            mask=src.position_mask,
            id_column=src.id_column,
            targets=src.targets,
            sequence_column=src.sequence_column,
            on_invalid=src.on_invalid,
            ignore_unmatched=src.ignore_unmatched,
        )
        return Loaded(spec, alpha, data, val, primary)
    return load_labelled(src, labels, tc, primary)


def _fold(
    alpha: Alphabet | SeriesSpec | StructureInput,
    tc: TrainConfig,
    data: SequenceSet,
    val: SequenceSet | None,
) -> StructureInput:
    """Fold every training and validation sequence (--structure)."""
    if not isinstance(alpha, Alphabet):
        raise UsageError("--structure folds RNA sequences; a numeric series has none")
    folding = structure_input(alpha, tc.structure)
    started = time.perf_counter()
    for part in (data, val):
        if part is not None:
            with_structure(part, folding, torch.get_num_threads())
    log.info(
        "folded %d sequence(s) with ViennaRNA %s (%s) in %.1f s",
        len(data) + len(val or []),
        folding.version,
        tc.structure,
        time.perf_counter() - started,
    )
    return folding


def _split(
    data: SequenceSet,
    explicit_val: SequenceSet | None,
    spec: TaskSpec,
    tc: TrainConfig,
    labels: str = "",
) -> tuple[np.ndarray | None, SequenceSet, SequenceSet | None]:
    """Folds (--cv), or the training and validation sets; ``labels`` names the labels
    input in messages."""
    folds: np.ndarray | None = None
    val_set: SequenceSet | None
    if tc.cv:
        if explicit_val is not None:
            raise UsageError(
                "--cv holds out each fold in turn for validation: drop --val-fasta/--val-labels"
            )
        strata = data.targets if spec.kind in ("binary", "multiclass") else None
        folds = assign_folds(len(data), tc.cv, tc.seed, strata)
        if int(np.bincount(folds, minlength=tc.cv).min()) == 0:
            raise DataError(f"--cv {tc.cv}: {len(data)} record(s) cannot fill {tc.cv} folds")
        # every record trains (in K - 1 of the members) and validates (in one)
        train_set, val_set = data, None
    elif explicit_val is not None:
        val_set = explicit_val
        train_set = data
    else:
        strata = data.targets if spec.kind in ("binary", "multiclass") else None
        train_idx, val_idx = split_indices(len(data), tc.val_fraction, tc.seed, strata)
        # the training records' codes move within the set's own array: no second copy
        train_set, val_set = data.split(train_idx, val_idx)
    _check_classes_train(spec, train_set, labels)
    if spec.kind == "per-position" and explicit_val is None:
        _check_scored_validation(data, folds if folds is not None else val_set)
    if folds is not None:
        log.info(
            "records: %d in %d folds%s; each fold is held out once",
            len(data),
            tc.cv,
            " (stratified by class)" if spec.kind in ("binary", "multiclass") else "",
        )
    else:
        log.info("records: %d training, %d validation", len(train_set), len(val_set or []))
    return folds, train_set, val_set


def _check_scored_validation(data: SequenceSet, held_out: np.ndarray | SequenceSet | None) -> None:
    """A per-position task's validation records (the split's, or each fold's, of
    ``data``: the records before a split) have a position to score: with none, every
    validation figure is undefined and early stopping would keep the first epoch."""
    masked = "every position of these records is masked (--position-mask) or unlabelled"
    if isinstance(held_out, SequenceSet):
        assert held_out.positions is not None
        if not (held_out.positions >= 0).any():
            raise DataError(
                f"the {len(held_out)} validation record(s) have no position to score: "
                f"{masked}; give more records with scored positions, a larger "
                "--val-fraction, or --val-fasta"
            )
        return
    if held_out is None or data.positions is None:
        return
    scored = np.add.reduceat(data.positions >= 0, data.offsets[:-1]) if len(data) else np.zeros(0)
    empty = [k + 1 for k in range(int(held_out.max()) + 1) if not scored[held_out == k].any()]
    if empty:
        raise DataError(
            f"--cv: the records of fold {empty[0]} have no position to score: "
            f"{masked}; give more records with scored positions or fewer folds"
        )


def _check_classes_train(spec: TaskSpec, train_set: SequenceSet, source: str = "") -> None:
    """Every class has a training record (or position): one seen only in validation
    would be an output the model never learnt. ``source`` names the labels input."""
    if spec.kind in ("binary", "multiclass"):
        assert train_set.targets is not None
        labels, what = train_set.targets, "record"
    elif spec.kind == "per-position":
        assert train_set.positions is not None
        labels, what = train_set.positions[train_set.positions >= 0], "position"
    else:
        return
    present = set(np.unique(labels).tolist())
    missing = [c for i, c in enumerate(spec.classes) if i not in present]
    if not missing:
        return
    trained = {c for i, c in enumerate(spec.classes) if i in present}
    cased = [c for c in missing if c.upper() in trained or c.lower() in trained]
    hint = (
        f"; labels that differ only in case are different classes ({cased[0]!r})" if cased else ""
    )
    raise DataError(
        f"{source + ': ' if source else ''}class(es) {', '.join(map(repr, missing))} have no "
        f"training {what} (only validation {what}s have them){hint}"
    )


def _weigh_classes(
    spec: TaskSpec, train_set: SequenceSet, tc: TrainConfig, given: TrainConfig, validated: bool
) -> TrainConfig:
    """Class weights (set on ``spec``) and the monitor, resolved and reported."""
    counted = class_weight_targets(spec, train_set)
    imbalance = find_imbalance(spec, counted)
    spec.class_weights = resolve_class_weights(spec, tc.class_weight, counted, imbalance)
    tc = dataclasses.replace(tc, monitor=resolve_monitor(tc.monitor, spec, imbalance, validated))
    if imbalance is not None:
        _report_imbalance(imbalance, spec, tc, given)
    if spec.class_weights:
        names = spec.targets if spec.kind == "multilabel" else spec.classes
        log.info(
            "class weights: %s",
            ", ".join(f"{n} {w:.3g}" for n, w in zip(names, spec.class_weights, strict=True)),
        )
    return tc


def _check_val_overlap(digests: _Digests, source: str) -> None:
    """Warn when records of the given validation set have the sequence of a training
    record: its figures, and the epoch they choose, then reward memorising."""
    held = digests.given_val
    if held is None or not len(held):
        return
    seen = int(seen_in_training(held, np.unique(digests.train)).sum())
    if seen:
        log.warning(
            "%s: %d of %d validation record(s) (%.1f%%) have the sequence of a training "
            "record: the validation figures overstate how well the model generalises",
            source,
            seen,
            len(held),
            100 * seen / len(held),
        )


def _report_conflicts(spec: TaskSpec, data: SequenceSet, digests: np.ndarray, source: str) -> None:
    """Sequences that occur more than once with different labels, said in one line: a
    warning for classes (a model cannot fit both), a note for regression (replicates)."""
    found = conflicting_labels(data, digests)
    if not found.sequences:
        return
    shown = "; ".join(" = ".join(repr(i) for i in ids) for ids in found.examples)
    what = "labels" if spec.is_classification else "target values"
    message = (
        f"{source}: {found.sequences} sequence(s) occur more than once with different "
        f"{what} ({found.records} records; e.g. {shown})"
    )
    if spec.is_classification:
        log.warning("%s: no model can fit both; check the labels", message)
    else:
        log.info("%s: replicate measurements are averaged by the loss", message)


def _report_imbalance(
    imbalance: Imbalance, spec: TaskSpec, tc: TrainConfig, given: TrainConfig
) -> None:
    """One line: how imbalanced the labels are and what the defaults did about it."""
    what = "positions" if spec.kind == "per-position" else "records"
    done = []
    if given.class_weight.strip() == "auto":
        done.append("class-weighted loss (--class-weight balanced)")
    if given.monitor == "auto":
        done.append(f"--monitor {tc.monitor}")
    action = f": {' and '.join(done)}" if done else ""
    log.info(
        "imbalanced labels: %r is %.1f%% of the training %s%s (set --class-weight or "
        "--monitor to choose otherwise)",
        imbalance.name,
        100 * imbalance.share,
        what,
        action,
    )
