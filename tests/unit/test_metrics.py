"""bioseqnn.metrics (numpy) checked against scikit-learn and scipy on random and tied data."""

from __future__ import annotations

import numpy as np
import pytest

from bioseqnn import metrics

sk = pytest.importorskip("sklearn.metrics")
stats = pytest.importorskip("scipy.stats")


def _classification_case(seed: int, k: int, n: int = 300, ties: bool = False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    if ties:
        logits = np.round(logits, 1)  # many equal scores
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, prob


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("ties", [False, True])
def test_binary_metrics_match_sklearn(seed: int, ties: bool) -> None:
    y, prob = _classification_case(seed, 2, ties=ties)
    pred = prob.argmax(axis=1)
    got = metrics.classification_metrics(y, prob)
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    assert got["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y, pred))
    assert got["mcc"] == pytest.approx(sk.matthews_corrcoef(y, pred))
    assert got["f1"] == pytest.approx(sk.f1_score(y, pred, average="macro"))
    assert got["auroc"] == pytest.approx(sk.roc_auc_score(y, prob[:, 1]))
    assert got["auprc"] == pytest.approx(sk.average_precision_score(y, prob[:, 1]))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("k", [3, 13])
def test_multiclass_metrics_match_sklearn(seed: int, k: int) -> None:
    y, prob = _classification_case(seed, k, n=600)
    pred = prob.argmax(axis=1)
    got = metrics.classification_metrics(y, prob)
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    assert got["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y, pred))
    assert got["mcc"] == pytest.approx(sk.matthews_corrcoef(y, pred))
    assert got["f1"] == pytest.approx(sk.f1_score(y, pred, average="macro"))
    assert got["auroc"] == pytest.approx(sk.roc_auc_score(y, prob, multi_class="ovr"))
    onehot = np.eye(k)[y]
    assert got["auprc"] == pytest.approx(sk.average_precision_score(onehot, prob, average="macro"))


@pytest.mark.parametrize("k", [2, 5])
def test_per_class_scores_and_confusion_match_sklearn(k: int) -> None:
    y, prob = _classification_case(3, k)
    pred = prob.argmax(axis=1)
    pred[:5] = k - 1  # make sure some class is over-predicted
    got = metrics.per_class_scores(y, pred, k)
    p, r, f, s = sk.precision_recall_fscore_support(y, pred, labels=list(range(k)), zero_division=0)
    np.testing.assert_allclose(got["precision"], p)
    np.testing.assert_allclose(got["recall"], r)
    np.testing.assert_allclose(got["f1"], f)
    np.testing.assert_array_equal(got["support"], s)
    np.testing.assert_array_equal(
        metrics.confusion(y, pred, k), sk.confusion_matrix(y, pred, labels=list(range(k)))
    )


def test_per_class_scores_of_a_never_predicted_class_are_zero_as_in_sklearn() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 0, 1, 0, 1, 1])  # class 2 never predicted, never right
    got = metrics.per_class_scores(y, pred, 3)
    assert got["precision"][2] == 0.0 and got["recall"][2] == 0.0 and got["f1"][2] == 0.0
    p, r, f, _ = sk.precision_recall_fscore_support(y, pred, zero_division=0)
    np.testing.assert_allclose(got["f1"], f)


@pytest.mark.parametrize("ties", [False, True])
def test_roc_curve_matches_sklearn(ties: bool) -> None:
    y, prob = _classification_case(4, 2, ties=ties)
    fpr, tpr, thr = metrics.roc_curve(y, prob[:, 1])
    sfpr, stpr, sthr = sk.roc_curve(y, prob[:, 1], drop_intermediate=False)
    np.testing.assert_allclose(fpr, sfpr)
    np.testing.assert_allclose(tpr, stpr)
    np.testing.assert_allclose(thr[1:], sthr[1:])
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert area == pytest.approx(sk.roc_auc_score(y, prob[:, 1]))


@pytest.mark.parametrize("ties", [False, True])
def test_pr_curve_matches_sklearn(ties: bool) -> None:
    y, prob = _classification_case(5, 2, ties=ties)
    precision, recall, thr = metrics.pr_curve(y, prob[:, 1])
    sp, sr, sthr = sk.precision_recall_curve(y, prob[:, 1])
    # scikit-learn orders by increasing threshold and ends with (recall 0, precision 1).
    np.testing.assert_allclose(precision, sp[::-1])
    np.testing.assert_allclose(recall, sr[::-1])
    np.testing.assert_allclose(thr, sthr[::-1])


def test_auroc_of_perfect_and_reversed_scores() -> None:
    y = np.array([0, 0, 1, 1])
    assert metrics.auroc(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert metrics.auroc(y, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert np.isnan(metrics.auroc(np.zeros(4, int), np.arange(4.0)))


@pytest.mark.parametrize("seed", [0, 1])
def test_regression_metrics_match_sklearn_and_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(5, 2, size=(400, 2))
    pred = y + rng.normal(0, 1, size=y.shape)
    pred[:, 1] = np.round(pred[:, 1])  # ties for Spearman
    detail = metrics.regression_detail(y, pred)
    for t, row in enumerate(detail):
        assert row["r2"] == pytest.approx(sk.r2_score(y[:, t], pred[:, t]))
        assert row["mae"] == pytest.approx(sk.mean_absolute_error(y[:, t], pred[:, t]))
        assert row["mse"] == pytest.approx(sk.mean_squared_error(y[:, t], pred[:, t]))
        assert row["rmse"] == pytest.approx(np.sqrt(sk.mean_squared_error(y[:, t], pred[:, t])))
        assert row["pearson"] == pytest.approx(stats.pearsonr(pred[:, t], y[:, t])[0])
        assert row["spearman"] == pytest.approx(stats.spearmanr(pred[:, t], y[:, t])[0])
    summary = metrics.regression_metrics(y, pred)
    assert summary["r2"] == pytest.approx(sk.r2_score(y, pred, multioutput="uniform_average"))
    assert set(summary) == {"mse", "mae", "pearson", "spearman", "r2"}


def test_multilabel_metrics_undefined_for_every_label_stay_quiet() -> None:
    """Every label with one class in the data: AUROC is undefined (NaN) for each, and the
    average over labels is NaN without a numpy warning (the suite turns warnings into
    errors); defined metrics still average."""
    y = np.zeros((6, 2), dtype=np.int64)
    prob = np.full((6, 2), 0.2)
    out = metrics.classification_metrics(y, prob, multilabel=True)
    assert np.isnan(out["auroc"]) and out["accuracy"] == 1.0


def test_constant_targets_leave_correlation_and_r2_undefined() -> None:
    """Targets all 5.0, standardised in float32 and back (as a regression's outputs and
    labels are), differ in their last bits: R2 had come out as -1.35e30."""
    rng = np.random.default_rng(0)
    y = np.full(20, 5.0, np.float32)
    y[::3] = np.nextafter(np.float32(5.0), np.float32(6.0))  # rounding noise
    pred = rng.normal(5, 1, 20)
    got = metrics.regression_metrics(y[:, None].astype(np.float64), pred[:, None])
    assert np.isnan([got["pearson"], got["spearman"], got["r2"]]).all()
    assert got["mse"] == pytest.approx(np.mean((pred - y) ** 2))
    # a spread above rounding is data: defined
    y2 = y.astype(np.float64) + np.linspace(0, 1e-3, 20)
    got = metrics.regression_metrics(y2[:, None], pred[:, None])
    assert np.isfinite([got["pearson"], got["spearman"], got["r2"]]).all()
    # a constant prediction has no correlation either; R2 is defined (it is poor)
    got = metrics.regression_metrics(y2[:, None], np.full((20, 1), 5.0))
    assert np.isnan(got["pearson"]) and got["r2"] < 0
