"""bioseqnn predict and bioseqnn variants."""

from __future__ import annotations

import logging
from enum import Enum
from typing import Annotated

import typer

from .app import app, setup_logging
from .options import (
    Debug,
    Device,
    GenomeRef,
    InvalidOpt,
    ModelArg,
    OnEdgeOpt,
    OnInvalid,
    OutputFormat,
    Quiet,
    SeriesId,
    Threads,
    Window,
    choices,
)
from .process import prepare_torch
from .settings import PanelledCommand

log = logging.getLogger("bioseqnn")


@app.command(cls=PanelledCommand)
def predict(
    model: ModelArg,
    sequences: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="SEQUENCES",
            show_default=False,
            help="FASTA/FASTQ to predict (plain or .gz; '-' or none for stdin), or for a numeric "
            "series model its series table; several files: their rows one file after the "
            "other, ids as in the files.",
        ),
    ] = None,
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            rich_help_panel="Output",
            help="Predictions TSV ('.csv' for CSV, '.gz' compresses; '-' stdout).",
        ),
    ] = "-",
    batch_size: Annotated[
        int, typer.Option(metavar="N", rich_help_panel="Run", min=1, help="Sequences per batch.")
    ] = 256,
    max_tokens: Annotated[
        int,
        typer.Option(
            metavar="N",
            rich_help_panel="Run",
            min=0,
            help="Cap on padded positions per batch (sequences x longest length): "
            "batches of long sequences hold fewer (0 = 262144; predictions do not depend "
            "on it).",
        ),
    ] = 0,
    device: Device = None,
    threads: Threads = 0,
    on_invalid: InvalidOpt = OnInvalid.error,
    rc_average: Annotated[
        bool | None,
        typer.Option(
            "--rc-average/--no-rc-average",
            rich_help_panel="Prediction",
            help="DNA/RNA: report the mean over both strands (default: as the model was trained).",
        ),
    ] = None,
    output_format: Annotated[
        OutputFormat,
        typer.Option(
            "--format",
            metavar=choices(OutputFormat),
            rich_help_panel="Output",
            help="Per-position models: tsv (one row per residue: id, position, "
            "residue, predicted, prob_<class>...) or fasta (predicted labels).",
        ),
    ] = OutputFormat.tsv,
    id_column: SeriesId = None,
    genome: GenomeRef = None,
    window: Window = None,
    on_edge: OnEdgeOpt = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Predict each sequence (or series): one row per record, in input order, id first."""
    setup_logging(quiet, debug)
    paths = sequences or ["-"]
    plain = (
        device in (None, "cpu")
        and not rc_average
        and output_format is OutputFormat.tsv
        and id_column is genome is window is on_edge is None
        and len(paths) == 1
        and batch_size >= 1
        and max_tokens >= 0
    )
    if plain:
        from ..engine import light

        chosen = light.choose(model, paths)
        if chosen is not None:  # small enough not to wait for torch (engine/light.py)
            from .. import machine

            machine.cap_memory()  # no GPU driver in this process: a ceiling on any machine
            try:
                stats = light.predict(chosen, model, paths[0], output, on_invalid.value, threads)
            except MemoryError:  # torch halves its batches, and names a record too long
                log.debug("out of memory without torch; predicting through torch")
                machine.release_memory()
            else:
                log.debug("predicted %d record(s) without torch", stats.records)
                return
    prepare_torch()
    from ..ops.predict import predict as run_predict
    from ..variants.intervals import genome_options

    stats = run_predict(
        model,
        paths,
        output,
        batch_size=batch_size,
        max_tokens=max_tokens,
        device=device,
        threads=threads,
        on_invalid=on_invalid.value,
        rc_average=rc_average,
        fmt=output_format.value,
        id_column=id_column,
        genome=genome_options(genome, window=window, on_edge=on_edge and on_edge.value),
    )
    log.debug("predicted %d record(s)", stats.records)


class OnMismatch(str, Enum):
    error = "error"
    skip = "skip"
    warn = "warn"


class VariantFormat(str, Enum):
    tsv = "tsv"
    vcf = "vcf"


@app.command(cls=PanelledCommand)
def variants(
    model: Annotated[
        str,
        typer.Argument(
            metavar="MODEL",
            help="Model file written by 'bioseqnn train' (DNA; one output per sequence).",
        ),
    ],
    vcf: Annotated[
        str,
        typer.Argument(
            metavar="VCF",
            help="Variants: VCF or BCF, plain or compressed (bgzip, gzip, bzip2, xz, zstd; "
            "'-' for stdin).",
        ),
    ] = "-",
    genome: Annotated[
        str,
        typer.Option(
            "--genome",
            metavar="FASTA",
            rich_help_panel="Inputs",
            help="Reference genome the VCF is on (FASTA, plain or "
            "bgzip, read through its .fai index, built on first use; needs bioseqnn[genome]).",
        ),
    ] = "",
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            rich_help_panel="Output",
            help="One row per alternate allele: TSV ('.csv' for CSV, '.gz' "
            "compresses; '-' stdout); or NAME.vcf / NAME.vcf.gz (bgzip): the VCF with the "
            "scores as INFO fields.",
        ),
    ] = "-",
    window: Annotated[
        int | None,
        typer.Option(
            "--window",
            metavar="N",
            rich_help_panel="Inputs",
            min=1,
            show_default=False,
            help="Bases per window, centred on the variant (default: the model's window).",
        ),
    ] = None,
    on_edge: OnEdgeOpt = None,
    on_mismatch: Annotated[
        OnMismatch,
        typer.Option(
            "--on-mismatch",
            metavar=choices(OnMismatch),
            rich_help_panel="Inputs",
            help="A REF that differs from the genome: stop with an error, skip "
            "the record, or score it with a warning (both counted).",
        ),
    ] = OnMismatch.error,
    rc_average: Annotated[
        bool | None,
        typer.Option(
            "--rc-average/--no-rc-average",
            rich_help_panel="Prediction",
            help="Score the mean over both strands (default: as the model was trained).",
        ),
    ] = None,
    output_format: Annotated[
        VariantFormat | None,
        typer.Option(
            "--format",
            metavar=choices(VariantFormat),
            rich_help_panel="Output",
            show_default=False,
            help="tsv or vcf (default: from the output's name; tsv for stdout).",
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(metavar="N", rich_help_panel="Run", min=1, help="Windows per batch.")
    ] = 256,
    device: Device = None,
    threads: Threads = 0,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Variant effects: each alternate allele's window predicted against the reference's.

    Columns: chrom, pos, id, ref, alt, ref_<class>, alt_<class> (probabilities, or values
    for regression) and diff_<class>: alt - ref, of the log-odds log(p/(1-p)) for classes.
    """
    setup_logging(quiet, debug)
    from ..ops.variant_effects import score_variants
    from ..variants.intervals import genome_options

    if not genome:
        raise typer.BadParameter(
            "the reference genome the VCF is on is required", param_hint="--genome"
        )
    options = genome_options(genome, window=window, on_edge=on_edge and on_edge.value)
    assert options is not None
    score_variants(
        model,
        vcf,
        options,
        output,
        fmt=output_format.value if output_format else None,
        on_mismatch=on_mismatch.value,
        rc_average=rc_average,
        batch_size=batch_size,
        device=device,
        threads=threads,
    )
