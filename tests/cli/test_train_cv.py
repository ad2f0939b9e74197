"""Cross-validation (`train --cv K`): folds, out-of-fold figures, the ensemble, resume."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_bioseqnn
from safetensors.torch import load_file

from bioseqnn.engine.checkpoint import FILE_NAME, load_checkpoint
from bioseqnn.engine.cv import assign_folds
from bioseqnn.metrics import classification_metrics, regression_metrics

CNN = [
    "--arch",
    "cnn",
    "--channels",
    "16",
    "--kernel-sizes",
    "5",
    "--dilations",
    "1",
    "--pool-sizes",
    "1",
    "--threads",
    "1",
]


def read_table(path: Path, delimiter: str = "\t") -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter=delimiter))


def manifest(path: Path) -> dict:
    done = run_bioseqnn("info", path, "--json")
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def test_folds_are_seeded_and_stratified() -> None:
    classes = np.array([0] * 50 + [1] * 10 + [2] * 3)
    folds = assign_folds(len(classes), 5, seed=3, strata=classes)
    assert np.array_equal(folds, assign_folds(len(classes), 5, seed=3, strata=classes))
    assert not np.array_equal(folds, assign_folds(len(classes), 5, seed=4, strata=classes))
    for c, n in ((0, 50), (1, 10)):
        assert np.bincount(folds[classes == c], minlength=5).tolist() == [n // 5] * 5
    # the three records of the rare class land in three different folds
    assert len(set(folds[classes == 2].tolist())) == 3
    assert sorted(np.bincount(folds, minlength=5).tolist()) == [12, 12, 13, 13, 13]
    plain = assign_folds(10, 3, seed=0)
    assert sorted(np.bincount(plain).tolist()) == [3, 3, 4]


@pytest.mark.slow
def test_out_of_fold_predictions_cover_every_record_once_and_give_the_pooled_figures(
    cli, examples: Path, tmp_path: Path
) -> None:
    model = tmp_path / "cv.bsnn"
    r = cli(
        "train",
        examples / "hemolytic.fasta",
        examples / "hemolytic.csv",
        "-o",
        model,
        *CNN,
        "--epochs",
        "4",
        "--cv",
        "3",
    )
    assert r.code == 0, r.err
    assert "records: 1104 in 3 folds (stratified by class)" in r.err
    assert "cross-validation, 3 folds: val_loss" in r.err
    rows = read_table(tmp_path / "cv.oof.tsv")
    labels = {row["id"]: row["hemolytic"] for row in read_table(examples / "hemolytic.csv", ",")}
    assert sorted(row["id"] for row in rows) == sorted(labels)  # each record exactly once
    fasta = (examples / "hemolytic.fasta").read_text().splitlines()
    order = [line[1:].split()[0] for line in fasta if line.startswith(">")]
    assert [row["id"] for row in rows] == order  # in input order, as predict writes rows
    assert list(rows[0]) == ["id", "fold", "predicted", "prob_0", "prob_1"]
    per_fold = {f: [row for row in rows if row["fold"] == f] for f in ("1", "2", "3")}
    assert [len(v) for v in per_fold.values()] == [368, 368, 368]
    for part in per_fold.values():  # stratified: each fold holds its share of positives
        assert abs(sum(labels[row["id"]] == "1" for row in part) - 522 / 3) <= 1

    m = manifest(model)
    assert m["ensemble"] == 3 and m["training"]["cv"] == 3
    cv = m["metrics"]["cv"]
    assert cv["folds"] == 3 and len(cv["per_fold"]) == 3
    y = np.array([int(labels[row["id"]]) for row in rows])
    prob = np.array([[float(row["prob_0"]), float(row["prob_1"])] for row in rows])
    again = classification_metrics(y, prob)
    assert cv["pooled"]["val_accuracy"] == pytest.approx(again["accuracy"], abs=1e-9)
    # (the file's probabilities have 6 significant digits: rounding ties move AUROC a little)
    assert cv["pooled"]["val_auroc"] == pytest.approx(again["auroc"], abs=1e-5)
    assert m["metrics"]["best"]["val_accuracy"] == cv["pooled"]["val_accuracy"]
    folds = [f["val_accuracy"] for f in cv["per_fold"]]
    assert cv["mean"]["val_accuracy"] == pytest.approx(np.mean(folds))
    assert cv["sd"]["val_accuracy"] == pytest.approx(np.std(folds, ddof=1))
    assert cv["pooled"]["val_accuracy"] > 0.75  # it learnt
    # each member's own held-out figure is the one the out-of-fold rows give
    for f, part in per_fold.items():
        yf = np.array([int(labels[row["id"]]) for row in part])
        pf = np.array([[float(row["prob_0"]), float(row["prob_1"])] for row in part])
        assert classification_metrics(yf, pf)["accuracy"] == pytest.approx(
            cv["per_fold"][int(f) - 1]["val_accuracy"], abs=1e-9
        )

    # the model file is the ensemble of the three: predict reads it like any other
    r = cli("predict", model, examples / "hemolytic.fasta", "-o", tmp_path / "p.tsv")
    assert r.code == 0, r.err
    assert len(read_table(tmp_path / "p.tsv")) == 1104
    info = cli("info", model)
    assert "3 members, one per cross-validation fold" in info.out
    assert "1104 records in 3 cross-validation folds" in info.out


@pytest.mark.slow
def test_regression_per_position_and_language_model_cross_validate(
    cli, examples: Path, tmp_path: Path
) -> None:
    lines = (examples / "promoters.fasta").read_text().splitlines()[:600]
    fasta = tmp_path / "p.fa"
    fasta.write_text("\n".join(lines) + "\n")
    model = tmp_path / "reg.bsnn"
    r = cli(
        "train",
        fasta,
        examples / "promoters.csv",
        "-o",
        model,
        *CNN,
        "--epochs",
        "2",
        "--cv",
        "4",
        "--target",
        "log2_expression",
        "--ignore-unmatched",
    )
    assert r.code == 0, r.err
    assert "records: 300 in 4 folds; each fold" in r.err
    rows = read_table(tmp_path / "reg.oof.tsv")
    assert len(rows) == 300 and len({row["id"] for row in rows}) == 300
    truth = {
        row["id"]: float(row["log2_expression"])
        for row in read_table(examples / "promoters.csv", ",")
    }
    y = np.array([[truth[row["id"]]] for row in rows])
    pred = np.array([[float(row["log2_expression"])] for row in rows])
    pooled = manifest(model)["metrics"]["cv"]["pooled"]
    assert pooled["val_pearson"] == pytest.approx(regression_metrics(y, pred)["pearson"], abs=1e-6)

    ss = tmp_path / "ss.bsnn"
    r = cli(
        "train",
        examples / "ss_train.fasta",
        examples / "ss_train_ss3.fasta",
        "-o",
        ss,
        "--position-mask",
        examples / "ss_train_mask.fasta",
        *CNN,
        "--epochs",
        "2",
        "--cv",
        "3",
    )
    assert r.code == 0, r.err
    m = manifest(ss)
    assert m["ensemble"] == 3 and m["task"]["kind"] == "per-position"
    assert 0.3 < m["metrics"]["cv"]["pooled"]["val_accuracy"] < 1
    assert not (tmp_path / "ss.oof.tsv").exists()  # per residue: metrics only

    lm = tmp_path / "lm.bsnn"
    r = cli(
        "train",
        examples / "hemolytic.fasta",
        "--task",
        "language-model",
        "-o",
        lm,
        "--arch",
        "gru",
        "--hidden-size",
        "16",
        "--epochs",
        "1",
        "--cv",
        "2",
        "--threads",
        "1",
    )
    assert r.code == 0, r.err
    pooled = manifest(lm)["metrics"]["cv"]["pooled"]
    assert 1 < pooled["val_perplexity"] < 25  # below a uniform guess over 21 symbols


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--val-fasta", "{fasta}", "--val-labels", "{labels}"],
            "--cv holds out each fold in turn for validation: drop --val-fasta/--val-labels",
        ),
        (
            ["--ensemble", "2"],
            "--cv trains one model per fold already (an ensemble of folds): drop --ensemble",
        ),
        (["--cv", "1"], "--cv must be 0 (off) or from 2 to 64"),
    ],
)
def test_cv_usage_errors(
    cli, examples: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    fasta, labels = examples / "hemolytic.fasta", examples / "hemolytic.csv"
    args = [a.format(fasta=fasta, labels=labels) for a in extra]
    r = cli("train", fasta, labels, "-o", tmp_path / "m.bsnn", "--cv", "3", *args)
    assert r.code == 2 and message in r.err, r.err
    assert not (tmp_path / "m.bsnn").exists() and not (tmp_path / "m.oof.tsv").exists()


@pytest.mark.slow
def test_a_killed_cross_validation_resumes_and_skips_the_finished_folds(
    cli, examples: Path, tmp_path: Path
) -> None:
    args = [*CNN, "--epochs", "6", "--patience", "0", "--cv", "3", "--seed", "5"]
    fasta, labels = examples / "hemolytic.fasta", examples / "hemolytic.csv"
    reference = tmp_path / "reference.bsnn"
    assert cli("train", fasta, labels, "-o", reference, *args, "--quiet").code == 0

    model, ckdir = tmp_path / "resumed.bsnn", tmp_path / "ck"
    cmd = [
        sys.executable,
        "-m",
        "bioseqnn",
        "train",
        str(fasta),
        str(labels),
        "-o",
        str(model),
        *args,
        "--checkpoint-dir",
        str(ckdir),
        "--quiet",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = ckdir / "member-2" / FILE_NAME
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None and not second.exists():
            time.sleep(0.02)
        assert proc.poll() is None, "training ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not model.exists() and not (tmp_path / "resumed.oof.tsv").exists()
    first = load_checkpoint(ckdir / "member-1")
    assert first is not None and first.done and first.epoch == 6

    done = run_bioseqnn(
        "train", fasta, labels, "-o", model, *args, "--checkpoint-dir", ckdir, "--resume"
    )
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert "resuming from the checkpoint of epoch 6" in err  # fold 1: nothing left to train
    assert "fold 1  epoch" not in err and "fold 3  epoch 6/6" in err
    expected, got = load_file(str(reference)), load_file(str(model))
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
    assert (tmp_path / "resumed.oof.tsv").read_text() == (
        tmp_path / "reference.oof.tsv"
    ).read_text()
