"""Real training runs on each example set must beat a trivial baseline on held-back records."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from bioseqnn.io.sniff import read_sequences


def split_files(
    examples: Path, stem: str, tmp: Path, test_fraction: float, seed: int = 0
) -> tuple[Path, Path, Path, dict[str, str]]:
    """Write train FASTA/CSV and test FASTA from an example set; return test labels by id."""
    records = list(read_sequences(examples / f"{stem}.fasta"))
    with open(examples / f"{stem}.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    header, labels = rows[0], {r[0]: r[1] for r in rows[1:]}
    rng = np.random.default_rng(seed)
    test_ids = {
        records[i].id for i in rng.permutation(len(records))[: int(len(records) * test_fraction)]
    }
    paths = tmp / "train.fa", tmp / "train.csv", tmp / "test.fa"
    with open(paths[0], "w") as tr, open(paths[2], "w") as te:
        for r in records:
            (te if r.id in test_ids else tr).write(f">{r.id}\n{r.seq.decode()}\n")
    with open(paths[1], "w") as fh:
        fh.write(",".join(header[:2]) + "\n")
        fh.writelines(f"{r.id},{labels[r.id]}\n" for r in records if r.id not in test_ids)
    return *paths, {i: labels[i] for i in test_ids}


def predictions(cli, model: Path, fasta: Path) -> dict[str, list[str]]:
    r = cli("predict", model, fasta, "--quiet")
    assert r.code == 0, r.err
    rows = list(csv.reader(r.out.splitlines(), delimiter="\t"))
    return {row[0]: row[1:] for row in rows[1:]}


@pytest.mark.slow
def test_lstm_classifies_hemolytic_peptides(cli, examples: Path, tmp_path: Path) -> None:
    fa, lab, test_fa, truth = split_files(examples, "hemolytic", tmp_path, 0.2)
    model = tmp_path / "m.bsnn"
    r = cli(
        "train",
        fa,
        lab,
        "-o",
        model,
        "--arch",
        "lstm",
        "--hidden-size",
        "64",
        "--epochs",
        "8",
        "--lr",
        "3e-3",
        "--quiet",
    )
    assert r.code == 0, r.err
    pred = predictions(cli, model, test_fa)
    y = np.array([truth[i] for i in pred])
    accuracy = float(np.mean(np.array([p[0] for p in pred.values()]) == y))
    majority = max(np.mean(y == "0"), np.mean(y == "1"))
    print(f"hemolytic held-out accuracy {accuracy:.3f} (majority class {majority:.3f})")
    assert accuracy > majority + 0.15


@pytest.mark.slow
def test_gru_classifies_ncrna_families(cli, examples: Path, tmp_path: Path) -> None:
    model = tmp_path / "m.bsnn"
    r = cli(
        "train",
        examples / "ncrna_train.fasta",
        examples / "ncrna_train.csv",
        "-o",
        model,
        "--arch",
        "gru",
        "--bidirectional",
        "--hidden-size",
        "32",
        "--pooling",
        "max",
        "--lr",
        "5e-3",
        "--batch-size",
        "32",
        "--epochs",
        "12",
        "--patience",
        "0",
        "--quiet",
    )
    assert r.code == 0, r.err
    pred = predictions(cli, model, examples / "ncrna_test.fasta")
    with open(examples / "ncrna_test.csv", newline="") as fh:
        truth = {row["id"]: row["family"] for row in csv.DictReader(fh)}
    assert set(pred) == set(truth)
    accuracy = float(np.mean([pred[i][0] == truth[i] for i in truth]))
    print(f"ncRNA test accuracy {accuracy:.3f} (chance 1/13 = 0.077)")
    assert accuracy > 3 / 13


@pytest.mark.slow
def test_gru_regresses_promoter_expression(cli, examples: Path, tmp_path: Path) -> None:
    fa, lab, test_fa, truth = split_files(examples, "promoters", tmp_path, 0.2)
    model = tmp_path / "m.bsnn"
    r = cli(
        "train",
        fa,
        lab,
        "-o",
        model,
        "--arch",
        "gru",
        "--bidirectional",
        "--hidden-size",
        "32",
        "--pooling",
        "mean",
        "--lr",
        "3e-3",
        "--epochs",
        "6",
        "--patience",
        "0",
        "--quiet",
    )
    assert r.code == 0, r.err
    pred = predictions(cli, model, test_fa)
    ids = sorted(pred)
    p = np.array([float(pred[i][0]) for i in ids])
    y = np.array([float(truth[i]) for i in ids])
    r_val = float(np.corrcoef(p, y)[0, 1])
    print(f"promoters held-out Pearson r {r_val:.3f} on {len(ids)} records")
    # Predictions are in the label's units, around its mean.
    assert abs(p.mean() - y.mean()) < 1.0
    assert r_val > 0.05
