"""bioseqnn insert and bioseqnn ism-map: in-silico experiments."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from .app import app, setup_logging
from .explain import ClassOpt
from .options import (
    Debug,
    Device,
    FigDpi,
    FigFormat,
    FigureFormat,
    InvalidOpt,
    ModelArg,
    OnInvalid,
    Quiet,
    Threads,
)
from .settings import PanelledCommand

log = logging.getLogger("bioseqnn")


@app.command(cls=PanelledCommand)
def insert(
    model: ModelArg,
    motif: Annotated[
        str,
        typer.Option(
            "--motif",
            metavar="RESIDUES",
            rich_help_panel="Inputs",
            help="Residues written into the backgrounds (the model's alphabet; "
            "ambiguity codes allowed).",
        ),
    ],
    background: Annotated[
        str,
        typer.Option(
            "--background",
            metavar="FILE",
            rich_help_panel="Inputs",
            help="FASTA/FASTQ of background sequences ('-' stdin).",
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            rich_help_panel="Output",
            help="TSV of the mean change per insertion start ('.csv' for CSV, '-' stdout).",
        ),
    ] = "-",
    target: Annotated[
        str | None,
        typer.Option(
            metavar="CLASS",
            rich_help_panel="Method",
            help="Class (or target column) whose prediction is followed; default as for explain.",
        ),
    ] = None,
    step: Annotated[
        int,
        typer.Option(
            metavar="STEP",
            rich_help_panel="Method",
            min=1,
            help="Try every STEP-th start position.",
        ),
    ] = 1,
    plot: Annotated[
        str | None,
        typer.Option(
            "--plot",
            metavar="FILE",
            rich_help_panel="Output",
            help="Figure of the mean change along the sequence (.png, .pdf or .svg by its name).",
        ),
    ] = None,
    dpi: FigDpi = None,
    batch_size: Annotated[
        int,
        typer.Option(metavar="N", rich_help_panel="Run", min=1, help="Variants per forward pass."),
    ] = 256,
    device: Device = None,
    threads: Threads = 0,
    on_invalid: InvalidOpt = OnInvalid.error,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Insert a motif at each position of background sequences: the mean prediction change."""
    setup_logging(quiet, debug)
    from ..interpret.insilico import insert_motif, write_insertion
    from ..io.outputs import check_output_path, same_path

    check_output_path(output, {"MODEL": model, "--background": background})
    if plot is not None:
        from ..plots import DPI, check_figure_options, figure_format, require_matplotlib

        require_matplotlib()
        check_figure_options(figure_format(plot), DPI if dpi is None else dpi)
        check_output_path(plot, {"MODEL": model, "--background": background})
        if same_path(plot, output):
            raise typer.BadParameter("--plot and -o name one file", param_hint="--plot")
    result = insert_motif(
        model,
        motif,
        background,
        target=target,
        step=step,
        batch_size=batch_size,
        device=device,
        threads=threads,
        on_invalid=on_invalid.value,
    )
    write_insertion(result, output)
    if plot is not None:
        from ..plots import DPI, data_name, insertion_plot

        insertion_plot(
            result.positions,
            result.mean,
            result.std,
            plot,
            f"{result.motif} inserted into {result.backgrounds} backgrounds of "
            f"{data_name(background)} \u2014 {data_name(model)} ({result.target})",
            dpi=DPI if dpi is None else dpi,
        )
    log.info(
        "%s toward %s: mean change %+.4g over %d background(s) and %d position(s) "
        "(backgrounds' mean prediction %.4g)",
        result.motif,
        result.target,
        result.effect,
        result.backgrounds,
        len(result.positions),
        result.baseline,
    )


def _region(text: str | None) -> tuple[int, int] | None:
    from ..errors import UsageError

    if text is None:
        return None
    start, sep, end = text.partition(":")
    if not sep or not start.strip().isdigit() or not end.strip().isdigit():
        raise UsageError(f"--region {text!r}: give START:END (1-based, inclusive)")
    return int(start), int(end)


@app.command("ism-map", cls=PanelledCommand)
def ism_map(
    model: ModelArg,
    sequences: Annotated[
        str, typer.Argument(metavar="SEQUENCES", help="FASTA/FASTQ ('-' for stdin).")
    ] = "-",
    plot: Annotated[
        str,
        typer.Option(
            "--plot",
            metavar="DIR",
            rich_help_panel="Output",
            help="Folder for one positions x letters heatmap per sequence.",
        ),
    ] = "ism-maps",
    plot_format: FigFormat = None,
    dpi: FigDpi = None,
    output: Annotated[
        str | None,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            rich_help_panel="Output",
            help="Also write the changes as a TSV (one row per position, one column per letter).",
        ),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(
            "--region",
            metavar="START:END",
            rich_help_panel="Method",
            help="START:END (1-based, inclusive): mutate this window only, with "
            "the whole sequence as context (long sequences).",
        ),
    ] = None,
    target: ClassOpt = None,
    max_plots: Annotated[
        int,
        typer.Option(
            metavar="N",
            rich_help_panel="Output",
            min=1,
            help="Heatmaps of at most this many sequences (the first ones).",
        ),
    ] = 20,
    batch_size: Annotated[
        int,
        typer.Option(metavar="N", rich_help_panel="Run", min=1, help="Mutants per forward pass."),
    ] = 256,
    device: Device = None,
    threads: Threads = 0,
    on_invalid: InvalidOpt = OnInvalid.error,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Mutation map: every substitution's effect drawn as a positions x letters heatmap."""
    setup_logging(quiet, debug)
    from ..interpret.insilico import mutation_map, mutation_map_plots, write_mutation_maps
    from ..io.outputs import check_output_path
    from ..plots import plot_dir

    window = _region(region)
    if output is not None:
        check_output_path(output, {"MODEL": model, "SEQUENCES": sequences})
    plot_dir(plot)
    letters, maps = mutation_map(
        model,
        sequences,
        target=target,
        region=window,
        batch_size=batch_size,
        device=device,
        threads=threads,
        on_invalid=on_invalid.value,
    )
    if output is not None:
        write_mutation_maps(letters, maps, output)
    paths = mutation_map_plots(
        letters, maps, plot, max_plots, (plot_format or FigureFormat.png).value, dpi, model
    )
    log.info("wrote %d mutation map(s) to %s", len(paths), plot)
