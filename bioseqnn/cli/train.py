"""bioseqnn train."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .app import RichReporter, app, setup_logging, stderr_console
from .options import (
    AlphabetChoice,
    AlphabetOpt,
    Debug,
    FigDpi,
    FigFormat,
    FigureFormat,
    GenomeRef,
    IgnoreUnmatchedOpt,
    InvalidOpt,
    OnEdgeOpt,
    OnInvalid,
    PositionMask,
    Quiet,
    SequenceColumnOpt,
    Task,
    TaskOpt,
    Window,
)
from .settings import PanelledCommand, with_settings

if TYPE_CHECKING:
    from ..config import RunConfig
    from ..ops.train import TrainOutcome

log = logging.getLogger("bioseqnn")


@app.command(cls=PanelledCommand)
@with_settings(
    {
        "config": "Inputs",
        "id_column": "Inputs",
        "series_columns": "Inputs",
        "target": "Inputs",
        "sequence_column": "Inputs",
        "task": "Inputs",
        "alphabet": "Inputs",
        "on_invalid": "Inputs",
        "ignore_unmatched": "Inputs",
        "val_fasta": "Inputs",
        "val_labels": "Inputs",
        "position_mask": "Inputs",
        "genome": "Inputs",
        "window": "Inputs",
        "on_edge": "Inputs",
        "holdout_chroms": "Inputs",
        "exclude_chroms": "Inputs",
        "output": "Output",
        "log_file": "Output",
        "plots": "Output",
        "tensorboard": "Output",
        "mlflow": "Output",
        "plot_format": "Output",
        "dpi": "Output",
        "quiet": "Run",
        "debug": "Run",
        "resume": "Training",
    }
)
def train(
    sequences: Annotated[
        str,
        typer.Argument(
            metavar="SEQUENCES",
            help="FASTA/FASTQ (plain or .gz, '-' for stdin), a table with --sequence-column, or "
            "a numeric series table (CSV/TSV: an id column and one column per channel, one row "
            "per time step).",
        ),
    ],
    labels: Annotated[
        str | None,
        typer.Argument(
            metavar="LABELS",
            help="CSV/TSV of labels joined to the FASTA by id; or a FASTA of per-residue label "
            "letters (same ids and lengths), which trains a per-position model.",
        ),
    ] = None,
    output: Annotated[
        str, typer.Option("-o", "--output", metavar="FILE", help="Model file to write.")
    ] = "model.bsnn",
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            "-c",
            metavar="FILE",
            help="YAML config (see 'bioseqnn config'); flags override it.",
        ),
    ] = None,
    id_column: Annotated[
        str,
        typer.Option(
            metavar="NAME", help="Id column of the labels table (and of a numeric series table)."
        ),
    ] = "id",
    series_columns: Annotated[
        str | None,
        typer.Option(
            metavar="NAME,NAME,...",
            help="Numeric series: the table's columns to read as "
            "channels (default: every column but the id).",
        ),
    ] = None,
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target",
            "-t",
            metavar="NAME",
            help="Target column (repeat for several; default: all but the id).",
        ),
    ] = None,
    sequence_column: SequenceColumnOpt = None,
    task: TaskOpt = None,
    alphabet: AlphabetOpt = AlphabetChoice.auto,
    on_invalid: InvalidOpt = OnInvalid.error,
    ignore_unmatched: IgnoreUnmatchedOpt = False,
    val_fasta: Annotated[
        str | None,
        typer.Option(metavar="FILE", help="Explicit validation FASTA (or numeric series table)."),
    ] = None,
    val_labels: Annotated[
        str | None, typer.Option(metavar="FILE", help="Labels of the validation FASTA.")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run checkpointed in --checkpoint-dir.")
    ] = False,
    position_mask: PositionMask = None,
    genome: GenomeRef = None,
    window: Window = None,
    on_edge: OnEdgeOpt = None,
    holdout_chroms: Annotated[
        str | None,
        typer.Option(
            metavar="CHR,CHR",
            show_default=False,
            help="--genome: intervals on these chromosomes are the validation set.",
        ),
    ] = None,
    exclude_chroms: Annotated[
        str | None,
        typer.Option(
            metavar="CHR,CHR",
            show_default=False,
            help="--genome: leave intervals on these chromosomes out (to evaluate on later).",
        ),
    ] = None,
    log_file: Annotated[
        str | None,
        typer.Option(
            "--log",
            metavar="FILE",
            help="Per-epoch metrics TSV (default: beside the model, NAME.log.tsv); "
            "a name ending in .jsonl writes JSON lines.",
        ),
    ] = None,
    plots: Annotated[
        str | None,
        typer.Option(
            "--plots",
            metavar="DIR",
            help="Folder for the learning curves, learning_curves.png (or .pdf/.svg: "
            "--format; needs matplotlib: bioseqnn[plots]).",
        ),
    ] = None,
    tensorboard: Annotated[
        str | None,
        typer.Option(
            "--tensorboard",
            metavar="DIR",
            show_default=False,
            help="Log each epoch's metrics, the settings and the learning curves as TensorBoard "
            "event files in DIR (needs bioseqnn[tracking]).",
        ),
    ] = None,
    mlflow: Annotated[
        str | None,
        typer.Option(
            "--mlflow",
            metavar="[URI]",
            show_default=False,
            help="Log the run to MLflow: settings, each epoch's metrics, the learning curves and "
            "the model file (needs bioseqnn[tracking]). Alone: the local store mlflow.db beside "
            "the model (sqlite); or a tracking URI: http(s)://server, sqlite:///runs.db "
            "(--mlflow=FOLDER, a file store, needs MLFLOW_ALLOW_FILE_STORE=true with MLflow "
            ">= 3.13).",
        ),
    ] = None,
    plot_format: FigFormat = None,
    dpi: FigDpi = None,
    quiet: Quiet = False,
    debug: Debug = False,
    settings: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Train a model on sequences and their labels."""
    assert settings is not None  # with_settings passes the settings' options
    setup_logging(quiet, debug)
    if plots is not None:
        from ..plots import plot_dir

        plot_dir(plots)  # fail before training when matplotlib or the folder is missing
    from ..config import parse_names
    from ..ops.train import train as run_train

    cfg = _train_settings(config, settings, (output, log_file))
    lm = task is Task.language_model
    from ..variants.intervals import genome_options

    intervals = genome_options(
        genome,
        window=window,
        on_edge=on_edge and on_edge.value,
        holdout_chroms=holdout_chroms,
        exclude_chroms=exclude_chroms,
    )
    fasta, table = (None, sequences) if sequence_column and labels is None else (sequences, labels)
    if table is None and not lm and intervals is None:
        raise typer.BadParameter(
            "a labels table is required (or --sequence-column; "
            "--task language-model learns from sequences alone)",
            param_hint="LABELS",
        )
    show_bar = stderr_console().is_terminal and not quiet
    reporter = RichReporter(show_bar, "perplexity" if lm else "accuracy")
    from ..tracking import Tracking

    tracking = Tracking.open(tensorboard, mlflow, output)
    try:
        outcome = run_train(
            fasta,
            table,
            output,
            cfg,
            id_column=id_column,
            targets=target or None,
            sequence_column=sequence_column,
            task=task.value if task else None,
            alphabet=alphabet.value,
            on_invalid=on_invalid.value,
            ignore_unmatched=ignore_unmatched,
            val_fasta=val_fasta,
            val_labels=val_labels,
            log_path=log_file,
            reporter=reporter,
            resume=resume,
            position_mask=position_mask,
            series_columns=parse_names(series_columns, "--series-columns"),
            genome=intervals,
            on_epoch=tracking.epoch,
        )
    except BaseException:
        tracking.fail()
        raise
    tracking.finish(outcome)
    log.info(
        "wrote %s (%s); metrics log %s", outcome.output, _train_summary(outcome), outcome.log_path
    )
    if plots is not None and outcome.main:
        _learning_curve_plots(outcome, plots, plot_format, dpi)


def _train_settings(
    config: str | None, settings: dict[str, dict[str, Any]], outputs: tuple[str | None, ...]
) -> RunConfig:
    """The run's settings: the --config file's, then the options given; a fine-tuning
    run's network settings checked against the ones given on purpose."""
    from ..config import RunConfig, apply_overrides, load_config
    from ..io.outputs import check_not_an_input

    for written in outputs:
        if written is not None:
            check_not_an_input(written, {"--config": config})
    cfg = load_config(config) if config else RunConfig()
    cfg = apply_overrides(cfg, settings)
    if cfg.training.init_from and cfg.training.init_from != "-":
        from ..engine.finetune import check_given

        # a setting given on purpose counts even at its default value (the library can
        # only tell settings that differ from the defaults)
        check_given(
            cfg.training.init_from,
            cfg.training.init_member or None,
            _given_model_settings(config, cfg, settings["model"]),
        )
    return cfg


def _train_summary(outcome: TrainOutcome) -> str:
    """What the run gave, for its last log line: the best epoch (or the ensemble's or the
    folds'), with the monitored and the headline validation metric."""
    best = outcome.result.best
    kind = outcome.manifest["task"]["kind"]
    headline = {"regression": "val_r2", "language-model": "val_perplexity"}.get(
        kind, "val_accuracy"
    )
    members = outcome.manifest.get("metrics", {}).get("members")
    folds = outcome.manifest.get("metrics", {}).get("cv")
    summary = (
        f"{folds['folds']} cross-validation models, pooled out-of-fold"
        if folds
        else f"ensemble of {len(members)}{' on validation' if best else ''}"
        if members
        else f"best epoch {outcome.result.best_epoch}"
    )
    for key in dict.fromkeys([outcome.result.monitor, headline]):
        if isinstance(best.get(key), float):
            summary += f", {key} {best[key]:.4f}"
    return summary


def _learning_curve_plots(
    outcome: TrainOutcome, plots: str, plot_format: FigureFormat | None, dpi: int | None
) -> None:
    """--plots: the learning curves of the run (one figure per member)."""
    from ..plots import DPI, learning_curves, plot_dir, run_title

    title = run_title(outcome.manifest["data"]["sources"][0], outcome.output)
    history = outcome.result.history
    suffix = (plot_format or FigureFormat.png).value
    for member in sorted({r.get("member", 0) for r in history}):
        name = f"learning_curves_member{member}" if member else "learning_curves"
        figure = learning_curves(
            [r for r in history if r.get("member", 0) == member],
            plot_dir(plots) / f"{name}.{suffix}",
            f"{title}, member {member}" if member else title,
            dpi=dpi or DPI,
        )
        log.info("wrote %s", figure)


def _given_model_settings(config: str | None, cfg: Any, flags: dict[str, Any]) -> dict[str, Any]:
    """The network settings given on the command line or in the config file (whatever
    their value), as this run resolved them."""
    from ..yamlio import read_yaml

    named = {k for k, v in flags.items() if v is not None}
    if config:  # read and validated by load_config already
        named |= set((read_yaml(config, "config") or {}).get("model") or {})
    return {
        f.name: getattr(cfg.model, f.name) for f in dataclasses.fields(cfg.model) if f.name in named
    }  # in the settings' order, as messages name them
