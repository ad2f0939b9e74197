"""bioseqnn export, generate, version, plot-history and config."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer

from .._version import __version__
from .app import app, setup_logging, version_details
from .options import Debug, Device, FigDpi, FigFormat, ModelArg, Quiet, SeriesId, Threads, finite
from .settings import PanelledCommand

log = logging.getLogger("bioseqnn")


@app.command(cls=PanelledCommand)
def export(
    model: ModelArg,
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            rich_help_panel="Output",
            help="NAME.onnx (ONNX) or NAME.pt (TorchScript); NAME.onnx.json or "
            "NAME.pt.json beside it describes inputs, outputs and the encoding table.",
        ),
    ],
    check: Annotated[
        str | None,
        typer.Option(
            "--check",
            metavar="FILE",
            rich_help_panel="Parity check",
            help="FASTA/FASTQ of sequences for the parity check, or a series table "
            "for a numeric series model (default: random sequences of the model's alphabet, or "
            "random series, at several lengths).",
        ),
    ] = None,
    tolerance: Annotated[
        float,
        typer.Option(
            metavar="NUMBER",
            rich_help_panel="Parity check",
            parser=finite,
            help="Largest accepted |export - PyTorch| difference of any output.",
        ),
    ] = 1e-4,
    id_column: SeriesId = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Export a model to ONNX or TorchScript, checked against PyTorch before it is written."""
    setup_logging(quiet, debug)
    from ..ops.export import export as run_export

    result = run_export(model, output, check=check, tolerance=tolerance, id_column=id_column)
    log.info(
        "wrote %s and %s; parity on %d sequence(s) of %d-%d positions (%s): max abs diff %.2g",
        result.output,
        result.sidecar,
        result.sequences,
        *result.lengths,
        result.check_source,
        result.max_abs_diff,
    )


@app.command(cls=PanelledCommand)
def generate(
    model: Annotated[
        str,
        typer.Argument(
            metavar="MODEL",
            help="Language model file (bioseqnn train SEQS --task language-model).",
        ),
    ],
    num: Annotated[
        int,
        typer.Option(
            "-n",
            "--num",
            metavar="N",
            rich_help_panel="Sampling",
            min=0,
            help="Sequences to sample.",
        ),
    ] = 10,
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            rich_help_panel="Output",
            help="FASTA to write ('.gz' compresses; '-' stdout).",
        ),
    ] = "-",
    prefix: Annotated[
        str,
        typer.Option(
            metavar="RESIDUES",
            rich_help_panel="Sampling",
            help="Every sample starts with these residues (included in the output).",
        ),
    ] = "",
    temperature: Annotated[
        float,
        typer.Option(
            metavar="NUMBER",
            rich_help_panel="Sampling",
            parser=finite,
            help="Below 1: more typical samples; above 1: more diverse.",
        ),
    ] = 1.0,
    top_k: Annotated[
        int,
        typer.Option(
            metavar="K",
            rich_help_panel="Sampling",
            min=0,
            help="Draw each residue from the k most likely only (0 = all).",
        ),
    ] = 0,
    top_p: Annotated[
        float,
        typer.Option(
            metavar="P",
            rich_help_panel="Sampling",
            parser=finite,
            help="Draw from the most likely residues that reach this probability (1 = all).",
        ),
    ] = 1.0,
    min_length: Annotated[
        int,
        typer.Option(
            metavar="LENGTH",
            rich_help_panel="Sampling",
            min=1,
            help="No end before this many residues.",
        ),
    ] = 1,
    max_length: Annotated[
        int,
        typer.Option(
            metavar="LENGTH",
            rich_help_panel="Sampling",
            min=0,
            help="Stop a sample at this length even without an end (0 = the longest "
            "training sequence).",
        ),
    ] = 0,
    seed: Annotated[
        int,
        typer.Option(
            metavar="N",
            rich_help_panel="Run",
            help="Sample i depends on the seed and i alone (not on -n or --batch-size).",
        ),
    ] = 0,
    id_prefix: Annotated[
        str,
        typer.Option(
            metavar="PREFIX",
            rich_help_panel="Output",
            help="Records are named PREFIX1, PREFIX2, ...",
        ),
    ] = "sample_",
    batch_size: Annotated[
        int,
        typer.Option(metavar="N", rich_help_panel="Run", min=1, help="Samples drawn together."),
    ] = 64,
    device: Device = None,
    threads: Threads = 0,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Sample new sequences from a language model, as FASTA."""
    setup_logging(quiet, debug)
    from ..ops.generate import generate as run_generate
    from ..variants.lm import Sampling

    sampling = Sampling(
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        min_length=min_length,
        max_length=max_length,
    )
    run_generate(
        model,
        output,
        num,
        sampling=sampling,
        prefix=prefix,
        seed=seed,
        id_prefix=id_prefix,
        batch_size=batch_size,
        device=device,
        threads=threads,
    )


@app.command("version", cls=PanelledCommand)
def version_command(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            rich_help_panel="Output",
            help="Also name Python, torch (CPU or CUDA build), the CPU "
            "kernels and the optional libraries, one 'name: value' line each.",
        ),
    ] = False,
) -> None:
    """Print the version: one line, or with --verbose what this install runs on."""
    print(f"bioseqnn {__version__}")
    if verbose:
        for line in version_details()[1:]:
            print(line)


@app.command("plot-history", cls=PanelledCommand)
def plot_history(
    log_file: Annotated[
        str,
        typer.Argument(
            metavar="LOG_FILE",
            help="Per-epoch log written by 'bioseqnn train': NAME.log.tsv beside the model, or "
            "the --log file (TSV or JSON lines); '-' reads stdin.",
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            rich_help_panel="Output",
            help="Figure to write: .png, .pdf or .svg, by the name's suffix.",
        ),
    ] = "learning_curves.png",
    metric: Annotated[
        str | None,
        typer.Option(
            metavar="METRIC",
            rich_help_panel="Output",
            help="Validation metric of the second panel (default: accuracy or r2).",
        ),
    ] = None,
    title: Annotated[
        str | None,
        typer.Option(
            metavar="TEXT",
            rich_help_panel="Output",
            help="Title (default: the log's name, without folder and suffixes).",
        ),
    ] = None,
    plot_format: FigFormat = None,
    dpi: FigDpi = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Learning curves (loss and a validation metric per epoch) from a training log.

    The format follows the output's suffix; --format pdf with the default output writes
    learning_curves.pdf.
    """
    setup_logging(quiet, debug)
    from ..io.outputs import check_not_an_input
    from ..plots import (
        DPI,
        data_name,
        figure_format,
        learning_curves,
        read_history,
        require_matplotlib,
    )

    require_matplotlib()
    if output == "-":
        raise typer.BadParameter("a figure needs a file name", param_hint="--output")
    if plot_format is not None and output == "learning_curves.png":
        output = f"learning_curves.{plot_format.value}"
    fmt = figure_format(output)  # a .jpg or .gz name fails (exit 2) before the log is read
    if plot_format is not None and os.path.splitext(output)[1] and fmt != plot_format.value:
        raise typer.BadParameter(
            f"{output} names a {fmt} figure, not {plot_format.value}", param_hint="--format"
        )
    check_not_an_input(output, {"LOG_FILE": log_file})
    history = read_history(log_file)
    name = data_name(log_file).removesuffix(".log")
    figure = learning_curves(
        history,
        output,
        title or name,
        metric,
        dpi=dpi or DPI,
        fmt=plot_format.value if plot_format else None,
    )
    log.info("wrote %s", figure)


@app.command("config", cls=PanelledCommand)
def config_command(
    model: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="MODEL",
            rich_help_panel="Inputs",
            help="Print the resolved config stored in this model file instead.",
        ),
    ] = None,
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            rich_help_panel="Output",
            help="Write the config here ('-' = stdout).",
        ),
    ] = "-",
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Print the full default config as commented YAML, a start for 'train --config'."""
    setup_logging(quiet, debug)
    from ..config import write_config

    if model is None:
        write_config(output)
        return
    from ..modelfile import model_config

    cfg, header = model_config(model)
    write_config(output, cfg, header, source=model)
