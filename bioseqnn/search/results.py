"""What ``bioseqnn tune`` writes from its study: the best trial's model (or the best trials'
ensemble), the table of trials, the best config and the figures.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any

from ..config import write_config
from ..errors import TrainingError
from ..io.outputs import atomic_output

log = logging.getLogger("bioseqnn")


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


def write_plots(
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


def write_results(
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
