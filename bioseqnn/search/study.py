"""``bioseqnn tune``: an Optuna study over the search space (space.py), each trial one
``api.train`` run that writes its own model file; the best trial's model is the result.

Where things go, for ``-o best.bsnn``: the study's journal ``best.tune.log`` (unless
``study`` names another storage), each trial's model and metrics log in
``best.trials/`` (``007.bsnn``, ``007.log.tsv``), one row per trial in
``best.trials.tsv``, the best trial's settings as a config in ``best.yaml``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Any

from ..config import ModelConfig, RunConfig
from ..engine.schedules import minimised
from ..errors import TrainingError, UsageError
from ..io.files import STDIO, display_name
from ..io.outputs import check_output_path
from ..modelspec import resolve_model
from .results import TuneOutcome, write_plots, write_results
from .space import default_space
from .storage import check_journal, import_optuna, open_study
from .trials import SearchProgress, data_facts, make_objective, timed_search

log = logging.getLogger("bioseqnn")


def _paths(output: Path) -> dict[str, Path]:
    stem = output.stem if output.suffix else output.name
    return {
        "trials": output.with_name(stem + ".trials"),
        "table": output.with_name(stem + ".trials.tsv"),
        "config": output.with_name(stem + ".yaml"),
        "journal": output.with_name(stem + ".tune.log"),
    }


def tune(
    fasta: str | os.PathLike[str] | None,
    labels: str | os.PathLike[str] | None,
    output: str | os.PathLike[str],
    *,
    trials: int | None = None,
    timeout: float | None = None,
    space: dict[str, Any] | None = None,
    seed: int = 0,
    monitor: str = "auto",
    study: str | None = None,
    resume: bool = False,
    join: bool = False,
    ensemble_top: int = 1,
    config: RunConfig | None = None,
    id_column: str = "id",
    targets: list[str] | None = None,
    sequence_column: str | None = None,
    task: str | None = None,
    alphabet: str | None = None,
    on_invalid: str = "error",
    ignore_unmatched: bool = False,
    val_fasta: str | os.PathLike[str] | None = None,
    val_labels: str | os.PathLike[str] | None = None,
    position_mask: str | os.PathLike[str] | None = None,
    plots: str | os.PathLike[str] | None = None,
    plot_format: str = "png",
    dpi: int | None = None,
    quiet_trials: bool = True,
    progress: SearchProgress | None = None,
    defaults_first: bool = True,
    space_file: str | os.PathLike[str] | None = None,
) -> TuneOutcome:
    """Search architectures and settings with Optuna and write the best trial's model.

    The data arguments are :func:`bioseqnn.train`'s; trials are scored on train's
    validation split (``config.training.val_fraction``) or on ``val_fasta`` and
    ``val_labels``; ``position_mask`` (per-position tasks: a 0/1 FASTA) leaves positions
    out of every trial's loss and metrics, as in train. ``trials`` (in this call) and
    ``timeout`` (seconds: no trial starts after it, and a running one stops after its
    current epoch keeping its best epoch so far) bound the search; ``trials=0`` with
    ``resume`` runs none and writes the outputs from the study. ``space`` is a search
    space as
    ``bioseqnn tune --show-space`` prints it (validated; default: the built-in one).
    ``study`` is an Optuna storage URL or a journal file (default: ``NAME.tune.log``
    beside ``output``); ``resume`` continues a study that exists, ``join`` creates it or
    continues it (for several processes on one storage). ``ensemble_top`` K > 1 writes
    the K best trials' models as one ensemble. ``config`` supplies the settings the
    space leaves alone (device, threads, val_fraction, ...). ``quiet_trials`` keeps each
    trial's own log lines (records, epochs) out of the log. ``progress`` shows the
    search (default: one log line per trial). ``defaults_first``: a new study's first
    trial is train's defaults (with the space's fixed values). ``plots`` (a folder)
    receives the optimisation history and the parameter importances (needs matplotlib)
    as ``plot_format`` (png, pdf, svg) at ``dpi``. ``space_file``: the file ``space``
    was read from, which no output may replace.

    Beside ``output`` (``best.bsnn``): ``best.trials/`` (every trial's model and metrics
    log), ``best.trials.tsv`` (one row per trial) and ``best.yaml`` (the best trial's
    config, for ``bioseqnn train --config``).
    """
    from .space import validate_space

    space = validate_space(space) if space is not None else None
    train_inputs: dict[str, Any] = {
        "fasta": fasta,
        "labels": labels,
        "id_column": id_column,
        "targets": targets,
        "sequence_column": sequence_column,
        "task": task,
        "alphabet": alphabet,
        "on_invalid": on_invalid,
        "ignore_unmatched": ignore_unmatched,
        "val_fasta": val_fasta,
        "val_labels": val_labels,
        "position_mask": position_mask,
    }
    optuna = import_optuna()
    space = space if space is not None else default_space()
    _check_budget(trials, timeout, resume, join, ensemble_top)
    out, paths, inputs = _check_outputs(output, train_inputs, space_file)
    plot_folder = _plot_folder(plots, plot_format, dpi)
    base = config or RunConfig()
    base = dataclasses.replace(
        base, training=dataclasses.replace(base.training, seed=seed, monitor=monitor)
    )
    check_journal(study, paths["journal"])
    new_folder = not paths["trials"].exists()
    paths["trials"].mkdir(parents=True, exist_ok=True)
    try:
        facts_found, facts, families = data_facts(train_inputs, base, paths["trials"], space)
        # the network train's defaults build for this task (arch: auto)
        causal = facts.task == "language-model"
        defaults_arch = resolve_model(ModelConfig(), causal=causal).arch
        created, resolved_monitor, where = open_study(
            optuna,
            study,
            paths["journal"],
            space,
            facts_found["monitor"],
            monitor,
            seed,
            resume,
            join,
            defaults_arch if defaults_first else None,
        )
    except BaseException:
        if new_folder:  # bad input or settings: no trial ran, leave nothing behind
            with contextlib.suppress(OSError):
                paths["trials"].rmdir()
        raise
    log.info(
        "tuning on %s (%s, longest sequence %d): %s (%s), families %s; study %s",
        ", ".join(display_name(v) for v in inputs.values()),
        facts.task,
        facts.longest,
        resolved_monitor,
        "minimize" if minimised(facts_found["monitor"]) else "maximize",
        ", ".join(families),
        where,
    )

    # the trial this process runs now, and when the --time budget ends
    running: dict[str, Any] = {"deadline": None if timeout is None else time.monotonic() + timeout}
    progress = progress or SearchProgress()
    objective = make_objective(
        optuna,
        space,
        facts,
        families,
        base,
        resolved_monitor,
        train_inputs,
        paths["trials"],
        quiet_trials,
        running,
        progress,
    )
    stopped = timed_search(
        optuna, created, objective, (trials, timeout), running, (resolved_monitor, progress), join
    )
    try:
        result = write_results(optuna, created, resolved_monitor, out, paths, ensemble_top)
    except TrainingError:
        if stopped is not None:  # nothing to keep yet: still an interruption (exit 130)
            raise stopped from None
        raise
    if plot_folder is not None:
        write_plots(optuna, created, resolved_monitor, plot_folder, (plot_format, dpi), out)
    if stopped is not None:
        raise stopped
    return result


def _check_outputs(
    output: str | os.PathLike[str],
    train_inputs: dict[str, Any],
    space_file: str | os.PathLike[str] | None = None,
) -> tuple[Path, dict[str, Path], dict[str, Any]]:
    """The model file and what goes beside it, each checked writable, not an input (nor
    the ``space_file``) and not another of them; the inputs given, by their command-line
    names. Refuses what tune cannot search."""
    out = Path(output)
    if str(output) == "-":
        raise UsageError("the model file needs a path (-o best.bsnn), not '-'")
    paths = _paths(out)
    named = {
        "SEQUENCES": train_inputs["fasta"],
        "LABELS": train_inputs["labels"],
        "--val-fasta": train_inputs["val_fasta"],
        "--val-labels": train_inputs["val_labels"],
        "--position-mask": train_inputs["position_mask"],
    }
    inputs = {k: v for k, v in named.items() if v is not None}
    for name, path in inputs.items():
        if str(path) == STDIO or (os.path.exists(path) and not os.path.isfile(path)):
            raise UsageError(
                f"{name} {display_name(path)}: tune reads its inputs again for every trial, "
                "so each must be a file, not '-' or a pipe: write it to a file first"
            )
    written = (out, paths["table"], paths["config"], paths["journal"])
    read = {**inputs, "--space": space_file}
    for path in written:
        check_output_path(path, read)
    trials = paths["trials"]
    if os.path.lexists(trials) and not os.path.isdir(trials):
        raise UsageError(
            f"{trials}: tune keeps each trial's model in a folder of this name beside the "
            "model file, and this is a file: move it, or give -o another name"
        )
    if len({os.path.realpath(path) for path in written}) < len(written):
        raise UsageError(
            f"{output}: tune writes its best trial's config as {paths['config'].name} beside "
            f"the model file, so -o cannot be that name: give it another ending, e.g. "
            f"-o {paths['config'].with_suffix('.bsnn')}"
        )
    task, labels = train_inputs["task"], train_inputs["labels"]
    if task == "language-model" or (labels is None and train_inputs["sequence_column"] is None):
        raise UsageError(
            "tune searches models of labelled sequences; give a labels table "
            "(language models are not tuned yet)"
        )
    return out, paths, inputs


def _plot_folder(plots: Any, plot_format: str, dpi: int | None) -> Path | None:
    """--plots: the folder for the search's figures, matplotlib checked before the search."""
    if plots is None:
        return None
    from ..plots import DPI, check_figure_options, plot_dir

    check_figure_options(plot_format, DPI if dpi is None else dpi)
    return plot_dir(plots)


def _check_budget(
    trials: int | None, timeout: float | None, resume: bool, join: bool, ensemble_top: int
) -> None:
    if trials is None and timeout is None:
        raise UsageError("give a budget: --trials N or --time 30m")
    if trials is not None and trials < (0 if resume else 1):
        # --resume --trials 0: no trial, the outputs written again from the whole study
        # (after parallel workers, from whichever machine)
        raise UsageError(
            "--trials must be at least 1 (0 only with --resume, to write the "
            "outputs from the study)"
        )
    if ensemble_top < 1:
        raise UsageError("--ensemble-top must be at least 1")
    if resume and join:
        raise UsageError("--resume and --join: give one (--join also continues a study)")
