"""A run's members: one model, an ensemble's members (member i seeded with seed + i) or
one per cross-validation fold, each built and fitted in turn; and the one result of an
ensemble or of cross-validation.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..alphabets import Alphabet
from ..config import RunConfig, TrainConfig
from ..data.sets import SequenceSet
from ..errors import TrainingError
from ..models.base import (
    Ensemble,
    ModelConfig,
    SequenceModel,
    check_keeps_positions,
    check_lengths,
    count_parameters,
    describe,
    model_size,
    resolve_pooling,
    sizing_settings,
)
from ..models.inputs import featurizer
from ..runtime import ceiling_note
from ..structure import StructureInput
from ..tasks import TaskSpec
from . import distributed
from .cv import OutOfFold
from .finetune import Parent, start_from
from .finetune import report as report_start
from .predict import (
    out_of_memory,
)
from .train import (
    Reporter,
    TrainResult,
    evaluate_set,
    fit,
    seed_everything,
)

if TYPE_CHECKING:
    from ..variants.series import SeriesSpec

log = logging.getLogger("bioseqnn")


@dataclass
class MemberRun:
    """What every member of a run shares."""

    cfg: RunConfig
    tc: TrainConfig
    spec: TaskSpec
    alpha: Alphabet | SeriesSpec | StructureInput
    device: torch.device
    ranks: distributed.Dist
    per_position: bool
    lm: bool
    parent: Parent | None
    n_members: int
    oof: OutOfFold | None
    resume: bool
    complement: np.ndarray | None


def train_members(
    run: MemberRun,
    plans: Iterable[tuple[int, SequenceSet, SequenceSet | None]],
    reporter: Reporter | None,
    on_epoch: Callable[[dict[str, Any]], None],
    checked: tuple[SequenceSet, SequenceSet | None, str, str],
) -> tuple[list[SequenceModel], list[TrainResult]]:
    """Build and fit every member (one, an ensemble's, or one per fold)."""
    cfg, tc, spec, alpha = run.cfg, run.tc, run.spec, run.alpha
    train_set, val_set, train_name, val_name = checked
    members: list[SequenceModel] = []
    results: list[TrainResult] = []
    stage = "building"
    try:
        for index, member_train, member_val in plans:
            member_tc = _member_settings(tc, index, run.n_members)
            seed_everything(member_tc.seed)
            stage = "building"
            model = SequenceModel(
                cfg.model, alpha.size, spec.n_outputs, per_position=run.per_position, causal=run.lm
            )
            if run.parent is not None:
                start_from(model, run.parent, spec, tc.freeze_backbone)
            if index == 0:
                _first_member(run, model, train_set, val_set, train_name, val_name)
            _announce(run, index, member_train, member_val, member_tc.seed)
            tag = (
                {"fold" if run.oof is not None else "member": index + 1}
                if run.n_members > 1
                else {}
            )
            stage = "training"
            results.append(
                fit(
                    model,
                    spec,
                    featurizer(alpha),
                    member_train,
                    member_val,
                    member_tc,
                    run.device,
                    reporter=_Tagged(reporter, tag) if run.ranks.main and reporter else None,
                    on_epoch=_tag_records(on_epoch, tag),
                    complement=run.complement,
                    resume=run.resume,
                    ranks=run.ranks,
                )
            )
            members.append(model)
            if run.oof is not None:
                assert member_val is not None
                _predict_held_out(run, index, model, member_val, results[-1])
    except Exception as exc:
        if not out_of_memory(exc):
            raise
        size = model_size(cfg.model, alpha.size, spec.n_outputs, run.per_position or run.lm)
        raise TrainingError(
            _training_out_of_memory(stage, run.device, cfg.model, size.weights, train_set, tc)
        ) from None
    return members, results


def _announce(
    run: MemberRun,
    index: int,
    member_train: SequenceSet,
    member_val: SequenceSet | None,
    seed: int,
) -> None:
    """The line that starts a fold or an ensemble member (none for a single model)."""
    if run.oof is not None:
        log.info(
            "fold %d of %d: %d training, %d held-out records (seed %d)",
            index + 1,
            run.n_members,
            len(member_train),
            len(member_val or []),
            seed,
        )
    elif run.n_members > 1:
        log.info("ensemble member %d of %d (seed %d)", index + 1, run.n_members, seed)


def _predict_held_out(
    run: MemberRun, index: int, model: SequenceModel, held_out: SequenceSet, result: TrainResult
) -> None:
    """Cross-validation: fold ``index``'s model predicts its held-out records."""
    assert run.oof is not None
    run.oof.add(
        index,
        model,
        featurizer(run.alpha),
        held_out,
        result.best,
        run.tc.batch_size,
        run.device,
        run.tc.max_tokens or None,
    )


def _first_member(
    run: MemberRun,
    model: SequenceModel,
    train_set: SequenceSet,
    val_set: SequenceSet | None,
    train_name: str,
    val_name: str,
) -> None:
    """Checks and reports made once, on the first member built."""
    if run.per_position:
        check_keeps_positions(model, run.cfg.model, run.alpha.size)
    check_lengths(model, train_set.ids, train_set.lengths, train_name, advice="train")
    if val_set is not None:
        check_lengths(model, val_set.ids, val_set.lengths, val_name, advice="train")
    n_params = count_parameters(model)
    log.info(
        "model: %s, %s parameters%s",
        describe(
            {**run.cfg.to_dict()["model"], "pooling": resolve_pooling(run.cfg.model)},
            run.per_position,
            run.lm,
        ),
        f"{n_params:,}",
        f" per member, {run.n_members} members" if run.n_members > 1 else "",
    )
    if run.parent is not None:
        report_start(model, run.parent, run.spec, run.tc.freeze_backbone)


def _training_out_of_memory(
    stage: str,
    device: torch.device,
    model: ModelConfig,
    weights: int,
    data: SequenceSet,
    tc: TrainConfig,
) -> str:
    """One line for memory that ran out while a model was built or trained: what took it
    and which settings (or records) to lower."""
    held = (
        f"the model ({model.arch}, {sizing_settings(model)}): {weights:,} weights "
        f"({_size_text(weights * 4)} as float32"
    )
    where = f"{device}{ceiling_note() if device.type == 'cpu' else ''}"
    if stage == "building":
        return f"out of memory on {where} building {held}); lower those settings"
    longest = int(np.argmax(data.lengths)) if len(data) else 0
    record = (
        f", the longest record {data.ids[longest]!r} has {int(data.lengths[longest]):,} positions"
        if len(data)
        else ""
    )
    cap = f"--max-tokens {tc.max_tokens}" if tc.max_tokens else "no --max-tokens"
    return (
        f"out of memory on {where} training {held}, about four times that while "
        f"training), batches of up to {tc.batch_size} records ({cap}){record}; lower "
        "--batch-size or set --max-tokens, split or trim the longest records, or lower "
        "the model's settings"
    )


def _size_text(n: int) -> str:
    """Bytes for a person: '3.8 kB', '12.0 MB', '3.8 GB' (powers of 1024)."""
    for unit, shift in (("GB", 30), ("MB", 20), ("kB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} bytes"


def _member_settings(tc: TrainConfig, index: int, members: int) -> TrainConfig:
    """The settings of ensemble (or cross-validation) member ``index``: its own seed and
    checkpoint folder."""
    if members == 1:
        return tc
    folder = str(Path(tc.checkpoint_dir) / f"member-{index + 1}") if tc.checkpoint_dir else None
    return dataclasses.replace(tc, seed=tc.seed + index, checkpoint_dir=folder)


def cv_result(oof: OutOfFold, results: list[TrainResult]) -> TrainResult:
    """One result for cross-validation: every fold's epochs (tagged with ``fold``), and
    as ``best`` and ``final`` the pooled out-of-fold figures (logged with their spread)."""
    summary = oof.summary()
    pooled = summary["pooled"]
    shown = [
        k
        for k in (
            "val_loss",
            "val_accuracy",
            "val_mcc",
            "val_r2",
            "val_pearson",
            "val_spearman",
            "val_perplexity",
            results[0].monitor,
        )
        if k in pooled and k in summary["mean"]
    ]
    log.info(
        "cross-validation, %d folds: %s",
        summary["folds"],
        "; ".join(
            f"{k} {summary['mean'][k]:.4f} ± {summary['sd'][k]:.4f} (pooled {pooled[k]:.4f})"
            for k in dict.fromkeys(shown)
        ),
    )
    history = [{"fold": i + 1, **r} for i, res in enumerate(results) for r in res.history]
    return TrainResult(
        history=history,
        best=pooled,
        final=pooled,
        stopped_early=any(r.stopped_early for r in results),
        seconds=sum(r.seconds for r in results),
        monitor=results[0].monitor,
        resumed_from=results[0].resumed_from,
    )


def _tag_records(
    sink: Callable[[dict[str, Any]], None], tag: dict[str, Any]
) -> Callable[[dict[str, Any]], None]:
    return lambda record: sink({**tag, **record})


class _Tagged:
    """A reporter whose epoch records name the ensemble member."""

    def __init__(self, inner: Reporter, tag: dict[str, Any]) -> None:
        self.inner, self.tag = inner, tag

    def start(self, epochs: int, batches: int, monitor: str = "val_loss") -> None:
        self.inner.start(epochs, batches, monitor)

    def batch(self, epoch: int, loss: float) -> None:
        self.inner.batch(epoch, loss)

    def epoch(self, record: dict[str, Any]) -> None:
        self.inner.epoch({**self.tag, **record})

    def finish(self) -> None:
        self.inner.finish()


def ensemble_result(
    model: Ensemble,
    results: list[TrainResult],
    spec: TaskSpec,
    onehot: torch.nn.Module,
    val_set: SequenceSet | None,
    tc: TrainConfig,
    device: torch.device,
) -> TrainResult:
    """One result for the ensemble: every member's epochs (tagged with ``member``), and
    as ``best`` and ``final`` the ensemble's own validation metrics."""
    history = [{"member": i + 1, **r} for i, res in enumerate(results) for r in res.history]
    record: dict[str, Any] = {}
    if val_set is not None and len(val_set):
        model.to(device).eval()
        onehot.to(device)
        record = evaluate_set(
            model,
            onehot,
            spec,
            val_set,
            tc.batch_size,
            device,
            "val",
            max_tokens=tc.max_tokens or None,
        )
        shown = ", ".join(
            f"{k} {v:.4f}"
            for k, v in record.items()
            if k in ("val_loss", "val_accuracy", "val_r2", "val_spearman")
        )
        log.info("ensemble of %d on the validation set: %s", len(results), shown)
    return TrainResult(
        history=history,
        best=record,
        final=record,
        stopped_early=any(r.stopped_early for r in results),
        seconds=sum(r.seconds for r in results),
        monitor=results[0].monitor,
        resumed_from=results[0].resumed_from,
    )
