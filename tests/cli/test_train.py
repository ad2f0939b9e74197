"""Training one can trust: tasks, class weights, monitors, schedules, logs, NaN, manifest."""

from __future__ import annotations

import csv
import json
import math
import re
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from bioseqnn.engine.checkpoint import load_checkpoint
from bioseqnn.engine.schedules import Schedule, improved, minimised
from bioseqnn.engine.train import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    find_imbalance,
    resolve_class_weights,
    resolve_monitor,
)
from bioseqnn.tasks import TaskSpec

CNN = [
    "--arch",
    "cnn",
    "--channels",
    "16",
    "--kernel-sizes",
    "9",
    "--dilations",
    "1",
    "--pool-sizes",
    "1",
]


def read_fasta(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for chunk in path.read_text().split(">")[1:]:
        head, *body = chunk.splitlines()
        out[head.split()[0]] = "".join(body)
    return out


def read_table(path: Path, delimiter: str = "\t") -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter=delimiter))


def write_fasta(path: Path, seqs: dict[str, str]) -> Path:
    path.write_text("".join(f">{k}\n{v}\n" for k, v in seqs.items()))
    return path


def manifest(cli, model: Path) -> dict:
    r = cli("info", model, "--json")
    assert r.code == 0, r.err
    return json.loads(r.out)


# --------------------------------------------------------------------------- tasks


def test_multilabel_from_real_rna_sigmoid_outputs_one_column_per_label(
    cli, examples: Path, tmp_path: Path
) -> None:
    # Real ncRNA sequences, three overlapping 0/1 labels read off the data: the family is
    # an rRNA, the family is a self-splicing intron, the GC content is above the median.
    seqs = read_fasta(examples / "ncrna_train.fasta")
    family = {r["id"]: r["family"] for r in read_table(examples / "ncrna_train.csv", ",")}
    keep = {}
    for fam in sorted(set(family.values())):
        keep.update({k: seqs[k] for k in [k for k in seqs if family[k] == fam][:30]})
    gc = {k: sum(v.upper().count(b) for b in "GC") / len(v) for k, v in keep.items()}
    median = statistics.median(gc.values())
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "id,rRNA,intron,gc_rich\n"
        + "".join(
            f"{k},{int(family[k] in ('5S_rRNA', '5_8S_rRNA'))},"
            f"{int(family[k].startswith('Intron'))},{int(gc[k] > median)}\n"
            for k in keep
        )
    )
    fasta = write_fasta(tmp_path / "rna.fasta", keep)
    model = tmp_path / "ml.bsnn"
    r = cli(
        "train",
        fasta,
        labels,
        "-o",
        model,
        *CNN,
        "--epochs",
        "3",
        "--lr",
        "0.01",
        "--class-weight",
        "auto",
    )
    assert r.code == 0, r.err
    assert "task: multilabel (several 0/1 columns" in r.err
    m = manifest(cli, model)
    assert m["task"]["kind"] == "multilabel" and m["task"]["targets"] == [
        "rRNA",
        "intron",
        "gc_rich",
    ]
    # auto weights: negatives / positives per label (2 and 2 of 13 families, half above median)
    w = m["task"]["class_weights"]
    assert 4.5 < w[0] < 6.5 and 4.5 < w[1] < 6.5 and 0.8 < w[2] < 1.25
    history = read_table(tmp_path / "ml.log.tsv")
    assert {f"val_{k}" for k in CLASSIFICATION_METRICS} <= set(history[0])
    assert float(history[-1]["val_auroc"]) > 0.7  # it learns the labels, not just runs

    r = cli("predict", model, fasta, "-o", tmp_path / "p.tsv")
    assert r.code == 0, r.err
    rows = read_table(tmp_path / "p.tsv")
    assert list(rows[0]) == ["id", "prob_rRNA", "prob_intron", "prob_gc_rich"]
    probs = np.array([[float(r[c]) for c in list(r)[1:]] for r in rows])
    assert probs.shape == (len(keep), 3) and ((probs >= 0) & (probs <= 1)).all()
    assert np.abs(probs.sum(axis=1) - 1).max() > 0.1  # independent sigmoids, not a softmax
    from sklearn.metrics import roc_auc_score

    for j, name in enumerate(["rRNA", "intron", "gc_rich"]):
        truth = [int(r[name]) for r in read_table(labels, ",")]
        order = {r["id"]: i for i, r in enumerate(read_table(labels, ","))}
        y = [truth[order[r["id"]]] for r in rows]
        assert roc_auc_score(y, probs[:, j]) > 0.75, name


def test_multi_target_regression_expression_and_log2(cli, examples: Path, tmp_path: Path) -> None:
    rows = read_table(examples / "promoters.csv", ",")[:600]
    labels = tmp_path / "two.csv"
    labels.write_text(
        "id,expression,log2_expression\n"
        + "".join(
            f"{r['id']},{2 ** float(r['log2_expression']):.6g},{r['log2_expression']}\n"
            for r in rows
        )
    )
    seqs = read_fasta(examples / "promoters.fasta")
    fasta = write_fasta(tmp_path / "p.fasta", {r["id"]: seqs[r["id"]] for r in rows})
    model = tmp_path / "reg.bsnn"
    r = cli("train", fasta, labels, "-o", model, *CNN, "--epochs", "2", "--monitor", "val_mae")
    assert r.code == 0, r.err
    assert "task: regression (several numeric columns" in r.err
    m = manifest(cli, model)
    assert m["task"]["targets"] == ["expression", "log2_expression"]
    log2 = np.array([float(r["log2_expression"]) for r in rows])
    # each target standardised with its own training mean and std
    assert m["task"]["target_mean"][1] == pytest.approx(log2.mean(), abs=0.15)
    assert m["task"]["target_mean"][0] == pytest.approx((2**log2).mean(), rel=0.15)
    assert m["metrics"]["monitor"] == "val_mae"
    history = read_table(tmp_path / "reg.log.tsv")
    assert {f"val_{k}" for k in REGRESSION_METRICS} <= set(history[0])
    best = min(history, key=lambda h: float(h["val_mae"]))
    assert m["metrics"]["best_epoch"] == int(best["epoch"])  # mae is minimised

    r = cli("predict", model, fasta, "-o", tmp_path / "p.tsv")
    assert r.code == 0, r.err
    pred = read_table(tmp_path / "p.tsv")
    assert list(pred[0]) == ["id", "expression", "log2_expression"]
    values = np.array([[float(p["expression"]), float(p["log2_expression"])] for p in pred])
    # predictions come back in the units of each target, not standardised
    assert abs(values[:, 1].mean() - log2.mean()) < 1.5
    assert values[:, 0].mean() > 20 * values[:, 1].mean()


# --------------------------------------------------------------------------- class weights


def test_class_weight_values() -> None:
    binary = TaskSpec("binary", ["y"], classes=["0", "1"])
    y = np.array([0] * 90 + [1] * 10)
    rare = find_imbalance(binary, y)
    assert rare is not None and rare.name == "1" and rare.share == pytest.approx(0.1)
    assert resolve_class_weights(binary, "balanced", y) == pytest.approx([100 / 180, 100 / 20])
    assert resolve_class_weights(binary, "auto", y, rare) == pytest.approx([100 / 180, 100 / 20])
    assert resolve_class_weights(binary, "none", y, rare) == []
    assert resolve_class_weights(binary, "1,9", y) == [1.0, 9.0]
    assert resolve_class_weights(binary, "1=4", y) == [1.0, 4.0]
    multi = TaskSpec("multilabel", ["a", "b"])
    ml = np.array([[1, 0], [0, 1], [0, 1], [0, 0]], dtype=np.float32)
    assert resolve_class_weights(multi, "balanced", ml) == [3.0, 1.0]
    from bioseqnn.errors import UsageError

    for bad, message in [
        ("1,2,3", "3 weight(s) for 2 classes"),
        ("x", "not a number"),
        ("2=1", "unknown class '2'"),
        ("0,0", "at least one"),
        ("-1,1", "finite and >= 0"),
    ]:
        with pytest.raises(UsageError, match=re.escape(message)):
            resolve_class_weights(binary, bad, y)
    with pytest.raises(UsageError, match="classification"):
        resolve_class_weights(TaskSpec("regression", ["v"]), "balanced", y)
    # the default (auto) weighs nothing on regression or balanced classes
    assert resolve_class_weights(TaskSpec("regression", ["v"]), "auto", y, None) == []
    even = np.array([0] * 55 + [1] * 45)
    assert find_imbalance(binary, even) is None
    assert resolve_class_weights(binary, "auto", even, None) == []


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ("1e308,1", "--class-weight: 1e308 is more than 1,000,000; give smaller weights"),
        ("safe=2,toxic=1e7", "--class-weight: 1e7 is more than 1,000,000; give smaller weights"),
        ("-1,1", "--class-weight: weights must be finite and >= 0, got -1"),
        ("nan,1", "--class-weight: weights must be finite and >= 0, got nan"),
        ("0,0", "--class-weight: at least one weight must be positive"),
    ],
)
def test_class_weights_that_cannot_train_are_refused_before_reading(
    cli, tmp_path: Path, weights: str, message: str
) -> None:
    """1e308 is finite as a float64 but infinite as float32: training ran and stopped on a
    NaN loss with advice to lower --lr. Negative and NaN weights were refused only after
    the data was read. Every one is now a usage error before any file is opened (the
    FASTA given here does not exist)."""
    r = cli(
        "train",
        tmp_path / "absent.fa",
        tmp_path / "absent.csv",
        "-o",
        tmp_path / "m.bsnn",
        "--class-weight",
        weights,
    )
    assert r.code == 2
    assert r.err.splitlines() == [f"bioseqnn: error: {message}"]
    assert list(tmp_path.iterdir()) == []


def test_a_kernel_that_spans_only_padding_is_refused(cli, examples: Path, tmp_path: Path) -> None:
    """--kernel-sizes 100000 on peptides of at most 98 residues made no progress in 11
    minutes, inside one torch call that SIGTERM could not stop. A convolution spanning
    more than 2L - 1 positions (L: the longest sequence where the layer reads it) and
    more than 64 is refused once the lengths are known; up to that it trains."""
    data = [examples / "hemolytic.fasta", examples / "hemolytic.csv"]
    common = ["--arch", "cnn", "--channels", "8,8", "--epochs", "1", "-q"]
    r = cli("train", *data, "-o", tmp_path / "a.bsnn", *common, "--kernel-sizes", "100000,5")
    assert r.code == 2
    assert r.err.splitlines() == [
        "bioseqnn: error: --kernel-sizes/--dilations: convolution layer 1 spans 100,000 "
        "positions, but the longest training sequence has 98: a span over 195 reaches only "
        "padding; lower --kernel-sizes or --dilations"
    ]
    r = cli(
        "train",
        *data,
        "-o",
        tmp_path / "b.bsnn",
        *common,
        "--kernel-sizes",
        "9,70",
        "--pool-sizes",
        "4,1",
    )
    assert r.code == 2
    assert r.err.splitlines() == [
        "bioseqnn: error: --kernel-sizes/--dilations: convolution layer 2 spans 70 positions, "
        "but the longest training sequence has 24 there (after the pools before it): a span "
        "over 64 reaches only padding; lower --kernel-sizes or --dilations"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    r = cli("train", *data, "-o", tmp_path / "c.bsnn", *common, "--kernel-sizes", "195,64")
    assert r.code == 0, r.err


def test_imbalance_threshold_and_automatic_monitor() -> None:
    """Rare: under half an even share (25% of two classes, 1/6 of three); the automatic
    monitor is then one a constant predictor cannot score well on."""
    binary = TaskSpec("binary", ["y"], classes=["a", "b"])
    assert find_imbalance(binary, np.array([0] * 75 + [1] * 25)) is None
    assert find_imbalance(binary, np.array([0] * 76 + [1] * 24)) is not None
    three = TaskSpec("multiclass", ["y"], classes=["a", "b", "c"])
    assert find_imbalance(three, np.array([0] * 40 + [1] * 42 + [2] * 18)) is None
    rare = find_imbalance(three, np.array([0] * 45 + [1] * 40 + [2] * 15))
    assert rare is not None and rare.name == "c"
    ml = TaskSpec("multilabel", ["p", "q"])
    labels = np.array([[1, 1]] * 10 + [[1, 0]] * 80 + [[0, 1]] * 10, dtype=np.float32)
    found = find_imbalance(ml, labels)
    assert found is not None and found.name == "p=0" and found.share == pytest.approx(0.1)
    assert find_imbalance(TaskSpec("regression", ["v"]), np.zeros(5)) is None

    assert resolve_monitor("auto", binary, None, True) == "val_loss"
    assert resolve_monitor("auto", binary, rare, True) == "val_auprc"
    assert resolve_monitor("auto", ml, found, True) == "val_auprc"
    assert resolve_monitor("auto", three, rare, True) == "val_mcc"
    assert resolve_monitor("auto", three, rare, False) == "train_loss"
    assert resolve_monitor("val_f1", three, rare, True) == "val_f1"  # given: kept


@pytest.mark.slow
def test_class_weights_raise_minority_recall_on_an_imbalanced_real_subset(
    cli, examples: Path, tmp_path: Path
) -> None:
    """Hemolytic peptides with 1 positive in 12: unweighted training barely finds them."""
    seqs = read_fasta(examples / "hemolytic.fasta")
    label = {r["id"]: r["hemolytic"] for r in read_table(examples / "hemolytic.csv", ",")}
    pos = [k for k in seqs if label[k] == "1"]
    neg = [k for k in seqs if label[k] == "0"]
    cp, cn = int(len(pos) * 0.8), int(len(neg) * 0.8)
    train = neg[:cn] + pos[:cp:10]
    test = neg[cn:] + pos[cp:]
    fasta = write_fasta(tmp_path / "train.fasta", {k: seqs[k] for k in train})
    labels = tmp_path / "train.csv"
    labels.write_text("id,hemolytic\n" + "".join(f"{k},{label[k]}\n" for k in train))
    test_fasta = write_fasta(tmp_path / "test.fasta", {k: seqs[k] for k in test})
    recall = {}
    for weight in ("none", "balanced"):
        model = tmp_path / f"{weight}.bsnn"
        r = cli(
            "train",
            fasta,
            labels,
            "-o",
            model,
            "--arch",
            "cnn",
            "--pool-sizes",
            "3,1",
            "--epochs",
            "3",
            "--lr",
            "0.01",
            "--patience",
            "0",
            "--class-weight",
            weight,
            "--quiet",
        )
        assert r.code == 0, r.err
        r = cli("predict", model, test_fasta, "-o", tmp_path / f"{weight}.tsv")
        assert r.code == 0, r.err
        rows = read_table(tmp_path / f"{weight}.tsv")
        hits = [r["predicted"] == "1" for r in rows if label[r["id"]] == "1"]
        recall[weight] = sum(hits) / len(hits)
        if weight == "balanced":
            w = manifest(cli, model)["task"]["class_weights"]
            assert w[1] / w[0] == pytest.approx((cn) / len(pos[:cp:10]), rel=0.05)
    assert recall["balanced"] > recall["none"] + 0.3, recall


# --------------------------------------------------------------------------- monitor, schedules


def test_direction_of_monitored_metrics() -> None:
    assert minimised("val_loss") and minimised("val_mae") and minimised("train_loss")
    assert not minimised("val_auroc") and not minimised("val_r2") and not minimised("val_mcc")
    assert improved(0.5, 0.6, "val_loss") and not improved(0.5, 0.6, "val_auroc")
    assert not improved(float("nan"), None, "val_auroc") and improved(0.1, None, "val_r2")


def _lrs(
    kind: str,
    epochs: int = 10,
    batches: int = 10,
    warmup: int = 0,
    monitored: list[float] | None = None,
) -> list[float]:
    s = Schedule(kind, 0.1, epochs * batches, warmup, "val_loss", plateau_patience=2)
    out = []
    for e in range(epochs):
        for _ in range(batches):
            out.append(s.lr())
            s.step_batch()
        s.step_epoch(monitored[e] if monitored else 1.0)
    return out


def test_schedules_shapes() -> None:
    assert _lrs("none") == [0.1] * 100
    warm = _lrs("none", warmup=20)
    assert warm[:3] == pytest.approx([0.005, 0.01, 0.015]) and warm[19:] == [0.1] * 81
    cos = _lrs("cosine", warmup=10)
    assert cos[9] == pytest.approx(0.1) and cos[10] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(cos[10:], cos[11:], strict=False)) and cos[-1] < 1e-4
    one = _lrs("onecycle")
    peak = int(np.argmax(one))
    assert peak == 30 and one[0] == pytest.approx(0.1 / 25) and one[-1] < 1e-4
    # plateau: halve after two epochs without a better value
    plateau = _lrs("plateau", monitored=[5, 4, 4, 4, 3, 3, 3, 3, 3, 3])
    assert [plateau[e * 10] for e in range(10)] == pytest.approx(
        [0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.0125]
    )
    s = Schedule("cosine", 0.1, 100, 5)
    for _ in range(37):
        s.step_batch()
    t = Schedule("cosine", 0.1, 100, 5)
    t.load_state_dict(json.loads(json.dumps(s.state_dict())))
    assert t.lr() == s.lr()


@pytest.mark.slow
def test_monitor_picks_and_restores_the_best_epoch(cli, examples: Path, tmp_path: Path) -> None:
    seqs = read_fasta(examples / "hemolytic.fasta")
    rows = read_table(examples / "hemolytic.csv", ",")
    val_ids = {r["id"] for r in rows[::8]}
    train_fa = write_fasta(
        tmp_path / "t.fasta", {k: v for k, v in seqs.items() if k not in val_ids}
    )
    val_fa = write_fasta(tmp_path / "v.fasta", {k: seqs[k] for k in val_ids})
    val_csv = tmp_path / "v.csv"
    val_csv.write_text(
        "id,hemolytic\n"
        + "".join(f"{r['id']},{r['hemolytic']}\n" for r in rows if r["id"] in val_ids)
    )
    model = tmp_path / "m.bsnn"
    r = cli(
        "train",
        train_fa,
        examples / "hemolytic.csv",
        "--ignore-unmatched",
        "--val-fasta",
        val_fa,
        "--val-labels",
        val_csv,
        "-o",
        model,
        "--arch",
        "cnn",
        "--epochs",
        "6",
        "--lr",
        "0.02",
        "--monitor",
        "val_auroc",
        "--patience",
        "2",
        "--schedule",
        "cosine",
        "--warmup-epochs",
        "1",
        "--threads",
        "1",
        "--log",
        tmp_path / "log.jsonl",
    )
    assert r.code == 0, r.err
    history = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    m = manifest(cli, model)
    best = max(history, key=lambda h: h["val_auroc"])
    assert m["metrics"]["best_epoch"] == best["epoch"]
    assert m["metrics"]["best"]["val_auroc"] == pytest.approx(best["val_auroc"])
    assert m["metrics"]["final"]["epoch"] == history[-1]["epoch"]
    if m["metrics"]["stopped_early"]:
        assert len(history) == best["epoch"] + 2
    # the rate at each epoch's end: warmed up to --lr by the end of epoch 1, then cosine decay
    lrs = [h["lr"] for h in history]
    assert lrs[0] == pytest.approx(0.02)
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False))
    # best weights restored: scoring the validation set again gives the best epoch's AUROC
    r = cli("evaluate", model, val_fa, val_csv)
    assert r.code == 0, r.err
    assert json.loads(r.out)["metrics"]["auroc"] == pytest.approx(best["val_auroc"], abs=1e-6)


@pytest.mark.slow
def test_early_stopping_after_patience_epochs_without_a_lower_val_loss(
    cli, examples: Path, tmp_path: Path
) -> None:
    model = tmp_path / "m.bsnn"
    r = cli(
        "train",
        examples / "hemolytic.fasta",
        examples / "hemolytic.csv",
        "-o",
        model,
        "--arch",
        "cnn",
        "--epochs",
        "8",
        "--lr",
        "0.05",
        "--patience",
        "1",
        "--threads",
        "1",
    )
    assert r.code == 0, r.err
    history = read_table(tmp_path / "m.log.tsv")
    losses = [float(h["val_loss"]) for h in history]
    m = manifest(cli, model)["metrics"]
    assert m["stopped_early"] and len(history) < 8 and m["epochs_run"] == len(history)
    assert m["best_epoch"] == 1 + int(np.argmin(losses)) == len(history) - 1
    assert losses[-1] > min(losses)
    assert "early stopping at epoch" in r.err and "no better val_loss for 1 epochs" in r.err


def test_monitor_must_fit_the_task_and_have_validation_data(
    cli, examples: Path, tmp_path: Path
) -> None:
    base = [
        "train",
        examples / "hemolytic.fasta",
        examples / "hemolytic.csv",
        "-o",
        tmp_path / "m.bsnn",
        "--epochs",
        "1",
        "--quiet",
    ]
    r = cli(*base, "--monitor", "val_r2")
    assert r.code == 2 and "cannot monitor 'val_r2' for this task" in r.err
    assert "val_auroc" in r.err and "val_mcc" in r.err
    r = cli(*base, "--monitor", "val_mcc", "--val-fraction", "0")
    assert r.code == 2 and "needs validation data" in r.err
    r = cli(*base, "--schedule", "step")
    assert r.code == 2 and "--schedule must be one of: none, plateau, cosine, onecycle" in r.err
    assert not (tmp_path / "m.bsnn").exists()


# --------------------------------------------------------------------------- failures, manifest


def test_nan_loss_names_epoch_and_batch_and_keeps_the_last_good_checkpoint(
    cli, examples: Path, tmp_path: Path
) -> None:
    # AdamW's decoupled decay with lr * weight_decay = 3 multiplies every weight by -2 per
    # step: the weights grow geometrically until the loss overflows in epoch 2.
    model, ckdir = tmp_path / "m.bsnn", tmp_path / "ck"
    r = cli(
        "train",
        examples / "promoters.fasta",
        examples / "promoters.csv",
        "-o",
        model,
        "--arch",
        "cnn",
        "--channels",
        "8",
        "--kernel-sizes",
        "5",
        "--dilations",
        "1",
        "--pool-sizes",
        "1",
        "--batch-size",
        "128",
        "--lr",
        "1",
        "--weight-decay",
        "3",
        "--grad-clip",
        "0",
        "--epochs",
        "5",
        "--checkpoint-dir",
        ckdir,
    )
    assert r.code == 1
    error = r.err.strip().splitlines()[-1]
    assert error.startswith("bioseqnn: error: the loss became inf at epoch 2, batch ")
    assert f"the checkpoint of epoch 1 in {ckdir} is intact" in error
    assert "Traceback" not in r.err
    assert not model.exists()
    ck = load_checkpoint(ckdir)
    assert ck is not None and ck.epoch == 1 and not ck.done
    assert all(bool(torch.isfinite(t).all()) for t in ck.model.values())
    assert math.isfinite(ck.history[0]["val_loss"])


@pytest.mark.slow
def test_manifest_records_what_reproduces_the_run(cli, examples: Path, tmp_path: Path) -> None:
    import bioseqnn

    args = [
        examples / "hemolytic.fasta",
        examples / "hemolytic.csv",
        *CNN,
        "--epochs",
        "1",
        "--seed",
        "11",
        "--precision",
        "bf16",
        "--quiet",
    ]
    a, b, c = tmp_path / "a.bsnn", tmp_path / "b.bsnn", tmp_path / "c.bsnn"
    assert cli("train", *args, "-o", a).code == 0
    assert cli("train", *args, "-o", b, "--precision", "32").code == 0
    ma, mb = manifest(cli, a), manifest(cli, b)
    assert ma["seed"] == 11 and ma["training"]["seed"] == 11
    assert ma["bioseqnn_version"] == bioseqnn.__version__
    assert ma["torch_version"] == torch.__version__ and ma["device"] == "cpu"
    fp = ma["data"]["fingerprint_sha256"]
    assert len(fp) == 64 and fp == mb["data"]["fingerprint_sha256"]
    # bf16 asks for CUDA autocast; on CPU training stays 32-bit: the same weights
    wa, wb = load_file(str(a)), load_file(str(b))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # other data, other fingerprint
    labels = tmp_path / "flipped.csv"
    rows = (examples / "hemolytic.csv").read_text().splitlines()
    labels.write_text(
        "\n".join(rows[:2] + [rows[2][:-1] + ("0" if rows[2][-1] == "1" else "1")] + rows[3:])
        + "\n"
    )
    assert cli("train", examples / "hemolytic.fasta", labels, *args[2:], "-o", c).code == 0
    assert manifest(cli, c)["data"]["fingerprint_sha256"] != fp
    # 'info' shows them
    r = cli("info", a)
    assert r.code == 0
    for text in ("seed", "11", fp, torch.__version__, "on cpu", f"bioseqnn {bioseqnn.__version__}"):
        assert text in r.out, text


def test_training_settings_from_yaml(cli, examples: Path, tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(
        "training:\n  epochs: 2\n  schedule: cosine\n  class_weight: balanced\n"
        "  monitor: val_mcc\n  warmup_epochs: 0.5\nmodel:\n  arch: cnn\n"
        "  channels: [8]\n  kernel_sizes: [5]\n  dilations: [1]\n"
        "  pool_sizes: [1]\n"
    )
    model = tmp_path / "m.bsnn"
    r = cli(
        "train",
        examples / "hemolytic.fasta",
        examples / "hemolytic.csv",
        "-o",
        model,
        "--config",
        config,
        "--schedule",
        "onecycle",
        "--quiet",
    )
    assert r.code == 0, r.err
    m = manifest(cli, model)
    assert m["training"]["schedule"] == "onecycle"  # the flag overrides the file
    assert m["training"]["class_weight"] == "balanced" and len(m["task"]["class_weights"]) == 2
    assert m["metrics"]["monitor"] == "val_mcc"
    r = cli("config", "--from", model)
    assert r.code == 0 and "schedule: onecycle" in r.out and "monitor: val_mcc" in r.out


# --------------------------------------------------------------------------- GPU


gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("precision", ["bf16", "16-mixed"])
@pytest.mark.parametrize("arch", ["lstm", "cnn", "transformer"])
def test_mixed_precision_on_cuda_trains_and_predicts(
    cli, examples: Path, tmp_path: Path, precision: str, arch: str
) -> None:
    model = tmp_path / "m.bsnn"
    r = cli(
        "train",
        examples / "promoters.fasta",
        examples / "promoters.csv",
        "-o",
        model,
        "--arch",
        arch,
        "--hidden-size",
        "16",
        "--epochs",
        "2",
        "--device",
        "cuda",
        "--precision",
        precision,
        "--checkpoint-dir",
        tmp_path / "ck",
    )
    assert r.code == 0, r.err
    m = manifest(cli, model)
    assert m["device"].startswith("cuda") and m["training"]["precision"] == precision
    assert math.isfinite(m["metrics"]["final"]["val_loss"])
    ck = load_checkpoint(tmp_path / "ck")
    assert ck is not None and ck.rng_cuda
    assert (ck.scaler is not None) == (precision == "16-mixed")
    r = cli(
        "predict", model, examples / "promoters.fasta", "--device", "cuda", "-o", tmp_path / "p.tsv"
    )
    assert r.code == 0, r.err


@pytest.mark.gpu
@gpu
def test_cuda_resume_continues_from_the_checkpoint(cli, examples: Path, tmp_path: Path) -> None:
    args = [
        "train",
        examples / "hemolytic.fasta",
        examples / "hemolytic.csv",
        "--hidden-size",
        "16",
        "--device",
        "cuda",
        "--checkpoint-dir",
        tmp_path / "ck",
        "--quiet",
    ]
    assert cli(*args, "-o", tmp_path / "a.bsnn", "--epochs", "2").code == 0
    r = cli(*args, "-o", tmp_path / "b.bsnn", "--epochs", "2", "--resume")
    assert r.code == 0, r.err
    wa, wb = load_file(str(tmp_path / "a.bsnn")), load_file(str(tmp_path / "b.bsnn"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_docs_training_examples_use_real_train_options(cli) -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "guide" / "training.md"
    section = page.read_text(encoding="utf-8").split("## Training options", 1)[1]
    section = section.split("\n## ", 1)[0]
    commands = [
        line.strip() for line in section.splitlines() if line.startswith("        bioseqnn train")
    ]
    assert len(commands) >= 7
    r = cli("train", "--help")
    assert r.code == 0
    help_text = r.out.replace("\n", " ")
    for command in commands:
        for flag in re.findall(r"(?<= )--[a-z][a-z0-9-]*", command):
            assert flag in help_text, (flag, command)


# --------------------------------------------------------------------------- no silent collapse


def _imbalanced_hemolytic(examples: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Real hemolytic peptides with about 1 positive in 10."""
    seqs = read_fasta(examples / "hemolytic.fasta")
    label = {r["id"]: r["hemolytic"] for r in read_table(examples / "hemolytic.csv", ",")}
    keep = [k for k in seqs if label[k] == "0"] + [k for k in seqs if label[k] == "1"][::9]
    fasta = write_fasta(tmp_path / "imbalanced.fasta", {k: seqs[k] for k in keep})
    labels = tmp_path / "imbalanced.csv"
    labels.write_text("id,hemolytic\n" + "".join(f"{k},{label[k]}\n" for k in keep))
    return fasta, labels


@pytest.mark.slow
def test_collapse_warned_on_an_imbalanced_real_subset_not_on_a_balanced_one(
    cli, examples: Path, tmp_path: Path
) -> None:
    fasta, labels = _imbalanced_hemolytic(examples, tmp_path)
    # the settings of 0.1 (an unweighted LSTM watching the loss) on 1 positive in 10
    old = [
        "--arch",
        "lstm",
        "--hidden-size",
        "16",
        "--class-weight",
        "none",
        "--monitor",
        "val_loss",
        "--epochs",
        "2",
        "--patience",
        "0",
    ]
    r = cli("train", fasta, labels, "-o", tmp_path / "old.bsnn", *old)
    assert r.code == 0, r.err
    epoch_lines = [line for line in r.err.splitlines() if "epoch 2/2" in line]
    majority = re.search(r"val_accuracy (\S+) \(majority (\S+)\)", epoch_lines[0])
    assert majority and "val_mcc 0.0000" in epoch_lines[0], epoch_lines
    assert float(majority[1]) == float(majority[2]) > 0.85  # every record called negative
    warning = [line for line in r.err.splitlines() if "constant prediction" in line]
    assert len(warning) == 1 and warning[0].startswith(
        "bioseqnn: warning: the model is no better than a constant prediction"
    )
    assert f"scores accuracy {majority[2]}" in warning[0] and "--class-weight" in warning[0]
    # explicit settings win, and nothing is said about imbalance that was not acted on
    assert (
        "imbalanced labels" in r.err
        and "--class-weight balanced" not in r.err.split("imbalanced labels")[1].splitlines()[0]
    )

    # the defaults on the same records: weighted loss, a monitor that cannot be gamed
    r = cli(
        "train",
        fasta,
        labels,
        "-o",
        tmp_path / "new.bsnn",
        "--arch",
        "cnn",
        "--epochs",
        "4",
        "--lr",
        "0.01",
    )
    assert r.code == 0, r.err
    share = re.search(
        r"imbalanced labels: '1' is (\S+)% of the training records: "
        r"class-weighted loss \(--class-weight balanced\) and --monitor "
        r"val_auprc",
        r.err,
    )
    assert share and 8 < float(share[1]) < 13, r.err
    m = manifest(cli, tmp_path / "new.bsnn")
    assert m["training"]["monitor"] == "val_auprc" and m["metrics"]["monitor"] == "val_auprc"
    assert m["task"]["class_weights"][1] > 4 * m["task"]["class_weights"][0]
    assert "constant prediction" not in r.err

    # balanced records: no imbalance line, no warning, the loss is watched
    r = cli(
        "train",
        examples / "hemolytic.fasta",
        examples / "hemolytic.csv",
        "-o",
        tmp_path / "even.bsnn",
        "--arch",
        "cnn",
        "--epochs",
        "4",
        "--lr",
        "0.01",
    )
    assert r.code == 0, r.err
    assert "imbalanced" not in r.err and "constant prediction" not in r.err
    m = manifest(cli, tmp_path / "even.bsnn")
    assert m["training"]["monitor"] == "val_loss" and m["task"]["class_weights"] == []


def test_regression_collapse_and_the_epoch_cap_are_reported(
    cli, examples: Path, tmp_path: Path
) -> None:
    """Targets that no sequence explains (shuffled) give the regression warning; a run that
    ends on the epoch cap while still improving says so."""
    rows = read_table(examples / "promoters.csv", ",")[:400]
    values = [r["log2_expression"] for r in rows]
    shuffled = [values[i] for i in np.random.default_rng(1).permutation(len(values))]
    labels = tmp_path / "shuffled.csv"
    labels.write_text(
        "id,y\n" + "".join(f"{r['id']},{v}\n" for r, v in zip(rows, shuffled, strict=True))
    )
    seqs = read_fasta(examples / "promoters.fasta")
    fasta = write_fasta(tmp_path / "p.fasta", {r["id"]: seqs[r["id"]] for r in rows})
    r = cli("train", fasta, labels, "-o", tmp_path / "r.bsnn", *CNN, "--epochs", "3")
    assert r.code == 0, r.err
    lines = [line for line in r.err.splitlines() if line.startswith("bioseqnn: epoch")]
    assert all("val_r2" in line and "val_pearson" in line for line in lines), lines
    m = manifest(cli, tmp_path / "r.bsnn")
    pearson = m["metrics"]["best"]["val_pearson"]
    warned = "the predictions do not follow the validation targets" in r.err
    assert warned == (pearson <= 0.05), (pearson, r.err)

    # the real targets, stopped by a cap of 2 epochs while the loss still falls
    r = cli(
        "train",
        fasta,
        examples / "promoters.csv",
        "-o",
        tmp_path / "cap.bsnn",
        *CNN,
        "--epochs",
        "2",
        "--target",
        "log2_expression",
        "--ignore-unmatched",
    )
    assert r.code == 0, r.err
    best = manifest(cli, tmp_path / "cap.bsnn")["metrics"]["best_epoch"]
    capped = "stopped at the epoch cap (--epochs 2) while val_loss was still improving"
    assert (capped in r.err) == (best == 2), r.err


def test_validation_records_seen_in_training_are_reported(cli, tmp_path: Path) -> None:
    """A --val-fasta whose records repeat training sequences (under other ids) makes the
    validation figures, and the epoch they choose, reward memorising: train says how
    many, once; a disjoint validation set gets no such line."""
    rng = np.random.default_rng(11)
    seqs = ["".join(rng.choice(list("ACGT"), 40)) for _ in range(40)]
    train = {f"t{i}": s for i, s in enumerate(seqs[:30])}
    (tmp_path / "t.fa").write_text("".join(f">{k}\n{v}\n" for k, v in train.items()))
    (tmp_path / "t.csv").write_text("id,y\n" + "".join(f"t{i},{i % 2}\n" for i in range(30)))
    for name, val in [("v.fa", seqs[:4] + seqs[34:40]), ("w.fa", seqs[30:40])]:
        (tmp_path / name).write_text("".join(f">v{i}\n{s}\n" for i, s in enumerate(val)))
    (tmp_path / "v.csv").write_text("id,y\n" + "".join(f"v{i},{i % 2}\n" for i in range(10)))
    said = []
    for name in ("v.fa", "w.fa"):
        r = cli(
            "train", tmp_path / "t.fa", tmp_path / "t.csv", "-o", tmp_path / "m.bsnn",
            "--val-fasta", tmp_path / name, "--val-labels", tmp_path / "v.csv",
            "--arch", "lstm", "--hidden-size", "4", "--epochs", "1", "--threads", "1",
        )  # fmt: skip
        assert r.code == 0, r.err
        said.append([line for line in r.err.splitlines() if "overstate" in line])
    assert said[0] == [
        f"bioseqnn: warning: {tmp_path / 'v.fa'}: 4 of 10 validation record(s) (40.0%) have "
        "the sequence of a training record: the validation figures overstate how well the "
        "model generalises"
    ]
    assert said[1] == []


def test_a_pool_wider_than_the_sequences_is_their_max(
    cli, examples: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--pool-sizes wider than every sequence (at most 98 residues here) pools each to
    its maximum: a pool of 10^6 trains the same model as one of 100, without taking
    memory in proportion to the pool, and predicts the same rows with and without
    torch."""
    rows = {}
    for pool in ("100", "1000000"):
        out = tmp_path / f"p{pool}.bsnn"
        r = cli(
            "train",
            examples / "hemolytic.fasta",
            examples / "hemolytic.csv",
            "-o",
            out,
            *("--arch", "cnn", "--channels", "8,8", "--kernel-sizes", "5,3"),
            *("--pool-sizes", f"{pool},1", "--epochs", "2", "-j", "1", "--quiet"),
        )
        assert r.code == 0, r.err
        for light in ("1", "0"):
            monkeypatch.setenv("BIOSEQNN_LIGHT", light)
            pred = cli("predict", out, examples / "hemolytic.fasta")
            assert pred.code == 0, pred.err
            rows[pool, light] = pred.out
    assert len(set(rows.values())) == 1
    weights = [load_file(tmp_path / f"p{pool}.bsnn") for pool in ("100", "1000000")]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_an_unknown_architecture_is_shown_cut_and_escaped(cli, examples: Path, tmp_path) -> None:
    """--arch of 5,000 characters was echoed whole in the error line."""
    data = [examples / "hemolytic.fasta", examples / "hemolytic.csv"]
    for arch, shown in [("x" * 5000, "'xxxx"), ("gr\x1bu", "'gr\\x1bu'")]:
        r = cli("train", *data, "-o", tmp_path / "m.bsnn", "--arch", arch)
        assert r.code == 2
        (line,) = r.err.splitlines()
        assert line.startswith(f"bioseqnn: error: unknown architecture {shown}")
        assert line.isprintable() and len(line) < 200
