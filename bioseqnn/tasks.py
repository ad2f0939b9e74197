"""Task kinds: how labels are parsed, the loss, the output activation and the metrics."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .errors import DataError, UsageError

if TYPE_CHECKING:
    import numpy as np
    import torch


# torch is imported where a loss or an output is computed, numpy where labels or outputs
# are handled, not with the module: a task's description (a model file's manifest,
# 'bioseqnn info') is read without either.

TASKS = ("binary", "multiclass", "multilabel", "regression", "per-position", "language-model")
PER_POSITION_KINDS = ("per-position", "language-model")
"""Tasks whose model gives one output per position."""


log = logging.getLogger("bioseqnn")

CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
"""Control characters, refused in names that are written as columns or cells."""
MAX_NAME = 1000
"""The most characters of such a name (a class, a target, a channel)."""


def _as_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


MISSING = frozenset({"na", "n/a", "nan", "null", "none", "-", "?", "."})
"""Cells that spreadsheets and R write for a missing value (compared in lower case)."""

_DECIMAL_COMMA = re.compile(r"[+-]?[0-9]+,[0-9]+")
_THOUSANDS = re.compile(r"[+-]?[0-9]{1,3}(,[0-9]{3})+")
"""A number that may have a thousands separator ('71,433') as well as a decimal comma."""


def _check_numbers(labeled: Labels) -> None:
    """Refuse a label column of numbers with a few cells that are not numbers (a missing
    value written as NA, a number with a decimal comma): read as class names, they would
    make a classifier with one class per distinct number, or a binary task a third class.
    """
    for k, name in enumerate(labeled.targets):
        col = [row[k] for row in labeled.label_values]
        bad = [i for i, v in enumerate(col) if _as_float(v) is None]
        if not bad:
            continue
        first = col[bad[0]]
        at = labeled.where[bad[0]]
        if all(_THOUSANDS.fullmatch(col[i]) for i in bad):
            raise DataError(
                f"{at}: {first!r} in column {name!r} is a number written with a comma: "
                f"a thousands separator ({first.replace(',', '')!r}) or a decimal comma "
                f"({first.replace(',', '.')!r})? Write it without the comma or with a point, "
                "or give --task multiclass if the labels are class names"
            )
        if all(_DECIMAL_COMMA.fullmatch(col[i]) for i in bad):
            raise DataError(
                f"{at}: {first!r} in column {name!r} is a number with a decimal comma; "
                f"write it with a point ({first.replace(',', '.')!r}), or give --task "
                "multiclass if the labels are class names"
            )
        if len(bad) < len(col) and (
            all(col[i].lower() in MISSING for i in bad) or len(bad) <= 0.1 * len(col)
        ):
            raise DataError(
                f"{at}: {first!r} in column {name!r} is not a number, but "
                f"{len(col) - len(bad)} of its {len(col)} labels are "
                f"({len(bad)} {'is' if len(bad) == 1 else 'are'} not): "
                "give numbers or leave those records out (or give --task multiclass if "
                "the labels are class names)"
            )


MISSING_CLASSES = (MISSING - {"-", "?", "."}) | {"#n/a"}
"""Class names that are how R, pandas and spreadsheets write a missing value (compared in
lower case; '-', '?' and '.' can be real classes, a strand say): train refuses them as
classes unless --task says to train them."""


def _check_missing_classes(task: TaskSpec, labeled: Labels, forced: str | None) -> None:
    """A class named as a missing value ('NA': R's write.csv) is most likely records
    without a label: refused (a third class of a binary task, predicted for real
    records), unless ``forced`` (--task) says to train it as a class."""
    missing = [c for c in task.classes if c.strip().lower() in MISSING_CLASSES]
    if not missing:
        return
    name = missing[0]
    rows = [i for i, row in enumerate(labeled.label_values) if row[0] == name]
    said = (
        f"{labeled.where[rows[0]]}: label {name!r} ({len(rows)} record(s)) is how R and "
        "spreadsheets write a missing value"
    )
    if forced is None:
        raise DataError(
            f"{said}: leave those records out of the table, or give --task {task.kind} "
            f"to train {name!r} as a class"
        )
    log.warning("%s; trained as a class, as --task %s asks", said, forced)


def _class_order(values: set[str]) -> list[str]:
    """Numeric class names sort numerically ('2' before '10'), others alphabetically."""
    nums = {v: _as_float(v) for v in values}
    if all(x is not None and math.isfinite(x) for x in nums.values()):
        return sorted(values, key=lambda v: (nums[v], v))
    return sorted(values)


def output_activation(
    kind: str, logits: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
) -> torch.Tensor:
    """Logits -> class probabilities, or regression values in the targets' units.

    Shared by prediction and by exported models (which hold ``mean``/``std`` as buffers).
    """
    import torch

    if logits.dtype != torch.float64:
        logits = logits.float()
    if kind == "binary":
        p = torch.sigmoid(logits.view(-1))
        return torch.stack([1 - p, p], dim=1)
    if kind in ("multiclass", *PER_POSITION_KINDS):
        return torch.softmax(logits, dim=-1)
    if kind == "multilabel":
        return torch.sigmoid(logits)
    return logits * std + mean


FLOAT32_MAX = 3.4028234663852886e38
"""The largest float32 (numpy's ``finfo(float32).max``)."""


@dataclass
class TaskSpec:
    """Everything about the task that a model file must remember."""

    kind: str
    targets: list[str]
    classes: list[str] = field(default_factory=list)
    target_mean: list[float] = field(default_factory=list)
    target_std: list[float] = field(default_factory=list)
    class_weights: list[float] = field(default_factory=list)

    @property
    def n_outputs(self) -> int:
        if self.kind == "binary":
            return 1
        if self.kind in ("multiclass", *PER_POSITION_KINDS):
            return len(self.classes)
        return len(self.targets)

    @property
    def is_classification(self) -> bool:
        return self.kind in ("binary", "multiclass", "multilabel", *PER_POSITION_KINDS)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskSpec:
        return cls(**data)

    # ----------------------------------------------------------------- labels

    def encode_labels(self, values: list[list[str]], where: Sequence[str]) -> np.ndarray:
        """Parse label strings (one list per record) into the training target array.

        ``where`` names each record for error messages ("labels.csv line 7, id x").
        """
        import numpy as np

        if self.kind in ("binary", "multiclass"):
            index = {c: i for i, c in enumerate(self.classes)}
            out = np.empty(len(values), dtype=np.int64)
            for i, row in enumerate(values):
                if row[0] not in index:
                    raise DataError(
                        f"{where[i]}: class {row[0]!r} was not seen in training "
                        f"(classes: {', '.join(self.classes)})"
                    )
                out[i] = index[row[0]]
            return out
        # float64 until the end: standardising values near float32's limit (3e38 and
        # -3e38) in float32 overflows
        arr = np.empty((len(values), len(self.targets)), dtype=np.float64)
        for i, row in enumerate(values):
            for j, text in enumerate(row):
                x = _as_float(text)
                if x is None or not math.isfinite(x):
                    what = "not a number" if x is None else "not finite"
                    raise DataError(f"{where[i]}: column {self.targets[j]!r}: {text!r} is {what}")
                if abs(x) > FLOAT32_MAX:
                    raise DataError(
                        f"{where[i]}: column {self.targets[j]!r}: {text!r} is beyond the "
                        "range of the numbers a model computes with (float32, +-3.4e38); "
                        "rescale the targets (a log, or other units)"
                    )
                if self.kind == "multilabel" and x not in (0.0, 1.0):
                    raise DataError(
                        f"{where[i]}: column {self.targets[j]!r}: multilabel targets must be "
                        f"0 or 1, found {text!r}"
                    )
                arr[i, j] = x
        if self.kind == "regression" and self.target_mean:
            arr = (arr - np.asarray(self.target_mean)) / np.asarray(self.target_std)
        return arr.astype(np.float32)

    def fit_scaling(self, raw_targets: np.ndarray) -> None:
        """Standardise regression targets with the training set's mean and std."""
        import numpy as np

        if self.kind != "regression":
            return
        raw = raw_targets.astype(np.float64)  # a float32 sum of values near 3e38 overflows
        mean = raw.mean(axis=0)
        std = raw.std(axis=0)
        std[~(std > 1e-12)] = 1.0
        self.target_mean = [float(x) for x in mean]
        self.target_std = [float(x) for x in std]

    # ----------------------------------------------------------------- training

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        weight = (
            torch.tensor(self.class_weights, dtype=logits.dtype, device=logits.device)
            if self.class_weights
            else None
        )
        if self.kind == "binary":
            target = y.to(logits.dtype).view(-1)
            logit = logits.view(-1)
            if weight is None:
                return F.binary_cross_entropy_with_logits(logit, target)
            per = F.binary_cross_entropy_with_logits(logit, target, reduction="none")
            w = weight[y.long().view(-1)]
            return (per * w).sum() / w.sum()
        if self.kind == "multiclass":
            return F.cross_entropy(logits, y.long(), weight=weight)
        if self.kind in PER_POSITION_KINDS:
            # logits (B, L, K), labels (B, >= L) padded with -1: padding and masked
            # positions never count
            y = y[:, : logits.shape[1]].long()
            if not bool((y >= 0).any()):
                return logits.sum() * 0.0
            return F.cross_entropy(logits.transpose(1, 2), y, weight=weight, ignore_index=-1)
        if self.kind == "multilabel":
            return F.binary_cross_entropy_with_logits(logits, y.to(logits.dtype), pos_weight=weight)
        return F.mse_loss(logits, y.to(logits.dtype))

    def position_loss_sum(
        self, logits: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-position tasks: the summed loss of the scored positions and their total
        weight (their count, or the sum of their class weights), so that training can
        weigh every position alike whatever batch it is in (see train.fit)."""
        import torch
        import torch.nn.functional as F

        y = y[:, : logits.shape[1]].long()
        flat = logits.reshape(-1, logits.shape[-1])
        target = y.reshape(-1)
        keep = target >= 0
        per = F.cross_entropy(flat, target.clamp(min=0), reduction="none")
        if self.class_weights:
            weight = torch.tensor(self.class_weights, dtype=per.dtype, device=per.device)
            w = weight[target.clamp(min=0)] * keep.to(per.dtype)
        else:
            w = keep.to(per.dtype)
        return (per * w).sum(), w.sum()

    def outputs(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits -> what predictions report: class probabilities or target values."""
        import torch

        mean = torch.tensor(self.target_mean or [0.0] * self.n_outputs, device=logits.device)
        std = torch.tensor(self.target_std or [1.0] * self.n_outputs, device=logits.device)
        if self.kind in ("binary", "multiclass", "multilabel"):
            # Probabilities in float64, rounded: the figures do not depend on how the
            # float32 sigmoid or softmax is vectorised, so a prediction made without
            # torch (bioseqnn/engine/light.py) gives the same digits.
            return output_activation(self.kind, logits.double(), mean, std).float()
        return output_activation(self.kind, logits, mean, std)

    def metrics(self, y: np.ndarray, out: np.ndarray) -> dict[str, float]:
        """Metrics from encoded targets and :meth:`outputs` values."""
        import numpy as np

        from . import metrics

        if self.kind in ("binary", "multiclass"):
            return metrics.classification_metrics(y, out)
        if self.kind == "multilabel":
            return metrics.classification_metrics(y.astype(np.int64), out, multilabel=True)
        if self.kind in PER_POSITION_KINDS:
            return self.position_metrics(*scored_positions(y, out))
        raw = y
        if self.target_mean:
            raw = y * np.asarray(self.target_std) + np.asarray(self.target_mean)
        return metrics.regression_metrics(raw, out)

    def position_metrics(self, y: np.ndarray, out: np.ndarray) -> dict[str, float]:
        """Per-position tasks: metrics from the scored positions' classes (M,) and
        :meth:`outputs` values (M, K)."""
        from . import metrics

        if self.kind == "language-model":
            return metrics.next_residue_metrics(y, out)
        return metrics.classification_metrics(y, out)

    @property
    def headline(self) -> str:
        """The metric shown in progress and summaries."""
        return "accuracy" if self.is_classification else "r2"

    # ----------------------------------------------------------------- output rows

    def columns(self) -> list[str]:
        if self.kind in ("binary", "multiclass"):
            return ["predicted"] + [f"prob_{c}" for c in self.classes]
        if self.kind == "multilabel":
            return [f"prob_{t}" for t in self.targets]
        return list(self.targets)

    def format_rows(self, out: np.ndarray) -> list[list[str]]:
        """The prediction cells of every row of ``out`` (after the id), as a list."""
        return list(self.rows(out))

    def rows(self, out: np.ndarray) -> Iterator[list[str]]:
        """The prediction cells of each row of ``out``, one row at a time: a chunk of
        4,096 records of a 10,000-class model held 40 million strings (3.3 GB) at once."""
        if self.kind in ("binary", "multiclass"):
            best = out.argmax(axis=1)
            for b, row in zip(best, out, strict=True):
                yield [self.classes[b]] + [f"{p:.6g}" for p in row]
            return
        for row in out:
            yield [f"{v:.6g}" for v in row]


def scored_positions(y: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-position labels (N, >= L) padded with -1 and outputs (N, L, K) -> the scored
    positions only: labels (M,) and outputs (M, K)."""
    import numpy as np

    width = min(y.shape[1], out.shape[1])
    y = y[:, :width]
    keep = y >= 0
    return y[keep].astype(np.int64), out[:, :width][keep]


def detect_task(
    targets: list[str], columns: list[list[str]], forced: str | None, source: str = ""
) -> tuple[TaskSpec, str]:
    """Choose the task from the label columns (one list of strings per target column).

    Returns the spec (classes filled in, scaling not yet fitted) and a reason to log.
    ``source`` (the labels table) starts every data error message.
    """
    at = f"{source}: " if source else ""
    if forced is not None and forced not in TASKS:
        raise UsageError(f"--task must be one of: {', '.join(TASKS)}")
    numeric = [all(_as_float(v) is not None for v in col) for col in columns]
    zero_one = [
        num and {_as_float(v) for v in col} <= {0.0, 1.0}
        for num, col in zip(numeric, columns, strict=True)
    ]

    if len(targets) > 1:
        kind = forced or ("multilabel" if all(zero_one) else "regression" if all(numeric) else "")
        if kind in ("binary", "multiclass"):
            raise UsageError(
                f"--task {kind} takes one target column, got {len(targets)}: "
                f"{', '.join(targets)}; choose one with --target"
            )
        if not kind:
            bad = [t for t, n in zip(targets, numeric, strict=True) if not n]
            raise DataError(
                f"{at}several target columns must be all 0/1 (multilabel) or all numeric "
                f"(regression); not numeric: {', '.join(bad)}; choose one with --target"
            )
        reason = "several 0/1 columns" if kind == "multilabel" else "several numeric columns"
        return TaskSpec(kind, targets), reason if not forced else "forced with --task"

    col = columns[0]
    distinct = set(col)
    if forced in ("regression",) or (forced is None and numeric[0] and not _looks_categorical(col)):
        if not numeric[0]:
            first_bad = next(v for v in col if _as_float(v) is None)
            raise DataError(
                f"{at}--task regression needs numbers; column {targets[0]!r} has {first_bad!r}"
            )
        reason = "forced with --task" if forced else "numeric labels"
        return TaskSpec("regression", targets), reason
    if forced == "multilabel":
        if not zero_one[0]:
            raise DataError(f"{at}--task multilabel needs 0/1 values in {targets[0]!r}")
        return TaskSpec("multilabel", targets), "forced with --task"
    classes = _class_order(distinct)
    if len(classes) < 2:
        raise DataError(
            f"{at}column {targets[0]!r} holds a single class ({classes[0]!r}); "
            "a classifier needs at least two"
        )
    kind = forced or ("binary" if len(classes) == 2 else "multiclass")
    if kind == "binary" and len(classes) != 2:
        raise DataError(f"{at}--task binary needs two classes, {targets[0]!r} has {len(classes)}")
    reason = "forced with --task" if forced else f"{len(classes)} distinct labels"
    return TaskSpec(kind, targets, classes=classes), reason


def _looks_categorical(col: list[str]) -> bool:
    """Integer-valued labels with at most 10 distinct values read as classes."""
    values = {_as_float(v) for v in col}
    return len(values) <= 10 and all(v is not None and float(v).is_integer() for v in values)


def target_score(task: TaskSpec, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The scalar that attributions explain for each row of ``logits``: a binary
    model's logit (negated for the other class), a class's log-probability, a label's
    logit, a target's predicted value (see :mod:`bioseqnn.explain`)."""
    import torch

    logits = logits.float()
    rows = torch.arange(len(logits), device=logits.device)
    if task.kind == "binary":
        logit = logits.view(-1)
        return torch.where(target == 1, logit, -logit)
    if task.kind == "multiclass":
        return torch.log_softmax(logits, dim=-1)[rows, target]
    if task.kind == "multilabel":
        return logits[rows, target]
    return task.outputs(logits)[rows, target]


class Labels(Protocol):
    """Labels read for training (``data.labels.LabeledData``): each record's label cells,
    where each came from, the target columns and the table's name."""

    label_values: list[list[str]]
    where: Sequence[str]
    targets: list[str]
    source: str


def prepare_task(labeled: Labels, forced: str | None) -> TaskSpec:
    """The task the labels call for (or ``forced``), checked, with a regression's target
    scaling fitted."""
    if forced is None:
        _check_numbers(labeled)
    columns = [list(col) for col in zip(*labeled.label_values, strict=True)]
    task, reason = detect_task(labeled.targets, columns, forced, labeled.source)
    for name in task.classes:
        if len(name) <= MAX_NAME and not CONTROL.search(name):
            continue
        i = next(i for i, row in enumerate(labeled.label_values) if row[0] == name)
        if len(name) > MAX_NAME:
            raise DataError(
                f"{labeled.where[i]}: a class name of {len(name)} characters; class "
                f"names become columns and cells of the predictions: at most {MAX_NAME}"
            )
        raise DataError(
            f"{labeled.where[i]}: class {name!r} holds a control character; "
            "class names become columns and cells of the predictions (a TAB "
            "or a newline would break their rows): remove it"
        )
    if task.kind in ("binary", "multiclass"):
        _check_missing_classes(task, labeled, forced)
    n = len(labeled.label_values)
    if task.kind in ("binary", "multiclass") and n >= 20 and len(task.classes) >= 0.9 * n:
        said = (
            f"{labeled.source}: column {task.targets[0]!r} holds {len(task.classes)} distinct "
            f"labels in {n} records, nearly one class per record"
        )
        if forced is None:
            raise DataError(
                f"{said}: is it the right column (--target)? Label strings with one letter "
                "per residue need --task per-position; --task multiclass trains on it anyway"
            )
        log.warning("%s (trained as --task %s asks)", said, forced)
    if task.kind in ("binary", "multiclass"):
        _warn_numbers_written_twice(task.classes, labeled.source)
    log.info("task: %s (%s%s)", task.kind, reason, "" if forced else "; override with --task")
    if task.kind == "regression":
        import numpy as np

        plain = TaskSpec("regression", task.targets)
        raw = plain.encode_labels(labeled.label_values, labeled.where)
        for j, target in enumerate(task.targets):
            values = raw[:, j] if raw.ndim == 2 else raw
            if len(values) > 1 and bool(np.all(values == values[0])):
                raise DataError(
                    f"{labeled.source}: column {target!r} holds one value "
                    f"({float(values[0]):g}) in every record: a regression has nothing to "
                    "learn from it"
                )
        task.fit_scaling(raw)
    return task


def _warn_numbers_written_twice(classes: list[str], source: str) -> None:
    """Classes that are one number written two ways ('1' and '1.0'): kept apart, as
    written, with a warning."""
    by_value: dict[float, list[str]] = {}
    for name in classes:
        value = _as_float(name)
        if value is not None:
            by_value.setdefault(value, []).append(name)
    twice = [names for names in by_value.values() if len(names) > 1]
    if twice:
        log.warning(
            "%s: the classes %s are one number written %d ways; they are different classes "
            "here: write them alike if they are one",
            source,
            " and ".join(map(repr, twice[0])),
            len(twice[0]),
        )
