"""Sequence logos of attributions, and attribution traces of numeric series."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError
from . import common
from .common import (
    COLUMN,
    DOUBLE_COLUMN,
    DPI,
    check_figure_options,
    clipped,
    new_figure,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes


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
    with new_figure(width, row_height * rows + (0.45 if title else 0.25)) as fig:
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
            fig.suptitle(clipped(title, 110))
        return common.save_figure(fig, path, dpi)


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
    with new_figure(DOUBLE_COLUMN, 0.8 * shown + 0.8) as fig:
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
            ax.set_ylabel(clipped(str(channels[j]), 14), rotation=0, ha="right", va="center")
        axes[-1].set_xlabel(
            "Time step" + (f" (first {shown} of {c} channels)" if shown < c else "")
        )
        if image is not None:
            fig.colorbar(image, ax=list(axes), label=label, fraction=0.04, pad=0.02)
        if title:
            fig.suptitle(clipped(title, 110))
        return common.save_figure(fig, path, dpi)
