"""The figures of a search (``bioseqnn tune --plots DIR``): the optimisation history and
the parameter importances, drawn in the style of bioseqnn's other plots (the plots
extra: matplotlib)."""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Any

from ..engine.schedules import minimised
from ..plots import DPI, check_figure_options
from ..plots.common import new_figure, save_figure

log = logging.getLogger("bioseqnn")
SHOWN = 12
"""The parameter importances drawn: the most important ones."""


def plot_search(
    optuna: Any,
    study: Any,
    monitor: str,
    folder: Path,
    fmt: str = "png",
    dpi: int | None = None,
    title: str = "",
) -> list[Path]:
    """Write ``optimisation_history`` and (with two or more completed trials whose
    settings vary) ``param_importances`` in ``folder`` as ``fmt`` (png, pdf or svg) at
    ``dpi`` (default :data:`bioseqnn.plots.DPI`), titled ``title``; returns the files
    written."""
    dpi = DPI if dpi is None else dpi
    check_figure_options(fmt, dpi)
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    written = [
        _history(optuna, trials, monitor, folder / f"optimisation_history.{fmt}", dpi, title)
    ]
    importances = _importances(optuna, study)
    if importances:
        written.append(_bars(importances, monitor, folder / f"param_importances.{fmt}", dpi, title))
    else:
        log.info("no parameter importances: they need two completed trials whose settings differ")
    return written


def _history(
    optuna: Any, trials: list[Any], monitor: str, path: Path, dpi: int, title: str
) -> Path:
    state = optuna.trial.TrialState
    lower = minimised(monitor)
    with new_figure(3.5, 2.6) as fig:
        ax = fig.add_subplot()
        done = [
            t
            for t in trials
            if t.state == state.COMPLETE and t.value is not None and math.isfinite(t.value)
        ]
        ax.scatter(
            [t.number for t in done],
            [t.value for t in done],
            s=12,
            color="tab:blue",
            label="complete",
            zorder=3,
        )
        best: list[float] = []
        for t in done:
            value = float(t.value)
            best.append(value if not best else (min if lower else max)(best[-1], value))
        if done:  # the best so far, drawn on to the last trial
            xs = [t.number for t in done] + [trials[-1].number]
            ax.step(
                xs,
                best + best[-1:],
                where="post",
                color="tab:red",
                lw=1.2,
                label="best so far",
                zorder=2,
            )
        pruned = [t for t in trials if t.state == state.PRUNED]
        reached = [_last_value(t) for t in pruned]
        shown = [(t.number, v) for t, v in zip(pruned, reached, strict=True) if v is not None]
        if shown:
            ax.scatter(
                [n for n, _ in shown],
                [v for _, v in shown],
                s=12,
                marker="x",
                color="0.55",
                label="pruned (last epoch)",
                zorder=1,
            )
        failed = sum(t.state == state.FAIL for t in trials)
        ax.set_xlabel("trial")
        ax.set_ylabel(monitor)
        counts = f"{len(trials)} trials: {len(done)} complete, {len(pruned)} pruned" + (
            f", {failed} failed" if failed else ""
        )
        ax.set_title(f"{title}\n{counts}" if title else counts)
        fig.legend(frameon=False, loc="outside lower center", ncols=3)
        return save_figure(fig, path, dpi)


def _last_value(trial: Any) -> float | None:
    values = trial.intermediate_values
    if not values:
        return None
    value = float(values[max(values)])
    return value if math.isfinite(value) else None


def _importances(optuna: Any, study: Any) -> dict[str, float]:
    complete = [
        t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE
    ]
    if len(complete) < 2:
        return {}
    evaluator = optuna.importance.PedAnovaImportanceEvaluator()
    with warnings.catch_warnings():  # PED-ANOVA is marked experimental by Optuna
        warnings.simplefilter("ignore")
        try:
            found = optuna.importance.get_param_importances(study, evaluator=evaluator)
        except (RuntimeError, ValueError) as exc:  # e.g. no parameter common to all
            log.info("no parameter importances: %s", exc)
            return {}
    return {k: float(v) for k, v in found.items() if math.isfinite(float(v))}


def _bars(importances: dict[str, float], monitor: str, path: Path, dpi: int, title: str) -> Path:
    names = list(importances)[:SHOWN][::-1]  # the most important on top
    with new_figure(3.5, 0.9 + 0.16 * len(names)) as fig:
        ax = fig.add_subplot()
        ax.barh(names, [importances[n] for n in names], color="tab:blue")
        ax.set_xlabel("importance (PED-ANOVA)")
        heading = f"settings that moved {monitor}" + (
            f" (top {SHOWN} of {len(importances)})" if len(importances) > SHOWN else ""
        )
        ax.set_title(f"{title}\n{heading}" if title else heading)
        ax.tick_params(axis="y", length=0)
        return save_figure(fig, path, dpi)
