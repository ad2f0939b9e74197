"""The train command: check the settings and outputs, load the data the way its variant
reads it, split or fold it, train one model, an ensemble or cross-validation members, and
write the model file with its manifest.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import machine, runtime
from ..alphabets import Alphabet
from ..bundle import save_bundle
from ..config import NOMINAL_CHANNELS, RunConfig, TrainConfig, validate
from ..data.batches import split_indices
from ..data.labels import target_names
from ..data.sets import SequenceSet
from ..digest import canonical_codes, conflicting_labels, record_digests, seen_in_training
from ..engine import distributed
from ..engine.checkpoint import checkpoint_path, hold_checkpoint_dir, prepare_checkpoint_dir
from ..engine.cv import OutOfFold, assign_folds, fold_sets
from ..engine.finetune import Parent, check_input, check_overlap, inherit, load_parent
from ..engine.members import MemberRun, cv_result, ensemble_result, train_members
from ..engine.predict import (
    resolve_device,
)
from ..engine.train import (
    Imbalance,
    Reporter,
    TrainResult,
    collapse_warning,
    find_imbalance,
    resolve_class_weights,
    resolve_monitor,
)
from ..errors import DataError, UsageError
from ..io.files import STDIO, display_name
from ..io.metrics_log import EpochLog, default_log_path
from ..io.outputs import (
    atomic_output,
    beside_nothing,
    check_not_an_input,
    check_one_stdin,
    check_output_path,
    same_path,
)
from ..io.sniff import sniff
from ..models.base import (
    Ensemble,
    Predictor,
    SequenceModel,
    check_causal,
    count_parameters,
    resolve_model,
    resolve_pooling,
    too_large,
)
from ..models.inputs import featurizer
from ..runtime import configure_threads, keeps_threads
from ..strands import complement_table
from ..structure import StructureInput, check_structure_options, structure_input, with_structure
from ..tasks import PER_POSITION_KINDS, TaskSpec
from ..variants.base import Loaded, TrainInputs
from ..variants.intervals import GenomeOptions, as_genome, check_genome_training
from ..variants.intervals import load_for_training as load_intervals_for_training
from ..variants.labelled import load_labelled
from ..variants.lm import KIND as LANGUAGE_MODEL
from ..variants.lm import check_lm_inputs, load_lm
from ..variants.perposition import (
    class_weight_targets,
    load_for_training,
)
from ..variants.series import SeriesSpec, check_series_inputs, input_fields, refuse_series_columns
from .ensemble import _length_policy

log = logging.getLogger("bioseqnn")


@dataclass
class TrainOutcome:
    output: Path
    manifest: dict[str, Any]
    result: TrainResult
    log_path: Path | None = None
    warnings: list[str] = field(default_factory=list)
    model: Predictor | None = None  # the trained model (best weights), on the CPU
    main: bool = True
    """False in the torchrun processes other than rank 0, which write no files."""


def _lengths_summary(data: SequenceSet) -> dict[str, float]:
    lengths = data.lengths
    return {
        "min": int(lengths.min()),
        "max": int(lengths.max()),
        "mean": round(float(lengths.mean()), 2),
    }


@keeps_threads
def train(
    fasta: str | os.PathLike[str] | None,
    labels: str | os.PathLike[str] | None,
    output: str | os.PathLike[str],
    config: RunConfig | None = None,
    *,
    id_column: str = "id",
    targets: list[str] | None = None,
    sequence_column: str | None = None,
    task: str | None = None,
    alphabet: str | None = None,
    on_invalid: str = "error",
    ignore_unmatched: bool = False,
    val_fasta: str | os.PathLike[str] | None = None,
    val_labels: str | os.PathLike[str] | None = None,
    log_path: str | os.PathLike[str] | None = None,
    reporter: Reporter | None = None,
    resume: bool = False,
    position_mask: str | os.PathLike[str] | None = None,
    series_columns: list[str] | None = None,
    genome: GenomeOptions | None = None,
    init_from: str | os.PathLike[str] | None = None,
    freeze_backbone: bool | None = None,
    init_member: int | None = None,
    on_ready: Callable[[dict[str, Any]], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    source_names: list[str] | None = None,
) -> TrainOutcome:
    """Train a model on sequences and labels and write the model file to ``output``.

    With ``config.training.checkpoint_dir``, ``resume`` continues the run whose checkpoint
    is there (same data and settings). Per-residue labels (a FASTA given as ``labels``, or
    ``task='per-position'`` with a column of label strings) train a per-position model;
    ``position_mask`` (a 0/1 FASTA) leaves positions out of loss and metrics.
    ``task='language-model'`` trains on the sequences alone (``labels`` None; see
    bioseqnn/variants/lm.py); ``val_fasta`` then needs no ``val_labels``.

    ``fasta`` may instead be a numeric series table (one row per time step: an id column,
    ``id_column`` as in the labels table, and channel columns, ``series_columns`` or every
    other column; see bioseqnn/variants/series.py); ``val_fasta`` is then a series table too.

    With ``genome``, ``fasta`` (and ``val_fasta``) are genome intervals (BED or a
    chrom/start/end table) cut from its reference; labels come from ``labels`` joined by
    interval id or from the intervals' own ``targets`` columns (bioseqnn/variants/intervals.py).

    ``init_from`` (a model file; ``config.training.init_from`` the same) fine-tunes: the
    parent's network settings are this run's (a setting given otherwise is refused), every
    new model starts from its backbone, and from its head when the task's outputs are the
    same; ``freeze_backbone`` trains only the head (and attention pooling);
    ``init_member`` picks the member of an ensemble parent (bioseqnn/engine/finetune.py).

    ``on_ready`` is called once the data is read and the settings are resolved, before a
    network is built, with what a search needs to know of the run: ``task`` (its kind),
    ``strands`` (whether --rc-augment applies), ``monitor`` (as resolved), ``longest``
    (the longest training or validation sequence); it may raise to stop there (tune
    does). ``on_epoch`` receives each epoch's metrics record as it is logged; an
    exception it raises ends training and propagates (tune prunes trials this way).
    ``source_names`` name the inputs in the model file (default: their paths; the Python
    API names data given in memory so).
    """
    cfg = _resolve_settings(config or RunConfig(), init_from, freeze_backbone, init_member)
    genome, targets = as_genome(genome), target_names(targets)
    src = TrainInputs(
        fasta,
        labels,
        val_fasta,
        val_labels,
        position_mask,
        id_column,
        targets,
        sequence_column,
        task,
        alphabet,
        on_invalid,
        ignore_unmatched,
        series_columns,
        genome,
    )
    log_file = _check_outputs(output, log_path, cfg, src)
    lm = task == LANGUAGE_MODEL
    _check_variant(src, cfg, lm)
    cfg, parent = _start_from_parent(cfg, src, lm)
    configure_threads(cfg.training.threads)
    runtime.tune_malloc_for_training()  # before the inputs are read: their chunks gain too
    ranks, device_name = distributed.setup(cfg.training.device)  # torchrun: join the others
    # rank 0 writes the checkpoints, so it alone holds their folder
    with hold_checkpoint_dir(cfg.training.checkpoint_dir if ranks.main else None):
        # train names its device on every run, so auto falls back to the CPU without a warning
        device = resolve_device(None if device_name == "auto" else device_name)
        ceiling = machine.memory_ceiling if device.type == "cpu" else None
        log.info(
            "device: %s, %d CPU thread(s)%s",
            device,
            torch.get_num_threads(),
            f", memory ceiling {ceiling / (1 << 30):.1f} GB" if ceiling is not None else "",
        )
        # per-residue labels: --task per-position, or a FASTA given as the labels
        per_position = task == "per-position" or (
            not lm and sequence_column is None and src.labels_input.is_fasta
        )
        ready = _prepare(src, cfg, parent, (lm, per_position), on_ready)
        run = _member_run(ready, device, ranks, parent, (lm, per_position), resume)
        members, results = _fit_members(run, ready, reporter, on_epoch, log_file)
        final_model, result = _combine_members(run, members, results, ready.val_set, output)
        collapsed = collapse_warning(ready.spec, result.best) if ranks.main else None
        if collapsed:
            log.warning(collapsed)
        sources = source_names or [display_name(p) for p in (fasta, labels) if p is not None]
        parts = (ready.data, ready.train_set, ready.val_set)
        manifest = _manifest(run, members[0], result, results, parts, sources, genome)
        final_model.cpu()
        if ranks.main:
            save_bundle(output, final_model, manifest, ready.digests.saved)
        return TrainOutcome(
            Path(output), manifest, result, log_file, model=final_model, main=ranks.main
        )


@dataclass
class _Ready:
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


def _prepare(
    src: TrainInputs,
    cfg: RunConfig,
    parent: Parent | None,
    kind: tuple[bool, bool],
    on_ready: Callable[[dict[str, Any]], None] | None,
) -> _Ready:
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
    folds, train_set, val_set = _split(data, explicit_val, spec, tc, labels_name)
    if parent is not None:
        check_overlap(parent, digests.held_out(folds is not None, val_set))
    if digests.given_val is not None:
        _check_val_overlap(digests, display_name(src.val_fasta or src.val_labels or ""))
    validated = folds is not None or (val_set is not None and len(val_set) > 0)
    tc = _weigh_classes(spec, train_set, tc, cfg.training, validated)
    if on_ready is not None:
        on_ready(_run_facts(spec, tc, alpha, (data, explicit_val), per_position or lm))
    _check_size(cfg, tc.cv or tc.ensemble, alpha, spec, per_position or lm)
    val_name = src.val_fasta or src.val_labels or loaded.primary
    names = (display_name(loaded.primary), display_name(val_name))
    return _Ready(cfg, tc, spec, alpha, data, folds, train_set, val_set, digests, names)


def _member_run(
    ready: _Ready,
    device: torch.device,
    ranks: distributed.Dist,
    parent: Parent | None,
    kind: tuple[bool, bool],
    resume: bool,
) -> MemberRun:
    """What every member of the run shares."""
    lm, per_position = kind
    tc = ready.tc
    complement = (
        complement_table(ready.alpha)
        if (tc.rc_augment or tc.rc_average) and isinstance(ready.alpha, Alphabet)
        else None
    )
    oof = OutOfFold(ready.spec, ready.folds) if ready.folds is not None else None
    return MemberRun(
        ready.cfg,
        tc,
        ready.spec,
        ready.alpha,
        device,
        ranks,
        per_position,
        lm,
        parent,
        tc.cv or tc.ensemble,
        oof,
        resume,
        complement,
    )


def _fit_members(
    run: MemberRun,
    ready: _Ready,
    reporter: Reporter | None,
    on_epoch: Callable[[dict[str, Any]], None] | None,
    log_file: Path | None,
) -> tuple[list[SequenceModel], list[TrainResult]]:
    """Train every member, each epoch's metrics logged to ``log_file`` (by rank 0)."""
    # Member i: seed + i for its initial weights, batch order and dropout. An ensemble's
    # members share the training and validation records (the split used the run's seed);
    # cross-validation member i trains on the other folds and validates on fold i.
    plans: Iterable[tuple[int, SequenceSet, SequenceSet | None]] = (
        fold_sets(ready.data, ready.folds, ready.tc.cv)
        if ready.folds is not None
        else ((i, ready.train_set, ready.val_set) for i in range(run.n_members))
    )
    epoch_log = EpochLog(log_file if run.ranks.main else None)  # only rank 0 writes files
    try:
        return train_members(
            run,
            plans,
            reporter,
            _both(epoch_log, on_epoch),
            (ready.train_set, ready.val_set, *ready.names),
        )
    finally:
        epoch_log.close()


def _start_from_parent(
    cfg: RunConfig, src: TrainInputs, lm: bool
) -> tuple[RunConfig, Parent | None]:
    """Fine-tuning (--init-from): the parent model, whose network settings become this
    run's."""
    tc = cfg.training
    if not tc.init_from:
        return cfg, None
    parent = load_parent(tc.init_from, tc.init_member or None)
    pools = not lm and not (
        src.task == "per-position" or (src.sequence_column is None and src.labels_input.is_fasta)
    )
    cfg = dataclasses.replace(cfg, model=inherit(parent, cfg.model, pools))
    if lm:
        check_causal(cfg.model)
    return cfg, parent


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
        "longest": max(int(p.lengths.max()) for p in parts if p is not None and len(p)),
    }


def _check_size(
    cfg: RunConfig,
    n_members: int,
    alpha: Alphabet | SeriesSpec | StructureInput,
    spec: TaskSpec,
    per_residue: bool,
) -> None:
    problem = too_large([cfg.model] * n_members, alpha.size, spec.n_outputs, per_residue)
    if problem:  # validate() assumed an alphabet's channels and one output
        raise UsageError(
            f"{problem} for {alpha.size} input channels and {spec.n_outputs} "
            "outputs; lower those settings"
        )


def _combine_members(
    run: MemberRun,
    members: list[SequenceModel],
    results: list[TrainResult],
    val_set: SequenceSet | None,
    output: str | os.PathLike[str],
) -> tuple[Predictor, TrainResult]:
    """The model to save and its result: the one member, or an ensemble of them (with
    cross-validation, its out-of-fold table written beside the model)."""
    spec = run.spec
    if run.oof is not None:
        ensemble = Ensemble(members, spec.kind)
        result = cv_result(run.oof, results)
        if run.ranks.main and spec.kind not in PER_POSITION_KINDS and not beside_nothing(output):
            _write_oof(run.oof, default_oof_path(output))
        return ensemble, result
    if run.n_members > 1:
        ensemble = Ensemble(members, spec.kind)
        result = ensemble_result(
            ensemble, results, spec, featurizer(run.alpha), val_set, run.tc, run.device
        )
        return ensemble, result
    return members[0], results[0]


def _resolve_settings(
    cfg: RunConfig,
    init_from: str | os.PathLike[str] | None,
    freeze_backbone: bool | None,
    init_member: int | None,
) -> RunConfig:
    given: dict[str, Any] = {
        "init_from": None if init_from is None else str(init_from),
        "freeze_backbone": freeze_backbone,
        "init_member": init_member,
    }
    if any(v is not None for v in given.values()):
        cfg = dataclasses.replace(
            cfg,
            training=dataclasses.replace(
                cfg.training, **{k: v for k, v in given.items() if v is not None}
            ),
        )
    validate(cfg)
    # before anything is read or built; train checks again with the data's alphabet or
    # channels and its outputs
    t = cfg.training
    problem = too_large([cfg.model] * max(t.ensemble, t.cv), NOMINAL_CHANNELS, 1)
    if problem:
        raise UsageError(f"{problem}; lower those settings")
    resolve_pooling(cfg.model)
    return cfg


def _check_outputs(
    output: str | os.PathLike[str],
    log_path: str | os.PathLike[str] | None,
    cfg: RunConfig,
    src: TrainInputs,
) -> Path | None:
    """Refuse outputs that would overwrite an input or each other; the log's path (None
    for no log: -o /dev/null without --log)."""
    if str(output) == STDIO:
        raise UsageError("the model file needs a path (-o model.bsnn), not '-'")
    check_one_stdin(
        SEQUENCES=src.fasta,
        LABELS=src.labels,
        **{
            "--val-fasta": src.val_fasta,
            "--val-labels": src.val_labels,
            "--position-mask": src.position_mask,
        },
    )
    _check_labels_are_not_the_sequences(src)
    inputs = src.named(cfg)
    check_output_path(output, inputs)
    # -o /dev/null (a trial run): no NAME.log.tsv or NAME.oof.tsv beside it in /dev
    special = beside_nothing(output)
    log_file = Path(log_path) if log_path else None if special else default_log_path(output)
    if log_file is not None:
        check_output_path(log_file, inputs)
        if same_path(log_file, output):
            raise UsageError(
                f"{log_file}: the metrics log and the model file (-o) are one file; "
                "give --log another name"
            )
    if cfg.training.cv and not special:
        check_output_path(default_oof_path(output), inputs)
    tc = cfg.training
    if tc.checkpoint_dir:
        for name, path in (("the model file (-o)", output), ("the metrics log", log_file)):
            if path is not None and same_path(path, tc.checkpoint_dir):
                raise UsageError(
                    f"--checkpoint-dir {tc.checkpoint_dir}: it is also {name}; give the "
                    "checkpoints a folder of their own"
                )
        prepare_checkpoint_dir(tc.checkpoint_dir)
        held = checkpoint_path(tc.checkpoint_dir)
        check_not_an_input(held, inputs)
        if log_file is not None and same_path(log_file, held):
            raise UsageError(
                f"{log_file}: the metrics log and the checkpoint (--checkpoint-dir) are one "
                "file; give --log another name"
            )
    return log_file


def _check_labels_are_not_the_sequences(src: TrainInputs) -> None:
    """One FASTA as both the sequences and their per-residue labels would label every
    residue with itself (a model that learns nothing, at 100% accuracy): a slip for
    the labels table, refused."""
    pairs = (
        ("SEQUENCES", src.fasta, "LABELS", src.labels),
        ("--val-fasta", src.val_fasta, "--val-labels", src.val_labels),
    )
    for seq_name, seqs, label_name, labels in pairs:
        if seqs is None or labels is None or STDIO in (str(seqs), str(labels)):
            continue
        try:
            same = os.path.samefile(seqs, labels)
        except OSError:  # a missing file is reported where it is read
            continue
        if same and sniff(labels).is_fasta:
            raise UsageError(
                f"{labels}: given as both {seq_name} and {label_name}: its residues would be "
                "their own labels; give the labels table (CSV/TSV: id and label columns) or "
                "a FASTA of per-residue labels"
            )


def _check_variant(src: TrainInputs, cfg: RunConfig, lm: bool) -> None:
    """The option rules of a language model and of genome intervals, before any read."""
    if lm:
        check_lm_inputs(
            src.fasta,
            src.labels,
            src.sequence_column,
            src.position_mask,
            src.val_labels,
            cfg.training,
        )
        check_causal(cfg.model)  # before reading any data
    elif (
        (src.val_fasta is None) != (src.val_labels is None)
        and src.sequence_column is None
        and src.genome is None
    ):
        raise UsageError("--val-fasta and --val-labels go together")
    if src.genome is not None:
        check_genome_training(
            src.genome,
            lm=lm,
            task=src.task,
            sequence_column=src.sequence_column,
            series_columns=src.series_columns,
            position_mask=src.position_mask,
        )


def _load_training_data(src: TrainInputs, cfg: RunConfig, lm: bool, per_position: bool) -> Loaded:
    """Read the training (and given validation) records of whichever variant this is:
    a language model's sequences, genome intervals, per-residue labels, or labelled
    records (sequences or numeric series)."""
    tc = cfg.training
    fasta, labels = src.fasta, src.labels
    primary = _check_reading(src, cfg, lm, per_position)
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


def _check_reading(
    src: TrainInputs, cfg: RunConfig, lm: bool, per_position: bool
) -> str | os.PathLike[str]:
    """The options that do not go with this variant, refused before anything is read;
    the input that holds the sequences."""
    tc = cfg.training
    fasta, labels = src.fasta, src.labels
    if (per_position or lm) and cfg.model.pooling != "auto":
        log.warning(
            "--pooling %s is not used: this model has one output per position", cfg.model.pooling
        )
    if src.position_mask is not None and not per_position:
        raise UsageError("--position-mask applies to per-position labels (--task per-position)")
    if per_position and (tc.rc_augment or tc.rc_average):
        raise UsageError(
            "--rc-augment and --rc-average are not available for per-position labelling"
        )
    if tc.structure != "none":
        check_structure_options(tc, lm)
    primary = fasta if fasta is not None else labels  # where the sequences are
    if primary is None:
        raise UsageError("no sequences given")
    if isinstance(src.series_columns, str):
        raise UsageError("series_columns takes a list of column names, e.g. ['ecg', 'ppg']")
    if src.series_columns and (lm or per_position):
        raise UsageError(
            "--series-columns applies to a numeric series table; a "
            f"{'language model' if lm else 'per-position model'} reads sequences"
        )
    if src.genome is None and fasta is not None and src.fasta_input.is_table:
        check_series_inputs(
            src.fasta_input,
            src.labels_input,
            (lm, per_position),
            src.sequence_column,
            tc,
            src.id_column,
        )
    elif src.series_columns and (fasta is None or src.fasta_input.is_fasta):  # stdin: when read
        refuse_series_columns(primary)
    return primary


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


def _manifest(
    run: MemberRun,
    model: SequenceModel,
    result: TrainResult,
    results: list[TrainResult],
    sets: tuple[SequenceSet, SequenceSet, SequenceSet | None],
    sources: list[str],
    genome: GenomeOptions | None,
) -> dict[str, Any]:
    """The model file's manifest: the resolved settings, the data, the metrics."""
    cfg, tc, oof = run.cfg, run.tc, run.oof
    data, train_set, val_set = sets
    resolved = cfg.to_dict()
    resolved["model"]["pooling"] = resolve_pooling(cfg.model)
    resolved["training"]["monitor"] = tc.monitor  # 'auto' as this run resolved it
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "torch_version": torch.__version__,
        "device": str(run.device),
        **input_fields(run.alpha),
        "max_length_policy": _length_policy(model.max_length),
        "task": run.spec.to_dict(),
        "model": resolved["model"],
        "training": resolved["training"],
        "seed": tc.seed,
        **({"per_position": True} if run.per_position or run.lm else {}),
        "parameters": count_parameters(model) * run.n_members,
        **({"init_from": run.parent.record(tc.freeze_backbone)} if run.parent is not None else {}),
        "data": {
            "sources": sources,
            "fingerprint_sha256": data.fingerprint(),
            "records": len(data),
            "train_records": len(train_set),
            "val_records": len(val_set) if val_set is not None else 0,
            "val_fingerprint_sha256": val_set.fingerprint() if val_set is not None else "",
            "lengths": _lengths_summary(data),
            **({"genome": genome.summary} if genome is not None else {}),
        },
        "metrics": _metrics(result)
        if run.n_members == 1
        else {
            "monitor": result.monitor,
            "best": result.best,
            "final": result.final,
            "seconds": round(result.seconds, 2),
            "cv": oof.summary(),
            "members": [
                {"seed": tc.seed + i, "fold": i + 1, **_metrics(r)} for i, r in enumerate(results)
            ],
        }
        if oof is not None
        else {
            "monitor": result.monitor,
            "best": result.best,
            "final": result.final,
            "seconds": round(result.seconds, 2),
            "members": [{"seed": tc.seed + i, **_metrics(r)} for i, r in enumerate(results)],
        },
    }


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


def _metrics(result: TrainResult) -> dict[str, Any]:
    return {
        "monitor": result.monitor,
        "resumed_from": result.resumed_from,
        "best_epoch": result.best_epoch,
        "best": result.best,
        "final": result.final,
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        "seconds": round(result.seconds, 2),
    }


def default_oof_path(output: str | os.PathLike[str]) -> Path:
    """model.bsnn -> model.oof.tsv, beside the model (the out-of-fold predictions)."""
    p = Path(output)
    return p.with_name(p.stem + ".oof.tsv") if p.suffix else p.with_name(p.name + ".oof.tsv")


def _write_oof(oof: OutOfFold, path: Path) -> None:
    """The out-of-fold predictions: one row per record (id, fold, then predict's columns),
    in input order, as predict writes its rows."""
    rows = oof.task.format_rows(oof.outputs())
    with atomic_output(path) as fh:
        fh.write("\t".join(["id", "fold", *oof.task.columns()]) + "\n")
        for i in oof.input_order():
            fh.write("\t".join([oof.ids[i], str(oof.fold[i]), *rows[i]]) + "\n")
    log.info("wrote the out-of-fold predictions to %s", path)


def _both(
    first: Callable[[dict[str, Any]], None], second: Callable[[dict[str, Any]], None] | None
) -> Callable[[dict[str, Any]], None]:
    """One per-epoch sink that feeds two: the metrics log first (so a record is logged
    even when the second stops training)."""
    if second is None:
        return first

    def both(record: dict[str, Any]) -> None:
        first(record)
        second(record)

    return both
