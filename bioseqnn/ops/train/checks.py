"""What train refuses before it reads a record: settings out of range or too large, outputs that
would replace an input or each other, options that do not go with the variant; and a
fine-tuned run's settings taken from its parent model.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from ...alphabets import Alphabet
from ...config import ARCHITECTURES, NOMINAL_CHANNELS, ModelConfig, RunConfig, validate
from ...engine.checkpoint import checkpoint_path, prepare_checkpoint_dir
from ...engine.finetune import Parent, inherit, load_parent
from ...errors import UsageError
from ...io.files import STDIO
from ...io.metrics_log import default_log_path
from ...io.outputs import (
    beside_nothing,
    check_not_an_input,
    check_one_stdin,
    check_output_path,
    same_path,
)
from ...io.sniff import sniff
from ...models.base import (
    check_causal,
    resolve_pooling,
    too_large,
)
from ...structure import StructureInput, check_structure_options
from ...tasks import TaskSpec
from ...variants.base import TrainInputs
from ...variants.intervals import check_genome_training
from ...variants.lm import check_lm_inputs
from ...variants.series import SeriesSpec, check_series_inputs, refuse_series_columns

log = logging.getLogger("bioseqnn")


def start_from_parent(
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


def check_size(
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


KERNEL_FLOOR = 64
"""A convolution may always span this many positions, however short the sequences (the
default 9 on tripeptides); past it, and past what can reach a sequence, it is refused."""


def check_kernels(model: ModelConfig, longest: int) -> None:
    """Refuse a convolution that spans more positions than can reach data: with 'same'
    padding a kernel over 2L - 1 positions (L: the longest sequence, after the pools of
    the layers before) has taps that only ever see padding, and its cost grows with its
    span: --kernel-sizes 100000 on 30-residue peptides ran for minutes in one torch call
    that no SIGTERM could stop."""
    if "kernel_sizes" not in ARCHITECTURES[model.arch].uses:
        return
    length = max(1, longest)
    layers = zip(model.kernel_sizes, model.dilations, model.pool_sizes, strict=True)
    for i, (kernel, dilation, pool) in enumerate(layers):
        span = (kernel - 1) * dilation + 1
        reach = 2 * length - 1
        limit = max(reach, KERNEL_FLOOR)
        if span > limit:
            pooled = any(p > 1 for p in model.pool_sizes[:i])
            there = " there (after the pools before it)" if pooled else ""
            raise UsageError(
                f"--kernel-sizes/--dilations: convolution layer {i + 1} spans {span:,} "
                f"positions, but the longest training sequence has {length:,}{there}: a "
                f"span over {limit:,} reaches only padding; lower --kernel-sizes or "
                "--dilations"
            )
        length = max(1, length // pool)


def resolve_settings(
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


def check_outputs(
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


def check_variant(src: TrainInputs, cfg: RunConfig, lm: bool) -> None:
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


def check_reading(
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


def default_oof_path(output: str | os.PathLike[str]) -> Path:
    """model.bsnn -> model.oof.tsv, beside the model (the out-of-fold predictions)."""
    p = Path(output)
    return p.with_name(p.stem + ".oof.tsv") if p.suffix else p.with_name(p.name + ".oof.tsv")
