"""The train command's flow: settings and outputs checked, the data prepared, every member
trained, the members combined, and the model file written with its manifest.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ... import machine, runtime
from ...alphabets import Alphabet
from ...bundle import save_bundle
from ...config import RunConfig
from ...data.labels import target_names
from ...data.sets import SequenceSet
from ...engine import distributed
from ...engine.checkpoint import hold_checkpoint_dir
from ...engine.cv import OutOfFold, fold_sets
from ...engine.finetune import Parent
from ...engine.members import MemberRun, cv_result, ensemble_result, train_members
from ...engine.predict import (
    resolve_device,
)
from ...engine.train import (
    Reporter,
    TrainResult,
    collapse_warning,
)
from ...io.files import display_name
from ...io.metrics_log import EpochLog
from ...io.outputs import (
    atomic_output,
    beside_nothing,
)
from ...models.base import (
    Ensemble,
    Predictor,
    SequenceModel,
    count_parameters,
    resolve_pooling,
)
from ...models.inputs import featurizer
from ...runtime import configure_threads, keeps_threads
from ...strands import complement_table
from ...tasks import PER_POSITION_KINDS
from ...variants.base import TrainInputs
from ...variants.intervals import GenomeOptions, as_genome
from ...variants.lm import KIND as LANGUAGE_MODEL
from ...variants.series import input_fields
from ..ensemble import _length_policy
from .checks import (
    check_outputs,
    check_variant,
    default_oof_path,
    resolve_settings,
    start_from_parent,
)
from .data import Ready, prepare

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
    cfg = resolve_settings(config or RunConfig(), init_from, freeze_backbone, init_member)
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
    log_file = check_outputs(output, log_path, cfg, src)
    lm = task == LANGUAGE_MODEL
    check_variant(src, cfg, lm)
    cfg, parent = start_from_parent(cfg, src, lm)
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
        ready = prepare(src, cfg, parent, (lm, per_position), on_ready)
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


def _member_run(
    ready: Ready,
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
    ready: Ready,
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
