"""Learning-rate schedules, warm-up and the direction of monitored metrics.

The schedule is a pure function of a few counters (step, plateau scale, best value), so
its whole state is a small JSON mapping that a checkpoint stores beside the weights, and
a resumed run continues with exactly the learning rate it would have had.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import UsageError
from .optim import Optimizer

# Monitored quantities that get better as they fall; every other metric is a score.
_MINIMISED = ("loss", "mse", "mae", "rmse", "perplexity")

# OneCycle's shape (as torch.optim.lr_scheduler.OneCycleLR's defaults).
ONECYCLE_START_DIV = 25.0
ONECYCLE_FINAL_DIV = 1e4
ONECYCLE_RISE = 0.3
PLATEAU_FACTOR = 0.5


def minimised(metric: str) -> bool:
    """True when a smaller value of ``metric`` (e.g. val_loss, val_mae) is better."""
    return metric.rsplit("_", 1)[-1] in _MINIMISED


def improved(value: float, best: float | None, metric: str, min_delta: float = 1e-12) -> bool:
    """Whether ``value`` beats ``best`` in the metric's direction (NaN never does)."""
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if minimised(metric) else value > best + min_delta


def check_monitor(metric: str, available: list[str]) -> None:
    if metric not in available:
        raise UsageError(
            f"cannot monitor {metric!r} for this task; choose one of: {', '.join(available)}"
        )


class Schedule:
    """The learning rate per optimiser step: warm-up, then none/plateau/cosine/onecycle.

    ``step_batch`` is called after every optimiser step, ``step_epoch`` after every
    epoch with the monitored value (used by 'plateau').
    """

    def __init__(
        self,
        kind: str,
        base_lr: float,
        total_steps: int,
        warmup_steps: int,
        metric: str = "val_loss",
        plateau_patience: int = 2,
    ) -> None:
        self.kind = kind
        self.base_lr = base_lr
        self.total = max(1, total_steps)
        self.warmup = min(max(0, warmup_steps), self.total)
        self.metric = metric
        self.plateau_patience = max(1, plateau_patience)
        self.step = 0
        self.scale = 1.0
        self.best: float | None = None
        self.bad_epochs = 0

    def lr(self) -> float:
        """The learning rate of the next optimiser step."""
        s, lr = self.step, self.base_lr
        if self.kind == "onecycle":
            rise = self.warmup or max(1, int(ONECYCLE_RISE * self.total))
            start, end = lr / ONECYCLE_START_DIV, lr / ONECYCLE_FINAL_DIV
            if s < rise:
                return _cos(start, lr, s / rise)
            return _cos(lr, end, min(1.0, (s - rise) / max(1, self.total - rise)))
        warm = (s + 1) / self.warmup if s < self.warmup else 1.0
        if self.kind == "cosine":
            span = max(1, self.total - self.warmup)
            lr = _cos(lr, 0.0, min(1.0, max(0, s - self.warmup) / span))
        elif self.kind == "plateau":
            lr *= self.scale
        return lr * warm

    def apply(self, optimizer: Optimizer) -> float:
        lr = self.lr()
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def step_batch(self) -> None:
        self.step += 1

    def step_epoch(self, value: float) -> None:
        if self.kind != "plateau":
            return
        if improved(value, self.best, self.metric):
            self.best = value
            self.bad_epochs = 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.plateau_patience:
            self.scale *= PLATEAU_FACTOR
            self.bad_epochs = 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "step": self.step,
            "scale": self.scale,
            "best": self.best,
            "bad_epochs": self.bad_epochs,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != self.kind:
            raise UsageError(
                f"the checkpoint used schedule {state.get('kind')!r}, this run {self.kind!r}"
            )
        self.step = int(state["step"])
        self.scale = float(state["scale"])
        self.best = None if state["best"] is None else float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])


def _cos(start: float, end: float, fraction: float) -> float:
    """Cosine interpolation from ``start`` (fraction 0) to ``end`` (fraction 1)."""
    return end + (start - end) * (1 + math.cos(math.pi * fraction)) / 2
