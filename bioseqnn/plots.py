"""Figures: ROC/PR curves, confusion matrix, regression scatter, learning curves, logos.

matplotlib is an optional extra (``pip install 'bioseqnn[plots]'``): the core install stays
light for pipelines that never draw. Figures are built with ``matplotlib.figure.Figure`` and
the Agg canvas directly, never pyplot, so no display, no global state and no GUI backend is
involved. A figure is written in the format its name ends in (.png, .pdf or .svg; PNG when
the name has no suffix), always atomically (temporary file beside it, then rename), PNG at
:data:`DPI` unless told otherwise.

Figures are sized for print: a single journal column (:data:`COLUMN`, 3.5 in) or a double
one (:data:`DOUBLE_COLUMN`, 7.2 in) wide, text 6.5-8 pt, so that a figure placed at its own
size needs no scaling. The style is applied inside each drawing function (an rc context),
never to matplotlib's global settings. Titles name the data set and the model (file names
without folders or suffixes), never paths.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import math
import os
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import metrics
from .errors import DataError, UsageError, shorten
from .io.files import STDIO, display_name, open_binary
from .io.outputs import atomic_output, make_folder

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .ops.evaluate import Evaluation

DPI = 300
"""Default resolution of PNG figures (dots per inch); PDF and SVG are vector figures, where
it applies to the few raster parts (the colour strip of a confusion matrix or a series)."""
COLUMN = 3.5
"""Width of a single journal column, in inches (89 mm)."""
DOUBLE_COLUMN = 7.2
"""Width of a double (full-page) journal column, in inches (183 mm)."""
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
INSTALL_HINT = "pip install 'bioseqnn[plots]' (or: pip install matplotlib)"
_STYLE: dict[str, Any] = {
    # sizes for a figure printed at its own size in a journal column: 6.5-8 pt text
    "font.size": 7,
    "axes.titlesize": 7.5,
    "axes.labelsize": 7,
    "legend.fontsize": 6.5,
    "xtick.labelsize": 6.5,
    "ytick.labelsize": 6.5,
    "figure.titlesize": 8,
    "lines.linewidth": 1.1,
    "axes.linewidth": 0.6,
    "grid.linewidth": 0.4,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "legend.handlelength": 1.6,
    "legend.borderaxespad": 0.3,
    "axes.titlepad": 4.0,
    "axes.labelpad": 2.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.facecolor": "white",
    "figure.facecolor": "white",
    "pdf.fonttype": 42,  # TrueType in PDF: text stays editable in a figure editor
    "svg.hashsalt": "bioseqnn",  # the same figure gives the same SVG bytes
    # text is drawn as written: a class or file name with '$' in it ('$^$') is no
    # formula (mathtext failed on it with a parser error, and drew '$\\alpha$' as α)
    "text.parse_math": False,
}
FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
"""The figure formats, by the suffix of the output's name."""
_NO_DATE: dict[str, dict[str, Any]] = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}
_COMPRESSED = (".gz", ".bgz", ".bz2", ".xz", ".zst", ".zstd")


def require_matplotlib() -> None:
    """Fail early, with the install command, when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    except ImportError:
        raise UsageError(f"plots need matplotlib, which is not installed: {INSTALL_HINT}") from None


def plot_dir(path: str | os.PathLike[str]) -> Path:
    """Check matplotlib and create the output folder (before any long work starts)."""
    require_matplotlib()
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: the figures go into a folder, and this is a file")
    try:
        make_folder(folder)
    except OSError as exc:
        raise UsageError(f"{folder}: cannot create the plot folder: {exc.strerror}") from None
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{folder}: the plot folder is not writable")
    return folder


def check_figure_options(fmt: str = "png", dpi: int = DPI) -> None:
    """A usage error for a figure format or resolution that cannot be written."""
    if fmt not in FORMATS.values():
        raise UsageError(f"cannot write {fmt!r} figures; choose png, pdf or svg")
    if isinstance(dpi, bool) or not isinstance(dpi, int) or not 50 <= dpi <= 1200:
        raise UsageError(f"a figure resolution of {dpi!r} dpi is out of range (50-1200)")


def data_name(path: str | os.PathLike[str]) -> str:
    """The name a figure's title gives an input: the file's name without its folder, its
    compression suffix and its format suffix ('data/test.fasta.gz' -> 'test')."""
    text = str(path)
    if text in (STDIO, "<stdin>", "stdin"):
        return "stdin"
    name = Path(text).name
    for suffix in _COMPRESSED:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return Path(name).stem or name


def run_title(data: str | os.PathLike[str], model: str | os.PathLike[str]) -> str:
    """'<data set> — <model>', the title of a figure about a model on a data set."""
    return f"{data_name(data)} \u2014 {data_name(model)}"


@contextmanager
def _figure(width: float, height: float) -> Iterator[Figure]:
    """A figure of this size in inches, laid out by matplotlib's constrained layout (which
    keeps the size: a PNG is exactly width x dpi pixels wide), in the journal style."""
    require_matplotlib()
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    with matplotlib.rc_context(_STYLE):  # type: ignore[arg-type]
        fig = Figure(figsize=(width, height), dpi=100)
        fig.set_layout_engine(
            ConstrainedLayoutEngine(w_pad=0.03, h_pad=0.03, wspace=0.04, hspace=0.04)
        )
        FigureCanvasAgg(fig)
        yield fig


def figure_format(path: str | os.PathLike[str]) -> str:
    """The format a figure named ``path`` is written in: png, pdf or svg, by its suffix.

    A name without a suffix (and '-') gets PNG; any other suffix is a usage error, so that
    ``-o curves.pdf`` never receives PNG bytes and ``-o curves.jpg`` fails before drawing.
    """
    suffix = "" if str(path) == STDIO else Path(path).suffix.lower()
    if not suffix:
        return "png"
    if suffix not in FORMATS:
        raise UsageError(
            f"{path}: cannot write a {suffix} figure; name the output .png, .pdf or .svg"
        )
    return FORMATS[suffix]


def _save(
    fig: Figure, path: str | os.PathLike[str], dpi: int = DPI, fmt: str | None = None
) -> Path:
    """Write the figure as ``fmt`` (default: by the name's suffix), atomically."""
    fmt = fmt or figure_format(path)
    with atomic_output(path, binary=True) as fh:
        fig.savefig(fh, format=fmt, dpi=dpi, metadata=_NO_DATE.get(fmt))
    return Path(path)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _styles(n: int) -> list[dict[str, Any]]:
    """Distinct line styles: ten colours, then the same colours dashed, then dotted."""
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    dashes = ["-", "--", ":", "-."]
    return [{"color": cmap(i % 10), "ls": dashes[(i // 10) % len(dashes)]} for i in range(n)]


def _wrap(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _heading(fig: Figure, title: str, detail: str = "") -> None:
    """The figure's title: data set and model on the first line, what it measured on the
    second."""
    fig.suptitle(f"{_wrap(title, 90)}\n{_wrap(detail, 120)}" if detail else _wrap(title, 90))


# --------------------------------------------------------------------------- evaluation


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
        with _figure(COLUMN, COLUMN + 0.25) as fig:
            ax = fig.add_subplot()
            if kind == "roc":
                ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls="--", label="chance")
            for (label, truth, score), style in zip(curves, _styles(len(curves)), strict=True):
                if not _drawable(kind, truth):
                    continue
                area = _area(kind, truth, score)
                _draw_curve(
                    ax,
                    kind,
                    truth,
                    score,
                    label=f"{_wrap(label, 24)} ({short} {area:.3f})",
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
            _heading(fig, heading, f"{what}: {name} {_fmt(headline)}{mean}, n = {ev.records}")
            return _save(fig, path, dpi)
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
    with _figure(DOUBLE_COLUMN if panels else 5.4, height) as fig:
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
            label=f"micro average ({short} {_fmt(average['micro_auc'])})",
        )
        ax.plot(
            *average["macro"],
            color="#1f4e9c",
            lw=1.5,
            ls="--",
            label=f"macro average ({short} {_fmt(average['macro_auc'])})",
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
        _heading(
            fig,
            heading,
            f"{what} of {len(curves)} classes: {name} macro "
            f"{_fmt(average['macro_auc'])}, micro {_fmt(average['micro_auc'])}, "
            f"n = {ev.records}",
        )
        return _save(fig, path, dpi)


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
            shown = f"{_wrap(label, 14)}\n{short} {area:.2f}"
        else:
            shown = f"{_wrap(label, 14)}\nn/a"
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
    names = [_wrap(n, 18) for n in ev.task.classes]
    k = len(names)
    width = COLUMN if k <= MANY_CURVES else min(DOUBLE_COLUMN, 0.3 * k + 2.2)
    with _figure(width, width * 0.92 + 0.2) as fig:
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
        _heading(
            fig,
            title or evaluation_title(ev),
            f"accuracy {_fmt(ev.metrics.get('accuracy'))}, balanced accuracy "
            f"{_fmt(ev.metrics.get('balanced_accuracy'))}, n = {ev.records}",
        )
        return _save(fig, path, dpi)


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
    with _figure(width, rows * (panel + (0.1 if n == 1 else 0.3)) + 0.3) as fig:
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
                xlabel=f"Measured {_wrap(name, 30)}",
                ylabel=f"Predicted {_wrap(name, 30)}",
                aspect="equal",
            )
            m = ev.per_target.get(name, {})
            scores = (
                f"r {_fmt(m.get('pearson'))}, \u03c1 {_fmt(m.get('spearman'))}, "
                f"R\u00b2 {_fmt(m.get('r2'))}, MAE {_fmt(m.get('mae'))}"
            )
            if n > 1:
                ax.set_title(scores, fontsize=6.5)
            ax.grid(alpha=0.3)
            ax.legend(loc="upper left", frameon=False)
        _heading(
            fig,
            title or evaluation_title(ev),
            f"Pearson r, Spearman \u03c1, R\u00b2, MAE; n = {ev.records}"
            if n > 1
            else f"{scores}, n = {ev.records}",
        )
        return _save(fig, path, dpi)


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


# --------------------------------------------------------------------------- learning curves


_LOG_HINT = (
    "give the NAME.log.tsv that train writes beside the model, or the file named by train --log"
)
_NOT_A_LOG = (
    "not a bioseqnn training log (needs 'epoch' and 'train_loss' columns; train writes "
    "NAME.log.tsv beside the model, or JSON lines with --log NAME.jsonl)"
)


def _log_lines(raw: Iterable[bytes], name: str, model_file: bool) -> Iterator[tuple[int, str]]:
    """(line number, text without the line end) of a training log; binary data is an error."""
    try:
        for number, line in enumerate(raw, start=1):
            try:
                if b"\0" in line:
                    raise UnicodeError
                text = line.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeError:
                what = "a bioseqnn model file" if model_file else "a binary file"
                raise DataError(
                    f"{name}: cannot read the training log: this is {what}, not "
                    f"a text log; {_LOG_HINT}"
                ) from None
            yield number, text.rstrip("\r\n")
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{name}: damaged or truncated gzip data ({exc})") from None
    except OSError as exc:
        raise DataError(f"{name}: cannot read the training log ({exc.strerror or exc})") from None


def _number(value: Any) -> float:
    if value is None or value == "":
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(value)
    return float(value)


def _tsv_history(
    lines: Iterable[tuple[int, str]], header: list[str], name: str
) -> list[dict[str, float]]:
    history = []
    for line, text in lines:
        if not text.strip():
            continue
        row = next(csv.reader([text], delimiter="\t"))
        if len(row) != len(header):
            raise DataError(f"{name}: line {line}: {len(row)} cells, the header has {len(header)}")
        try:
            history.append({h: _number(v) for h, v in zip(header, row, strict=True)})
        except ValueError:
            raise DataError(f"{name}: line {line}: a value is not a number") from None
    return history


def _jsonl_history(lines: Iterable[tuple[int, str]], name: str) -> list[dict[str, float]]:
    """One JSON object per line, as ``train --log NAME.jsonl`` writes them."""
    history: list[dict[str, float]] = []
    for line, text in lines:
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except ValueError as exc:
            if not history:  # e.g. a pretty-printed JSON file
                raise DataError(f"{name}: {_NOT_A_LOG}") from None
            raise DataError(f"{name}: line {line}: not a JSON object ({exc})") from None
        if not history and not (
            isinstance(record, dict) and "epoch" in record and "train_loss" in record
        ):
            raise DataError(f"{name}: {_NOT_A_LOG}")
        if not isinstance(record, dict) or "epoch" not in record:
            raise DataError(
                f"{name}: line {line}: not an epoch record (a JSON object with 'epoch')"
            )
        try:
            history.append({str(k): _number(v) for k, v in record.items()})
        except ValueError as exc:
            raise DataError(
                f"{name}: line {line}: a value is not a number ({shorten(json.dumps(exc.args[0]))})"
            ) from None
    # the same columns in every record, in the order they first appear (as in the TSV)
    columns = list(dict.fromkeys(k for record in history for k in record))
    return [{c: record.get(c, math.nan) for c in columns} for record in history]


def read_history(path: str | os.PathLike[str]) -> list[dict[str, float]]:
    """Read the per-epoch log that ``train`` writes: NAME.log.tsv, or JSON lines (--log).

    The format is found from the content, not the name: a log whose first line is a JSON
    object is JSON lines, anything else is read as the TSV. '-' reads stdin; gzip is
    decompressed. Ensemble logs keep their ``member`` column. Every value is a float (an
    empty cell or a JSON null is NaN).
    """
    name = display_name(path)
    if str(path) != STDIO and not os.path.lexists(path):
        raise UsageError(f"{name}: no such training log")
    raw = open_binary(path)
    try:
        head = raw.peek(64)[:64] if hasattr(raw, "peek") else b""
        model_file = b'"__metadata__"' in head
        if b"\0" in head and not model_file:  # binary; /dev/zero has no line to read
            raise DataError(
                f"{name}: cannot read the training log: this is a binary file, "
                f"not a text log; {_LOG_HINT}"
            )
        lines = _log_lines(raw, name, model_file=model_file)
        first = next(((n, t) for n, t in lines if t.strip()), None)
        if first is None:
            raise DataError(f"{name}: {_NOT_A_LOG}")
        if first[1].lstrip().startswith("{"):
            history = _jsonl_history(itertools.chain([first], lines), name)
        else:
            header = next(csv.reader([first[1]], delimiter="\t"))
            if "epoch" not in header or "train_loss" not in header:
                raise DataError(f"{name}: {_NOT_A_LOG}")
            history = _tsv_history(lines, header, name)
    finally:
        if str(path) != STDIO:
            raw.close()
    if not history:
        raise DataError(f"{name}: the training log has no epochs")
    return history


def _monitored(history: Sequence[dict[str, float]], metric: str | None) -> str | None:
    columns = list(history[0])
    if metric:
        key = metric if metric in columns else f"val_{metric}"
        if key not in columns:
            shown = [c for c in columns if c.startswith(("val_", "train_"))]
            raise UsageError(f"the log has no metric {metric!r}; columns: {', '.join(shown)}")
        return key
    for key in ("val_accuracy", "val_r2", "val_auroc"):
        if key in columns:
            return key
    return next((c for c in columns if c.startswith("val_") and c != "val_loss"), None)


def _member_key(history: Sequence[dict[str, Any]]) -> str:
    """The column that names a log's models: 'fold' for --cv, else 'member'."""
    return "fold" if any(r.get("fold") is not None for r in history) else "member"


def _members(history: Sequence[dict[str, Any]]) -> list[float]:
    """The ensemble members (or --cv folds) a log holds (empty for a single model's)."""
    key = _member_key(history)
    found = {float(r[key]) for r in history if r.get(key) is not None}
    return sorted(m for m in found if math.isfinite(m))


def learning_curves(
    history: Sequence[dict[str, Any]],
    path: str | os.PathLike[str],
    title: str = "",
    metric: str | None = None,
    dpi: int = DPI,
    fmt: str | None = None,
) -> Path:
    """Training and validation loss, and the monitored validation metric, per epoch.

    An ensemble's log (records with a ``member``) draws one curve per member, each in its
    own colour, with its best epoch starred. The figure's format is ``fmt``, by default the
    suffix of ``path`` (see :func:`figure_format`), checked before anything is drawn.
    """
    fmt = fmt or figure_format(path)
    check_figure_options(fmt, dpi)
    if not history:
        raise DataError("no epochs to plot")
    key = _monitored(history, metric)
    members = _members(history)
    if len(members) > 1:
        return _ensemble_curves(history, members, path, title, key, dpi, fmt)
    epochs = np.array([float(r["epoch"]) for r in history])
    col = lambda k: np.array([float(r.get(k, math.nan)) for r in history])  # noqa: E731
    val_loss = col("val_loss")
    has_val = bool(np.isfinite(val_loss).any())
    monitored = val_loss if has_val else col("train_loss")
    best = int(np.nanargmin(monitored))
    panels = 2 if key else 1
    with _figure(DOUBLE_COLUMN if panels == 2 else COLUMN, 2.7) as fig:
        ax = fig.add_subplot(1, panels, 1)
        ax.plot(epochs, col("train_loss"), marker="o", ms=2, label="training loss")
        if has_val:
            ax.plot(epochs, val_loss, marker="o", ms=2, label="validation loss")
        ax.axvline(epochs[best], color="0.5", ls=":", lw=0.8, label=f"best epoch {epochs[best]:g}")
        ax.set(xlabel="Epoch", ylabel="Loss", title="Loss")
        ax.grid(alpha=0.3)
        ax.legend(frameon=False)
        summary = f"best epoch {epochs[best]:g}"
        if key:
            values = col(key)
            pretty = key.removeprefix("val_").replace("_", " ")
            ax2 = fig.add_subplot(1, panels, 2)
            ax2.plot(
                epochs, values, marker="o", ms=2, color="#2ca02c", label=f"validation {pretty}"
            )
            ax2.axvline(epochs[best], color="0.5", ls=":", lw=0.8)
            ax2.set(xlabel="Epoch", ylabel=pretty.capitalize(), title=f"Validation {pretty}")
            ax2.grid(alpha=0.3)
            ax2.legend(frameon=False)
            summary += f": {pretty} {_fmt(values[best])}"
        _integer_epochs(fig)
        _heading(
            fig,
            title or "Learning curves",
            f"Learning curves: {summary}, validation loss {_fmt(monitored[best])}"
            if has_val
            else f"Learning curves: {summary}",
        )
        return _save(fig, path, dpi, fmt)


def _integer_epochs(fig: Figure) -> None:
    from matplotlib.ticker import MaxNLocator

    for a in fig.axes:
        a.xaxis.set_major_locator(MaxNLocator(integer=True))


def _ensemble_curves(
    history: Sequence[dict[str, Any]],
    members: list[float],
    path: str | os.PathLike[str],
    title: str,
    key: str | None,
    dpi: int = DPI,
    fmt: str | None = None,
) -> Path:
    """One colour per member: training loss solid, validation loss dashed, best epoch starred."""
    from matplotlib.lines import Line2D

    has_val = any(math.isfinite(float(r.get("val_loss", math.nan))) for r in history)
    pretty = key.removeprefix("val_").replace("_", " ") if key else ""
    outside = len(members) > 6
    tag = _member_key(history)
    bests: list[str] = []
    scores: list[str] = []
    with _figure(DOUBLE_COLUMN if key or outside else COLUMN, 3.0) as fig:
        ax = fig.add_subplot(1, 2 if key else 1, 1)
        ax2 = fig.add_subplot(1, 2, 2) if key else None
        for member, style in zip(members, _styles(len(members)), strict=True):
            rows = sorted(
                (r for r in history if r.get(tag) is not None and float(r[tag]) == member),
                key=lambda r: float(r["epoch"]),
            )
            epochs = np.array([float(r["epoch"]) for r in rows])

            def col(k: str, rows: list[dict[str, Any]] = rows) -> np.ndarray:
                return np.array([float(r.get(k, math.nan)) for r in rows])

            color = style["color"]
            ax.plot(
                epochs,
                col("train_loss"),
                marker="o",
                ms=1.5,
                lw=0.9,
                color=color,
                label=f"{tag} {member:g}",
            )
            monitored = col("val_loss") if has_val else col("train_loss")
            if has_val:
                ax.plot(epochs, monitored, marker="o", ms=1.5, lw=0.9, ls="--", color=color)
            values = col(key) if key else monitored
            if ax2 is not None:
                ax2.plot(
                    epochs,
                    values,
                    marker="o",
                    ms=1.5,
                    lw=0.9,
                    color=color,
                    label=f"{tag} {member:g}",
                )
            if not np.isfinite(monitored).any():
                bests.append("n/a")
                scores.append("n/a")
                continue
            best = int(np.nanargmin(monitored))
            star = {
                "marker": "*",
                "ms": 6,
                "color": color,
                "mec": "black",
                "mew": 0.4,
                "ls": "none",
            }
            ax.plot(epochs[best], monitored[best], **star)
            if ax2 is not None:
                ax2.plot(epochs[best], values[best], **star)
            bests.append(f"{epochs[best]:g}")
            scores.append(_fmt(values[best]))
        handles = ax.get_legend_handles_labels()[0]
        handles.append(Line2D([], [], color="0.35", lw=0.9, label="training loss"))
        if has_val:
            handles.append(Line2D([], [], color="0.35", lw=0.9, ls="--", label="validation loss"))
        handles.append(
            Line2D([], [], color="0.35", marker="*", ms=6, ls="none", label="best epoch")
        )
        if outside:  # many members: the legend in columns under the panels
            fig.legend(
                handles=handles,
                frameon=False,
                loc="outside lower center",
                ncols=min(6, len(handles)),
            )
        else:
            ax.legend(handles=handles, frameon=False)
        ax.set(xlabel="Epoch", ylabel="Loss", title="Loss")
        ax.grid(alpha=0.3)
        if ax2 is not None:
            ax2.set(xlabel="Epoch", ylabel=pretty.capitalize(), title=f"Validation {pretty}")
            ax2.grid(alpha=0.3)
        _integer_epochs(fig)
        what = f"{len(members)} folds" if tag == "fold" else f"ensemble of {len(members)}"
        summary = f"{what}: best epochs {', '.join(bests)}"
        if key:
            summary += f"; {pretty} {', '.join(scores)}"
        _heading(fig, title or "Learning curves", summary)
        return _save(fig, path, dpi, fmt)


# --------------------------------------------------------------------------- sequence logos

_NUC_COLORS = {"A": "#109648", "C": "#255C99", "G": "#F7B32B", "T": "#D62839", "U": "#D62839"}
_AA_GROUPS = {
    "#1f1f1f": "AVLIMFWPG",  # hydrophobic, small
    "#109648": "STYCNQ",  # polar
    "#255C99": "KRH",  # basic
    "#D62839": "DE",  # acidic
}
_AA_COLORS = {aa: color for color, group in _AA_GROUPS.items() for aa in group}


def letter_color(letter: str) -> str:
    letter = letter.upper()
    return _NUC_COLORS.get(letter) or _AA_COLORS.get(letter, "#8c8c8c")


@lru_cache(maxsize=64)
def _glyph(letter: str) -> tuple[Any, tuple[float, float, float, float]]:
    """The outline of ``letter`` in a bold sans font and its bounding box (x0, y0, w, h)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    path = TextPath(
        (0, 0), letter, size=1, prop=FontProperties(family="DejaVu Sans", weight="bold")
    )
    box = path.get_extents()
    return path, (box.x0, box.y0, max(box.width, 1e-6), max(box.height, 1e-6))


def draw_letter(
    ax: Axes,
    letter: str,
    x: float,
    bottom: float,
    height: float,
    width: float = 0.88,
    color: str | None = None,
) -> None:
    """Draw ``letter`` stretched into the box [x - width/2, x + width/2] x [bottom, bottom+height].

    A negative height draws the letter below ``bottom``, still upright.
    """
    from matplotlib.patches import PathPatch
    from matplotlib.transforms import Affine2D

    if height == 0:
        return
    if height < 0:
        bottom, height = bottom + height, -height
    path, (x0, y0, w, h) = _glyph(letter)
    transform = (
        Affine2D().translate(-x0, -y0).scale(width / w, height / h).translate(x - width / 2, bottom)
    )
    ax.add_patch(
        PathPatch(
            transform.transform_path(path),
            facecolor=color or letter_color(letter),
            edgecolor="none",
            lw=0,
        )
    )


LOGO_ROW = 120
"""Most positions in one row of a logo (at the width of a double journal column, about
1.4 mm per letter)."""
LOGO_MAX_POSITIONS = 600
"""Longest sequence that a logo shows well (five full rows). Longer sequences read better
as a mutation map (positions x residues, the ISM deltas): see
:func:`bioseqnn.ops.explain.explanation_plots`, where the choice is made."""


def logo_layout(length: int, per_row: int | None = None) -> tuple[int, int]:
    """(rows, positions per row) of a logo: as few rows as ``per_row`` (default
    :data:`LOGO_ROW`) allows, the positions shared evenly so that every row is full but
    the last, which lacks fewer positions than there are rows."""
    limit = max(1, per_row or LOGO_ROW)
    rows = max(1, math.ceil(length / limit))
    return rows, max(1, math.ceil(length / rows))


def logo_plot(
    residues: str,
    scores: np.ndarray,
    path: str | os.PathLike[str],
    title: str = "",
    ylabel: str = "attribution",
    per_row: int | None = None,
    dpi: int = DPI,
) -> Path:
    """A sequence's attributions as a logo: each residue drawn as tall as its score.

    Positive scores stand above the axis, negative ones hang below. The figure fits the
    sequence: a short one gets a figure as narrow as a journal column allows, a long one
    the double-column width, in rows that share the positions evenly (see
    :func:`logo_layout`), all on one scale.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if len(residues) != len(scores):
        raise DataError(f"{len(residues)} residues but {len(scores)} scores")
    check_figure_options(dpi=dpi)
    n = len(residues)
    rows, span = logo_layout(n, per_row)
    # 0.055 in (1.4 mm) a letter at least, 0.16 in at most; 0.55 in for the y axis
    width = min(DOUBLE_COLUMN, max(COLUMN, 0.55 + span * 0.16))
    top = float(np.max(np.abs(scores))) if n else 1.0
    top = top if top > 0 else 1.0
    has_negative = bool((scores < 0).any())
    row_height = 0.95 if has_negative else 0.75
    with _figure(width, row_height * rows + (0.45 if title else 0.25)) as fig:
        axes = fig.subplots(rows, 1, squeeze=False)[:, 0]
        step = next(s for s in (1, 2, 5, 10, 20, 25, 50, 100) if span / s <= 12)
        for r, ax in enumerate(axes):
            start = r * span
            stop = min(n, start + span)
            for i in range(start, stop):
                draw_letter(ax, residues[i], i + 1, 0.0, float(scores[i]))
            ax.axhline(0, color="0.3", lw=0.5)
            ax.set_xlim(start + 0.5, start + span + 0.5)
            ax.set_ylim(-1.08 * top if has_negative else 0, 1.08 * top)
            first = (start // step + 1) * step if step > 1 else start + 1
            ax.set_xticks(list(range(first, stop + 1, step)) or [start + 1])
            ax.grid(axis="y", alpha=0.25)
            ax.tick_params(axis="x", length=1.5, pad=1)
        axes[-1].set_xlabel("Position")
        fig.supylabel(ylabel, fontsize=7)
        if title:
            fig.suptitle(_wrap(title, 110))
        return _save(fig, path, dpi)


def safe_filename(name: str, taken: set[str], fmt: str = "png") -> str:
    """A file name from a record id: unsafe characters become '_', clashes get a suffix."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:80] or "record"
    candidate, k = base, 2
    while candidate.lower() in taken:
        candidate, k = f"{base}_{k}", k + 1
    taken.add(candidate.lower())
    return candidate + f".{fmt}"


SERIES_PLOT_CHANNELS = 12
"""Channels drawn in one series attribution figure (the first ones; the TSV has all)."""


def series_attribution_plot(
    values: np.ndarray,
    attributions: np.ndarray,
    channels: Sequence[str],
    path: str | os.PathLike[str],
    title: str = "",
    label: str = "attribution",
    dpi: int = DPI,
) -> Path:
    """A numeric series' channels over time, each on its own axis, with a strip under the
    line coloured by that channel's attribution at each step (red pushes the target score
    up, blue down; one colour scale for the whole figure)."""
    values = np.asarray(values, dtype=np.float64)
    attributions = np.asarray(attributions, dtype=np.float64)
    if values.shape != attributions.shape or values.ndim != 2:
        raise DataError(f"values {values.shape} and attributions {attributions.shape} differ")
    n, c = values.shape
    shown = min(c, SERIES_PLOT_CHANNELS)
    top = float(np.nanmax(np.abs(attributions))) if attributions.size else 1.0
    top = top if top > 0 else 1.0
    steps = np.arange(1, n + 1)
    check_figure_options(dpi=dpi)
    with _figure(DOUBLE_COLUMN, 0.8 * shown + 0.8) as fig:
        axes = fig.subplots(shown, 1, sharex=True, squeeze=False)[:, 0]
        image = None
        for j, ax in enumerate(axes):
            line = values[:, j]
            finite = line[np.isfinite(line)]
            low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            pad = 0.08 * (high - low) if high > low else 0.5
            # the attribution strip fills the axis behind the line
            image = ax.imshow(
                attributions[None, :, j],
                aspect="auto",
                cmap="RdBu_r",
                vmin=-top,
                vmax=top,
                extent=(0.5, n + 0.5, low - pad, high + pad),
                interpolation="nearest",
                alpha=0.85,
            )
            ax.plot(steps, line, color="0.1", lw=0.7)
            ax.set_ylim(low - pad, high + pad)
            ax.set_xlim(0.5, n + 0.5)
            ax.set_ylabel(_wrap(str(channels[j]), 14), rotation=0, ha="right", va="center")
        axes[-1].set_xlabel(
            "Time step" + (f" (first {shown} of {c} channels)" if shown < c else "")
        )
        if image is not None:
            fig.colorbar(image, ax=list(axes), label=label, fraction=0.04, pad=0.02)
        if title:
            fig.suptitle(_wrap(title, 110))
        return _save(fig, path, dpi)


# --------------------------------------------------------------------------- interpretation


def matrix_logo_plot(
    matrix: np.ndarray,
    letters: str,
    path: str | os.PathLike[str],
    title: str = "",
    ylabel: str = "bits",
    information: bool = True,
    dpi: int = DPI,
) -> Path:
    """A motif as a stacked logo: (W, letters) ``matrix``, one column per position.

    With ``information`` the matrix holds letter probabilities and each column is drawn
    as tall as its information content (bits), its letters in proportion; otherwise the
    values are drawn as they are (contribution scores: positive letters stacked above the
    axis, negative ones below), the largest magnitude at the outside.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != len(letters):
        raise DataError(f"a {matrix.shape} matrix does not fit the letters {letters}")
    heights = matrix
    if information:
        p = np.clip(matrix, 1e-9, None)
        p = p / p.sum(axis=1, keepdims=True)
        bits = math.log2(len(letters)) + (p * np.log2(p)).sum(axis=1)
        heights = p * bits[:, None]
    # a column's width: one journal column holds a motif of about 12 positions
    width = min(7.2, max(2.0, 0.22 * len(matrix) + 0.8))
    with _figure(width, 1.6) as fig:
        ax = fig.add_subplot(1, 1, 1)
        low = high = 0.0
        for i, column in enumerate(heights):
            up = down = 0.0
            for j in np.argsort(np.abs(column)):
                h = float(column[j])
                if h >= 0:
                    draw_letter(ax, letters[j], i + 1, up, h)
                    up += h
                else:
                    draw_letter(ax, letters[j], i + 1, down, h)
                    down += h
            high, low = max(high, up), min(low, down)
        ax.axhline(0, color="0.3", lw=0.6)
        ax.set_xlim(0.5, len(matrix) + 0.5)
        if information:
            ax.set_ylim(0, math.log2(len(letters)))
        else:
            pad = 0.08 * max(high - low, 1e-9)
            ax.set_ylim(low - pad if low < 0 else 0, high + pad)
        ax.set_xticks(list(range(1, len(matrix) + 1, 1 if len(matrix) <= 20 else 5)))
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(_wrap(title, 60))
        return _save(fig, path, dpi)


def mutation_map_plot(
    residues: str,
    deltas: np.ndarray,
    letters: str,
    path: str | os.PathLike[str],
    title: str = "",
    label: str = "change of the target score",
    per_row: int = 200,
    first: int = 1,
    dpi: int = DPI,
) -> Path:
    """In-silico mutagenesis as a heatmap: positions across, letters down, each cell the
    change of the target score when that letter replaces the residue (red up, blue down,
    one symmetric scale); the residue present is marked by a dot. Long sequences wrap
    into rows of ``per_row`` positions; ``first`` numbers the first residue (a window of a
    longer sequence)."""
    deltas = np.asarray(deltas, dtype=np.float64)
    if deltas.shape != (len(residues), len(letters)):
        raise DataError(
            f"{len(residues)} residues and {len(letters)} letters but deltas "
            f"of shape {deltas.shape}"
        )
    n = len(residues)
    rows = max(1, math.ceil(n / per_row))
    span = min(n, per_row)
    top = float(np.max(np.abs(deltas))) if deltas.size else 1.0
    top = top if top > 0 else 1.0
    # two journal columns wide (one for a window of up to 60 positions); a row's height
    # from the letters: 20 amino acids need more than 4 nucleotides
    row_height = 0.09 * len(letters) + 0.45
    with _figure(3.5 if span <= 60 else 7.2, row_height * rows + 0.6) as fig:
        axes = fig.subplots(rows, 1, squeeze=False)[:, 0]
        image = None
        for r, ax in enumerate(axes):
            start, stop = r * per_row, min(n, (r + 1) * per_row)
            shift = first - 1
            image = ax.imshow(
                deltas[start:stop].T,
                aspect="auto",
                cmap="RdBu_r",
                vmin=-top,
                vmax=top,
                interpolation="nearest",
                extent=(shift + start + 0.5, shift + stop + 0.5, len(letters) - 0.5, -0.5),
            )
            present = [
                (shift + i + 1, letters.find(residues[i].upper())) for i in range(start, stop)
            ]
            xs = [x for x, y in present if y >= 0]
            ys = [y for _, y in present if y >= 0]
            ax.scatter(xs, ys, s=3 if span > 80 else 8, c="0.15", marker="o", lw=0)
            ax.set_xlim(shift + start + 0.5, shift + start + span + 0.5)
            ax.set_yticks(range(len(letters)))
            ax.set_yticklabels(list(letters), fontsize=5 if len(letters) > 8 else 6.5)
            if r == rows - 1:
                ax.set_xlabel("Position")
        if image is not None:
            fig.colorbar(image, ax=list(axes), label=label, fraction=0.03, pad=0.01)
        if title:
            fig.suptitle(_wrap(title, 100))
        return _save(fig, path, dpi)


def insertion_plot(
    positions: np.ndarray,
    effects: np.ndarray,
    spread: np.ndarray,
    path: str | os.PathLike[str],
    title: str = "",
    label: str = "mean change of the prediction",
    dpi: int = DPI,
) -> Path:
    """A motif insertion scan: the mean prediction change (line) and its standard
    deviation over the background sequences (band) at each insertion start."""
    positions = np.asarray(positions, dtype=np.float64)
    effects = np.asarray(effects, dtype=np.float64)
    spread = np.asarray(spread, dtype=np.float64)
    with _figure(7.2, 2.4) as fig:
        ax = fig.add_subplot(1, 1, 1)
        ax.fill_between(
            positions,
            effects - spread,
            effects + spread,
            color="#9ecae1",
            alpha=0.6,
            lw=0,
            label="± 1 s.d. over backgrounds",
        )
        ax.plot(positions, effects, color="#08519c", lw=1.2, label="mean change")
        ax.axhline(0, color="0.3", lw=0.6)
        ax.set_xlabel("Insertion start (position)")
        ax.set_ylabel(label)
        # under the axes: the band fills most of the plot
        fig.legend(frameon=False, loc="outside lower center", ncols=2)
        if title:
            ax.set_title(_wrap(title, 110))
        return _save(fig, path, dpi)
