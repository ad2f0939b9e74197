"""The house style of every figure: journal sizes, fonts, formats, atomic writing, titles.

Figures are built with ``matplotlib.figure.Figure`` and the Agg canvas directly, never
pyplot; the style is applied inside each drawing function (an rc context), never to
matplotlib's global settings.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..io.files import STDIO
from ..io.outputs import atomic_output, make_folder

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


DPI = 300
"""Default resolution of PNG figures (dots per inch); PDF and SVG are vector figures, where
it applies to the few raster parts (the colour strip of a confusion matrix or a series)."""

COLUMN = 3.5
"""Width of a single journal column, in inches (89 mm)."""

DOUBLE_COLUMN = 7.2
"""Width of a double (full-page) journal column, in inches (183 mm)."""

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
def new_figure(width: float, height: float) -> Iterator[Figure]:
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


def save_figure(
    fig: Figure, path: str | os.PathLike[str], dpi: int = DPI, fmt: str | None = None
) -> Path:
    """Write the figure as ``fmt`` (default: by the name's suffix), atomically.

    The drawing modules call it through this module (``common.save_figure``), the one place
    every figure passes, so that a test can see each figure drawn."""
    fmt = fmt or figure_format(path)
    with atomic_output(path, binary=True) as fh:
        fig.savefig(fh, format=fmt, dpi=dpi, metadata=_NO_DATE.get(fmt))
    return Path(path)


def number_text(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"


def line_styles(n: int) -> list[dict[str, Any]]:
    """Distinct line styles: ten colours, then the same colours dashed, then dotted."""
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    dashes = ["-", "--", ":", "-."]
    return [{"color": cmap(i % 10), "ls": dashes[(i // 10) % len(dashes)]} for i in range(n)]


def clipped(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def set_heading(fig: Figure, title: str, detail: str = "") -> None:
    """The figure's title: data set and model on the first line, what it measured on the
    second."""
    fig.suptitle(f"{clipped(title, 90)}\n{clipped(detail, 120)}" if detail else clipped(title, 90))


def safe_filename(name: str, taken: set[str], fmt: str = "png") -> str:
    """A file name from a record id: unsafe characters become '_', clashes get a suffix."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:80] or "record"
    candidate, k = base, 2
    while candidate.lower() in taken:
        candidate, k = f"{base}_{k}", k + 1
    taken.add(candidate.lower())
    return candidate + f".{fmt}"
