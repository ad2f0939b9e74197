"""Experiment tracking: TensorBoard event files and MLflow runs, read back with the real
libraries."""

from __future__ import annotations

import csv
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES, ROOT

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")

TINY = [
    "--arch",
    "cnn",
    "--channels",
    "8",
    "--kernel-sizes",
    "5",
    "--dilations",
    "1",
    "--epochs",
    "3",
    "-j",
    "1",
    "--seed",
    "2",
    "--quiet",
]
DATA = [EXAMPLES / "hemolytic.fasta", EXAMPLES / "hemolytic.csv"]
# MLflow's own modules warn about their dependencies' deprecations
MLFLOW_WARNINGS = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning"
)


def _log(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _scalars(folder: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"images": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_tensorboard_events_hold_every_epoch(cli, tmp_path: Path) -> None:
    model, board = tmp_path / "m.bsnn", tmp_path / "board"
    assert cli("train", *DATA, "-o", model, *TINY, "--tensorboard", board).code == 0
    acc = _scalars(board)
    epochs = _log(tmp_path / "m.log.tsv")
    assert {"train_loss", "val_loss", "val_accuracy", "val_mcc", "lr"} <= set(acc.Tags()["scalars"])
    for key in ("train_loss", "val_loss", "val_auroc"):
        events = acc.Scalars(key)
        assert [e.step for e in events] == [1, 2, 3]
        assert [e.value for e in events] == pytest.approx([float(r[key]) for r in epochs], rel=1e-5)
    assert acc.Tags()["images"] == ["learning_curves"]
    text = acc.Tensors("settings/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| model.arch | cnn |" in text and "| training.epochs | 3 |" in text


@MLFLOW_WARNINGS
@pytest.mark.slow
def test_mlflow_run_has_settings_metrics_curves_and_model(cli, tmp_path: Path, monkeypatch) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "runs" / "m.bsnn"
    out.parent.mkdir()
    assert cli("train", *DATA, "-o", out, *TINY, "--mlflow").code == 0
    # the local store: mlflow.db and mlartifacts beside the model, nothing in the cwd
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "m.bsnn",
        "m.log.tsv",
        "mlartifacts",
        "mlflow.db",
    ]
    assert sorted(os.listdir(tmp_path)) == ["runs"]
    client = MlflowClient(f"sqlite:///{out.parent / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("bioseqnn")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "m"
    assert run.data.params["model.arch"] == "cnn"
    assert run.data.params["model.channels"] == "[8]"
    assert run.data.params["training.seed"] == "2"
    assert run.data.params["task.kind"] == "binary"
    epochs = _log(out.parent / "m.log.tsv")
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.value for m in history] == pytest.approx(
        [float(r["val_loss"]) for r in epochs], rel=1e-6
    )
    best = min(float(r["val_loss"]) for r in epochs)
    assert run.data.metrics["best_val_loss"] == pytest.approx(best, rel=1e-6)
    names = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert names == {"model/m.bsnn", "model/m.log.tsv"}
    assert [a.path for a in client.list_artifacts(run.info.run_id, "plots")] == [
        "plots/learning_curves.png"
    ]
    copy = Path(client.download_artifacts(run.info.run_id, "model/m.bsnn", str(tmp_path)))
    assert copy.read_bytes() == out.read_bytes()


@MLFLOW_WARNINGS
@pytest.mark.slow
def test_the_python_api_tracks_too(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    import bioseqnn

    uri = f"sqlite:///{tmp_path / 'store' / 'team.db'}"
    run = bioseqnn.train(
        *DATA,
        tmp_path / "m.bsnn",
        arch="cnn",
        channels=[8],
        kernel_sizes=[5],
        dilations=[1],
        epochs=2,
        threads=1,
        tensorboard=tmp_path / "tb",
        mlflow=uri,
    )
    client = MlflowClient(uri)
    (found,) = client.search_runs([client.get_experiment_by_name("bioseqnn").experiment_id])
    values = [m.value for m in client.get_metric_history(found.info.run_id, "val_auroc")]
    assert values == pytest.approx([r["val_auroc"] for r in run.history], rel=1e-6)
    events = _scalars(tmp_path / "tb").Scalars("val_auroc")
    assert [e.value for e in events] == pytest.approx(values, rel=1e-5)
    # an SQLite store keeps the artifacts beside its database, not in the cwd
    artifacts = Path(client.get_experiment_by_name("bioseqnn").artifact_location[7:])
    assert artifacts == tmp_path / "store" / "mlartifacts"
    assert sorted(os.listdir(tmp_path)) == ["m.bsnn", "m.log.tsv", "store", "tb"]


class _Broken:
    def epoch(self, record: dict[str, Any]) -> None:
        if record["epoch"] == 2:
            raise OSError("disk full")

    def finish(self, outcome: Any, figure: Any) -> None:
        raise AssertionError("a tracker that failed is not called again")

    def fail(self) -> None:
        pass


def test_a_tracking_failure_keeps_the_model(tmp_path: Path, caplog) -> None:
    from bioseqnn import api
    from bioseqnn.config import RunConfig
    from bioseqnn.notebook import settings_to_config
    from bioseqnn.tracking import Tracking

    tracking = Tracking([_Broken()])
    cfg: RunConfig = settings_to_config(
        {
            "arch": "cnn",
            "channels": [8],
            "kernel_sizes": [5],
            "dilations": [1],
            "epochs": 3,
            "threads": 1,
        }
    )
    with caplog.at_level(logging.WARNING, logger="bioseqnn"):
        outcome = api.train(*DATA, tmp_path / "m.bsnn", cfg, on_epoch=tracking.epoch)
        tracking.finish(outcome)
    assert (tmp_path / "m.bsnn").exists() and len(outcome.result.history) == 3
    assert tracking.trackers == []
    assert any("tracking failed (disk full)" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_a_missing_library_fails_before_training(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['mlflow'] = None; from bioseqnn.cli import main; "
        f"sys.exit(main({[str(p) for p in DATA]!r} and ['train', *{[str(p) for p in DATA]!r}, "
        f"'-o', {str(tmp_path / 'm.bsnn')!r}, '--mlflow']))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert r.returncode == 2
    assert r.stderr == (
        "bioseqnn: error: --mlflow needs mlflow: pip install 'bioseqnn[tracking]'\n"
    )
    assert not (tmp_path / "m.bsnn").exists()


@pytest.mark.slow
def test_an_unreachable_tracking_server_is_one_short_line_not_minutes(tmp_path: Path) -> None:
    """A wrong port or host: MLflow's own retries (7, backing off to 128 s) held train for
    about four minutes; the command line asks for two, and says what failed in a few
    words rather than the HTTP client's chain of exceptions."""
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for uri, why in (
        (f"http://127.0.0.1:{port}", "Connection refused"),
        ("http://no-such-host.invalid:5000", ""),
    ):
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "bioseqnn",
                "train",
                *map(str, DATA),
                "-o",
                str(tmp_path / "m.bsnn"),
                "--mlflow",
                uri,
            ],
            capture_output=True,
            text=True,
            timeout=200,  # MLflow's defaults would take longer than this
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith(
            f"bioseqnn: error: --mlflow {uri}: cannot start a run: cannot reach the server: {why}"
        ), r.stderr
        assert r.stderr.count("\n") == 1 and len(r.stderr) < 200, r.stderr
        assert not (tmp_path / "m.bsnn").exists()


def test_a_tracker_failure_reads_in_a_few_words() -> None:
    from bioseqnn.tracking import _reason

    chained = (
        "API request to http://h:5000/api/2.0/mlflow/runs/log-batch failed with exception "
        "HTTPConnectionPool(host='h', port=5000): Max retries exceeded with url: /x (Caused "
        "by NewConnectionError(\"HTTPConnection(host='h', port=5000): Failed to establish a "
        'new connection: [Errno 111] Connection refused"))'
    )
    assert _reason(RuntimeError(chained)) == "cannot reach the server: Connection refused"
    assert _reason(RuntimeError("Read timed out. (read timeout=20)")) == (
        "the server did not answer in time"
    )
    assert _reason(OSError("disk full\nmore")) == "disk full"
    assert _reason(RuntimeError("")) == "RuntimeError"
