"""Task detection, label encoding, losses and output rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bioseqnn.errors import DataError, UsageError
from bioseqnn.tasks import TaskSpec, detect_task


@pytest.mark.parametrize(
    ("columns", "kind", "classes"),
    [
        ([["0", "1", "1", "0"]], "binary", ["0", "1"]),
        ([["pos", "neg", "pos"]], "binary", ["neg", "pos"]),
        ([["tRNA", "5S_rRNA", "miRNA"]], "multiclass", ["5S_rRNA", "miRNA", "tRNA"]),
        ([["10", "2", "1", "2"]], "multiclass", ["1", "2", "10"]),
        ([["0.5", "1.25", "3"]], "regression", []),
        ([[str(i) for i in range(20)]], "regression", []),
        ([["0", "1"], ["1", "1"]], "multilabel", []),
        ([["0.5", "1"], ["2", "3"]], "regression", []),
    ],
)
def test_detection(columns: list[list[str]], kind: str, classes: list[str]) -> None:
    targets = [f"t{i}" for i in range(len(columns))]
    spec, reason = detect_task(targets, columns, None)
    assert spec.kind == kind and spec.classes == classes and reason


def test_forced_task_overrides_detection_and_is_checked() -> None:
    spec, _ = detect_task(["y"], [["1", "2", "3"]], "regression")
    assert spec.kind == "regression"
    with pytest.raises(DataError, match="needs two classes"):
        detect_task(["y"], [["a", "b", "c"]], "binary")
    with pytest.raises(UsageError, match="--task must be one of"):
        detect_task(["y"], [["a", "b"]], "ranking")


def test_single_class_is_an_error() -> None:
    with pytest.raises(DataError, match="single class"):
        detect_task(["y"], [["a", "a"]], None)


def test_regression_labels_reject_nan_and_inf_naming_the_place() -> None:
    spec = TaskSpec("regression", ["y"])
    with pytest.raises(DataError, match=r"labels.csv: line 3.*'inf' is not finite"):
        spec.encode_labels([["1"], ["inf"]], ["labels.csv: line 2", "labels.csv: line 3"])
    with pytest.raises(DataError, match="'nan' is not finite"):
        spec.encode_labels([["nan"]], ["x"])


def test_regression_outputs_are_in_original_units() -> None:
    spec = TaskSpec("regression", ["y"])
    raw = np.array([[1.0], [3.0], [5.0]], dtype=np.float32)
    spec.fit_scaling(raw)
    scaled = spec.encode_labels([["1"], ["3"], ["5"]], ["a", "b", "c"])
    assert scaled.mean() == pytest.approx(0.0, abs=1e-6)
    back = spec.outputs(torch.from_numpy(scaled)).numpy()
    np.testing.assert_allclose(back, raw, rtol=1e-6)


def test_binary_rows_keep_class_spelling_and_probabilities_sum_to_one() -> None:
    spec = TaskSpec("binary", ["y"], classes=["Non-hemolytic", "Hemolytic"])
    out = spec.outputs(torch.tensor([[2.0], [-1.0]])).numpy()
    np.testing.assert_allclose(out.sum(axis=1), [1.0, 1.0], rtol=1e-6)
    rows = spec.format_rows(out)
    assert rows[0][0] == "Hemolytic" and rows[1][0] == "Non-hemolytic"
    assert spec.columns() == ["predicted", "prob_Non-hemolytic", "prob_Hemolytic"]


def test_class_weights_change_the_binary_loss() -> None:
    logits, y = torch.tensor([[0.3], [-0.2], [1.0]]), torch.tensor([1, 0, 0])
    plain = TaskSpec("binary", ["y"], classes=["0", "1"]).loss(logits, y)
    weighted = TaskSpec("binary", ["y"], classes=["0", "1"], class_weights=[1.0, 1.0]).loss(
        logits, y
    )
    assert float(plain) == pytest.approx(float(weighted), rel=1e-6)
    heavy = TaskSpec("binary", ["y"], classes=["0", "1"], class_weights=[1.0, 5.0]).loss(logits, y)
    assert float(heavy) != pytest.approx(float(plain), rel=1e-3)


@pytest.mark.slow
def test_prediction_rows_are_formatted_one_at_a_time() -> None:
    """A chunk of 4,096 records of a 10,000-class model was formatted whole before its
    first row was written: 40 million strings, 3.3 GB. rows() yields the same cells as
    format_rows() one row at a time, so the strings held stay those of one row."""
    import tracemalloc

    classes = [f"c{i}" for i in range(2000)]
    task = TaskSpec("multiclass", ["y"], classes=classes)
    out = np.random.default_rng(0).dirichlet(np.ones(2000), size=128).astype(np.float32)
    assert list(task.rows(out[:5])) == task.format_rows(out[:5])
    tracemalloc.start()
    try:
        widest = max(sum(len(c) for c in row) for row in task.rows(out))
        _, lazy = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        rows = task.format_rows(out)
        _, whole = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(rows) == 128 and widest > 0
    # one row's 2,001 strings against 128 rows' (about 15 MB)
    assert lazy < 2_000_000 < 10_000_000 < whole
