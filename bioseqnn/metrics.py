"""Metrics as plain numpy functions (checked against scikit-learn in the tests)."""

from __future__ import annotations

import math

import numpy as np


def _safe(x: float) -> float:
    return float(x) if math.isfinite(x) else float("nan")


def accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(y == pred)) if len(y) else float("nan")


def confusion(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )


def confusion_cells(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """The confusion matrix's nonzero cells as rows (true class, predicted class, count),
    in row-major order: what a matrix of many classes is stored as (10,000 classes: 100
    million cells, 800 MB dense)."""
    codes, counts = np.unique(y.astype(np.int64) * n_classes + pred, return_counts=True)
    return np.stack([codes // n_classes, codes % n_classes, counts], axis=1).astype(np.int64)


def class_counts(
    y: np.ndarray, pred: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each class's true positives, support (true count) and predicted count: the
    confusion matrix's diagonal and sums, without the K x K matrix."""
    tp = np.bincount(y[y == pred], minlength=n_classes)
    return tp, np.bincount(y, minlength=n_classes), np.bincount(pred, minlength=n_classes)


def balanced_accuracy(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    tp, support, _ = class_counts(y, pred, n_classes)
    present = support > 0
    return float(np.mean(tp[present] / support[present]))


def mcc(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Matthews correlation coefficient (Gorodkin's multiclass form)."""
    tp, t, p = (c.astype(np.float64) for c in class_counts(y, pred, n_classes))
    c, s = tp.sum(), float(len(y))
    denom = math.sqrt((s * s - p @ p) * (s * s - t @ t))
    return float((c * s - t @ p) / denom) if denom > 0 else 0.0


def f1_macro(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Mean F1 over the classes that occur in ``y`` or ``pred``."""
    scores = per_class_scores(y, pred, n_classes)
    present = np.bincount(pred, minlength=n_classes) + scores["support"] > 0
    return float(scores["f1"][present].mean()) if present.any() else float("nan")


def _rankdata(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean rank), 1-based."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    boundaries = np.flatnonzero(np.diff(xs)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(x)]])
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def auroc(y: np.ndarray, score: np.ndarray) -> float:
    """Binary area under the ROC curve via the rank-sum statistic."""
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _rankdata(score)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auprc(y: np.ndarray, score: np.ndarray) -> float:
    """Binary average precision (step-wise area under the precision-recall curve)."""
    n_pos = int((y == 1).sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-score, kind="mergesort")
    ys, ss = y[order], score[order]
    # Evaluate only at the last index of each run of tied scores.
    last = np.r_[np.flatnonzero(np.diff(ss)), len(ss) - 1]
    tp = np.cumsum(ys == 1)[last]
    fp = (last + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / n_pos
    prev = np.r_[0.0, recall[:-1]]
    return float(np.sum((recall - prev) * precision))


def _mean_of_defined(values: list[float]) -> float:
    """The mean of the values that are defined (not NaN); NaN when none is, without
    numpy's 'Mean of empty slice' warning (a label with one class has no AUROC)."""
    defined = [v for v in values if not np.isnan(v)]
    return float(np.mean(defined)) if defined else float("nan")


def classification_metrics(
    y: np.ndarray, prob: np.ndarray, multilabel: bool = False
) -> dict[str, float]:
    """Metrics from integer labels (N,) and class probabilities (N, K).

    Binary tasks pass (N, 2). Multilabel tasks pass 0/1 labels (N, K) and per-label
    probabilities (N, K); metrics are averaged over labels.
    """
    if multilabel:
        per = [
            classification_metrics(
                y[:, k].astype(np.int64), np.stack([1 - prob[:, k], prob[:, k]], 1)
            )
            for k in range(y.shape[1])
        ]
        return {key: _mean_of_defined([m[key] for m in per]) for key in per[0]}
    k = prob.shape[1]
    pred = prob.argmax(axis=1)
    out = {
        "accuracy": accuracy(y, pred),
        "balanced_accuracy": balanced_accuracy(y, pred, k),
        "mcc": mcc(y, pred, k),
        "f1": f1_macro(y, pred, k),
    }
    if k == 2:
        out["auroc"] = auroc(y, prob[:, 1])
        out["auprc"] = auprc(y, prob[:, 1])
    else:
        present = [c for c in range(k) if 0 < (y == c).sum() < len(y)]
        out["auroc"] = (
            float(np.mean([auroc((y == c).astype(int), prob[:, c]) for c in present]))
            if present
            else float("nan")
        )
        out["auprc"] = (
            float(np.mean([auprc((y == c).astype(int), prob[:, c]) for c in present]))
            if present
            else float("nan")
        )
    return {key: _safe(v) for key, v in out.items()}


def constant(v: np.ndarray) -> bool:
    """Whether ``v`` holds (nearly) one value: a spread within a millionth of its largest
    magnitude is the rounding of targets standardised in float32 and back, not data."""
    if len(v) < 2:
        return True
    top = float(np.abs(v).max())
    return float(np.ptp(v)) <= 1e-6 * top if top > 0 else True


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    if constant(a) or constant(b):
        return float("nan")
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b / denom) if denom > 0 else float("nan")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    if constant(a) or constant(b):
        return float("nan")
    return pearson(_rankdata(a), _rankdata(b))


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Metrics for targets (N, T) and predictions (N, T), averaged over targets."""
    rows = regression_detail(y, pred)
    keys = ("mse", "mae", "pearson", "spearman", "r2")
    out = {}
    for k in keys:
        defined = [r[k] for r in rows if math.isfinite(r[k])]
        out[k] = sum(defined) / len(defined) if defined else float("nan")
    return out


def next_residue_metrics(y: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    """A language model's scores from the true next symbols (M,) and the predicted
    distributions (M, K): top-1 accuracy, and perplexity, exp of the mean negative log
    probability of the true symbol (nats): K for a uniform guess, 1 for a perfect one."""
    if not len(y):
        return {"accuracy": float("nan"), "perplexity": float("nan")}
    p = prob[np.arange(len(y)), y].astype(np.float64)
    nll = -np.log(np.maximum(p, np.finfo(np.float64).tiny))
    return {
        "accuracy": accuracy(y, prob.argmax(axis=1)),
        "perplexity": _safe(math.exp(min(float(nll.mean()), 700.0))),
    }


# --------------------------------------------------------------------------- detail for evaluate


def per_class_scores(y: np.ndarray, pred: np.ndarray, n_classes: int) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support of every class (0 where undefined, as scikit-learn)."""
    tp, support, predicted = (c.astype(np.float64) for c in class_counts(y, pred, n_classes))
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64)}


def _ranked_counts(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True and false positives above each distinct threshold, highest threshold first."""
    order = np.argsort(-score, kind="mergesort")
    ys, ss = y[order] == 1, score[order]
    last = np.r_[np.flatnonzero(np.diff(ss)), len(ss) - 1]
    tp = np.cumsum(ys)[last].astype(np.float64)
    fp = (last + 1) - tp
    return tp, fp, ss[last]


def roc_curve(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct threshold, from (0, 0) to (1, 1).

    The first threshold is +inf (nothing called positive).
    """
    tp, fp, thresholds = _ranked_counts(y, score)
    tp, fp = np.r_[0.0, tp], np.r_[0.0, fp]
    fpr = fp / fp[-1] if fp[-1] > 0 else np.full_like(fp, np.nan)
    tpr = tp / tp[-1] if tp[-1] > 0 else np.full_like(tp, np.nan)
    return fpr, tpr, np.r_[np.inf, thresholds]


def pr_curve(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall at every distinct threshold, highest threshold first.

    A final point (recall 0, precision 1) is prepended, as scikit-learn appends it.
    """
    tp, fp, thresholds = _ranked_counts(y, score)
    precision = tp / (tp + fp)
    recall = tp / tp[-1] if tp[-1] > 0 else np.full_like(tp, np.nan)
    return np.r_[1.0, precision], np.r_[0.0, recall], thresholds


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    if constant(y):
        return float("nan")
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((pred - y) ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")


def regression_detail(y: np.ndarray, pred: np.ndarray) -> list[dict[str, float]]:
    """Metrics of each target column separately (targets (N, T), predictions (N, T))."""
    y = y.reshape(len(y), -1).astype(np.float64)
    pred = pred.reshape(len(pred), -1).astype(np.float64)
    return [_regression_one(y[:, t], pred[:, t]) for t in range(y.shape[1])]


def _regression_one(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    err = pred - y
    out = {
        "mse": float(np.mean(err**2)),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "pearson": pearson(pred, y),
        "spearman": spearman(pred, y),
        "r2": r2(y, pred),
    }
    return {k: _safe(v) for k, v in out.items()}
