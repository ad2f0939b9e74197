"""bioseqnn explain and bioseqnn motifs, with the attribution options they share."""

from __future__ import annotations

import logging
from enum import Enum
from typing import Annotated, Any

import typer

from .app import app, setup_logging
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
    SeriesId,
    Threads,
    choices,
)
from .settings import PanelledCommand

log = logging.getLogger("bioseqnn")


class Method(str, Enum):
    saliency = "saliency"
    grad_input = "grad-input"
    ism = "ism"
    integrated_gradients = "integrated-gradients"
    deeplift_shap = "deeplift-shap"


class Reference(str, Enum):
    shuffle = "shuffle"
    uniform = "uniform"
    background = "background"
    zero = "zero"


ReferenceOpt = Annotated[
    Reference | None,
    typer.Option(
        metavar=choices(Reference),
        rich_help_panel="Method",
        help="integrated-gradients and deeplift-shap: what a sequence is compared with: "
        "dinucleotide shuffles of it (DNA/RNA; deeplift-shap's default), a uniform letter mix "
        "(integrated-gradients' default, and deeplift-shap's for protein), the letter "
        "frequencies of the input, or all zeros.",
    ),
]
ShufflesOpt = Annotated[
    int,
    typer.Option(
        metavar="N",
        rich_help_panel="Method",
        min=1,
        max=1000,
        help="References per sequence with --reference shuffle (averaged).",
    ),
]
StepsOpt = Annotated[
    int,
    typer.Option(
        metavar="N",
        rich_help_panel="Method",
        min=1,
        max=1000,
        help="integrated-gradients: points on the path from reference to sequence.",
    ),
]
SeedOpt = Annotated[
    int,
    typer.Option(
        metavar="N",
        rich_help_panel="Run",
        min=0,
        max=2**63 - 1,
        help="Seed of the shuffled references.",
    ),
]
ClassOpt = Annotated[
    str | None,
    typer.Option(
        metavar="CLASS",
        rich_help_panel="Method",
        help="Class (or target column) explained; default as for explain.",
    ),
]


def _attribution_options(reference: Reference | None, shuffles: int, steps: int, seed: int) -> Any:
    from ..interpret.attribution import AttributionOptions

    return AttributionOptions(
        reference=reference.value if reference else None, shuffles=shuffles, steps=steps, seed=seed
    )


@app.command(cls=PanelledCommand)
def explain(
    model: ModelArg,
    sequences: Annotated[
        str,
        typer.Argument(
            metavar="SEQUENCES",
            help="FASTA/FASTQ to explain (plain or .gz; '-' for stdin), or for a numeric series "
            "model its series table.",
        ),
    ] = "-",
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            rich_help_panel="Output",
            help="Attributions TSV, one row per position ('.csv' for CSV, '-' stdout).",
        ),
    ] = "-",
    method: Annotated[
        Method,
        typer.Option(
            metavar=choices(Method),
            rich_help_panel="Method",
            help="saliency (|gradient|), grad-input (gradient x input), ism (in-silico "
            "mutagenesis: every substitution predicted; adds one column per letter), "
            "integrated-gradients or deeplift-shap (against references, see --reference; add "
            "one column per letter: the hypothetical contributions).",
        ),
    ] = Method.grad_input,
    target: Annotated[
        str | None,
        typer.Option(
            metavar="CLASS",
            rich_help_panel="Method",
            help="Class (or target column) to explain. Default: the positive class (binary), the "
            "predicted class (multiclass), the most probable label, the first target.",
        ),
    ] = None,
    plot: Annotated[
        str | None,
        typer.Option(
            "--plot",
            metavar="DIR",
            rich_help_panel="Output",
            help="Folder for one sequence logo per sequence (a numeric series: its "
            "channels over time, coloured by attribution; needs bioseqnn[plots]).",
        ),
    ] = None,
    plot_format: FigFormat = None,
    dpi: FigDpi = None,
    max_plots: Annotated[
        int,
        typer.Option(
            metavar="N",
            rich_help_panel="Output",
            min=1,
            help="Draw logos of at most this many sequences (the first ones).",
        ),
    ] = 20,
    id_column: SeriesId = None,
    batch_size: Annotated[
        int,
        typer.Option(
            metavar="N",
            rich_help_panel="Run",
            min=1,
            help="Sequences (or ISM mutants) per forward pass.",
        ),
    ] = 256,
    reference: ReferenceOpt = None,
    shuffles: ShufflesOpt = 10,
    steps: StepsOpt = 50,
    seed: SeedOpt = 0,
    device: Device = None,
    threads: Threads = 0,
    on_invalid: InvalidOpt = OnInvalid.error,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Per-position attribution scores: which residues drive the prediction."""
    setup_logging(quiet, debug)
    from ..io.outputs import check_output_path
    from ..ops.explain import explain as run_explain
    from ..ops.explain import explanation_plots, write_attributions
    from ..plots import plot_dir

    check_output_path(output, {"MODEL": model, "SEQUENCES": sequences})
    if plot is not None:
        plot_dir(plot)
    result = run_explain(
        model,
        sequences,
        method=method.value,
        target=target,
        batch_size=batch_size,
        device=device,
        threads=threads,
        on_invalid=on_invalid.value,
        id_column=id_column,
        options=_attribution_options(reference, shuffles, steps, seed),
    )
    write_attributions(result, output)
    if plot is not None:
        paths = explanation_plots(
            result, plot, max_plots, (plot_format or FigureFormat.png).value, dpi, model
        )
        log.info("wrote %d %s to %s", len(paths), "plot(s)" if result.channels else "logo(s)", plot)


class PathMethod(str, Enum):
    deeplift_shap = "deeplift-shap"
    integrated_gradients = "integrated-gradients"


@app.command(cls=PanelledCommand)
def motifs(
    model: Annotated[
        str,
        typer.Argument(
            metavar="MODEL", help="Model file (DNA or RNA) written by 'bioseqnn train'."
        ),
    ],
    sequences: Annotated[
        str,
        typer.Argument(
            metavar="SEQUENCES",
            help="FASTA/FASTQ whose attributions are summarised (plain or .gz; '-' stdin).",
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="DIR",
            rich_help_panel="Output",
            help="Report folder: motifs.meme, logos/, report.md (and matches.tsv with --database).",
        ),
    ],
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            metavar="FILE",
            rich_help_panel="Inputs",
            help="MEME motif file to name the motifs by (Tomtom: best matches, p- and q-values).",
        ),
    ] = None,
    method: Annotated[
        PathMethod | None,
        typer.Option(
            metavar=choices(PathMethod),
            rich_help_panel="Method",
            help="Attribution method (default: deeplift-shap).",
        ),
    ] = None,
    target: ClassOpt = None,
    window: Annotated[
        int,
        typer.Option(metavar="N", rich_help_panel="Clustering", min=3, help="Seqlet core width."),
    ] = 15,
    flank: Annotated[
        int,
        typer.Option(
            metavar="N",
            rich_help_panel="Clustering",
            min=0,
            help="Positions added on each side of a seqlet.",
        ),
    ] = 5,
    max_seqlets: Annotated[
        int,
        typer.Option(
            metavar="N", rich_help_panel="Clustering", min=10, help="Seqlets per sign at most."
        ),
    ] = 2000,
    min_seqlets: Annotated[
        int,
        typer.Option(
            metavar="N",
            rich_help_panel="Clustering",
            min=1,
            help="Seqlets a sign (positive or negative) needs to be clustered.",
        ),
    ] = 30,
    min_cluster: Annotated[
        int,
        typer.Option(
            metavar="N",
            rich_help_panel="Clustering",
            min=1,
            help="Seqlets a motif needs to be reported.",
        ),
    ] = 20,
    leiden_runs: Annotated[
        int,
        typer.Option(
            metavar="N",
            rich_help_panel="Clustering",
            min=1,
            help="Clusterings tried (more: steadier, slower).",
        ),
    ] = 10,
    plots: Annotated[
        bool, typer.Option(rich_help_panel="Output", help="Draw the logos (needs matplotlib).")
    ] = True,
    plot_format: FigFormat = None,
    dpi: FigDpi = None,
    reference: ReferenceOpt = None,
    shuffles: ShufflesOpt = 10,
    steps: StepsOpt = 50,
    seed: SeedOpt = 0,
    batch_size: Annotated[
        int, typer.Option(metavar="N", rich_help_panel="Run", min=1, help="Sequences per pass.")
    ] = 256,
    device: Device = None,
    threads: Threads = 0,
    on_invalid: InvalidOpt = OnInvalid.error,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Discover motifs: attributions summarised by TF-MoDISco, named from a motif database."""
    setup_logging(quiet, debug)
    from ..modelfile import read_manifest

    read_manifest(model)  # what is no model file is refused before torch and modisco load
    from ..interpret.motifs import (
        ModiscoOptions,
        discover_motifs,
        report_folder,
        write_motif_report,
    )

    report_folder(output, create=False)
    fmt = (plot_format or FigureFormat.png).value
    if plots:
        from ..plots import DPI, check_figure_options, require_matplotlib

        require_matplotlib()
        check_figure_options(fmt, DPI if dpi is None else dpi)
    report = discover_motifs(
        model,
        sequences,
        method=method.value if method else None,
        target=target,
        database=database,
        options=_attribution_options(reference, shuffles, steps, seed),
        modisco=ModiscoOptions(
            window=window,
            flank=flank,
            max_seqlets=max_seqlets,
            min_seqlets=min_seqlets,
            min_cluster=min_cluster,
            leiden_runs=leiden_runs,
        ),
        batch_size=batch_size,
        device=device,
        threads=threads,
        on_invalid=on_invalid.value,
    )
    written = write_motif_report(report, output, plots=plots, fmt=fmt, dpi=dpi)
    for m in report.motifs:
        best = (
            f"; best match {m.matches[0].target} (q = {m.matches[0].q_value:.2g})"
            if m.matches
            else ""
        )
        log.info(
            "%s: %s, %d seqlets, %s%s", m.name, m.sign, m.seqlets, m.consensus(report.letters), best
        )
    log.info("wrote %d file(s) to %s", len(written), output)
