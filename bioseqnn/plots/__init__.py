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

The package: :mod:`.common` (sizes, fonts, formats, atomic writing, titles),
:mod:`.evaluation` (ROC, PR, confusion matrix, scatter), :mod:`.history` (learning curves),
:mod:`.logos` (attribution logos, series traces) and :mod:`.interpretation` (motif logos,
mutation maps, insertion effects).
"""

from __future__ import annotations

from ..errors import DataError, UsageError
from .common import (
    COLUMN,
    DOUBLE_COLUMN,
    DPI,
    FORMATS,
    INSTALL_HINT,
    check_figure_options,
    data_name,
    figure_format,
    plot_dir,
    require_matplotlib,
    run_title,
    safe_filename,
)
from .evaluation import (
    MANY_CURVES,
    MAX_CELL_COUNTS,
    MAX_PANELS,
    MAX_TICK_LABELS,
    confusion_plot,
    evaluation_plots,
    evaluation_title,
    pr_plot,
    pr_points,
    roc_plot,
    scatter_plot,
)
from .history import learning_curves, read_history
from .interpretation import insertion_plot, matrix_logo_plot, mutation_map_plot
from .logos import (
    LOGO_MAX_POSITIONS,
    LOGO_ROW,
    SERIES_PLOT_CHANNELS,
    draw_letter,
    letter_color,
    logo_layout,
    logo_plot,
    series_attribution_plot,
)

__all__ = [
    "COLUMN",
    "DOUBLE_COLUMN",
    "DPI",
    "DataError",
    "FORMATS",
    "INSTALL_HINT",
    "LOGO_MAX_POSITIONS",
    "LOGO_ROW",
    "MANY_CURVES",
    "MAX_CELL_COUNTS",
    "MAX_PANELS",
    "MAX_TICK_LABELS",
    "SERIES_PLOT_CHANNELS",
    "UsageError",
    "check_figure_options",
    "confusion_plot",
    "data_name",
    "draw_letter",
    "evaluation_plots",
    "evaluation_title",
    "figure_format",
    "insertion_plot",
    "learning_curves",
    "letter_color",
    "logo_layout",
    "logo_plot",
    "matrix_logo_plot",
    "mutation_map_plot",
    "plot_dir",
    "pr_plot",
    "pr_points",
    "read_history",
    "require_matplotlib",
    "roc_plot",
    "run_title",
    "safe_filename",
    "scatter_plot",
    "series_attribution_plot",
]
