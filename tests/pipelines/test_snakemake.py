"""The example workflow under real Snakemake: outputs, up-to-date reruns, failed rules."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLES

SNAKEFILE = EXAMPLES / "workflow" / "Snakefile"
TRAIN_ARGS = "--arch cnn --channels 16,16 --epochs 2 --seed 3 --quiet"
snakemake_exe = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or shutil.which(
    "snakemake"
)
pytestmark = pytest.mark.skipif(snakemake_exe is None, reason="snakemake is not installed")


def snakemake(workdir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    cmd = [
        str(snakemake_exe),
        "-s",
        str(SNAKEFILE),
        "--cores",
        "2",
        "--directory",
        str(workdir),
        "--config",
        f"train_args={TRAIN_ARGS}",
        *extra,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)


@pytest.mark.slow
def test_workflow_trains_once_predicts_chunks_gathers_and_evaluates(tmp_path: Path) -> None:
    run = snakemake(tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    results = tmp_path / "results"
    chunks = sorted((results / "predictions").glob("*.tsv"))
    assert [c.name for c in chunks] == ["000.tsv", "001.tsv", "002.tsv", "003.tsv"]
    rows = list(csv.reader((results / "predictions.tsv").read_text().splitlines(), delimiter="\t"))
    assert rows[0][:2] == ["id", "predicted"] and len(rows[0]) == 2 + 13
    ids = [
        line[1:].split()[0]
        for line in (EXAMPLES / "ncrna_test.fasta").read_text().splitlines()
        if line.startswith(">")
    ]
    assert [r[0] for r in rows[1:]] == ids  # gathered in input order, header once
    report = json.loads((results / "evaluation.json").read_text())
    assert report["records"] == 260 and report["task"] == "multiclass"
    assert 0.0 <= report["metrics"]["accuracy"] <= 1.0
    model_time = (results / "model.bsnn").stat().st_mtime_ns

    again = snakemake(tmp_path)
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr
    assert (results / "model.bsnn").stat().st_mtime_ns == model_time


@pytest.mark.slow
def test_a_failing_rule_leaves_no_partial_output(tmp_path: Path) -> None:
    # The third quarter of the records holds a record with an invalid symbol.
    records = (EXAMPLES / "ncrna_test.fasta").read_text().split(">")[1:]
    records[150] = records[150].replace("\n", "\n!", 1)
    broken = tmp_path / "broken.fa"
    broken.write_text("".join(">" + r for r in records))
    work = tmp_path / "run"
    run = snakemake(work, f"predict_fasta={broken}", "predict_labels=", "--keep-going")
    assert run.returncode != 0
    results = work / "results"
    assert (results / "model.bsnn").exists()
    done = sorted(p.name for p in (results / "predictions").glob("*"))
    assert done == ["000.tsv", "001.tsv", "003.tsv"]  # no partial 002.tsv, no temp files
    assert not (results / "predictions.tsv").exists()
    log = (results / "logs" / "predict_002.log").read_text()
    assert "invalid dna symbol '!' at position 1" in log


@pytest.mark.slow
def test_workflow_trains_ensemble_members_as_parallel_jobs(tmp_path: Path) -> None:
    run = snakemake(tmp_path, "members=2", "chunks=2", "predict_labels=")
    assert run.returncode == 0, run.stderr[-3000:]
    results = tmp_path / "results"
    from bioseqnn.modelfile import read_manifest

    seeds = [read_manifest(results / "members" / f"{i}.bsnn")[0]["seed"] for i in (0, 1)]
    assert seeds == [0, 1]  # the member's seed wins over the --seed 3 of train_args
    manifest, _ = read_manifest(results / "model.bsnn")
    assert manifest["ensemble"] == 2
    assert [m["seed"] for m in manifest["metrics"]["members"]] == [0, 1]
    rows = (results / "predictions.tsv").read_text().splitlines()
    assert len(rows) == 1 + 260 and rows[0].startswith("id\tpredicted\t")
    assert sorted(p.name for p in (results / "logs").glob("train_metrics_*.tsv")) == [
        "train_metrics_0.tsv",
        "train_metrics_1.tsv",
    ]


@pytest.mark.slow
def test_tune_workers_share_one_study_and_the_best_model_predicts(tmp_path: Path) -> None:
    """tune_workers=2: two parallel 'tune --join' jobs of two trials each on one journal
    study, then the best model of all four trials is the workflow's model."""
    space = tmp_path / "space.yaml"
    space.write_text(
        "families: [cnn]\nmodel: {conv_layers: 1, channels: [8, 16], "
        "kernel_sizes: [3, 5], dilations: 1, pool_sizes: 1}\n"
        "training: {epochs: 2, lr: {low: 0.001, high: 0.01, log: true}}\n"
    )
    run = snakemake(
        tmp_path / "run", "tune_workers=2", "tune_trials=2", f"tune_args=--space {space} --quiet"
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = tmp_path / "run" / "results"
    optuna = pytest.importorskip("optuna")
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(
        study_name="bioseqnn-tune",
        storage=JournalStorage(JournalFileBackend(str(results / "tune" / "search.journal"))),
    )
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    # every trial ran to its end or was pruned by the median of the others (which two
    # workers reach in either order); none failed or was left running
    states = optuna.trial.TrialState
    assert all(t.state in (states.COMPLETE, states.PRUNED) for t in study.trials)

    from bioseqnn.modelfile import read_manifest

    summary = read_manifest(results / "model.bsnn")[0]["tune"]
    assert summary["trials"] == 4 and summary["best_trial"] == study.best_trial.number
    rows = (results / "predictions.tsv").read_text().splitlines()
    assert len(rows) == 1 + 260  # every test record predicted by the tuned model
