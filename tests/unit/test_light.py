"""Prediction without torch (bioseqnn/engine/light.py): the rows are torch's, digit for
digit, where it runs; everything else goes to torch; the command leaves torch unloaded."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import fasta, fresh_python

from bioseqnn.engine import light
from bioseqnn.modelfile import read_manifest


def _records(n: int, seed: int, low: int, high: int, letters: str = "ACGT") -> list:
    rng = random.Random(seed)
    return [
        (f"s{i}", "".join(rng.choice(letters) for _ in range(rng.randint(low, high))))
        for i in range(n)
    ]


def _train(tmp: Path, cli, name: str, labels: list[str], *options: str) -> Path:
    """A model trained for one epoch on motif-labelled DNA of mixed lengths."""
    records = _records(len(labels), 7, 20, 120)
    (tmp / f"{name}.fa").write_bytes(fasta(records))
    header = "id,y\n"
    if labels and "," in labels[0]:
        header = "id,a,b\n"
    (tmp / f"{name}.csv").write_text(
        header + "".join(f"{rid},{y}\n" for (rid, _), y in zip(records, labels, strict=True))
    )
    out = tmp / f"{name}.bsnn"
    r = cli(
        "train", tmp / f"{name}.fa", tmp / f"{name}.csv", "-o", out,
        "--epochs", "1", "--seed", "3", "-q", *options,
    )  # fmt: skip
    assert r.code == 0, r.err
    return out


SMALL_CNN = ("--arch", "cnn", "--channels", "8", "--kernel-sizes", "5")
CNN_LSTM = ("--arch", "cnn-lstm", "--channels", "8,6", "--kernel-sizes", "4,3", "--pooling", "last")

LABELS = {
    "binary": [str(i % 2) for i in range(160)],
    "multiclass": ["abc"[i % 3] for i in range(160)],
    "regression": [f"{(i * 37 % 101) / 7:.3f}" for i in range(160)],
    "multilabel": [f"{i % 2},{i // 2 % 2}" for i in range(160)],
}


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("binary", ["--arch", "lstm", "--hidden-size", "16"]),
        ("binary", ["--arch", "gru", "--bidirectional", "--layers", "2", "--hidden-size", "12"]),
        (
            "multiclass",
            ["--arch", "lstm", "--bidirectional", "--pooling", "max", "--hidden-size", "32"],
        ),
        ("multiclass", ["--arch", "gru", "--pooling", "last", "--hidden-size", "24"]),
        ("regression", ["--arch", "lstm", "--layers", "2", "--hidden-size", "16"]),
        ("multilabel", ["--arch", "gru", "--bidirectional", "--hidden-size", "16"]),
        # the default network (cnn-gru: convolutions, pooling 3 on these lengths, max
        # pooling over positions), smaller
        ("binary", ["--channels", "16,12", "--hidden-size", "8"]),
        ("multiclass", [*SMALL_CNN, "--pooling", "max"]),
        (
            "regression",
            [*CNN_LSTM, "--dilations", "1,2", "--pool-sizes", "2,2", "--hidden-size", "8"],
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_rows_without_torch_are_torchs_digit_for_digit(
    tmp_path: Path, cli, monkeypatch, kind: str, options: list[str]
) -> None:
    model = _train(tmp_path, cli, kind, LABELS[kind], *options)
    # records of every length from 1 to 300, in no order: padding and batching both count
    new = tmp_path / "new.fa"
    new.write_bytes(fasta(_records(300, 11, 1, 300)))
    assert light.choose(model, [new]) is not None  # this run is made without torch
    quick = cli("predict", model, new, "--debug")
    assert quick.code == 0, quick.err
    assert "without torch" in quick.err
    monkeypatch.setenv("BIOSEQNN_LIGHT", "0")
    assert light.choose(model, [new]) is None
    slow = cli("predict", model, new, "--debug")
    assert slow.code == 0 and "without torch" not in slow.err
    assert quick.out == slow.out
    rows = [line.split("\t") for line in quick.out.splitlines()[1:]]
    assert len(rows) == 300 and [r[0] for r in rows] == [f"s{i}" for i in range(300)]
    last = np.array([float(r[-1]) for r in rows])
    assert np.unique(last).size > 50  # predictions that differ between records


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("binary", ["--arch", "lstm", "--hidden-size", "8", "--ensemble", "3"]),
        ("multiclass", ["--channels", "8,6", "--hidden-size", "8", "--cv", "2"]),
        ("regression", [*SMALL_CNN, "--pooling", "max", "--ensemble", "2"]),
        ("multilabel", ["--arch", "gru", "--bidirectional", "--hidden-size", "8", "--cv", "3"]),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_ensembles_without_torch_give_torchs_rows(
    tmp_path: Path, cli, monkeypatch, kind: str, options: list[str]
) -> None:
    """Seeds (--ensemble), folds (--cv) and a mix of networks (bioseqnn ensemble) are
    combined as torch combines them: the same rows, digit for digit."""
    model = _train(tmp_path, cli, kind, LABELS[kind], *options)
    new = tmp_path / "new.fa"
    new.write_bytes(fasta(_records(300, 11, 1, 300)))
    files = [model]
    if kind == "multiclass":  # with a member of another architecture (member_models)
        other = _train(tmp_path, cli, "other", LABELS[kind], "--arch", "lstm", "--hidden-size", "8")
        mixed = tmp_path / "mixed.bsnn"
        assert cli("ensemble", model, other, "-o", mixed).code == 0
        assert "member_models" in read_manifest(mixed)[0]
        files.append(mixed)
    for path in files:
        members = read_manifest(path)[0].get("ensemble", 1)
        assert members > 1
        monkeypatch.delenv("BIOSEQNN_LIGHT", raising=False)
        assert light.choose(path, [new]) is not None
        quick = cli("predict", path, new, "--debug")
        assert quick.code == 0 and "without torch" in quick.err, quick.err
        monkeypatch.setenv("BIOSEQNN_LIGHT", "0")
        slow = cli("predict", path, new, "--debug")
        assert slow.code == 0 and "without torch" not in slow.err
        assert quick.out == slow.out
        rows = [line.split("\t") for line in quick.out.splitlines()[1:]]
        assert len(rows) == 300 and np.unique([r[-1] for r in rows]).size > 50


def test_what_is_left_to_torch(tmp_path: Path, cli, monkeypatch) -> None:
    """Mean or attention pooling, standard input and large inputs go to torch; the rows
    are the same either way, as before."""
    labels = LABELS["binary"]
    small = tmp_path / "small.fa"
    small.write_bytes(fasta(_records(20, 5, 30, 60)))
    recurrent = _train(tmp_path, cli, "rec", labels, "--arch", "lstm", "--hidden-size", "8")
    assert light.choose(recurrent, [small]) is not None
    for name, options in (
        ("cnn", [*SMALL_CNN, "--pooling", "mean"]),
        ("mean", ["--arch", "gru", "--pooling", "mean", "--hidden-size", "8"]),
        ("attention", ["--arch", "lstm", "--pooling", "attention", "--hidden-size", "8"]),
        ("rc", ["--arch", "lstm", "--hidden-size", "8", "--rc-average"]),
    ):
        model = _train(tmp_path, cli, name, labels, *options)
        assert light.choose(model, [small]) is None, name
        r = cli("predict", model, small, "--debug")
        assert r.code == 0 and "without torch" not in r.err and len(r.out.splitlines()) == 21
    # a compressed input counts four times its size; a model read from a pipe is read once
    import gzip

    packed = tmp_path / "small.fa.gz"
    packed.write_bytes(gzip.compress(small.read_bytes()))
    assert light.input_bytes([packed]) == 4 * packed.stat().st_size
    assert light.choose(recurrent, [packed]) is not None
    assert cli("predict", recurrent, packed).out == cli("predict", recurrent, small).out
    # an ensemble with one member light does not run goes to torch
    ensemble = tmp_path / "ens.bsnn"
    mean = tmp_path / "mean.bsnn"
    assert cli("ensemble", recurrent, mean, "-o", ensemble).code == 0
    assert light.choose(ensemble, [small]) is None
    # an ensemble's work is its members' together
    both = tmp_path / "both.bsnn"
    assert cli("ensemble", recurrent, recurrent, "-o", both).code == 0
    manifest, _ = read_manifest(recurrent)
    assert light.light_work(read_manifest(both)[0], 1000) == 2 * light.light_work(manifest, 1000)
    assert light.choose(recurrent, ["-"]) is None
    # more work than LIGHT_WORK: residues x weights
    manifest, _ = read_manifest(recurrent)
    work = light.light_work(manifest, small.stat().st_size)
    assert work > 0
    monkeypatch.setattr(light, "LIGHT_WORK", work - 1)
    assert light.choose(recurrent, [small]) is None
    monkeypatch.setattr(light, "LIGHT_WORK", work)
    assert light.choose(recurrent, [small]) is not None


def test_a_damaged_model_is_left_to_torch_which_names_the_fault(tmp_path: Path, cli) -> None:
    from bioseqnn.bundle import load_bundle, save_bundle

    model = _train(tmp_path, cli, "m", LABELS["binary"], "--arch", "gru", "--hidden-size", "8")
    bundle = load_bundle(model)
    weight = bundle.model.head.weight
    weight.data[0, 0] = float("nan")
    bad = tmp_path / "bad.bsnn"
    # written around save_bundle's own checks: a file damaged after it was written
    save_bundle(bad, bundle.model, bundle.manifest)
    small = tmp_path / "small.fa"
    small.write_bytes(fasta(_records(5, 1, 10, 20)))
    assert light.choose(bad, [small]) is None
    r = cli("predict", bad, small)
    assert r.code == 1 and "holds NaN or infinite values" in r.err


def test_a_small_prediction_leaves_torch_unloaded(tmp_path: Path, cli) -> None:
    model = _train(tmp_path, cli, "m", LABELS["binary"], "--arch", "lstm", "--hidden-size", "8")
    small = tmp_path / "small.fa"
    small.write_bytes(fasta(_records(3, 1, 10, 20)))
    probe = (
        "import json, sys\n"
        "from bioseqnn.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print('PROBE', json.dumps([code, 'torch' in sys.modules, 'pydantic' in sys.modules]),"
        " file=sys.stderr)\n"
    )
    done = fresh_python(probe, "predict", model, small)
    line = [x for x in done.stderr.splitlines() if x.startswith("PROBE ")]
    assert line and json.loads(line[0][6:]) == [0, False, False], done.stderr
    assert [r.split("\t")[0] for r in done.stdout.splitlines()] == ["id", "s0", "s1", "s2"]
    # so does the default network (cnn-gru), alone and as a cross-validated ensemble
    default = _train(tmp_path, cli, "d", LABELS["binary"], "--channels", "16,12")
    folds = _train(tmp_path, cli, "cv", LABELS["binary"], "--channels", "16,12", "--cv", "3")
    for path in (default, folds):
        done = fresh_python(probe, "predict", path, small)
        line = [x for x in done.stderr.splitlines() if x.startswith("PROBE ")]
        assert line and json.loads(line[0][6:]) == [0, False, False], done.stderr
    # the same command on a model with attention pooling loads torch
    attention = _train(tmp_path, cli, "a", LABELS["binary"], *SMALL_CNN, "--pooling", "attention")
    done = fresh_python(probe, "predict", attention, small)
    line = [x for x in done.stderr.splitlines() if x.startswith("PROBE ")]
    assert line and json.loads(line[0][6:])[:2] == [0, True], done.stderr


def test_a_file_torch_refuses_is_refused_the_same_way(tmp_path: Path, cli) -> None:
    """What loading for torch checks beyond the weights (the training digests' type) is
    checked first here too: the same error, not a prediction."""
    from safetensors.numpy import load_file, save_file

    from bioseqnn.digest import TENSOR
    from bioseqnn.modelfile import MANIFEST_KEY

    model = _train(tmp_path, cli, "m", LABELS["binary"], "--arch", "lstm", "--hidden-size", "8")
    tensors = load_file(model)
    assert TENSOR in tensors
    tensors[TENSOR] = tensors[TENSOR].astype(np.float32)
    manifest, _ = read_manifest(model)
    bad = tmp_path / "bad.bsnn"
    save_file(tensors, bad, metadata={MANIFEST_KEY: json.dumps(manifest)})
    small = tmp_path / "small.fa"
    small.write_bytes(fasta(_records(5, 1, 10, 20)))
    assert light.choose(bad, [small]) is None
    r = cli("predict", bad, small)
    assert r.code == 1 and "must be a vector of 64-bit digests" in r.err, r.err


def test_extreme_weights_and_refused_outputs_say_what_torch_says(
    tmp_path: Path, cli, monkeypatch
) -> None:
    """A logit that overflows gives torch's figures and no numpy warning; a refused
    output is reported before --threads is, as through torch."""
    from bioseqnn.bundle import load_bundle, save_bundle

    model = _train(tmp_path, cli, "m", LABELS["binary"], "--arch", "lstm", "--hidden-size", "8")
    bundle = load_bundle(model)
    bundle.model.head.bias.data[0] = -1e30
    extreme = tmp_path / "extreme.bsnn"
    save_bundle(extreme, bundle.model, bundle.manifest)
    small = tmp_path / "small.fa"
    small.write_bytes(fasta(_records(4, 1, 10, 20)))
    (tmp_path / "folder").mkdir()
    runs = {}
    for light_on in ("1", "0"):
        monkeypatch.setenv("BIOSEQNN_LIGHT", light_on)
        runs[light_on] = [
            cli("predict", extreme, small),
            cli("predict", model, small, "--threads", "100000", "-o", tmp_path / "folder"),
        ]
    numpy_way, torch_way = runs["1"], runs["0"]
    assert numpy_way[0].code == 0 and numpy_way[0].err == ""
    assert numpy_way[0].out == torch_way[0].out
    assert {r.split("\t")[3] for r in numpy_way[0].out.splitlines()[1:]} == {"0"}
    assert numpy_way[1].code == torch_way[1].code == 2
    assert numpy_way[1].err == torch_way[1].err
    assert numpy_way[1].err.splitlines() == [
        f"bioseqnn: error: {tmp_path / 'folder'}: cannot write: it is a directory"
    ]
