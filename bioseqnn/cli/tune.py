"""bioseqnn tune."""

from __future__ import annotations

import re
import sys
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .app import app, setup_logging, stderr_console
from .options import (
    AlphabetChoice,
    AlphabetOpt,
    Debug,
    FigDpi,
    FigFormat,
    FigureFormat,
    IgnoreUnmatchedOpt,
    InvalidOpt,
    OnInvalid,
    PositionMask,
    Quiet,
    SequenceColumnOpt,
    TaskOpt,
)
from .settings import PanelledCommand, with_settings

if TYPE_CHECKING:
    from rich.progress import Progress


def parse_duration(text: str) -> float:
    """--time: seconds from '90s', '30m', '2h' (a bare number is seconds)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match:
        raise typer.BadParameter(
            f"{text!r} is not a duration (give e.g. 90s, 30m or 2h)", param_hint="'--time'"
        )
    if float(match.group(1)) <= 0:
        raise typer.BadParameter(
            f"{text!r}: a search needs some time (e.g. 90s, 30m or 2h)", param_hint="'--time'"
        )
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


@app.command(cls=PanelledCommand)
@with_settings({}, only=("val_fraction", "device", "threads"))
def tune(
    sequences: Annotated[
        str | None,
        typer.Argument(
            metavar="SEQUENCES",
            help="Training FASTA/FASTQ or table, as for 'train' (the test set is never an "
            "input: trials are scored on train's validation split or --val-fasta).",
        ),
    ] = None,
    labels: Annotated[
        str | None,
        typer.Argument(metavar="LABELS", help="CSV/TSV of labels joined to the sequences by id."),
    ] = None,
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            rich_help_panel="Output",
            help="The best trial's model file; beside it NAME.trials/ (every "
            "trial's model), NAME.trials.tsv, NAME.yaml (the best config) and NAME.tune.log "
            "(the study).",
        ),
    ] = "best.bsnn",
    trials: Annotated[
        int | None,
        typer.Option(
            "--trials",
            metavar="N",
            rich_help_panel="Search",
            min=0,
            help="Run this many trials (in this process); 0 with --resume "
            "writes the outputs from the study.",
        ),
    ] = None,
    time_budget: Annotated[
        str | None,
        typer.Option(
            "--time",
            metavar="DURATION",
            rich_help_panel="Search",
            help="Start no trial after this long (90s, 30m, 2h); "
            "a running trial stops after its current epoch, keeping its best epoch.",
        ),
    ] = None,
    space: Annotated[
        str | None,
        typer.Option(
            "--space",
            metavar="YAML",
            rich_help_panel="Search",
            help="Search space file (start from --show-space): "
            "ranges, choices, fixed values, families.",
        ),
    ] = None,
    show_space: Annotated[
        bool,
        typer.Option(
            "--show-space",
            rich_help_panel="Search",
            help="Print the default search space as YAML and exit.",
        ),
    ] = False,
    seed: Annotated[
        int,
        typer.Option(
            metavar="N",
            rich_help_panel="Run",
            help="Seed of the sampler and of every trial's split, batches and weights.",
        ),
    ] = 0,
    monitor: Annotated[
        str,
        typer.Option(
            metavar="METRIC",
            rich_help_panel="Search",
            help="Metric to optimise: auto (what train monitors: val_loss, or for imbalanced "
            "classes val_auprc or val_mcc), or val_auroc, val_r2, ... (losses and errors are "
            "minimised, scores maximised).",
        ),
    ] = "auto",
    study: Annotated[
        str | None,
        typer.Option(
            "--study",
            metavar="URL|FILE",
            rich_help_panel="Search",
            help="Optuna storage: a journal file (default "
            "NAME.tune.log beside -o), sqlite:///tune.db or postgresql://...",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            rich_help_panel="Search",
            help="Continue the study in the storage (it must exist).",
        ),
    ] = False,
    join: Annotated[
        bool,
        typer.Option(
            "--join",
            rich_help_panel="Search",
            help="Create the study or continue it: for several processes (e.g. a "
            "SLURM job array) sharing one storage.",
        ),
    ] = False,
    ensemble_top: Annotated[
        int,
        typer.Option(
            "--ensemble-top",
            metavar="K",
            rich_help_panel="Search",
            min=1,
            help="Write the K best trials' models as one ensemble.",
        ),
    ] = 1,
    id_column: Annotated[
        str,
        typer.Option(
            metavar="NAME", rich_help_panel="Inputs", help="Id column of the labels table."
        ),
    ] = "id",
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target",
            "-t",
            metavar="NAME",
            rich_help_panel="Inputs",
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
        typer.Option(
            metavar="FILE",
            rich_help_panel="Inputs",
            help="Explicit validation FASTA that scores every trial.",
        ),
    ] = None,
    val_labels: Annotated[
        str | None,
        typer.Option(
            metavar="FILE", rich_help_panel="Inputs", help="Labels of the validation FASTA."
        ),
    ] = None,
    position_mask: PositionMask = None,
    plots: Annotated[
        str | None,
        typer.Option(
            "--plots",
            metavar="DIR",
            rich_help_panel="Output",
            help="Write the optimisation history and the parameter "
            "importances here (needs bioseqnn[plots]).",
        ),
    ] = None,
    plot_format: FigFormat = None,
    dpi: FigDpi = None,
    defaults_first: Annotated[
        bool,
        typer.Option(
            "--defaults-first/--no-defaults-first",
            rich_help_panel="Search",
            help="A new study's first trial is "
            "train's defaults (with the space's fixed values): the search's best is never "
            "below the default on validation.",
        ),
    ] = True,
    quiet: Quiet = False,
    debug: Debug = False,
    settings: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Search architectures and training settings (Optuna) and keep the best model."""
    setup_logging(quiet, debug)
    from ..search.space import default_space, load_space, space_yaml

    if show_space:
        sys.stdout.write(space_yaml(load_space(space) if space else None))
        return
    if sequences is None:
        raise typer.BadParameter(
            "give the training sequences (or --show-space)", param_hint="SEQUENCES"
        )
    budget = parse_duration(time_budget) if time_budget is not None else None
    searched = load_space(space) if space else default_space()
    from ..config import RunConfig, apply_overrides
    from ..search.study import tune as run_tune

    progress = _search_bar() if stderr_console().is_terminal and not quiet else None
    assert settings is not None  # with_settings passes the settings' options
    base = apply_overrides(RunConfig(), {"training": settings["training"], "model": {}})
    fasta, table = (None, sequences) if sequence_column and labels is None else (sequences, labels)
    run_tune(
        fasta,
        table,
        output,
        space=searched,
        trials=trials,
        timeout=budget,
        seed=seed,
        monitor=monitor,
        study=study,
        resume=resume,
        join=join,
        ensemble_top=ensemble_top,
        config=base,
        id_column=id_column,
        targets=target or None,
        sequence_column=sequence_column,
        task=task.value if task else None,
        alphabet=alphabet.value,
        on_invalid=on_invalid.value,
        ignore_unmatched=ignore_unmatched,
        val_fasta=val_fasta,
        val_labels=val_labels,
        position_mask=position_mask,
        plots=plots,
        plot_format=(plot_format or FigureFormat.png).value,
        dpi=dpi,
        quiet_trials=not debug,
        progress=progress,
        defaults_first=defaults_first,
        space_file=space,
    )


def _search_bar() -> Any:
    """tune's progress on a terminal: a live bar (trials done of --trials, or the time
    spent of --time) with the best value so far; the trial lines print above it."""
    from ..search.study import SearchProgress

    class SearchBar(SearchProgress):
        def __init__(self) -> None:
            self.progress: Progress | None = None
            self.started = 0.0
            self.timeout: float | None = None
            self.trials: int | None = None

        def start(self, trials: int | None, timeout: float | None) -> None:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.trials, self.timeout, self.started = trials, timeout, time.monotonic()
            self.progress = Progress(
                TextColumn("search: {task.fields[done]} trial(s), best {task.fields[best]}"),
                BarColumn(),
                TimeElapsedColumn(),
                console=stderr_console(),
                transient=True,
            )
            self.progress.start()
            total = float(trials) if trials is not None else timeout
            self.task = self.progress.add_task("tune", total=total, done=0, best="-")

        def _advance(self, done: int | None = None) -> None:
            assert self.progress is not None
            if self.trials is not None and done is not None:
                self.progress.update(self.task, completed=min(done, self.trials))
            elif self.trials is None and self.timeout is not None:
                self.progress.update(
                    self.task, completed=min(time.monotonic() - self.started, self.timeout)
                )

        def tick(self) -> None:
            if self.progress is not None:
                self._advance()

        def trial(self, line: str, done: int, best: float | None) -> None:
            if self.progress is None:
                super().trial(line, done, best)
                return
            self.progress.console.print(f"bioseqnn: {line}", markup=False, highlight=False)
            self.progress.update(self.task, done=done, best="-" if best is None else f"{best:.4f}")
            self._advance(done)

        def finish(self) -> None:
            if self.progress is not None:
                self.progress.stop()
                self.progress = None

    return SearchBar()
