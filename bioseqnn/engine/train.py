"""A training loop that does not know which architecture it trains."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from .. import runtime
from ..config import TrainConfig, explicit_class_weights
from ..data.batches import batch_indices, batch_targets, collate, shard
from ..data.sets import SequenceSet
from ..errors import TrainingError, UsageError
from ..models import native
from ..models.base import Predictor, SequenceModel
from ..strands import reverse_complement_codes
from ..tasks import PER_POSITION_KINDS, TaskSpec
from .checkpoint import Checkpoint, load_checkpoint, run_differences, save_checkpoint
from .distributed import (
    SINGLE,
    Dist,
    epoch_seed,
    from_main,
    gather_rows,
    global_mean_loss,
    global_position_loss,
    shares,
    sync_buffers,
    wrap,
)
from .optim import adamw
from .predict import infer, infer_scored
from .schedules import Schedule, check_monitor, improved

log = logging.getLogger("bioseqnn")


class Reporter(Protocol):
    """Receives progress; the CLI draws it, library callers may ignore it."""

    def start(self, epochs: int, batches: int, monitor: str = "val_loss") -> None: ...
    def batch(self, epoch: int, loss: float) -> None: ...
    def epoch(self, record: dict[str, Any]) -> None: ...
    def finish(self) -> None: ...


class StopTraining(Exception):  # noqa: N818 (a request, not an error)
    """Raised by an ``on_epoch`` callback to end training after that epoch, as early
    stopping does: the best epoch's weights are kept (tune's time budget uses it)."""


class SilentReporter:
    def start(self, epochs: int, batches: int, monitor: str = "val_loss") -> None:
        pass

    def batch(self, epoch: int, loss: float) -> None:
        pass

    def epoch(self, record: dict[str, Any]) -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass
class TrainResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best: dict[str, Any] = field(default_factory=dict)
    final: dict[str, Any] = field(default_factory=dict)
    stopped_early: bool = False
    seconds: float = 0.0
    monitor: str = "val_loss"
    resumed_from: int = 0
    """The epoch of the checkpoint this run continued from (0: a fresh start)."""


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


# Validation metrics of each task family, as they appear in the per-epoch records (val_*).
CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "auroc", "auprc", "mcc", "f1")
REGRESSION_METRICS = ("mse", "mae", "pearson", "spearman", "r2")


def monitor_choices(task: TaskSpec, validation: bool) -> list[str]:
    """Names that ``--monitor`` accepts for this task."""
    if not validation:
        return ["train_loss"]
    if task.kind == "language-model":
        return ["val_loss", "val_perplexity", "val_accuracy", "train_loss"]
    names = CLASSIFICATION_METRICS if task.is_classification else REGRESSION_METRICS
    return ["val_loss", *(f"val_{n}" for n in names), "train_loss"]


# --------------------------------------------------------------------------- class weights


RARE_SHARE = 0.5
"""A class is rare when its share of the training records is under this fraction of an
even share: under 25% for two classes, under 1/6 for three. Multilabel: a label whose
positives (or negatives) are under 25% of the records."""


@dataclass(frozen=True)
class Imbalance:
    """The rarest class (multilabel: the label of the rarest value) of imbalanced data."""

    name: str
    share: float
    """Its share of the training records (per-position: of the scored positions)."""


def find_imbalance(task: TaskSpec, targets: np.ndarray) -> Imbalance | None:
    """The rarest class when the training labels are imbalanced (see RARE_SHARE)."""
    if not task.is_classification or task.kind == "language-model" or not len(targets):
        return None
    if task.kind == "multilabel":
        pos = targets.astype(np.float64).mean(axis=0)
        rarer = np.minimum(pos, 1 - pos)
        k = int(np.argmin(rarer))
        if rarer[k] < RARE_SHARE / 2:
            value = "1" if pos[k] <= 0.5 else "0"
            return Imbalance(f"{task.targets[k]}={value}", float(rarer[k]))
        return None
    names = task.classes
    counts = np.bincount(targets.astype(np.int64), minlength=len(names)).astype(np.float64)
    share = counts / counts.sum()
    k = int(np.argmin(share))
    if share[k] < RARE_SHARE / len(names):
        return Imbalance(names[k], float(share[k]))
    return None


def resolve_monitor(
    setting: str, task: TaskSpec, imbalance: Imbalance | None, validation: bool
) -> str:
    """``--monitor auto``: val_loss, or for imbalanced classes a metric that a constant
    predictor cannot score well on (val_auprc for binary and multilabel, val_mcc
    otherwise); train_loss without validation data."""
    if setting != "auto":
        return setting
    if not validation:
        return "train_loss"
    if imbalance is None:
        return "val_loss"
    return "val_auprc" if task.kind in ("binary", "multilabel") else "val_mcc"


def collapse_warning(task: TaskSpec, record: dict[str, Any], prefix: str = "val") -> str | None:
    """One line when the metrics of ``record`` (the chosen epoch's validation figures) are
    no better than a constant prediction: the majority class, or the mean target.

    Classes are judged by MCC alone (at most 0.05): accuracy below the majority share is
    the expected price of a class-weighted loss, not a sign of collapse."""

    def get(name: str) -> float:
        value = record.get(f"{prefix}_{name}")
        return float(value) if isinstance(value, (int, float)) else float("nan")

    if task.kind in ("binary", "multiclass", "per-position", "multilabel"):
        mcc, accuracy, majority = get("mcc"), get("accuracy"), get("majority")
        if math.isnan(mcc):
            return None
        if mcc > 0.05:
            return None
        what = "residues" if task.kind == "per-position" else "records"
        base = (
            f"always predicting the most common class scores accuracy {majority:.4f}"
            if math.isfinite(majority)
            else "a constant prediction scores MCC 0"
        )
        return (
            f"the model is no better than a constant prediction on the validation "
            f"{what}: accuracy {accuracy:.4f}, MCC {mcc:.4f}, where {base}; check the "
            "labels, or try --class-weight balanced, --monitor val_mcc, another --lr "
            "(e.g. 3e-4) or more data"
        )
    if task.kind == "regression":
        if f"{prefix}_pearson" not in record:
            return None  # no validation figures
        pearson = get("pearson")
        if math.isfinite(pearson) and pearson > 0.05:
            return None
        shown = f"{pearson:.4f}" if math.isfinite(pearson) else "undefined (constant output)"
        return (
            f"the predictions do not follow the validation targets: Pearson r {shown}, "
            f"R2 {get('r2'):.4f}, where predicting the mean scores r 0 and R2 0; check "
            "the targets, or try another --lr (e.g. 3e-4) or more data"
        )
    return None


def resolve_class_weights(
    task: TaskSpec, setting: str, targets: np.ndarray, imbalance: Imbalance | None = None
) -> list[float]:
    """Loss weights from ``--class-weight`` and the training targets.

    'balanced' gives each class n / (K * count) (binary, multiclass) or each label
    negatives / positives (multilabel, as BCE's pos_weight); 'auto' does the same when the
    labels are imbalanced (``imbalance``, see find_imbalance) and nothing otherwise;
    explicit weights are given in class order ('1,4') or by name ('neg=1,pos=4', unnamed
    classes weigh 1).
    """
    setting = setting.strip()
    if setting in ("", "none"):
        return []
    if setting == "auto":
        if imbalance is None or not task.is_classification:
            return []
        setting = "balanced"
    if not task.is_classification:
        raise UsageError("--class-weight applies to classification tasks, not regression")
    names = task.classes if task.kind != "multilabel" else task.targets
    what = "label" if task.kind == "multilabel" else "class"
    if setting == "balanced":
        if task.kind == "multilabel":
            pos = targets.sum(axis=0).astype(np.float64)
            empty = [names[i] for i in np.flatnonzero(pos == 0)]
            if empty:
                raise UsageError(
                    f"--class-weight balanced: label(s) {', '.join(empty)} have "
                    "no positive training record; give explicit weights"
                )
            return [float(x) for x in (len(targets) - pos) / pos]
        counts = np.bincount(targets.astype(np.int64), minlength=len(names)).astype(np.float64)
        counts[counts == 0] = np.nan
        return [float(x) for x in np.nan_to_num(len(targets) / (len(names) * counts), nan=1.0)]
    given, named = explicit_class_weights(setting)
    if named:
        weights = dict.fromkeys(names, 1.0)
        for name, weight in given:
            if name not in weights:
                raise UsageError(
                    f"--class-weight: unknown {what} {name!r}; {what}es: {', '.join(names)}"
                )
            weights[name] = weight
        values = list(weights.values())
    else:
        values = [weight for _, weight in given]
        if len(values) != len(names):
            raise UsageError(
                f"--class-weight: {len(values)} weight(s) for {len(names)} "
                f"{what}es ({', '.join(names)}); give one per {what} or name=weight"
            )
    if not any(v > 0 for v in values):
        raise UsageError("--class-weight: at least one weight must be positive")
    return values


# --------------------------------------------------------------------------- precision


@dataclass
class _Precision:
    dtype: torch.dtype | None
    scaler: Any = None

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.dtype)


def _precision(name: str, device: torch.device) -> _Precision:
    if name == "32":
        return _Precision(None)
    if device.type != "cuda":
        log.warning("--precision %s needs CUDA; training in 32-bit on %s", name, device)
        return _Precision(None)
    if name == "bf16":
        if not torch.cuda.is_bf16_supported():
            raise UsageError("--precision bf16: this GPU has no bfloat16 support; use 16-mixed")
        return _Precision(torch.bfloat16)
    return _Precision(torch.float16, torch.amp.GradScaler("cuda"))


# --------------------------------------------------------------------------- the loop


def evaluate_set(
    model: Predictor,
    onehot: torch.nn.Module,
    task: TaskSpec,
    data: SequenceSet,
    batch_size: int,
    device: torch.device,
    prefix: str,
    ranks: Dist = SINGLE,
    part: tuple[list[int], SequenceSet] | None = None,
    max_tokens: int | None = None,
) -> dict[str, float]:
    """Loss and metrics on ``data``; distributed, each rank infers its ``part`` (the sizes
    of all ranks' parts and its own records) and every rank gets all outputs."""
    if task.kind in PER_POSITION_KINDS:
        return _evaluate_positions(
            model, onehot, task, data, batch_size, device, prefix, ranks, part, max_tokens
        )
    assert data.targets is not None
    if ranks.enabled and part is not None:
        mine = infer(model, onehot, part[1], max(batch_size, 256), device, max_tokens=max_tokens)
        logits = gather_rows(mine, part[0], ranks, device)
    else:
        logits = infer(model, onehot, data, max(batch_size, 256), device, max_tokens=max_tokens)
    target = torch.from_numpy(data.targets)
    loss = float(task.loss(logits, target))
    scores = task.metrics(data.targets, task.outputs(logits).numpy())
    if task.kind in ("binary", "multiclass"):
        scores["majority"] = majority_share(data.targets, len(task.classes))
    return {f"{prefix}_loss": loss, **{f"{prefix}_{k}": v for k, v in scores.items()}}


def majority_share(labels: np.ndarray, n_classes: int) -> float:
    """The accuracy of always predicting the most common class (the baseline that a
    collapsed classifier scores)."""
    if not len(labels):
        return float("nan")
    return float(np.bincount(labels.astype(np.int64), minlength=n_classes).max() / len(labels))


def _evaluate_positions(
    model: Predictor,
    onehot: torch.nn.Module,
    task: TaskSpec,
    data: SequenceSet,
    batch_size: int,
    device: torch.device,
    prefix: str,
    ranks: Dist,
    part: tuple[list[int], SequenceSet] | None,
    max_tokens: int | None,
) -> dict[str, float]:
    """evaluate_set for per-position tasks: only the scored positions' outputs are kept
    (and, distributed, gathered), never (records x longest x classes)."""
    mine = part[1] if ranks.enabled and part is not None else data
    scored = infer_scored(
        model, onehot, task, mine, max(batch_size, 256), device, max_tokens=max_tokens
    )
    logits, y = scored.logits, scored.y
    loss_sum, weight = scored.loss_sum, scored.weight
    if ranks.enabled and part is not None:
        counts: list[Any] = [None] * ranks.world
        torch.distributed.all_gather_object(counts, (len(y), loss_sum, weight))
        sizes = [int(c[0]) for c in counts]
        logits = gather_rows(logits, sizes, ranks, device)
        y = gather_rows(y.to(torch.float32), sizes, ranks, device).long()
        loss_sum, weight = sum(c[1] for c in counts), sum(c[2] for c in counts)
    loss = loss_sum / weight if weight else 0.0
    scores = task.position_metrics(y.numpy(), task.outputs(logits).numpy().astype(np.float64))
    if task.kind == "per-position":
        scores["majority"] = majority_share(y.numpy(), task.n_outputs)
    return {f"{prefix}_loss": loss, **{f"{prefix}_{k}": v for k, v in scores.items()}}


def still_improving(result: TrainResult, cfg: TrainConfig) -> bool:
    """Whether the run ended on the epoch cap with its best epoch among the last few
    (fewer than the plateau schedule waits before lowering the learning rate)."""
    if result.stopped_early or len(result.history) < max(cfg.epochs, 2) or result.best_epoch < 2:
        return False
    recent = max(1, cfg.patience // 2) if cfg.patience else 2
    return result.best_epoch > cfg.epochs - recent


def run_identity(
    model: SequenceModel,
    task: TaskSpec,
    train_set: SequenceSet,
    val_set: SequenceSet | None,
    cfg: TrainConfig,
) -> dict[str, Any]:
    """What a checkpoint must share with the run that resumes it."""
    training = dataclasses.asdict(cfg)
    for key in ("device", "threads", "checkpoint_dir"):
        training.pop(key, None)
    return {
        "train_sha256": train_set.fingerprint(),
        "val_sha256": val_set.fingerprint() if val_set is not None else None,
        "task": task.to_dict(),
        "model": dataclasses.asdict(model.config),
        "training": training,
    }


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _kept(cfg: TrainConfig, epoch: int) -> str:
    if not cfg.checkpoint_dir:
        return ""
    if epoch == 1:
        return f"; no checkpoint was written to {cfg.checkpoint_dir}"
    return f"; the checkpoint of epoch {epoch - 1} in {cfg.checkpoint_dir} is intact"


def _check_weights(model: torch.nn.Module, cfg: TrainConfig, epoch: int) -> None:
    for name, p in model.named_parameters():
        if not bool(torch.isfinite(p).all()):
            raise TrainingError(
                f"weight {name} became non-finite in epoch {epoch}{_kept(cfg, epoch)}; try "
                "a lower --lr, --weight-decay or a --grad-clip"
            )


def _epoch_batches(
    train_set: SequenceSet,
    cfg: TrainConfig,
    epoch: int,
    rc: bool,
    ranks: Dist = SINGLE,
) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray | None]]:
    """(batch number, global batch, this rank's share of it, strands to flip in the share)
    of one epoch, from the seed alone: every rank draws the same global batches."""
    rng = np.random.default_rng([cfg.seed, 2, epoch])
    if cfg.max_tokens or ranks.enabled:
        order = batch_indices(
            train_set.lengths,
            cfg.batch_size,
            rng,
            max_tokens=cfg.max_tokens or None,
            ranks=ranks.world,
        )
    else:
        order = batch_indices(train_set.lengths, cfg.batch_size, rng)
    strands = np.random.default_rng([cfg.seed, 3, epoch]) if rc else None
    out: list[tuple[int, np.ndarray, np.ndarray, np.ndarray | None]] = []
    for index in order:
        flip = strands.random(len(index)) < 0.5 if strands is not None else None
        if len(index) < ranks.world:
            continue  # a rank would get no record (at most one small batch per window)
        mine = shard(index, ranks.rank, ranks.world)
        out.append(
            (
                len(out) + 1,
                index,
                mine,
                shard(flip, ranks.rank, ranks.world) if flip is not None else None,
            )
        )
    return out


def _mean_scored(task: TaskSpec, data: SequenceSet, batches: list[np.ndarray]) -> float:
    """The mean total weight of scored positions per (global) batch of an epoch."""
    assert data.positions is not None
    weights = np.asarray(task.class_weights or [1.0] * task.n_outputs, dtype=np.float64)
    y = data.positions
    per_position = np.where(y >= 0, weights[np.maximum(y, 0).astype(np.int64)], 0.0)
    cumulative = np.concatenate([[0.0], np.cumsum(per_position)])
    per_record = cumulative[data.offsets[1:]] - cumulative[data.offsets[:-1]]
    if task.kind == "language-model":
        per_record += weights[-1]  # every record's end
    totals = [float(per_record[batch].sum()) for batch in batches]
    return max(float(np.mean(totals)) if totals else 1.0, 1e-12)


def fit(
    model: SequenceModel,
    task: TaskSpec,
    onehot: torch.nn.Module,
    train_set: SequenceSet,
    val_set: SequenceSet | None,
    cfg: TrainConfig,
    device: torch.device,
    reporter: Reporter | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    *,
    complement: np.ndarray | None = None,
    resume: bool = False,
    ranks: Dist = SINGLE,
) -> TrainResult:
    """Train ``model`` in place; with validation data, restore the best epoch's weights.

    ``complement`` (code -> complementary code) is needed for ``cfg.rc_augment``. With
    ``cfg.checkpoint_dir`` a checkpoint is written after every epoch; ``resume``
    continues from it, giving on CPU the weights an uninterrupted run would have.
    ``ranks`` (under torchrun, see :mod:`bioseqnn.distributed`): this process trains on
    its share of each global batch of ``cfg.batch_size`` records per rank; only rank 0
    writes checkpoints.
    """
    assert train_set.targets is not None or train_set.positions is not None
    runtime.tune_malloc_for_training()
    validation = val_set is not None and len(val_set) > 0
    monitor = _fit_monitor(cfg, task, validation)
    if cfg.rc_augment and complement is None:
        raise UsageError("--rc-augment needs DNA or RNA sequences")
    if resume and not cfg.checkpoint_dir:
        raise UsageError("--resume needs --checkpoint-dir (where the run left its checkpoint)")
    loop = _Fit(
        model,
        task,
        onehot,
        train_set,
        val_set,
        cfg,
        device,
        reporter or SilentReporter(),
        ranks,
        monitor,
        complement,
    )
    first_epoch = loop.resume(on_epoch) if resume else 1
    loop.reporter.start(cfg.epochs, loop.n_batches, monitor)
    history = loop.result.history
    started = time.perf_counter() - (history[-1]["elapsed_s"] if history else 0)
    try:
        for epoch in range(first_epoch, cfg.epochs + 1):
            if loop.progress.done:
                break
            record = loop.epoch(epoch, started)
            stop_request = ""
            if on_epoch is not None:
                try:
                    on_epoch(record)
                except StopTraining as stop:
                    stop_request = str(stop) or "on request"
            loop.decide(epoch, record, stop_request)
            if cfg.checkpoint_dir and ranks.main:
                loop.save(epoch)
    finally:
        native.free_buffers()  # the recurrent kernels' storage, kept between steps
    loop.reporter.finish()
    return loop.finish(started)


def _fit_monitor(cfg: TrainConfig, task: TaskSpec, validation: bool) -> str:
    """The monitored metric: without validation data, the training loss."""
    monitor = cfg.monitor
    if not validation and monitor != "train_loss":
        if monitor != "val_loss":
            raise UsageError(
                f"--monitor {monitor} needs validation data "
                "(--val-fraction > 0 or --val-fasta/--val-labels)"
            )
        monitor = "train_loss"
    check_monitor(monitor, monitor_choices(task, validation))
    return monitor


@dataclass
class _Progress:
    """Where early stopping stands: what a checkpoint holds besides weights, optimizer,
    schedule and random states (to_checkpoint and restore are each other's inverse)."""

    best_value: float | None = None
    best_state: dict[str, torch.Tensor] | None = None
    waited: int = 0
    done: bool = False


class _Fit:
    """One model's training run: the objects its epochs share."""

    def __init__(
        self,
        model: SequenceModel,
        task: TaskSpec,
        onehot: torch.nn.Module,
        train_set: SequenceSet,
        val_set: SequenceSet | None,
        cfg: TrainConfig,
        device: torch.device,
        reporter: Reporter,
        ranks: Dist,
        monitor: str,
        complement: np.ndarray | None,
    ) -> None:
        self.model, self.task, self.onehot = model, task, onehot
        self.train_set, self.cfg = train_set, cfg
        # None without validation records (an empty set counts as none)
        self.val_set = val_set if val_set is not None and len(val_set) > 0 else None
        self.device, self.reporter, self.ranks = device, reporter, ranks
        self.rc_table = torch.from_numpy(complement) if complement is not None else None
        model.to(device)
        onehot.to(device)
        self.precision = _precision(cfg.precision, device)
        self.threads = torch.get_num_threads()  # a small step runs on one (see step)
        self.pin = device.type == "cuda"
        self.optimizer = adamw(model, cfg.lr, cfg.weight_decay)
        self.net = wrap(model, ranks, device)  # the module of training steps (DDP if distributed)
        self.n_batches = len(_epoch_batches(train_set, cfg, 1, False, ranks))
        self.schedule = Schedule(
            cfg.schedule,
            cfg.lr,
            cfg.epochs * self.n_batches,
            round(cfg.warmup_epochs * self.n_batches),
            monitor,
            max(1, cfg.patience // 2) if cfg.patience else 2,
        )
        # Per-position tasks weigh every scored position alike: a batch's summed loss over
        # the mean scored positions per batch. (The mean over each batch's own positions
        # would give the residues of short sequences, batched together by length, more
        # weight than those of long ones: a language model then overrates the end.)
        self.by_position = task.kind in PER_POSITION_KINDS
        self.result = TrainResult(monitor=monitor)
        self.progress = _Progress()
        identity = run_identity(model, task, train_set, val_set, cfg) if cfg.checkpoint_dir else {}
        if identity and ranks.enabled:
            identity["ranks"] = ranks.world  # another world size draws other global batches
        self.identity = identity
        self.val_part: tuple[list[int], SequenceSet] | None = None
        if self.val_set is not None and ranks.enabled:
            parts = shares(len(self.val_set), ranks)
            self.val_part = ([len(p) for p in parts], self.val_set.subset(parts[ranks.rank]))

    def resume(self, on_epoch: Callable[[dict[str, Any]], None] | None) -> int:
        """Restore the checkpoint's state; the first epoch still to run."""
        cfg = self.cfg
        assert cfg.checkpoint_dir is not None
        ck = load_checkpoint(cfg.checkpoint_dir)
        if ck is None:
            log.warning("no checkpoint in %s yet: starting from epoch 1", cfg.checkpoint_dir)
            return 1
        diff = run_differences(ck.run, self.identity)
        if diff:
            raise UsageError(
                f"cannot resume from {cfg.checkpoint_dir}: the checkpoint was made with "
                f"other data or settings ({'; '.join(diff[:4])}); use the original "
                "command, or another --checkpoint-dir to start afresh"
            )
        self.restore(ck)
        log.info("resuming from the checkpoint of epoch %d in %s", ck.epoch, cfg.checkpoint_dir)
        if on_epoch is not None:
            for past in self.result.history:
                on_epoch(past)
        return ck.epoch + 1

    def restore(self, ck: Checkpoint) -> None:
        self.model.load_state_dict(ck.model)
        self.optimizer.load_state_dict(ck.optimizer)
        self.schedule.load_state_dict(ck.schedule)
        if self.precision.scaler is not None and ck.scaler:
            self.precision.scaler.load_state_dict(ck.scaler)
        torch.set_rng_state(ck.rng_torch)
        if self.device.type == "cuda" and ck.rng_cuda:
            torch.cuda.set_rng_state_all(ck.rng_cuda)
        result = self.result
        result.history = list(ck.history)
        result.best_epoch, result.best = ck.best_epoch, dict(ck.best)
        self.progress = _Progress(ck.best_value, ck.best_model, ck.waited, ck.done)
        result.stopped_early = ck.done and ck.epoch < self.cfg.epochs
        result.resumed_from = ck.epoch

    def to_checkpoint(self, epoch: int) -> Checkpoint:
        progress, result, scaler = self.progress, self.result, self.precision.scaler
        return Checkpoint(
            epoch=epoch,
            run=self.identity,
            model=_cpu_state(self.model),
            optimizer=self.optimizer.state_dict(),
            schedule=self.schedule.state_dict(),
            rng_torch=torch.get_rng_state(),
            rng_cuda=torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            scaler=scaler.state_dict() if scaler is not None else None,
            best_model=progress.best_state,
            history=result.history,
            best_epoch=result.best_epoch,
            best=result.best,
            best_value=progress.best_value,
            waited=progress.waited,
            done=progress.done,
        )

    def save(self, epoch: int) -> None:
        assert self.cfg.checkpoint_dir is not None
        save_checkpoint(self.cfg.checkpoint_dir, self.to_checkpoint(epoch))

    def epoch(self, epoch: int, started: float) -> dict[str, Any]:
        """Train one epoch, validate, and return its record (logged and reported)."""
        model, cfg, ranks = self.model, self.cfg, self.ranks
        model.train()
        epoch_seed(cfg.seed, epoch, ranks)
        total, seen = 0.0, 0.0
        lr = self.schedule.lr()
        batches = _epoch_batches(self.train_set, cfg, epoch, cfg.rc_augment, ranks)
        per_batch = 1.0
        if self.by_position:
            per_batch = _mean_scored(
                self.task, self.train_set, [batch for _, batch, _, _ in batches]
            )
        try:
            for b, batch, index, flip in batches:
                lr = self.schedule.apply(self.optimizer)
                value, size = self.step(epoch, b, len(batch), index, flip, per_batch)
                self.schedule.step_batch()
                total += value * size
                seen += size
                self.reporter.batch(epoch, value)
        finally:
            runtime.set_threads(self.threads)  # steps may have run on fewer (runtime.step_threads)
        _check_weights(model, cfg, epoch)
        record: dict[str, Any] = {"epoch": epoch, "train_loss": total / max(seen, 1)}
        sync_buffers(model, ranks)
        if self.val_set is not None:
            record.update(
                evaluate_set(
                    model,
                    self.onehot,
                    self.task,
                    self.val_set,
                    cfg.batch_size,
                    self.device,
                    "val",
                    ranks,
                    self.val_part,
                    cfg.max_tokens or None,
                )
            )
            if not math.isfinite(record["val_loss"]):
                raise TrainingError(
                    f"the validation loss became {record['val_loss']} after epoch {epoch} (the "
                    f"weights diverged){_kept(cfg, epoch)}; try a lower --lr or --weight-decay"
                )
        record["lr"] = lr
        record["elapsed_s"] = round(time.perf_counter() - started, 3)
        record = from_main(record, ranks)  # the same decisions on every rank
        self.result.history.append(record)
        self.reporter.epoch(record)
        return record

    def step(
        self,
        epoch: int,
        b: int,
        batch_size: int,
        index: np.ndarray,
        flip: np.ndarray | None,
        per_batch: float,
    ) -> tuple[float, float]:
        """One optimisation step on this rank's ``index`` of a global batch: the batch's
        loss and its weight (records, or scored positions)."""
        task, device, ranks = self.task, self.device, self.ranks
        codes, lens = collate(self.train_set, index)
        positions = codes.shape[0] * codes.shape[1]
        if device.type == "cpu":
            pieces = runtime.step_threads(positions, self.threads)
            runtime.set_threads(pieces)
        if flip is not None and self.rc_table is not None:
            codes = reverse_complement_codes(codes, lens, self.rc_table, torch.from_numpy(flip))
        y = batch_targets(task, self.train_set, index)
        if self.pin:
            codes, y = codes.pin_memory(), y.pin_memory()
        x = self.onehot(codes.to(device, non_blocking=True))
        y = y.to(device, non_blocking=True)
        self.optimizer.zero_grad()  # set_to_none, torch.optim's default too
        with self.precision.autocast(device):
            logits = self.net(x, lens.to(device, non_blocking=True))
        if self.by_position:
            summed, weight = task.position_loss_sum(logits.float(), y)
            loss, value, size = global_position_loss(
                summed, float(weight), per_batch, ranks, device
            )
        else:
            loss = task.loss(logits.float(), y)
            loss, value = global_mean_loss(
                loss, float(loss.detach()), len(index), batch_size, ranks, device
            )
            size = batch_size
        if not math.isfinite(value):
            raise TrainingError(
                f"the loss became {value} at epoch {epoch}, batch {b}"
                f"{_kept(self.cfg, epoch)}; try a lower --lr or check the targets for "
                "extreme values"
            )
        self._backward(loss)
        return value, size

    def _backward(self, loss: torch.Tensor) -> None:
        scaler = self.precision.scaler
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        if scaler is not None:
            scaler.step(self.optimizer)
            scaler.update()
        else:
            self.optimizer.step()

    def decide(self, epoch: int, record: dict[str, Any], stop_request: str) -> None:
        """Keep the best epoch, stop early, step the schedule."""
        cfg, result, progress = self.cfg, self.result, self.progress
        monitor = result.monitor
        validation = self.val_set is not None
        value = float(record[monitor])
        if improved(value, progress.best_value, monitor):
            progress.best_value = value
            result.best_epoch = epoch
            result.best = dict(record)
            progress.waited = 0
            if validation:
                progress.best_state = _cpu_state(self.model)
        else:
            progress.waited += 1
            if (
                validation
                and cfg.patience
                and progress.waited >= cfg.patience
                and epoch < cfg.epochs
            ):
                result.stopped_early = progress.done = True
                log.info(
                    "early stopping at epoch %d: no better %s for %d epochs (best epoch %d)",
                    epoch,
                    monitor,
                    progress.waited,
                    result.best_epoch,
                )
        if stop_request and not progress.done and epoch < cfg.epochs:
            result.stopped_early = progress.done = True
            log.info(
                "stopped at epoch %d: %s (best epoch %d)", epoch, stop_request, result.best_epoch
            )
        self.schedule.step_epoch(value)
        progress.done = progress.done or epoch == cfg.epochs

    def finish(self, started: float) -> TrainResult:
        """Warn where the run ended badly; restore the best epoch's weights."""
        result, cfg = self.result, self.cfg
        validation = self.val_set is not None
        if validation and result.best_epoch == 0 and result.history:
            log.warning("%s was never finite; keeping the last epoch's weights", result.monitor)
        elif validation and still_improving(result, cfg):
            log.warning(
                "training stopped at the epoch cap (--epochs %d) while %s was still "
                "improving (best epoch %d): more epochs may give a better model",
                cfg.epochs,
                result.monitor,
                result.best_epoch,
            )
        if self.progress.best_state is not None:
            self.model.load_state_dict(self.progress.best_state)
        result.final = dict(result.history[-1]) if result.history else {}
        result.seconds = time.perf_counter() - started
        self.model.eval()
        return result
