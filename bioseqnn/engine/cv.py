"""Cross-validation (``train --cv K``): K folds of the training records, one member per fold.

Member i trains on the other folds and uses fold i as its validation data (early stopping,
best-weights restore). Its predictions for fold i are out-of-fold: every record is
predicted exactly once, by the one member that never trained on it, so the pooled
metrics over all folds are an estimate that uses every record. The K members then form
one ensemble model file (bioseqnn/models/base.py, Ensemble), which predicts new data.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..data.sets import SequenceSet
from ..models.base import Predictor
from ..tasks import PER_POSITION_KINDS, TaskSpec
from .predict import infer, infer_scored


def assign_folds(n: int, k: int, seed: int, strata: np.ndarray | None = None) -> np.ndarray:
    """The fold (0..k-1) of each of ``n`` records: seeded; with ``strata`` (classes) each
    class is dealt round-robin over the folds, so every fold holds its share of each."""
    rng = np.random.default_rng([seed, 4])
    folds = np.empty(n, dtype=np.int64)
    if strata is None:
        folds[rng.permutation(n)] = np.arange(n) % k
        return folds
    start = 0
    for cls in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == cls))
        # continue the deal where the previous class stopped, so that small classes do
        # not all land in the first folds
        folds[members] = (start + np.arange(len(members))) % k
        start = (start + len(members)) % k
    return folds


def fold_sets(
    data: SequenceSet, folds: np.ndarray, k: int
) -> Iterator[tuple[int, SequenceSet, SequenceSet]]:
    """(fold, training part, held-out part) for each fold, one pair in memory at a time."""
    for i in range(k):
        yield i, data.subset(np.flatnonzero(folds != i)), data.subset(np.flatnonzero(folds == i))


@dataclass
class OutOfFold:
    """The held-out predictions of every fold, and the pooled scores over all of them."""

    task: TaskSpec
    folds: np.ndarray | None = None
    """The fold of each record of the training data (:func:`assign_folds`), which gives
    each held-out record's place in the input (:meth:`input_order`)."""
    ids: list[str] = field(default_factory=list)
    fold: list[int] = field(default_factory=list)
    logits: list[torch.Tensor] = field(default_factory=list)
    targets: list[np.ndarray] = field(default_factory=list)
    per_fold: list[dict[str, Any]] = field(default_factory=list)
    """Each member's best epoch on its own fold (val_* figures)."""
    loss_sum: float = 0.0
    weight: float = 0.0

    def add(
        self,
        fold: int,
        model: Predictor,
        onehot: torch.nn.Module,
        held_out: SequenceSet,
        best: dict[str, Any],
        batch_size: int,
        device: torch.device,
        max_tokens: int | None,
    ) -> None:
        """Predict fold ``fold`` (``held_out``) with its member (best weights restored)."""
        self.per_fold.append(dict(best))
        if self.task.kind in PER_POSITION_KINDS:
            scored = infer_scored(
                model,
                onehot,
                self.task,
                held_out,
                max(batch_size, 256),
                device,
                max_tokens=max_tokens,
            )
            self.logits.append(scored.logits)
            self.targets.append(scored.y.numpy())
            self.loss_sum += scored.loss_sum
            self.weight += scored.weight
            return
        assert held_out.targets is not None
        self.logits.append(
            infer(model, onehot, held_out, max(batch_size, 256), device, max_tokens=max_tokens)
        )
        self.targets.append(held_out.targets)
        self.ids += held_out.ids
        self.fold += [fold + 1] * len(held_out)

    def outputs(self) -> np.ndarray:
        """What predict reports for each record, in the order the folds were added."""
        return self.task.outputs(torch.cat(self.logits)).numpy().astype(np.float64)

    def input_order(self) -> np.ndarray:
        """The order that puts the records as added (fold by fold) in the input's order,
        as predict keeps it; the order they were added where their places are unknown."""
        added = list(dict.fromkeys(self.fold))  # 1-based, in the order they were added
        if self.folds is None or not added:
            return np.arange(len(self.ids))
        # each fold's held-out records, as fold_sets takes them: their places, ascending
        places = np.concatenate([np.flatnonzero(self.folds == f - 1) for f in added])
        if len(places) != len(self.ids):
            return np.arange(len(self.ids))
        return np.argsort(places, kind="stable")

    def pooled(self) -> dict[str, float]:
        """Loss and metrics over all folds' held-out predictions together (val_*)."""
        logits = torch.cat(self.logits)
        y = np.concatenate(self.targets)
        out = self.task.outputs(logits).numpy().astype(np.float64)
        if self.task.kind in PER_POSITION_KINDS:
            loss = self.loss_sum / self.weight if self.weight else float("nan")
            scores = self.task.position_metrics(y, out)
        else:
            loss = float(self.task.loss(logits, torch.from_numpy(y)))
            scores = self.task.metrics(y, out)
        return {"val_loss": loss, **{f"val_{k}": v for k, v in scores.items()}}

    def summary(self) -> dict[str, Any]:
        """Per-fold figures, their mean and sd, and the pooled figures (manifest, log)."""
        names = [
            k
            for k, v in self.per_fold[0].items()
            if k.startswith("val_") and isinstance(v, (int, float))
        ]
        mean, sd = {}, {}
        for name in names:
            values = np.array([float(r.get(name, math.nan)) for r in self.per_fold])
            finite = values[np.isfinite(values)]
            mean[name] = float(finite.mean()) if len(finite) else math.nan
            sd[name] = float(finite.std(ddof=1)) if len(finite) > 1 else math.nan
        return {
            "folds": len(self.per_fold),
            "mean": mean,
            "sd": sd,
            "pooled": self.pooled(),
            "per_fold": [{k: r[k] for k in ("epoch", *names) if k in r} for r in self.per_fold],
        }
