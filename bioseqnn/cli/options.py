"""Option declarations and choices that several commands share."""

from __future__ import annotations

import math
from enum import Enum
from typing import Annotated

import typer


def choices(values: type[Enum]) -> str:
    """The metavar of an option that takes one of an Enum's values: 'a|b|c', as train's
    setting options show their choices."""
    return "|".join(str(member.value) for member in values)


class Task(str, Enum):
    binary = "binary"
    multiclass = "multiclass"
    multilabel = "multilabel"
    regression = "regression"
    per_position = "per-position"
    language_model = "language-model"


class OutputFormat(str, Enum):
    tsv = "tsv"
    fasta = "fasta"


PositionMask = Annotated[
    str | None,
    typer.Option(
        "--position-mask",
        metavar="FASTA",
        rich_help_panel="Inputs",
        help="Per-position tasks: FASTA of 0/1 per residue (same ids and "
        "lengths); 0 = not scored (left out of loss and metrics).",
    ),
]


class AlphabetChoice(str, Enum):
    auto = "auto"
    dna = "dna"
    rna = "rna"
    protein = "protein"


class OnInvalid(str, Enum):
    error = "error"
    skip = "skip"
    mask = "mask"


TaskOpt = Annotated[
    Task | None,
    typer.Option(
        metavar=choices(Task), rich_help_panel="Inputs", help="Override the detected task."
    ),
]
AlphabetOpt = Annotated[
    AlphabetChoice,
    typer.Option(
        metavar=choices(AlphabetChoice), rich_help_panel="Inputs", help="Force the alphabet."
    ),
]

SequenceColumnOpt = Annotated[
    str | None,
    typer.Option(
        "--sequence-column",
        metavar="NAME",
        rich_help_panel="Inputs",
        help="Read sequences from this column of the table instead of a FASTA.",
    ),
]
IgnoreUnmatchedOpt = Annotated[
    bool,
    typer.Option(
        "--ignore-unmatched/--no-ignore-unmatched",
        rich_help_panel="Inputs",
        help="Drop records whose id is in only one of the inputs (warn instead of failing).",
    ),
]


def finite(text: str) -> float:
    """The parser of every number option (tests/cli/test_usage_details.py checks that it is):
    a float, finite. Python's float() takes 'inf' and 'nan', which pass range checks such
    as 'lr > 0' and failed only during training."""
    try:
        number = float(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a number") from None
    if not math.isfinite(number):
        raise typer.BadParameter(f"{text!r} is not a finite number")
    return number


class FigureFormat(str, Enum):
    png = "png"
    pdf = "pdf"
    svg = "svg"


# The figure options of every command that draws (bioseqnn.plots.DPI is the default dpi;
# not imported here, as plots loads numpy and --help stays light).
FigFormat = Annotated[
    FigureFormat | None,
    typer.Option(
        "--format",
        "--plot-format",
        metavar=choices(FigureFormat),
        rich_help_panel="Output",
        show_default=False,
        help="Figure format: png, pdf or svg (default: png).",
    ),
]
FigDpi = Annotated[
    int | None,
    typer.Option(
        "--dpi",
        metavar="N",
        rich_help_panel="Output",
        min=50,
        max=1200,
        show_default=False,
        help="Resolution of PNG figures in dots per inch (default: 300); PDF and SVG are "
        "vector figures.",
    ),
]
Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", rich_help_panel="Run", help="Print nothing but errors.")
]
Debug = Annotated[
    bool,
    typer.Option("--debug", rich_help_panel="Run", help="Show full tracebacks and debug logging."),
]
Device = Annotated[
    str | None,
    typer.Option(
        metavar="auto|cpu|cuda[:N]",
        rich_help_panel="Run",
        show_default=False,
        help="auto (the default: CUDA when present; given explicitly, warns "
        "when it falls back to the CPU), cpu, cuda or cuda:N.",
    ),
]
Threads = Annotated[
    int,
    typer.Option(
        "--threads",
        "-j",
        metavar="N",
        rich_help_panel="Run",
        min=0,
        help="CPU threads for torch (0 = cores available).",
    ),
]
InvalidOpt = Annotated[
    OnInvalid,
    typer.Option(
        "--on-invalid",
        metavar=choices(OnInvalid),
        rich_help_panel="Inputs",
        help="Invalid symbols: stop with an error, skip the record, or mask the "
        "symbol as fully ambiguous (N/X). Numeric series: missing or invalid values, masked as "
        "the channel's mean.",
    ),
]


class OnEdge(str, Enum):
    pad = "pad"
    error = "error"


GenomeRef = Annotated[
    str | None,
    typer.Option(
        "--genome",
        metavar="FASTA",
        rich_help_panel="Inputs",
        show_default=False,
        help="Reference genome (FASTA, plain or bgzip, read through its .fai index, built on "
        "first use): SEQUENCES are then intervals on it, a BED file or a table with chrom, "
        "start and end columns (needs bioseqnn[genome]).",
    ),
]
Window = Annotated[
    int | None,
    typer.Option(
        "--window",
        metavar="N",
        rich_help_panel="Inputs",
        min=0,
        show_default=False,
        help="--genome: centre each interval on this many bases (0: each interval's own "
        "length; default: the model's window, in train the intervals' own lengths).",
    ),
]
OnEdgeOpt = Annotated[
    OnEdge | None,
    typer.Option(
        "--on-edge",
        metavar=choices(OnEdge),
        rich_help_panel="Inputs",
        show_default=False,
        help="--genome: a window that runs off a chromosome end is padded with N (pad, the "
        "default) or an error.",
    ),
]


SeriesId = Annotated[
    str | None,
    typer.Option(
        "--id-column",
        metavar="NAME",
        rich_help_panel="Inputs",
        show_default=False,
        help="Numeric series models: the id column of the series table (default: as in training).",
    ),
]

ModelArg = Annotated[
    str, typer.Argument(metavar="MODEL", help="Model file written by 'bioseqnn train'.")
]
