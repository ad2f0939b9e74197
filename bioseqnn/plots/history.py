"""Learning curves: a training log read (TSV or JSON lines) and drawn, one curve per
member or fold of an ensemble.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import math
import os
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError, UsageError, shorten
from ..io.files import STDIO, display_name, open_binary
from . import common
from .common import (
    COLUMN,
    DOUBLE_COLUMN,
    DPI,
    check_figure_options,
    figure_format,
    line_styles,
    new_figure,
    number_text,
    set_heading,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


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
    with new_figure(DOUBLE_COLUMN if panels == 2 else COLUMN, 2.7) as fig:
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
            summary += f": {pretty} {number_text(values[best])}"
        _integer_epochs(fig)
        set_heading(
            fig,
            title or "Learning curves",
            f"Learning curves: {summary}, validation loss {number_text(monitored[best])}"
            if has_val
            else f"Learning curves: {summary}",
        )
        return common.save_figure(fig, path, dpi, fmt)


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
    with new_figure(DOUBLE_COLUMN if key or outside else COLUMN, 3.0) as fig:
        ax = fig.add_subplot(1, 2 if key else 1, 1)
        ax2 = fig.add_subplot(1, 2, 2) if key else None
        for member, style in zip(members, line_styles(len(members)), strict=True):
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
            scores.append(number_text(values[best]))
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
        set_heading(fig, title or "Learning curves", summary)
        return common.save_figure(fig, path, dpi, fmt)
