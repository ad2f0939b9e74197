"""Figures of the interpretation commands: motif matrices as logos, mutation maps and
motif-insertion effects.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError
from . import common
from .common import (
    DPI,
    clipped,
    new_figure,
)
from .logos import draw_letter

if TYPE_CHECKING:  # pragma: no cover
    pass


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
    with new_figure(width, 1.6) as fig:
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
            ax.set_title(clipped(title, 60))
        return common.save_figure(fig, path, dpi)


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
    with new_figure(3.5 if span <= 60 else 7.2, row_height * rows + 0.6) as fig:
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
            fig.suptitle(clipped(title, 100))
        return common.save_figure(fig, path, dpi)


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
    with new_figure(7.2, 2.4) as fig:
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
            ax.set_title(clipped(title, 110))
        return common.save_figure(fig, path, dpi)
