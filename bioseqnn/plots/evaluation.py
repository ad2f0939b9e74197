"""Figures of an evaluation: ROC and PR curves, the confusion matrix, the regression scatter."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import metrics
from ..errors import UsageError
from . import common
from .common import (
    COLUMN,
    DOUBLE_COLUMN,
    DPI,
    check_figure_options,
    clipped,
    line_styles,
    new_figure,
    number_text,
    plot_dir,
    run_title,
    set_heading,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from ..ops.evaluate import Evaluation


MANY_CURVES = 6
"""Above this many classes or labels, ROC and PR figures show the micro and macro averages
beside one small panel per class instead of one crowded panel."""

MAX_PANELS = 36
"""Above this many classes or labels, ROC and PR figures show the averages (each class a
grey curve) without a panel per class: 200 panels were unreadable; the metrics JSON
holds every class's figure."""

MAX_CELL_COUNTS = 30
"""Above this many classes a confusion matrix is drawn without the count in each cell
(40,000 texts for 200 classes, unreadable, and most of a 74-second figure at 1200 dpi),
and its class names are thinned to about :data:`MAX_TICK_LABELS`."""

MAX_TICK_LABELS = 60


def evaluation_title(ev: Evaluation) -> str:
    """'<data set> — <model>': the first input's name and the model's, without folders and
    suffixes."""
    data = ev.sources[0] if ev.sources else ev.dataset.split(" + ")[0]
    return run_title(data, ev.model)


def _curves_of(ev: Evaluation) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, 0/1 truth, score) for each curve: the positive class, each class or each label."""
    kind = ev.task.kind
    if kind == "binary":
        return [(ev.task.classes[1], (ev.y == 1).astype(np.int64), ev.out[:, 1])]
    if kind in ("multiclass", "per-position", "language-model"):
        return [
            (c, (ev.y == i).astype(np.int64), ev.out[:, i]) for i, c in enumerate(ev.task.classes)
        ]
    return [(t, ev.y[:, j].astype(np.int64), ev.out[:, j]) for j, t in enumerate(ev.task.targets)]


def pr_points(truth: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) of a precision-recall curve as drawn: it starts at recall 0 with
    the precision of the top-ranked record (of the records tied at the top score), then has
    one point per distinct threshold where recall has grown.

    :func:`bioseqnn.metrics.pr_curve` puts a point (recall 0, precision 1) first, as
    scikit-learn does; drawn, that point makes a curve whose top-ranked record is a
    negative fall from 1 to 0 at recall 0, which no threshold gives.
    """
    precision, recall, _ = metrics.pr_curve(truth, score)
    precision, recall = precision[1:], recall[1:]  # the threshold points only
    grown = recall > 0
    return np.r_[0.0, recall[grown]], np.r_[precision[0], precision[grown]]


def _step_at(x: np.ndarray, y: np.ndarray, grid: np.ndarray, side: str) -> np.ndarray:
    """The curve (x non-decreasing) read at each grid value: ROC ('right'): the last point
    with x <= g (the highest TPR at that FPR); PR ('left'): the first point with x >= g."""
    if side == "right":
        idx = np.searchsorted(x, grid, side="right") - 1
        return y[np.clip(idx, 0, len(y) - 1)]
    idx = np.searchsorted(x, grid, side="left")
    return y[np.clip(idx, 0, len(y) - 1)]


_NO_CURVE = (np.array([0, 1]), np.array([0.0, 0.0]))
"""Stands in for the classes when none has both outcomes (a chance-level average)."""


def _roc_average(curves: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """The micro average (every record x class pair pooled) and the macro average (the mean
    of the per-class curves on a common FPR grid) of the classes with both outcomes."""
    usable = [(t, s) for _, t, s in curves if 0 < t.sum() < len(t)] or [_NO_CURVE]
    grid = np.linspace(0.0, 1.0, 201)
    macro = np.mean(
        [_step_at(*metrics.roc_curve(t, s)[:2], grid, "right") for t, s in usable], axis=0
    )
    truth = np.concatenate([t for t, _ in usable])
    score = np.concatenate([s for _, s in usable])
    fpr, tpr, _ = metrics.roc_curve(truth, score)
    aucs = [metrics.auroc(t, s) for t, s in usable]
    return {
        "macro": (np.r_[0.0, grid], np.r_[0.0, macro]),
        "micro": (fpr, tpr),
        "macro_auc": float(np.mean(aucs)),
        "micro_auc": metrics.auroc(truth, score),
    }


def _pr_average(curves: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Micro (pooled) and macro (mean precision at each recall) precision-recall curves."""
    usable = [(t, s) for _, t, s in curves if t.sum() > 0] or [_NO_CURVE]
    grid = np.linspace(0.0, 1.0, 201)
    macro = np.mean([_step_at(*pr_points(t, s), grid, "left") for t, s in usable], axis=0)
    truth = np.concatenate([t for t, _ in usable])
    score = np.concatenate([s for _, s in usable])
    aps = [metrics.auprc(t, s) for t, s in usable]
    return {
        "macro": (grid, macro),
        "micro": pr_points(truth, score),
        "macro_auc": float(np.mean(aps)),
        "micro_auc": metrics.auprc(truth, score),
    }


def _curve_axes(ax: Axes, kind: str, small: bool = False) -> None:
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.02), aspect="equal")
    if not small:
        ax.set(
            xlabel="False positive rate" if kind == "roc" else "Recall",
            ylabel="True positive rate" if kind == "roc" else "Precision",
        )
    ax.set_xticks([0, 0.5, 1], labels=["0", "0.5", "1"])
    ax.set_yticks([0, 0.5, 1], labels=["0", "0.5", "1"])
    ax.grid(alpha=0.3)


def _area(kind: str, truth: np.ndarray, score: np.ndarray) -> float:
    """AUROC (roc) or average precision (pr) of one class."""
    return metrics.auroc(truth, score) if kind == "roc" else metrics.auprc(truth, score)


def _draw_curve(ax: Axes, kind: str, truth: np.ndarray, score: np.ndarray, **style: Any) -> None:
    """One class's ROC curve, or its PR curve as steps (see :func:`pr_points`)."""
    if kind == "roc":
        fpr, tpr, _ = metrics.roc_curve(truth, score)
        ax.plot(fpr, tpr, **style)
    else:
        recall, precision = pr_points(truth, score)
        ax.step(recall, precision, where="pre", **style)


def _drawable(kind: str, truth: np.ndarray) -> bool:
    return bool(0 < truth.sum() < len(truth)) if kind == "roc" else bool(truth.sum() > 0)


def _curve_figure(
    ev: Evaluation, kind: str, path: str | os.PathLike[str], dpi: int, title: str | None
) -> Path:
    """ROC or PR: one panel with a curve per class (up to MANY_CURVES), else the averages
    beside a grid of small panels, one per class."""
    curves = _curves_of(ev)
    name, short = ("AUROC", "AUROC") if kind == "roc" else ("average precision", "AP")
    headline = ev.metrics.get("auroc" if kind == "roc" else "auprc")
    heading = title or evaluation_title(ev)
    what = "ROC" if kind == "roc" else "Precision-recall"
    if len(curves) <= MANY_CURVES:
        with new_figure(COLUMN, COLUMN + 0.25) as fig:
            ax = fig.add_subplot()
            if kind == "roc":
                ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls="--", label="chance")
            for (label, truth, score), style in zip(curves, line_styles(len(curves)), strict=True):
                if not _drawable(kind, truth):
                    continue
                area = _area(kind, truth, score)
                _draw_curve(
                    ax,
                    kind,
                    truth,
                    score,
                    label=f"{clipped(label, 24)} ({short} {area:.3f})",
                    **style,
                )
                if kind == "pr" and len(curves) == 1:
                    ax.axhline(
                        truth.mean(),
                        color="0.7",
                        lw=0.8,
                        ls="--",
                        label=f"prevalence {truth.mean():.3f}",
                    )
            _curve_axes(ax, kind)
            ax.legend(loc="lower right" if kind == "roc" else "lower left", frameon=False)
            mean = " (macro mean)" if len(curves) > 1 else ""
            set_heading(
                fig, heading, f"{what}: {name} {number_text(headline)}{mean}, n = {ev.records}"
            )
            return common.save_figure(fig, path, dpi)
    return _many_curves(ev, kind, curves, path, dpi, heading)


def _many_curves(
    ev: Evaluation,
    kind: str,
    curves: Sequence[tuple[str, np.ndarray, np.ndarray]],
    path: str | os.PathLike[str],
    dpi: int,
    heading: str,
) -> Path:
    short = "AUROC" if kind == "roc" else "AP"
    k = len(curves)
    panels = k <= MAX_PANELS
    cols = 4 if k <= 12 else 5 if k <= 20 else math.ceil(math.sqrt(k))
    rows = math.ceil(k / cols)
    cell = 3.9 / cols
    average = _roc_average(curves) if kind == "roc" else _pr_average(curves)
    height = max(3.2, rows * (cell + 0.18) + 0.55) if panels else 4.2
    with new_figure(DOUBLE_COLUMN if panels else 5.4, height) as fig:
        if panels:
            halves = fig.subfigures(1, 2, width_ratios=[3.1, 4.1], wspace=0.02, squeeze=False)
            left, right = halves[0, 0], halves[0, 1]
        else:
            left, right = fig, None
        ax = left.add_subplot()
        if kind == "roc":
            ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls="--", label="chance")
        first = True
        for _, truth, score in curves:
            if _drawable(kind, truth):
                _draw_curve(
                    ax,
                    kind,
                    truth,
                    score,
                    color="0.8",
                    lw=0.6,
                    label=f"each class ({len(curves)})" if first else None,
                )
                first = False
        draw = ax.plot if kind == "roc" else ax.step
        extra = {} if kind == "roc" else {"where": "pre"}
        draw(
            *average["micro"],
            color="#d62728",
            lw=1.5,
            **extra,
            label=f"micro average ({short} {number_text(average['micro_auc'])})",
        )
        ax.plot(
            *average["macro"],
            color="#1f4e9c",
            lw=1.5,
            ls="--",
            label=f"macro average ({short} {number_text(average['macro_auc'])})",
        )
        _curve_axes(ax, kind)
        ax.legend(loc="lower right" if kind == "roc" else "lower left", frameon=False)
        ax.set_title(
            "Averages over classes"
            if panels
            else f"Averages over {k} classes (a panel each up to {MAX_PANELS})"
        )
        if right is not None:
            _class_panels(right, kind, curves, rows, cols)
        what = "ROC" if kind == "roc" else "Precision-recall"
        name = "AUROC" if kind == "roc" else "average precision"
        set_heading(
            fig,
            heading,
            f"{what} of {len(curves)} classes: {name} macro "
            f"{number_text(average['macro_auc'])}, micro {number_text(average['micro_auc'])}, "
            f"n = {ev.records}",
        )
        return common.save_figure(fig, path, dpi)


def _class_panels(
    right: Any,
    kind: str,
    curves: Sequence[tuple[str, np.ndarray, np.ndarray]],
    rows: int,
    cols: int,
) -> None:
    """One small panel per class, in a rows x cols grid of the figure's right side."""
    short = "AUROC" if kind == "roc" else "AP"
    grid = right.subplots(rows, cols, squeeze=False)
    for i, panel in enumerate(grid.flat):
        if i >= len(curves):
            panel.set_axis_off()
            continue
        label, truth, score = curves[i]
        _curve_axes(panel, kind, small=True)
        if kind == "roc":
            panel.plot([0, 1], [0, 1], color="0.75", lw=0.5, ls="--")
        elif truth.sum() > 0:
            panel.axhline(truth.mean(), color="0.75", lw=0.5, ls="--")
        if _drawable(kind, truth):
            area = _area(kind, truth, score)
            _draw_curve(panel, kind, truth, score, color="#1f4e9c", lw=0.9)
            shown = f"{clipped(label, 14)}\n{short} {area:.2f}"
        else:
            shown = f"{clipped(label, 14)}\nn/a"
        panel.set_title(shown, fontsize=6, pad=2, linespacing=1.1)
        panel.tick_params(labelsize=5.5, length=1.5, pad=1)
        if i % cols:
            panel.tick_params(labelleft=False)
        if i + cols < len(curves):
            panel.tick_params(labelbottom=False)
    right.supxlabel("False positive rate" if kind == "roc" else "Recall", fontsize=6.5)
    right.supylabel("True positive rate" if kind == "roc" else "Precision", fontsize=6.5)


def roc_plot(
    ev: Evaluation, path: str | os.PathLike[str], dpi: int = DPI, title: str | None = None
) -> Path:
    """ROC curve of the positive class (binary) or of each class / label, with its AUROC;
    above :data:`MANY_CURVES` classes, micro and macro averages and one panel per class
    (up to :data:`MAX_PANELS` classes).

    ``title`` replaces the default '<data set> — <model>'.
    """
    return _curve_figure(ev, "roc", path, dpi, title)


def pr_plot(
    ev: Evaluation, path: str | os.PathLike[str], dpi: int = DPI, title: str | None = None
) -> Path:
    """Precision-recall curve(s) with average precision (see :func:`pr_points`), and the
    prevalence baseline; above :data:`MANY_CURVES` classes, averages and small panels."""
    return _curve_figure(ev, "pr", path, dpi, title)


def confusion_plot(
    ev: Evaluation, path: str | os.PathLike[str], dpi: int = DPI, title: str | None = None
) -> Path:
    """Confusion matrix: counts in the cells, colour = fraction of the true class (recall)."""
    if ev.confusion is None:
        raise UsageError(f"a confusion matrix needs a single-label classifier, not {ev.task.kind}")
    cm = ev.confusion
    names = [clipped(n, 18) for n in ev.task.classes]
    k = len(names)
    width = COLUMN if k <= MANY_CURVES else min(DOUBLE_COLUMN, 0.3 * k + 2.2)
    with new_figure(width, width * 0.92 + 0.2) as fig:
        ax = fig.add_subplot()
        support = cm.sum(axis=1, keepdims=True)
        frac = np.divide(cm, support, out=np.zeros(cm.shape), where=support > 0)
        image = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
        cell_font = 7 if k <= 6 else 6 if k <= 15 else 5
        for i in range(k if k <= MAX_CELL_COUNTS else 0):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    str(cm[i, j]),
                    ha="center",
                    va="center",
                    fontsize=cell_font,
                    color="white" if frac[i, j] > 0.55 else "black",
                )
        every = math.ceil(k / MAX_TICK_LABELS)  # a name every so many classes
        ticks = range(0, k, every)
        ax.set_xticks(
            ticks,
            labels=[names[i] for i in ticks],
            rotation=45 if k > 3 else 0,
            ha="right" if k > 3 else "center",
            rotation_mode="anchor",
        )
        ax.set_yticks(ticks, labels=[names[i] for i in ticks])
        ax.set(xlabel="Predicted class", ylabel="True class")
        ax.spines[:].set_visible(False)
        ax.tick_params(length=0)
        bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03, shrink=0.8)
        bar.set_label("fraction of true class")
        bar.outline.set_visible(False)
        set_heading(
            fig,
            title or evaluation_title(ev),
            f"accuracy {number_text(ev.metrics.get('accuracy'))}, balanced accuracy "
            f"{number_text(ev.metrics.get('balanced_accuracy'))}, n = {ev.records}",
        )
        return common.save_figure(fig, path, dpi)


def scatter_plot(
    ev: Evaluation, path: str | os.PathLike[str], dpi: int = DPI, title: str | None = None
) -> Path:
    """Predicted against measured values with the least-squares line, one panel per target."""
    targets = ev.task.targets
    n = len(targets)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    width = COLUMN if n == 1 else DOUBLE_COLUMN
    panel = width / cols
    with new_figure(width, rows * (panel + (0.1 if n == 1 else 0.3)) + 0.3) as fig:
        for j, name in enumerate(targets):
            ax = fig.add_subplot(rows, cols, j + 1)
            y, p = ev.y[:, j], ev.out[:, j]
            alpha = 0.6 if len(y) < 500 else 0.35
            ax.scatter(
                y,
                p,
                s=4,
                alpha=alpha,
                color="#1f77b4",
                edgecolors="none",
                label="sequences",
                rasterized=len(y) > 2000,
            )
            lo = float(min(y.min(), p.min()))
            hi = float(max(y.max(), p.max()))
            pad = 0.03 * (hi - lo or 1.0)
            ax.plot(
                [lo - pad, hi + pad],
                [lo - pad, hi + pad],
                color="0.6",
                ls="--",
                lw=0.8,
                label="y = x",
            )
            if np.ptp(y) > 0:
                slope, intercept = np.polyfit(y, p, 1)
                xs = np.array([y.min(), y.max()])
                ax.plot(
                    xs,
                    slope * xs + intercept,
                    color="#d62728",
                    lw=1.2,
                    label=f"fit: y = {slope:.2f}x + {intercept:.2f}",
                )
            ax.set(
                xlim=(lo - pad, hi + pad),
                ylim=(lo - pad, hi + pad),
                xlabel=f"Measured {clipped(name, 30)}",
                ylabel=f"Predicted {clipped(name, 30)}",
                aspect="equal",
            )
            m = ev.per_target.get(name, {})
            scores = (
                f"r {number_text(m.get('pearson'))}, \u03c1 {number_text(m.get('spearman'))}, "
                f"R\u00b2 {number_text(m.get('r2'))}, MAE {number_text(m.get('mae'))}"
            )
            if n > 1:
                ax.set_title(scores, fontsize=6.5)
            ax.grid(alpha=0.3)
            ax.legend(loc="upper left", frameon=False)
        set_heading(
            fig,
            title or evaluation_title(ev),
            f"Pearson r, Spearman \u03c1, R\u00b2, MAE; n = {ev.records}"
            if n > 1
            else f"{scores}, n = {ev.records}",
        )
        return common.save_figure(fig, path, dpi)


def evaluation_plots(
    ev: Evaluation,
    folder: str | os.PathLike[str],
    fmt: str = "png",
    dpi: int = DPI,
    title: str | None = None,
) -> list[Path]:
    """Every figure that fits the task, written into ``folder`` as ``fmt`` (png, pdf or
    svg) at ``dpi``; returns their paths. ``title`` replaces '<data set> — <model>'."""
    check_figure_options(fmt, dpi)
    out = plot_dir(folder)
    if ev.task.kind == "regression":
        return [scatter_plot(ev, out / f"scatter.{fmt}", dpi, title)]
    paths = [
        roc_plot(ev, out / f"roc.{fmt}", dpi, title),
        pr_plot(ev, out / f"pr.{fmt}", dpi, title),
    ]
    if ev.confusion is not None:
        paths.append(confusion_plot(ev, out / f"confusion.{fmt}", dpi, title))
    return paths
