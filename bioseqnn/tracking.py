"""Experiment tracking: a training run logged to TensorBoard event files and/or MLflow
(``bioseqnn[tracking]``): the settings, every epoch's metrics, the learning curves and the
model file.

Tracking serves the run, never the other way round: a library that is missing is an error
before training starts, and a tracking call that fails once training runs is a warning
(the model file is written all the same).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from .errors import UsageError, shorten

log = logging.getLogger("bioseqnn")

EXPERIMENT = "bioseqnn"
"""The MLflow experiment that runs are logged to."""
LOCAL = "local"
"""``--mlflow`` alone (or ``--mlflow local``): the default store."""
DEFAULT_STORE = "mlflow.db"
"""``--mlflow`` without a URI: an SQLite store of this name beside the model file."""


def local_store(output: str | os.PathLike[str] | None) -> tuple[str, Path]:
    """The local store: (``sqlite:///`` + mlflow.db, the artifacts folder mlartifacts),
    both beside ``output`` (in the working directory without one)."""
    folder = Path(output).resolve().parent if output is not None else Path.cwd()
    return f"sqlite:///{folder / DEFAULT_STORE}", folder / "mlartifacts"


def _beside(uri: str) -> Path | None:
    """An SQLite store's artifacts folder: mlartifacts beside its database (MLflow's
    default would be ./mlruns in whatever the working directory is); None for others."""
    prefix = "sqlite:///"
    return (
        Path(uri[len(prefix) :]).resolve().parent / "mlartifacts"
        if uri.startswith(prefix)
        else None
    )


def _require(module: str, option: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(
            f"{option} needs {module.split('.')[0]}: pip install 'bioseqnn[tracking]'"
        ) from None


def flat_settings(manifest: dict[str, Any]) -> dict[str, str]:
    """The run's resolved settings as flat ``section.key`` -> text (MLflow parameters)."""
    flat: dict[str, str] = {}
    for section in ("model", "training"):
        for key, value in (manifest.get(section) or {}).items():
            flat[f"{section}.{key}"] = json.dumps(value) if isinstance(value, list) else str(value)
    task = manifest.get("task") or {}
    flat["task.kind"] = str(task.get("kind"))
    flat["data.records"] = str((manifest.get("data") or {}).get("records"))
    return flat


def metric_items(record: dict[str, Any]) -> tuple[int, dict[str, float]]:
    """(epoch, {name: value}) of an epoch record: its finite numbers, named
    ``member2/val_loss`` (``fold3/...``) for an ensemble member or fold."""
    prefix = "".join(f"{tag}{record[tag]}/" for tag in ("member", "fold") if tag in record)
    values = {
        f"{prefix}{k}": float(v)
        for k, v in record.items()
        if k not in ("epoch", "member", "fold")
        and isinstance(v, (int, float))
        and not isinstance(v, bool)
        and math.isfinite(v)
    }
    return int(record["epoch"]), values


class _TensorBoard:
    def __init__(self, folder: str | os.PathLike[str]) -> None:
        _require("tensorboard", "--tensorboard")
        from .io.outputs import make_folder

        self.folder = Path(folder)
        try:  # a folder that cannot be made is a usage error before any data is read
            make_folder(self.folder)
        except OSError as exc:
            raise UsageError(f"--tensorboard {folder}: cannot create: {exc.strerror}") from None
        self._writer: Any = None

    @property
    def writer(self) -> Any:
        """The event file's writer, made with the first epoch: a run refused before
        training leaves no event file."""
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.folder))
        return self._writer

    def epoch(self, record: dict[str, Any]) -> None:
        step, values = metric_items(record)
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)
        self.writer.flush()

    def finish(self, outcome: Any, figure: Path | None) -> None:
        settings = flat_settings(outcome.manifest)
        table = "| setting | value |\n|---|---|\n" + "\n".join(
            f"| {k} | {v} |" for k, v in settings.items()
        )
        self.writer.add_text("settings", table)
        self.writer.add_text("model_file", str(outcome.output))
        if figure is not None:
            import matplotlib.image as mpimg

            self.writer.add_image("learning_curves", mpimg.imread(figure), dataformats="HWC")
        self.writer.close()

    def fail(self) -> None:
        if self._writer is not None:
            self._writer.close()


class _MLflow:
    def __init__(
        self, uri: str, output: str | os.PathLike[str] | None, artifacts: Path | None = None
    ) -> None:
        mlflow = _require("mlflow", "--mlflow")
        # its notes on creating tables and experiments are no news for a person
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        self.mlflow = mlflow
        self.uri = uri
        mlflow.set_tracking_uri(uri)
        if artifacts is not None and mlflow.get_experiment_by_name(EXPERIMENT) is None:
            # the local store keeps its files beside its database, not in the working
            # directory (MLflow's default, ./mlruns)
            mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts.as_uri())
        mlflow.set_experiment(EXPERIMENT)
        name = Path(output).stem if output is not None else None
        self.run = mlflow.start_run(run_name=name)
        self.run_id = self.run.info.run_id
        log.info("MLflow run %s in %s", self.run_id, uri)

    def epoch(self, record: dict[str, Any]) -> None:
        step, values = metric_items(record)
        self.mlflow.log_metrics({_mlflow_name(k): v for k, v in values.items()}, step=step)

    def finish(self, outcome: Any, figure: Path | None) -> None:
        mlflow = self.mlflow
        mlflow.log_params(flat_settings(outcome.manifest))
        best = {
            f"best_{k}": float(v)
            for k, v in outcome.result.best.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        }
        if best:
            mlflow.log_metrics(best)
        mlflow.log_artifact(str(outcome.output), artifact_path="model")
        if outcome.log_path is not None and Path(outcome.log_path).exists():
            mlflow.log_artifact(str(outcome.log_path), artifact_path="model")
        if figure is not None:
            mlflow.log_artifact(str(figure), artifact_path="plots")
        mlflow.end_run("FINISHED")

    def fail(self) -> None:
        self.mlflow.end_run("FAILED")


def _mlflow_name(name: str) -> str:
    return name.replace("%", "pct")


class Tracking:
    """The trackers of one training run (none, TensorBoard, MLflow or both)."""

    def __init__(self, trackers: list[Any]) -> None:
        self.trackers = trackers

    @classmethod
    def open(
        cls,
        tensorboard: str | os.PathLike[str] | None,
        mlflow: str | bool | None,
        output: str | os.PathLike[str] | None,
    ) -> Tracking:
        """Start the trackers asked for; a missing library is a UsageError naming the
        extra (before any data is read)."""
        trackers: list[Any] = []
        if tensorboard is not None:
            trackers.append(_TensorBoard(tensorboard))
        if mlflow:
            uri, artifacts = (
                (mlflow, _beside(mlflow))
                if isinstance(mlflow, str) and mlflow != LOCAL
                else local_store(output)
            )
            try:
                trackers.append(_MLflow(uri, output, artifacts))
            except UsageError:
                raise
            except Exception as exc:
                for t in trackers:
                    t.fail()
                raise UsageError(f"--mlflow {uri}: cannot start a run: {_reason(exc)}") from None
        return cls(trackers)

    def epoch(self, record: dict[str, Any]) -> None:
        for tracker in list(self.trackers):
            self._safely(tracker, "epoch", record)

    def finish(self, outcome: Any) -> None:
        """Log the settings, the learning curves and the model file, and close."""
        if not self.trackers or not outcome.main:
            return
        with tempfile.TemporaryDirectory(prefix="bioseqnn-") as tmp:
            figure = _curves(outcome, Path(tmp))
            for tracker in list(self.trackers):
                self._safely(tracker, "finish", outcome, figure)

    def fail(self) -> None:
        for tracker in self.trackers:
            try:
                tracker.fail()
            except Exception as exc:  # the training error matters, not this one
                log.debug("tracking: %s", exc)

    def _safely(self, tracker: Any, method: str, *args: Any) -> None:
        try:
            getattr(tracker, method)(*args)
        except Exception as exc:
            what = "TensorBoard" if isinstance(tracker, _TensorBoard) else "MLflow"
            log.warning(
                "%s tracking failed (%s); it stops here, training goes on and the "
                "model file is written",
                what,
                _reason(exc),
            )
            self.trackers.remove(tracker)
            try:
                tracker.fail()
            except Exception as again:
                log.debug("tracking: %s", again)


def _reason(exc: BaseException) -> str:
    """Why a tracker failed, in a few words: the network error at the bottom of an HTTP
    client's chain of exceptions (MLflow's run to several hundred characters), else the
    exception's first line."""
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\] ([^\"')\]]+)", text)
    if found:
        return f"cannot reach the server: {found.group(1).strip()}"
    if "timed out" in text.lower():
        return "the server did not answer in time"
    return shorten(text.splitlines()[0], 200) if text.strip() else type(exc).__name__


def _curves(outcome: Any, folder: Path) -> Path | None:
    """The learning curves as a PNG (None without matplotlib or epochs)."""
    history = [
        r
        for r in outcome.result.history
        if r.get("member", 0) in (0, 1) and r.get("fold", 0) in (0, 1)
    ]
    if not history:
        return None
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    from .plots import learning_curves

    try:
        return Path(
            learning_curves(history, folder / "learning_curves.png", Path(outcome.output).name)
        )
    except Exception as exc:
        log.warning("learning curves for tracking: %s", exc)
        return None
