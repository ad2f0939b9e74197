"""A training loop that does not know which architecture it trains."""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from .config import TrainConfig
from .data import SequenceSet, batch_indices, collate
from .encoding import OneHot
from .errors import TrainingError
from .models.base import SequenceModel
from .predict import infer
from .tasks import TaskSpec

log = logging.getLogger("bioseqnn")


class Reporter(Protocol):
    """Receives progress; the CLI draws it, library callers may ignore it."""

    def start(self, epochs: int, batches: int) -> None: ...
    def batch(self, epoch: int, loss: float) -> None: ...
    def epoch(self, record: dict[str, Any]) -> None: ...
    def finish(self) -> None: ...


class SilentReporter:
    def start(self, epochs: int, batches: int) -> None:
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


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


def _evaluate(
    model: SequenceModel, onehot: OneHot, task: TaskSpec, data: SequenceSet,
    batch_size: int, device: torch.device, prefix: str,
) -> dict[str, float]:
    assert data.targets is not None
    logits = infer(model, onehot, data, max(batch_size, 256), device)
    target = torch.from_numpy(data.targets)
    loss = float(task.loss(logits, target))
    scores = task.metrics(data.targets, task.outputs(logits).numpy())
    return {f"{prefix}_loss": loss, **{f"{prefix}_{k}": v for k, v in scores.items()}}


def fit(
    model: SequenceModel,
    task: TaskSpec,
    onehot: OneHot,
    train_set: SequenceSet,
    val_set: SequenceSet | None,
    cfg: TrainConfig,
    device: torch.device,
    reporter: Reporter | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place; with validation data, restore the best epoch's weights."""
    assert train_set.targets is not None
    reporter = reporter or SilentReporter()
    model.to(device)
    onehot.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    targets = torch.from_numpy(train_set.targets)
    lengths = train_set.lengths
    result = TrainResult()
    best_loss = math.inf
    best_state: dict[str, torch.Tensor] | None = None
    waited = 0
    n_batches = math.ceil(len(train_set) / cfg.batch_size)
    reporter.start(cfg.epochs, n_batches)
    started = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        rng = np.random.default_rng([cfg.seed, 2, epoch])
        total, seen = 0.0, 0
        for b, index in enumerate(batch_indices(lengths, cfg.batch_size, rng), start=1):
            codes, lens = collate(train_set, index)
            x = onehot(codes.to(device, non_blocking=True))
            y = targets[torch.from_numpy(index)].to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            loss = task.loss(model(x, lens.to(device)), y)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise TrainingError(
                    f"the loss became {value} at epoch {epoch}, batch {b}; "
                    "try a lower --lr or check the targets for extreme values"
                )
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            total += value * len(index)
            seen += len(index)
            reporter.batch(epoch, value)
        record: dict[str, Any] = {"epoch": epoch, "train_loss": total / max(seen, 1)}
        if val_set is not None and len(val_set):
            record.update(_evaluate(model, onehot, task, val_set, cfg.batch_size, device, "val"))
        record["lr"] = optimizer.param_groups[0]["lr"]
        record["elapsed_s"] = round(time.perf_counter() - started, 3)
        result.history.append(record)
        reporter.epoch(record)
        if on_epoch is not None:
            on_epoch(record)
        monitored = record.get("val_loss", record["train_loss"])
        if monitored < best_loss - 1e-12:
            best_loss = monitored
            result.best_epoch = epoch
            result.best = dict(record)
            waited = 0
            if val_set is not None:
                best_state = copy.deepcopy(model.state_dict())
        else:
            waited += 1
            if val_set is not None and cfg.patience and waited >= cfg.patience:
                result.stopped_early = True
                log.info("early stopping at epoch %d: no better val_loss for %d epochs "
                         "(best epoch %d)", epoch, waited, result.best_epoch)
                break
    reporter.finish()
    if best_state is not None:
        model.load_state_dict(best_state)
    result.final = dict(result.history[-1]) if result.history else {}
    result.seconds = time.perf_counter() - started
    model.eval()
    return result
