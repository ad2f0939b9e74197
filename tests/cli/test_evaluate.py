"""`bioseqnn evaluate`: every metric of the task, checked against scikit-learn."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from bioseqnn.ops.evaluate import evaluate

sk = pytest.importorskip("sklearn.metrics")
stats = pytest.importorskip("scipy.stats")


def _read_table(path: Path, delimiter: str) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter=delimiter))


def _predictions(cli, model: Path, fasta: Path, tmp_path: Path) -> list[dict[str, str]]:
    out = tmp_path / "pred.tsv"
    assert cli("predict", model, fasta, "-o", out, "--quiet").code == 0
    return _read_table(out, "\t")


@pytest.fixture(scope="module")
def ncrna_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny, barely trained 13-class GRU: enough to check every multiclass number."""
    from bioseqnn.cli import main

    root = Path(__file__).resolve().parents[2] / "example_data"
    out = tmp_path_factory.mktemp("models") / "ncrna.bsnn"
    assert (
        main(
            [
                "train",
                str(root / "ncrna_train.fasta"),
                str(root / "ncrna_train.csv"),
                "-o",
                str(out),
                "--epochs",
                "1",
                "--arch",
                "gru",
                "--hidden-size",
                "8",
                "--quiet",
            ]
        )
        == 0
    )
    return out


def test_binary_metrics_equal_sklearn_on_the_predictions(
    cli, hemolytic_model, examples, tmp_path
) -> None:
    fasta, labels = examples / "hemolytic.fasta", examples / "hemolytic.csv"
    result = cli("evaluate", hemolytic_model, fasta, labels, "-o", tmp_path / "m.json", "--quiet")
    assert result.code == 0, result.err
    assert result.out == ""  # the JSON went to the file
    doc = json.loads((tmp_path / "m.json").read_text())

    truth = {r["id"]: r["hemolytic"] for r in _read_table(labels, ",")}
    rows = _predictions(cli, hemolytic_model, fasta, tmp_path)
    y = np.array([int(truth[r["id"]]) for r in rows])
    p1 = np.array([float(r["prob_1"]) for r in rows])
    pred = np.array([int(r["predicted"]) for r in rows])

    m = doc["metrics"]
    assert doc["task"] == "binary" and doc["records"] == 1104 == len(rows)
    assert doc["classes"] == ["0", "1"]
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y, pred))
    assert m["mcc"] == pytest.approx(sk.matthews_corrcoef(y, pred))
    assert m["f1"] == pytest.approx(sk.f1_score(y, pred, average="macro"))
    # predictions are rounded to 6 significant digits in the TSV
    assert m["auroc"] == pytest.approx(sk.roc_auc_score(y, p1), abs=2e-4)
    assert m["auprc"] == pytest.approx(sk.average_precision_score(y, p1), abs=2e-4)
    assert m["loss"] == pytest.approx(sk.log_loss(y, p1), abs=1e-4)

    precision, recall, f1, support = sk.precision_recall_fscore_support(y, pred, zero_division=0)
    for c, name in enumerate(["0", "1"]):
        row = doc["per_class"][name]
        assert row["precision"] == pytest.approx(precision[c])
        assert row["recall"] == pytest.approx(recall[c])
        assert row["f1"] == pytest.approx(f1[c])
        assert row["support"] == support[c]
    assert support.tolist() == [582, 522]
    cm = doc["confusion_matrix"]
    assert cm["labels"] == ["0", "1"]
    assert cm["matrix"] == sk.confusion_matrix(y, pred).tolist()


def test_json_goes_to_stdout_and_the_tables_to_stderr(cli, hemolytic_model, examples) -> None:
    result = cli(
        "evaluate", hemolytic_model, examples / "hemolytic.fasta", examples / "hemolytic.csv"
    )
    assert result.code == 0, result.err
    doc = json.loads(result.out)  # stdout holds nothing but the JSON document
    assert doc["dataset"] == "hemolytic.fasta + hemolytic.csv"
    assert "per class" in result.err and "confusion matrix" in result.err
    assert f"{doc['metrics']['accuracy']:.4f}" in result.err
    assert "balanced_accuracy" in result.err


def test_multiclass_per_class_scores_and_confusion(cli, ncrna_model, examples, tmp_path) -> None:
    fasta, labels = examples / "ncrna_test.fasta", examples / "ncrna_test.csv"
    result = cli("evaluate", ncrna_model, fasta, labels, "-o", tmp_path / "m.json", "-q")
    assert result.code == 0, result.err
    doc = json.loads((tmp_path / "m.json").read_text())
    truth = {r["id"]: r["family"] for r in _read_table(labels, ",")}
    rows = _predictions(cli, ncrna_model, fasta, tmp_path)
    classes = doc["classes"]
    assert len(classes) == 13 and doc["records"] == 260
    y = np.array([classes.index(truth[r["id"]]) for r in rows])
    pred = np.array([classes.index(r["predicted"]) for r in rows])
    prob = np.array([[float(r[f"prob_{c}"]) for c in classes] for r in rows])

    m = doc["metrics"]
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    assert m["mcc"] == pytest.approx(sk.matthews_corrcoef(y, pred))
    assert m["f1"] == pytest.approx(
        sk.f1_score(y, pred, average="macro", labels=np.unique(np.r_[y, pred]))
    )
    assert m["auroc"] == pytest.approx(sk.roc_auc_score(y, prob, multi_class="ovr"), abs=1e-3)
    precision, recall, f1, support = sk.precision_recall_fscore_support(
        y, pred, labels=list(range(13)), zero_division=0
    )
    for c, name in enumerate(classes):
        row = doc["per_class"][name]
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx(
            (precision[c], recall[c], f1[c])
        )
        assert row["support"] == support[c] == 20
    matrix = np.array(doc["confusion_matrix"]["matrix"])
    assert matrix.shape == (13, 13) and matrix.sum() == 260
    np.testing.assert_array_equal(matrix, sk.confusion_matrix(y, pred, labels=list(range(13))))


def test_regression_metrics_equal_scipy_and_sklearn(
    cli, promoter_model, examples, tmp_path
) -> None:
    fasta, labels = examples / "promoters.fasta", examples / "promoters.csv"
    result = cli("evaluate", promoter_model, fasta, labels, "-o", tmp_path / "m.json", "-q")
    assert result.code == 0, result.err
    doc = json.loads((tmp_path / "m.json").read_text())
    truth = {r["id"]: float(r["log2_expression"]) for r in _read_table(labels, ",")}
    rows = _predictions(cli, promoter_model, fasta, tmp_path)
    y = np.array([truth[r["id"]] for r in rows])
    p = np.array([float(r["log2_expression"]) for r in rows])
    m = doc["metrics"]
    assert doc["task"] == "regression" and doc["records"] == 2000
    assert set(m) >= {"pearson", "spearman", "r2", "mae", "rmse", "mse", "loss"}
    assert m["pearson"] == pytest.approx(stats.pearsonr(p, y)[0], abs=1e-4)
    assert m["spearman"] == pytest.approx(stats.spearmanr(p, y)[0], abs=1e-3)
    assert m["r2"] == pytest.approx(sk.r2_score(y, p), abs=1e-4)
    assert m["mae"] == pytest.approx(sk.mean_absolute_error(y, p), abs=1e-4)
    assert m["rmse"] == pytest.approx(np.sqrt(sk.mean_squared_error(y, p)), abs=1e-4)
    assert doc["per_target"]["log2_expression"]["r2"] == pytest.approx(m["r2"])


@pytest.mark.slow
def test_each_headline_metric_has_its_constant_prediction_beside_it(
    cli, hemolytic_model, promoter_model, ncrna_model, examples, tmp_path
) -> None:
    """The baseline is what always answering the most common class (or the mean) scores."""
    doc = json.loads(
        cli(
            "evaluate",
            hemolytic_model,
            examples / "hemolytic.fasta",
            examples / "hemolytic.csv",
            "-q",
        ).out
    )
    base = doc["baseline"]["metrics"]
    y = np.array([int(r["hemolytic"]) for r in _read_table(examples / "hemolytic.csv", ",")])
    majority = np.bincount(y).max() / len(y)  # 582 of 1104
    assert base["accuracy"] == pytest.approx(majority) and base["mcc"] == 0.0
    assert base["balanced_accuracy"] == 0.5 and base["auroc"] == 0.5
    assert base["auprc"] == pytest.approx(y.mean())  # precision of a constant score
    shares = np.bincount(y) / len(y)
    assert base["loss"] == pytest.approx(-(shares * np.log(shares)).sum())
    assert doc["baseline"]["what"].startswith("always the most common class")
    result = cli(
        "evaluate",
        hemolytic_model,
        examples / "hemolytic.fasta",
        examples / "hemolytic.csv",
        "-o",
        tmp_path / "m.json",
    )
    assert "constant prediction" in result.err and f"{majority:.4f}" in result.err

    doc = json.loads(
        cli(
            "evaluate",
            ncrna_model,
            examples / "ncrna_test.fasta",
            examples / "ncrna_test.csv",
            "-q",
        ).out
    )
    assert doc["baseline"]["metrics"]["accuracy"] == pytest.approx(1 / 13)  # 20 of each
    assert doc["baseline"]["metrics"]["balanced_accuracy"] == pytest.approx(1 / 13)

    doc = json.loads(
        cli(
            "evaluate",
            promoter_model,
            examples / "promoters.fasta",
            examples / "promoters.csv",
            "-q",
        ).out
    )
    t = np.array(
        [float(r["log2_expression"]) for r in _read_table(examples / "promoters.csv", ",")]
    )
    base = doc["baseline"]["metrics"]
    assert base["r2"] == pytest.approx(0.0, abs=1e-12) and base["pearson"] == 0.0
    assert base["mse"] == pytest.approx(t.var()) and base["rmse"] == pytest.approx(t.std())
    assert base["mae"] == pytest.approx(np.abs(t - t.mean()).mean())


def test_library_call_returns_arrays_behind_the_numbers(hemolytic_model, examples) -> None:
    ev = evaluate(
        hemolytic_model, examples / "hemolytic.fasta", examples / "hemolytic.csv", device="cpu"
    )
    assert ev.records == 1104 and ev.out.shape == (1104, 2)
    np.testing.assert_allclose(ev.out.sum(axis=1), 1.0, atol=1e-6)
    assert ev.confusion is not None and ev.confusion.sum() == 1104
    assert ev.metrics["accuracy"] == pytest.approx(np.mean(ev.out.argmax(1) == ev.y))


def test_a_class_unknown_to_the_model_is_a_data_error(
    cli, hemolytic_model, examples, tmp_path
) -> None:
    labels = tmp_path / "labels.csv"
    text = (examples / "hemolytic.csv").read_text().splitlines()
    text[5] = text[5].rsplit(",", 1)[0] + ",2"
    labels.write_text("\n".join(text) + "\n")
    out = tmp_path / "m.json"
    result = cli("evaluate", hemolytic_model, examples / "hemolytic.fasta", labels, "-o", out)
    assert result.code == 1
    assert "line 6" in result.err and "'2' was not seen in training" in result.err
    assert not out.exists() and list(tmp_path.iterdir()) == [labels]
    assert "Traceback" not in result.err


def test_missing_target_column_and_unmatched_ids(cli, hemolytic_model, examples, tmp_path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("id,other\npeptide_pm_1,1\n")
    result = cli("evaluate", hemolytic_model, examples / "hemolytic.fasta", labels)
    assert result.code == 1 and "hemolytic" in result.err and result.out == ""
    labels.write_text("id,hemolytic\npeptide_pm_1,1\npeptide_pm_2,0\n")
    result = cli("evaluate", hemolytic_model, examples / "hemolytic.fasta", labels)
    assert result.code == 1 and "missing from" in result.err
    result = cli(
        "evaluate",
        hemolytic_model,
        examples / "hemolytic.fasta",
        labels,
        "--ignore-unmatched",
        "-q",
    )
    assert result.code == 0, result.err
    assert json.loads(result.out)["records"] == 2


def test_dna_under_a_protein_model_is_refused(cli, hemolytic_model, examples, tmp_path) -> None:
    ids = [
        line[1:].split()[0]
        for line in (examples / "promoters.fasta").read_text().split()
        if line.startswith(">")
    ]
    labels = tmp_path / "labels.csv"
    labels.write_text("id,hemolytic\n" + "".join(f"{x},{i % 2}\n" for i, x in enumerate(ids)))
    result = cli("evaluate", hemolytic_model, examples / "promoters.fasta", labels)
    assert result.code == 1
    assert "look like dna but the model was trained on protein" in result.err


def test_plots_without_matplotlib_fail_early_with_the_install_hint(
    cli, hemolytic_model, examples, tmp_path, monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    out = tmp_path / "m.json"
    result = cli(
        "evaluate",
        hemolytic_model,
        examples / "hemolytic.fasta",
        examples / "hemolytic.csv",
        "-o",
        out,
        "--plots",
        tmp_path / "plots",
    )
    assert result.code == 2
    assert "pip install 'bioseqnn[plots]'" in result.err
    assert not out.exists()
    # without --plots the command does not need matplotlib at all
    result = cli(
        "evaluate",
        hemolytic_model,
        examples / "hemolytic.fasta",
        examples / "hemolytic.csv",
        "-o",
        out,
        "-q",
    )
    assert result.code == 0 and out.exists()


@pytest.mark.slow
def test_many_classes_keep_the_confusion_matrix_sparse_and_the_table_short(
    cli, tmp_path: Path
) -> None:
    """A 10,000-class model's evaluation took 5.7 GB and 176 s and wrote a 1.1 GB JSON,
    300 MB of it the dense matrix, beside a 10,000-row table on stderr. Above 1,000
    classes the JSON holds the matrix's nonzero cells, the same counts, and the table
    its first 100 classes."""
    from bioseqnn.ops.evaluate import DENSE_CONFUSION, TABLE_CLASSES

    k = DENSE_CONFUSION + 200
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), 24)) for _ in range(2 * k)]
    (tmp_path / "s.fa").write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
    labels = "id,y\n" + "".join(f"s{i},c{i % k:04d}\n" for i in range(2 * k))
    (tmp_path / "l.csv").write_text(labels)
    data = [tmp_path / "s.fa", tmp_path / "l.csv"]
    r = cli(
        "train",
        *data,
        "-o",
        tmp_path / "m.bsnn",
        "--task",
        "multiclass",
        "--arch",
        "cnn",
        "--channels",
        "8",
        "--kernel-sizes",
        "3",
        "--epochs",
        "1",
        "--val-fraction",
        "0",
        "-q",
    )
    assert r.code == 0, r.err
    r = cli("evaluate", tmp_path / "m.bsnn", *data, "-o", tmp_path / "e.json")
    assert r.code == 0, r.err
    doc = json.loads((tmp_path / "e.json").read_text())
    cm = doc["confusion_matrix"]
    assert "matrix" not in cm and len(cm["labels"]) == k
    cells = np.array(cm["nonzero"])
    assert (cells[:, 2] > 0).all() and cells[:, 2].sum() == 2 * k
    dense = np.zeros((k, k), np.int64)
    dense[cells[:, 0], cells[:, 1]] = cells[:, 2]
    assert dense.sum(axis=1).tolist() == [2] * k  # each class's two records
    per = doc["per_class"]
    assert len(per) == k
    assert [per[c]["support"] for c in cm["labels"]] == [2] * k
    assert [per[c]["recall"] for c in cm["labels"]] == pytest.approx(np.diag(dense) / 2, abs=1e-12)
    shown = [line for line in r.err.splitlines() if line.startswith(("│ c0", "│ c1"))]
    assert len(shown) == TABLE_CLASSES
    assert f"the first {TABLE_CLASSES} of {k:,}; the JSON (-o) holds every one" in r.err
