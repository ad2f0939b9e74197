"""bioseqnn evaluate."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from .app import app, setup_logging, stderr_console
from .options import (
    Debug,
    Device,
    FigDpi,
    FigFormat,
    FigureFormat,
    GenomeRef,
    IgnoreUnmatchedOpt,
    InvalidOpt,
    ModelArg,
    OnEdgeOpt,
    OnInvalid,
    PositionMask,
    Quiet,
    SequenceColumnOpt,
    Threads,
    Window,
)
from .settings import PanelledCommand

log = logging.getLogger("bioseqnn")


@app.command(cls=PanelledCommand)
def evaluate(
    model: ModelArg,
    sequences: Annotated[
        str,
        typer.Argument(
            metavar="SEQUENCES",
            help="FASTA/FASTQ of the test records ('-' for stdin), a table with "
            "--sequence-column, or for a numeric series model its series table.",
        ),
    ],
    labels: Annotated[
        str | None,
        typer.Argument(
            metavar="LABELS",
            help="CSV/TSV of their labels, joined by id (none for a language model).",
        ),
    ] = None,
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            rich_help_panel="Output",
            help="Metrics JSON to write ('-' stdout).",
        ),
    ] = "-",
    plots: Annotated[
        str | None,
        typer.Option(
            "--plots",
            metavar="DIR",
            rich_help_panel="Output",
            help="Folder for the ROC, PR and confusion figures, or the scatter of a "
            "regression (needs bioseqnn[plots]).",
        ),
    ] = None,
    plot_format: FigFormat = None,
    dpi: FigDpi = None,
    title: Annotated[
        str | None,
        typer.Option(
            "--title",
            metavar="TEXT",
            rich_help_panel="Output",
            show_default=False,
            help="Title of the figures (default: the data set "
            "and the model, by their file names: 'test — model').",
        ),
    ] = None,
    id_column: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            rich_help_panel="Inputs",
            show_default=False,
            help="Id column of the labels table (default: id) and, when "
            "given, of a numeric series table (default: as in training).",
        ),
    ] = None,
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target",
            "-t",
            metavar="NAME",
            rich_help_panel="Inputs",
            help="Column holding the model's target, if named otherwise than "
            "in training (repeat for several, in the model's order).",
        ),
    ] = None,
    sequence_column: SequenceColumnOpt = None,
    ignore_unmatched: IgnoreUnmatchedOpt = False,
    batch_size: Annotated[
        int, typer.Option(metavar="N", rich_help_panel="Run", min=1, help="Sequences per batch.")
    ] = 256,
    device: Device = None,
    threads: Threads = 0,
    on_invalid: InvalidOpt = OnInvalid.error,
    position_mask: PositionMask = None,
    genome: GenomeRef = None,
    window: Window = None,
    on_edge: OnEdgeOpt = None,
    chroms: Annotated[
        str | None,
        typer.Option(
            metavar="CHR,CHR",
            rich_help_panel="Inputs",
            show_default=False,
            help="--genome: evaluate the intervals on these chromosomes only.",
        ),
    ] = None,
    multiqc: Annotated[
        str | None,
        typer.Option(
            "--multiqc",
            metavar="NAME_mqc.json",
            rich_help_panel="Output",
            show_default=False,
            help="Also write the summary metrics as MultiQC custom content (a table row per "
            "model and test set; MultiQC merges the files of several runs).",
        ),
    ] = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Every metric of the model's task on labelled data: JSON out, tables on stderr.

    A language model is evaluated on sequences alone: perplexity and next-residue accuracy.
    """
    setup_logging(quiet, debug)
    from ..io.outputs import check_output_path
    from ..ops.evaluate import evaluate as run_evaluate
    from ..ops.evaluate import metric_tables, write_json
    from ..plots import DPI, evaluation_plots, plot_dir
    from ..variants.intervals import genome_options

    fasta, table = (None, sequences) if sequence_column and labels is None else (sequences, labels)
    regions = genome_options(
        genome, window=window, on_edge=on_edge and on_edge.value, chroms=chroms
    )
    inputs = {
        "MODEL": model,
        "SEQUENCES": sequences,
        "LABELS": labels,
        "--position-mask": position_mask,
        **(regions.named() if regions is not None else {}),
    }
    check_output_path(output, inputs)
    if multiqc is not None:
        check_output_path(multiqc, inputs)
    if plots is not None:
        plot_dir(plots)
    ev = run_evaluate(
        model,
        fasta,
        table,
        id_column=id_column,
        sequence_column=sequence_column,
        batch_size=batch_size,
        device=device,
        threads=threads,
        on_invalid=on_invalid.value,
        ignore_unmatched=ignore_unmatched,
        position_mask=position_mask,
        targets=target or None,
        genome=regions,
    )
    # the files first: a reader of stderr that goes away (| head) cannot cost them
    write_json(ev, output)
    if multiqc is not None:
        from ..ops.evaluate import write_multiqc

        write_multiqc(ev, multiqc)
    if not quiet:
        # a log file or pipe gets the tables at their natural width, not cut to 80 columns
        from ..progress import console

        tables = (
            stderr_console()
            if stderr_console().is_terminal
            else console(stderr=True, highlight=False, width=10_000)
        )
        for t in metric_tables(ev):
            tables.print(t)
    if plots is not None:
        fmt = (plot_format or FigureFormat.png).value
        for figure in evaluation_plots(ev, plots, fmt, dpi or DPI, title):
            log.info("wrote %s", figure)
