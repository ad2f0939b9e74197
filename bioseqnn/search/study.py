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
import importlib.util
import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..config import ModelConfig, RunConfig, config_from_dict, write_config
from ..engine.schedules import minimised
from ..errors import BioseqnnError, TrainingError, UsageError, shorten
from ..io.files import STDIO, display_name
from ..io.outputs import atomic_output, check_output_path
from ..modelspec import resolve_model
from .space import DataFacts, default_space, families_for, fixed_settings, sample

log = logging.getLogger("bioseqnn")

STUDY_NAME = "bioseqnn-tune"
INSTALL_HINT = "tune needs optuna: pip install 'bioseqnn[tune]'"
RDB_ATTEMPTS = 3
CONNECT_TIMEOUT_S = 10
"""Seconds a database server has to accept a connection (_engine)."""
JOIN_WAIT_S = 30.0
"""How long a process that joins a new study waits for its maker to write the settings."""


@dataclasses.dataclass
class TuneOutcome:
    """What :func:`tune` wrote: the model file, the best trial's number, the metric and
    its value, the trials in the study, the trials table and the best config."""

    output: Path
    best_trial: int
    monitor: str
    value: float
    trials: int
    """Trials in the study (every process's, every state)."""
    table: Path
    config: Path


def _paths(output: Path) -> dict[str, Path]:
    stem = output.stem if output.suffix else output.name
    return {
        "trials": output.with_name(stem + ".trials"),
        "table": output.with_name(stem + ".trials.tsv"),
        "config": output.with_name(stem + ".yaml"),
        "journal": output.with_name(stem + ".tune.log"),
    }


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # tune logs one line per trial
    return optuna


def _storage(optuna: Any, study: str | None, journal: Path) -> tuple[Any, str]:
    """An Optuna storage: a database URL as it is, anything else a journal file."""
    if study and "://" in study:
        shown = study.split("://", 1)[0] + "://..."
        for attempt in range(RDB_ATTEMPTS):
            try:
                return optuna.storages.RDBStorage(study, engine_kwargs=_engine(study)), shown
            except ImportError as exc:
                raise UsageError(
                    f"--study {shown}: its database driver is not installed ({exc})"
                ) from None
            except Exception as exc:  # sqlalchemy's errors: a bad URL, no server, a race
                if attempt + 1 == RDB_ATTEMPTS:
                    raise UsageError(
                        f"--study {shown}: cannot open the storage: {str(exc).splitlines()[0]}"
                    ) from None
                # processes that start together on a new database all create Optuna's
                # tables, and all but one fail on PostgreSQL: the tables exist on the
                # next attempt
                time.sleep(1.0 + attempt)
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage

    path = Path(study) if study else journal
    # an open(O_EXCL) lock file rather than a symlink one: it works on NFS and Lustre
    backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
    return JournalStorage(backend), str(path)


def _engine(url: str) -> dict[str, Any]:
    """SQLAlchemy engine settings for a database URL: a connection timeout for the
    PostgreSQL and MySQL drivers that take one, unless the URL sets its own. Without one
    a server that drops packets (down, or behind a firewall) held each attempt for the
    system's TCP timeout, two minutes on Linux."""
    scheme = url.split("://", 1)[0].lower()
    drivers = ("postgresql", "postgresql+psycopg2", "postgresql+psycopg", "mysql")
    if (scheme in drivers or scheme.startswith("mysql+")) and "connect_timeout" not in url:
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
    return {}


def _check_journal(study: str | None, journal: Path) -> None:
    """Before anything is written: a journal file (``study``, not a database URL, else
    ``journal``) that exists must be a regular file of Optuna's JSON lines. A folder, a
    device, a pipe or a file of something else is refused from its first bytes (Optuna
    would read /dev/zero until memory ran out, and append to whatever it was given)."""
    if study and "://" in study:
        return
    path = Path(study) if study else journal
    if path.is_dir():
        raise UsageError(f"--study {path}: a folder; give a journal file name")
    if not path.exists():
        return
    if not path.is_file():
        raise UsageError(
            f"--study {path}: not a regular file; a journal is a file that trials are appended to"
        )
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16).lstrip()
    except OSError as exc:
        raise UsageError(f"--study {path}: cannot read: {exc.strerror or exc}") from None
    first = head.split(b"\n", 1)[0]
    if head and not (first.startswith(b"{") and b'"op_code"' in first):
        raise UsageError(
            f"--study {path}: not an Optuna journal (it starts with "
            f"{shorten(repr(first[:40]))}); give a new file name, or the journal of a "
            "study to continue"
        )


class _Probed(Exception):
    """Stops the probe run once the data is read (carries what it found)."""

    def __init__(self, facts: dict[str, Any]) -> None:
        super().__init__("probe")
        self.facts = facts


class _ProbeReporter:
    """Raises when training would start: by then api.train has read the data and
    checked the monitor against the task."""

    def __init__(self) -> None:
        self.facts: dict[str, Any] = {}

    def start(self, epochs: int, batches: int, monitor: str = "val_loss") -> None:
        raise _Probed({**self.facts, "monitor": monitor})

    def batch(self, epoch: int, loss: float) -> None:
        pass

    def epoch(self, record: dict[str, Any]) -> None:
        pass

    def finish(self) -> None:
        pass


def _probe(train_inputs: dict[str, Any], base: RunConfig, path: Path) -> dict[str, Any]:
    """Read the data once with a tiny network to learn the task, whether strands apply,
    the longest sequence and the monitor as train resolves it. Bad data or options fail
    here, before any study is made."""
    from ..ops.train import train

    cfg = dataclasses.replace(
        base,
        model=dataclasses.replace(
            base.model, arch="gru", hidden_size=4, layers=1, bidirectional=False, pooling="auto"
        ),
    )
    cfg.training = dataclasses.replace(
        cfg.training, epochs=1, class_weight="auto", rc_augment=False, schedule="none"
    )
    reporter = _ProbeReporter()
    previous = log.level
    try:  # set within: a signal can land inside setLevel, after the level is set
        if previous < logging.WARNING:  # its model line would describe the probe's network
            log.setLevel(logging.WARNING)
        train(
            **train_inputs,
            output=path,
            config=cfg,
            log_path=path.with_suffix(".log.tsv"),
            reporter=reporter,
            on_ready=reporter.facts.update,
        )
    except _Probed as done:
        return done.facts
    finally:
        log.setLevel(previous)
    raise TrainingError("the probe run was not stopped")  # pragma: no cover


class SearchProgress:
    """How a search shows its progress: one log line per trial (what a pipeline reads);
    the command line puts a live bar on a terminal in its place (cli.tune._search_bar)."""

    def start(self, trials: int | None, timeout: float | None) -> None:
        pass

    def tick(self) -> None:
        """Called after every epoch of every trial."""

    def trial(self, line: str, done: int, best: float | None) -> None:
        log.info(line)

    def finish(self) -> None:
        pass


def _trial_lines(monitor: str, progress: SearchProgress) -> Callable[[Any, Any], None]:
    def line(study: Any, trial: Any) -> None:
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        shown = " ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items()
        ) or trial.user_attrs.get("note", "")
        state = trial.state.name.lower()
        if state == "complete":
            what = f"{monitor} {trial.value:.4f}"
            if study.best_trial.number == trial.number:
                what += " (best so far)"
        elif state == "pruned":
            what = f"pruned after epoch {trial.user_attrs.get('epochs', '?')}"
        else:
            what = f"failed: {trial.user_attrs.get('error', 'see --debug')}"
        try:
            best = study.best_value
        except ValueError:  # no trial complete yet
            best = None
        progress.trial(
            f"trial {trial.number}: {what}, {seconds:.2f}s; {shown}",
            len(study.get_trials(deepcopy=False)),
            best,
        )

    return line


def _objective(
    optuna: Any,
    space: dict[str, Any],
    facts: DataFacts,
    families: list[str],
    base: RunConfig,
    monitor: str,
    train_inputs: dict[str, Any],
    folder: Path,
    quiet_trials: bool,
    running: dict[str, Any],
    progress: SearchProgress,
) -> Callable[[Any], float]:
    from ..engine.train import StopTraining
    from ..ops.train import train

    def objective(trial: Any) -> float:
        _signalled(running)
        running["trial"] = trial
        if trial.user_attrs.get("defaults"):  # train's own recipe, as a yardstick
            settings = fixed_settings(space)
        else:
            settings = sample(trial, space, facts, families)
        trial.set_user_attr("settings", settings)

        def on_epoch(record: dict[str, Any]) -> None:
            _signalled(running)
            progress.tick()
            value = float(record[monitor])
            trial.set_user_attr("epochs", record["epoch"])
            if math.isfinite(value):
                trial.report(value, record["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {record['epoch']}")
            deadline = running.get("deadline")
            if deadline is not None and time.monotonic() >= deadline:
                # --time is a wall-clock budget: the trial running at its end stops after
                # this epoch and keeps its best epoch so far, like early stopping
                trial.set_user_attr("note", f"stopped by --time after epoch {record['epoch']}")
                raise StopTraining("the --time budget is spent")

        name = folder / f"{trial.number:03d}"
        previous = log.level
        try:
            # set within the try: a Ctrl-C or SIGTERM can land inside setLevel after the
            # level is set, and the search's "stopped" warning went unsaid
            if quiet_trials:  # the trial's own lines (records, model, epochs): one instead
                log.setLevel(logging.ERROR)
            cfg = config_from_dict(
                json.loads(json.dumps(settings)),
                base=dataclasses.replace(
                    base,
                    model=dataclasses.replace(base.model),
                    training=dataclasses.replace(base.training, monitor=monitor),
                ),
            )
            outcome = train(
                **train_inputs,
                output=name.with_suffix(".bsnn"),
                config=cfg,
                log_path=name.with_suffix(".log.tsv"),
                on_epoch=on_epoch,
            )
        except (BioseqnnError, RuntimeError) as exc:
            trial.set_user_attr(
                "error", str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            )
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("error", "interrupted")
            raise
        finally:
            log.setLevel(previous)
        trial.set_user_attr("epochs", len(outcome.result.history))
        trial.set_user_attr("model", name.with_suffix(".bsnn").name)
        value = float(outcome.result.best.get(monitor, math.nan))
        if not math.isfinite(value):
            trial.set_user_attr("error", f"{monitor} was never finite")
        return value

    return objective


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
    optuna = _import_optuna()
    space = space if space is not None else default_space()
    _check_budget(trials, timeout, resume, join, ensemble_top)
    out, paths, inputs = _check_outputs(output, train_inputs, space_file)
    plot_folder = _plot_folder(plots, plot_format, dpi)
    base = config or RunConfig()
    base = dataclasses.replace(
        base, training=dataclasses.replace(base.training, seed=seed, monitor=monitor)
    )
    _check_journal(study, paths["journal"])
    new_folder = not paths["trials"].exists()
    paths["trials"].mkdir(parents=True, exist_ok=True)
    try:
        facts_found, facts, families = _data_facts(train_inputs, base, paths["trials"], space)
        # the network train's defaults build for this task (arch: auto)
        causal = facts.task == "language-model"
        defaults_arch = resolve_model(ModelConfig(), causal=causal).arch
        created, resolved_monitor, where = _open_study(
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
    objective = _objective(
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
    stopped = _timed_search(
        optuna, created, objective, (trials, timeout), running, (resolved_monitor, progress), join
    )
    try:
        result = _write_results(optuna, created, resolved_monitor, out, paths, ensemble_top)
    except TrainingError:
        if stopped is not None:  # nothing to keep yet: still an interruption (exit 130)
            raise stopped from None
        raise
    if plot_folder is not None:
        _write_plots(optuna, created, resolved_monitor, plot_folder, (plot_format, dpi), out)
    if stopped is not None:
        raise stopped
    return result


def _write_plots(
    optuna: Any,
    created: Any,
    monitor: str,
    folder: Path,
    look: tuple[str, int | None],
    out: Path,
) -> None:
    """The search's figures (optimisation history, parameter importances) in ``folder``,
    as ``look`` (format, dpi) says."""
    from ..plots import data_name
    from .figures import plot_search

    title = f"search of {data_name(out)}"
    for path in plot_search(optuna, created, monitor, folder, look[0], look[1], title):
        log.info("wrote %s", path)


def _timed_search(
    optuna: Any,
    created: Any,
    objective: Callable[[Any], float],
    budget: tuple[int | None, float | None],
    running: dict[str, Any],
    shown: tuple[str, SearchProgress],
    join: bool,
) -> BaseException | None:
    """Run the trials within ``budget`` (trials, seconds), each finished trial shown as a
    line of ``shown`` (the monitored metric, the progress); how long it took is logged.
    Returns the interruption that stopped it, if one did."""
    trials, timeout = budget
    monitor, progress = shown
    progress.start(trials, timeout)
    started = time.perf_counter()
    lines = _trial_lines(monitor, progress)
    stopped = _search(optuna, created, objective, trials, timeout, running, lines, join)
    progress.finish()
    log.info("search took %.1f s", time.perf_counter() - started)
    return stopped


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


def _data_facts(
    train_inputs: dict[str, Any], base: RunConfig, trials: Path, space: dict[str, Any]
) -> tuple[dict[str, Any], DataFacts, list[str]]:
    """What the data says before any trial (read once by a probe run of train): its task,
    strands, longest sequence; and the families of the space that can train on it."""
    facts_found = _probe(train_inputs, base, trials / "probe.bsnn")
    facts = DataFacts(
        facts_found["task"],
        bool(facts_found["strands"]),
        int(facts_found["longest"]),
        folding=importlib.util.find_spec("RNA") is not None,
    )
    families = families_for(space, facts)
    if not families:
        raise UsageError(
            f"no family of the space can train on this data: the longest "
            f"sequence ({facts.longest}) exceeds the transformer's max_length"
        )
    if len(families) < len(space["families"]):
        log.info(
            "transformer left out: the longest sequence (%d) exceeds its max_length", facts.longest
        )
    return facts_found, facts, families


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


def _open_study(
    optuna: Any,
    study: str | None,
    journal: Path,
    space: dict[str, Any],
    resolved_monitor: str,
    monitor: str,
    seed: int,
    resume: bool,
    join: bool,
    defaults_arch: str | None,
) -> tuple[Any, str, str]:
    """Create or load the study: (study, the monitor it optimises, where it is).
    ``defaults_arch``: the architecture train's defaults build, for a new study to start
    with them where it is among the families searched; None for no defaults trial."""
    storage, where = _storage(optuna, study, journal)
    names = optuna.study.get_all_study_names(storage)
    exists = STUDY_NAME in names
    if exists and not (resume or join):
        raise UsageError(
            f"a tune study exists in {where}: continue it with --resume (or "
            "give another --study, or remove that file)"
        )
    if resume and not exists:
        raise UsageError(f"--resume: no tune study in {where} to continue")
    direction = "minimize" if minimised(resolved_monitor) else "maximize"
    # one process: the sampler's seed is --seed, so the same command proposes the same
    # trials; processes joining one study each get their own proposals
    sampler_seed = seed if not join else (seed * 1_000_003 + os.getpid()) % 2**32
    sampler = optuna.samplers.TPESampler(seed=sampler_seed)
    # a trial is compared with the median of the others' at the same epoch from its
    # second epoch on, once three trials have finished
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    try:
        # parallel processes (--join) all try to create the study; the storage lets one
        # of them, and that one alone writes its settings and queues the default trial
        created = optuna.create_study(
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            study_name=STUDY_NAME,
            direction=direction,
            load_if_exists=resume,
        )
        made_here = not exists
    except optuna.exceptions.DuplicatedStudyError:  # another process made it first
        if not join:
            raise UsageError(
                f"a tune study exists in {where}: continue it with --resume, or "
                "start parallel processes with --join"
            ) from None
        created = optuna.load_study(
            storage=storage, sampler=sampler, pruner=pruner, study_name=STUDY_NAME
        )
        made_here = False
    # --resume takes over a study whose maker stopped before writing its settings
    stored = created.user_attrs if made_here or resume else _settings_of(created, where)
    if "monitor" in stored:
        if monitor != "auto" and stored["monitor"] != resolved_monitor:
            raise UsageError(
                f"the study in {where} optimises {stored['monitor']}, not "
                f"{resolved_monitor}: drop --monitor or start another study"
            )
        if stored.get("space") != space:
            raise UsageError(
                f"the study in {where} was made with another search space: "
                "give the same --space to continue it"
            )
        resolved_monitor = stored["monitor"]
    else:
        # the monitor is written last: a process that joins waits for it (_settings_of)
        created.set_user_attr("space", space)
        if defaults_arch is not None and defaults_arch not in space["families"]:
            # families: [cnn, gru] had the default cnn-gru win a search that was to try
            # only those two
            log.info(
                "no trial of train's defaults: their architecture (%s) is not among the "
                "families searched",
                defaults_arch,
            )
        elif defaults_arch is not None:
            # the first trial is what 'bioseqnn train' gives with no options (with the
            # space's fixed values, e.g. its epochs): a search reports no worse a
            # validation figure than the default, and its table shows the default's
            created.enqueue_trial({}, user_attrs={"defaults": True, "note": "train's defaults"})
        created.set_user_attr("monitor", resolved_monitor)
    if resume and _fail_running(optuna, created, None, None, alone=True):
        log.warning("trials that a stopped run left running are recorded as failed")
    done = len(created.get_trials(deepcopy=False))
    if done and not join:
        # a resumed study's sampler starts from another seed: the same one would propose
        # the first run's random start-up trials again
        created.sampler = optuna.samplers.TPESampler(seed=(seed + done) % 2**32)
    return created, resolved_monitor, where


def _settings_of(created: Any, where: str) -> dict[str, Any]:
    """The settings (monitor, space) of a study another process made: it writes them just
    after making the study, so a process that joins at the same moment waits for them."""
    deadline = time.monotonic() + JOIN_WAIT_S
    while True:
        stored: dict[str, Any] = created.user_attrs
        if "monitor" in stored:
            return stored
        if time.monotonic() > deadline:
            raise UsageError(
                f"the study in {where} has no settings after {JOIN_WAIT_S:.0f} s: the "
                "process that made it stopped at once; remove it and start again"
            )
        time.sleep(0.2)


def _search(
    optuna: Any,
    created: Any,
    objective: Callable[[Any], float],
    trials: int | None,
    timeout: float | None,
    running: dict[str, Any],
    callback: Any,
    join: bool,
) -> BaseException | None:
    """Run the trials; the Ctrl-C or SIGTERM that stopped them, if one did (what was
    found is kept)."""
    try:
        with _signals_remembered(running):
            created.optimize(
                objective,
                n_trials=trials,
                timeout=timeout,
                catch=(BioseqnnError, RuntimeError),
                callbacks=[callback],
            )
            _signalled(running)
    except BaseException as exc:  # Ctrl-C or SIGTERM: keep what was found, then stop
        if isinstance(exc, Exception):
            if "signal" not in running:
                raise
            # the signal's own exception, which Optuna can lose when it lands while a
            # trial is being told (an UnboundLocalError in its clean-up)
            try:
                _signalled(running)
            except BaseException as signalled:  # noqa: BLE001 - kept, raised below
                exc = signalled
        finished = optuna.trial.TrialState.COMPLETE
        try:
            kept = any(t.state == finished for t in created.get_trials(deepcopy=False))
        except Exception:  # noqa: BLE001 - the storage is unreadable: say nothing of it
            kept = True
        log.warning(
            "%s: %s",
            "interrupted" if isinstance(exc, KeyboardInterrupt) else "stopped",
            "writing the best model found so far" if kept else "no trial has finished yet",
        )
        _fail_running(optuna, created, running.get("trial"), exc, alone=not join)
        return exc
    return None


@contextlib.contextmanager
def _signals_remembered(running: dict[str, Any]) -> Iterator[None]:
    """Ctrl-C and SIGTERM are remembered as well as raised: Python drops an exception raised
    in a finaliser (a file or tensor freed mid-trial), and the search would then run on to
    its end. The objective checks the memory at every epoch (_signalled)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    kept: dict[int, Any] = {}

    def remember(signum: int, frame: Any) -> None:
        running.setdefault("signal", (signum, kept[signum]))
        kept[signum](signum, frame)

    for signum in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(signum)
        if callable(previous):  # a handler that raises (Python's, or the command line's)
            kept[signum] = previous
            signal.signal(signum, remember)
    try:
        yield
    finally:
        for number, handler in kept.items():
            signal.signal(number, handler)


def _signalled(running: dict[str, Any]) -> None:
    """Raise again what a remembered signal raised (see _signals_remembered)."""
    if "signal" in running:
        signum, handler = running["signal"]
        handler(signum, None)


def _fail_running(
    optuna: Any, study: Any, trial: Any, exc: BaseException | None, alone: bool
) -> int:
    """Record as failed the trials a stopped process leaves 'running' in the storage
    (Optuna records a trial that Ctrl-C stops, not one that SIGTERM stops, nor one
    stopped while Optuna itself writes). ``alone``: no other process works on the study,
    so every running trial is a stopped one; otherwise only this process's ``trial``."""
    why = (
        "interrupted"
        if isinstance(exc, KeyboardInterrupt)
        else "terminated"
        if exc is not None
        else "left running by a stopped run"
    )
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    stale = [t for t in running if alone or (trial is not None and t.number == trial.number)]
    for t in stale:
        # the reason goes where the table reads it (a finished trial takes no attributes)
        study._storage.set_trial_user_attr(t._trial_id, "error", why)
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
    return len(stale)


def _write_results(
    optuna: Any, study: Any, monitor: str, output: Path, paths: dict[str, Path], ensemble_top: int
) -> TuneOutcome:
    all_trials = study.get_trials(deepcopy=False)
    _write_table(all_trials, monitor, paths["table"])
    complete = [
        t
        for t in all_trials
        if t.state == optuna.trial.TrialState.COMPLETE
        and t.value is not None
        and math.isfinite(t.value)
        and (paths["trials"] / t.user_attrs.get("model", "?")).is_file()
    ]
    if not complete:
        raise TrainingError(
            f"no trial completed with a model file; see the trial lines and {paths['table']}"
        )
    reverse = study.direction == optuna.study.StudyDirection.MAXIMIZE
    complete.sort(key=lambda t: (-t.value if reverse else t.value, t.number))
    best = complete[0]
    chosen = complete[:ensemble_top]
    if len(chosen) < ensemble_top:
        log.warning("--ensemble-top %d: only %d trial(s) completed", ensemble_top, len(chosen))
    files = [paths["trials"] / t.user_attrs["model"] for t in chosen]
    summary_fields = {
        "trials": len(all_trials),
        "complete": sum(t.state == optuna.trial.TrialState.COMPLETE for t in all_trials),
        "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in all_trials),
        "failed": sum(t.state == optuna.trial.TrialState.FAIL for t in all_trials),
        "best_trial": best.number,
        "metric": monitor,
        "value": best.value,
        "best_settings": best.user_attrs.get("settings", {}),
        **({"ensemble_trials": [t.number for t in chosen]} if len(chosen) > 1 else {}),
    }
    _write_model(files, output, summary_fields)
    from ..modelfile import model_config

    cfg, header = model_config(files[0])
    write_config(paths["config"], cfg, header, source=files[0])
    log.info(
        "best: trial %d, %s %.4f; wrote %s, %s, %s",
        best.number,
        monitor,
        best.value,
        output,
        paths["table"],
        paths["config"],
    )
    return TuneOutcome(
        output, best.number, monitor, best.value, len(all_trials), paths["table"], paths["config"]
    )


def _write_model(files: list[Path], output: Path, fields: dict[str, Any]) -> None:
    """The chosen trial's model (or the chosen trials' ensemble) at ``output``, with the
    ``tune`` summary in its manifest; written atomically by save_bundle."""
    from ..bundle import load_bundle, save_bundle
    from ..ops.ensemble import combine

    source = files[0]
    if len(files) > 1:
        source = files[0].with_name("ensemble.bsnn")
        combine([str(f) for f in files], source)
    bundle = load_bundle(source)
    manifest = {**bundle.manifest, "tune": fields}
    save_bundle(output, bundle.model, manifest, bundle.train_digest)
    if len(files) > 1:
        source.unlink()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value).replace("\t", " ").replace("\n", " ")


def _write_table(trials: list[Any], monitor: str, path: Path) -> None:
    params: dict[str, None] = {}
    for t in trials:
        params.update(dict.fromkeys(t.params))
    header = ["trial", "state", monitor, "seconds", "epochs_trained", *params, "note"]
    with atomic_output(path) as fh:
        fh.write("\t".join(header) + "\n")
        for t in sorted(trials, key=lambda t: t.number):
            seconds = t.duration.total_seconds() if t.duration else None
            cells = [
                t.number,
                t.state.name.lower(),
                t.value,
                seconds,
                t.user_attrs.get("epochs"),
                *(t.params.get(p) for p in params),
                t.user_attrs.get("error") or t.user_attrs.get("note", ""),
            ]
            fh.write("\t".join(_cell(c) for c in cells) + "\n")
