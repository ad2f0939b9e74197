"""Running the trials of ``bioseqnn tune``: the probe run that learns the data, the objective
(one ``train`` run per trial, pruned or stopped by the budget), the progress lines, and
Ctrl-C or SIGTERM that stop a search with what it found kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..config import RunConfig, config_from_dict
from ..errors import BioseqnnError, TrainingError, UsageError
from .space import DataFacts, families_for, fixed_settings, sample
from .storage import fail_running

log = logging.getLogger("bioseqnn")


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


def make_objective(
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


def timed_search(
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


def data_facts(
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
        fail_running(optuna, created, running.get("trial"), exc, alone=not join)
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
