"""Per-position labelling: secondary structure (H/E/C) on a slice of the FLIP data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bioseqnn.models.base import ModelConfig, SequenceModel
from bioseqnn.tasks import TaskSpec

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def read_fasta(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    name = ""
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            name = line[1:].split()[0]
            out[name] = ""
        else:
            out[name] += line.strip()
    return out


@pytest.fixture(scope="module")
def ss_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bioseqnn.cli import main

    ex = Path(__file__).resolve().parents[2] / "example_data"
    out = tmp_path_factory.mktemp("pp") / "ss.bsnn"
    code = main(
        [
            "train",
            str(ex / "ss_train.fasta"),
            str(ex / "ss_train_ss3.fasta"),
            "--position-mask",
            str(ex / "ss_train_mask.fasta"),
            "--arch",
            "cnn",
            "--channels",
            "32,32",
            "--kernel-sizes",
            "7,5",
            "--pool-sizes",
            "1,1",
            "--epochs",
            "4",
            "--lr",
            "0.005",
            "-o",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    return out


def test_train_detects_label_fasta_and_records_the_task(cli, ss_model: Path) -> None:
    res = cli("info", ss_model, "--json")
    assert res.code == 0
    manifest = json.loads(res.out)
    assert manifest["per_position"] is True
    assert manifest["task"]["kind"] == "per-position"
    assert manifest["task"]["classes"] == ["C", "E", "H"]
    log = ss_model.with_name("ss.log.tsv").read_text().splitlines()
    rows = [dict(zip(log[0].split("\t"), r.split("\t"), strict=True)) for r in log[1:]]
    assert len(rows) == 4
    # it learns: the last epoch's validation loss is below the first's
    assert float(rows[-1]["val_loss"]) < float(rows[0]["val_loss"])
    # the human-readable summary names no pooling: a per-position model has none
    shown = cli("info", ss_model).out
    assert "per position" in shown and "pooling" not in shown


def test_predict_long_format_and_fasta_agree_with_evaluate(
    cli, ss_model: Path, examples: Path, tmp_path: Path
) -> None:
    seqs = read_fasta(examples / "ss_test.fasta")
    truth = read_fasta(examples / "ss_test_ss3.fasta")
    mask = read_fasta(examples / "ss_test_mask.fasta")
    tsv = tmp_path / "pred.tsv"
    assert cli("predict", ss_model, examples / "ss_test.fasta", "-o", tsv).code == 0
    with open(tsv, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert list(rows[0]) == ["id", "position", "residue", "predicted", "prob_C", "prob_E", "prob_H"]
    assert len(rows) == sum(map(len, seqs.values()))
    first = [r for r in rows if r["id"] == next(iter(seqs))]
    assert [int(r["position"]) for r in first] == list(range(1, len(first) + 1))
    assert "".join(r["residue"] for r in first) == next(iter(seqs.values()))
    probs = np.array([[float(r[f"prob_{c}"]) for c in "CEH"] for r in rows])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)

    res = cli("predict", ss_model, examples / "ss_test.fasta", "--format", "fasta")
    assert res.code == 0
    predicted = {}
    for block in res.out.split(">")[1:]:
        rid, labels = block.split("\n")[:2]
        predicted[rid] = labels
    assert list(predicted) == list(seqs)
    assert all(len(predicted[i]) == len(seqs[i]) for i in seqs)
    by_row = {}
    for r in rows:
        by_row.setdefault(r["id"], []).append(r["predicted"])
    assert {i: "".join(v) for i, v in by_row.items()} == predicted

    # evaluate: accuracy (Q3) over the resolved residues only, as counted from the files
    res = cli(
        "evaluate",
        ss_model,
        examples / "ss_test.fasta",
        examples / "ss_test_ss3.fasta",
        "--position-mask",
        examples / "ss_test_mask.fasta",
        "-q",
    )
    assert res.code == 0
    doc = json.loads(res.out)
    scored = [
        (truth[i][j], predicted[i][j])
        for i in seqs
        for j in range(len(seqs[i]))
        if mask[i][j] == "1"
    ]
    assert doc["metrics"]["positions"] == len(scored)
    assert doc["metrics"]["accuracy"] == pytest.approx(
        np.mean([t == p for t, p in scored]), abs=1e-9
    )
    assert doc["classes"] == ["C", "E", "H"]
    support = {c: sum(t == c for t, _ in scored) for c in "CEH"}
    assert {c: doc["per_class"][c]["support"] for c in "CEH"} == support
    assert np.array(doc["confusion_matrix"]["matrix"]).sum() == len(scored)

    # without the mask every residue counts
    res = cli(
        "evaluate", ss_model, examples / "ss_test.fasta", examples / "ss_test_ss3.fasta", "-q"
    )
    assert json.loads(res.out)["metrics"]["positions"] == sum(map(len, seqs.values()))


def test_table_of_label_strings_with_task_flag(cli, examples: Path, tmp_path: Path) -> None:
    seqs = read_fasta(examples / "ss_train.fasta")
    labels = read_fasta(examples / "ss_train_ss3.fasta")
    table = tmp_path / "ss.csv"
    table.write_text("id,ss3\n" + "".join(f"{i},{labels[i]}\n" for i in seqs))
    out = tmp_path / "t.bsnn"
    res = cli(
        "train",
        examples / "ss_train.fasta",
        table,
        "--task",
        "per-position",
        "--arch",
        "gru",
        "--hidden-size",
        "8",
        "--bidirectional",
        "--epochs",
        "1",
        "-o",
        out,
        "-q",
    )
    assert res.code == 0, res.err
    manifest = json.loads(cli("info", out, "--json").out)
    assert manifest["task"]["targets"] == ["ss3"]
    res = cli("evaluate", out, examples / "ss_train.fasta", table, "-q")
    assert res.code == 0, res.err
    assert json.loads(res.out)["metrics"]["positions"] == sum(map(len, seqs.values()))


def test_usage_and_data_errors(cli, examples: Path, tmp_path: Path) -> None:
    base = [
        examples / "ss_train.fasta",
        examples / "ss_train_ss3.fasta",
        "-o",
        tmp_path / "m.bsnn",
        "--epochs",
        "1",
    ]
    res = cli("train", *base, "--arch", "cnn", "--pool-sizes", "3,1")
    assert res.code == 2
    assert "--pool-sizes 3,1 shortens the sequence; use --pool-sizes 1,1" in res.err
    res = cli("train", *base, "--arch", "cnn-lstm", "--pool-sizes", "2,1")
    assert res.code == 2 and "shortens the sequence" in res.err
    assert not (tmp_path / "m.bsnn").exists()
    # the automatic pool sizes keep every position
    res = cli("train", *base, "--arch", "cnn", "--channels", "8,8")
    assert res.code == 0, res.err
    assert "pool-sizes 1,1, per position" in res.err
    (tmp_path / "m.bsnn").unlink()

    labels = read_fasta(examples / "ss_train_ss3.fasta")
    first = next(iter(labels))
    short = tmp_path / "short.fasta"
    short.write_text("".join(f">{i}\n{v[:-1] if i == first else v}\n" for i, v in labels.items()))
    res = cli(
        "train", examples / "ss_train.fasta", short, "-o", tmp_path / "m.bsnn", "--arch", "lstm"
    )
    assert res.code == 1
    assert (
        f"the labels of '{first}' have {len(labels[first]) - 1} positions, its sequence "
        f"has {len(labels[first])}" in res.err
    )

    bad_mask = tmp_path / "mask.fasta"
    bad_mask.write_text(f">{first}\n" + "2" * len(labels[first]) + "\n")
    res = cli(
        "train",
        examples / "ss_train.fasta",
        examples / "ss_train_ss3.fasta",
        "--position-mask",
        bad_mask,
        "-o",
        tmp_path / "m.bsnn",
        "--arch",
        "lstm",
    )
    assert res.code == 1
    assert f"record '{first}', position 1: mask symbol '2' is not 0 or 1" in res.err

    res = cli(
        "train",
        examples / "hemolytic.fasta",
        examples / "hemolytic.csv",
        "--position-mask",
        examples / "ss_train_mask.fasta",
        "-o",
        tmp_path / "m.bsnn",
    )
    assert res.code == 2 and "--position-mask applies to per-position labels" in res.err


def test_masked_and_padded_positions_never_count() -> None:
    task = TaskSpec("per-position", ["label"], classes=["C", "E", "H"])
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 3)
    y = torch.tensor([[0, 1, -1, 2, -1, -1], [2, 2, 1, 0, 1, 0]])
    loss = task.loss(logits, y)
    changed = logits.clone()
    changed[0, 2] += 50.0  # a masked position
    changed[0, 4:] -= 50.0  # padding
    assert float(task.loss(changed, y)) == pytest.approx(float(loss), abs=1e-6)
    keep = y >= 0
    expected = torch.nn.functional.cross_entropy(logits[keep], y[keep])
    assert float(loss) == pytest.approx(float(expected), abs=1e-6)
    # labels padded wider than the batch are cropped
    wide = torch.cat([y, torch.full((2, 3), -1)], dim=1)
    assert float(task.loss(logits, wide)) == pytest.approx(float(loss), abs=1e-6)
    m = task.metrics(y.numpy(), torch.softmax(logits, -1).numpy())
    pred = logits.argmax(-1)
    assert m["accuracy"] == pytest.approx(float((pred[keep] == y[keep]).float().mean()))


ARCHS = [
    {"arch": "rnn"},
    {"arch": "lstm", "bidirectional": True, "layers": 2},
    {"arch": "gru", "bidirectional": True},
    {"arch": "cnn", "pool_sizes": [1, 1], "dilations": [1, 2]},
    {"arch": "cnn-lstm", "pool_sizes": [1, 1]},
    {"arch": "transformer", "d_model": 16, "heads": 2, "ff_size": 32},
]


@pytest.mark.parametrize("settings", ARCHS, ids=[a["arch"] for a in ARCHS])
def test_padding_invariance(settings: dict[str, object]) -> None:
    """A sequence's per-position outputs alone and in a padded batch agree within 1e-5."""
    torch.manual_seed(1)
    config = ModelConfig(**{"hidden_size": 16, "channels": [16, 16], **settings})  # type: ignore[arg-type]
    model = SequenceModel(config, 20, 3, per_position=True).eval()
    lengths = torch.tensor([7, 23, 15])
    x = torch.zeros(3, 23, 20)
    gen = torch.Generator().manual_seed(2)
    for i, n in enumerate(lengths.tolist()):
        x[i, torch.arange(n), torch.randint(0, 20, (n,), generator=gen)] = 1.0
    with torch.no_grad():
        batch = model(x, lengths)
        assert batch.shape == (3, 23, 3)
        for i, n in enumerate(lengths.tolist()):
            alone = model(x[i : i + 1, :n], lengths[i : i + 1])
            torch.testing.assert_close(batch[i, :n], alone[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["per-position", "language-model"])
def test_scored_outputs_equal_the_whole_padded_outputs(kind: str) -> None:
    """infer_scored (batch by batch, scored positions only) gives the loss and metrics of
    the padded (records x longest) outputs that it replaces."""
    from bioseqnn.alphabets import get_alphabet
    from bioseqnn.data.batches import batch_targets
    from bioseqnn.data.sets import SequenceSet
    from bioseqnn.encoding import Encoder
    from bioseqnn.engine.predict import infer, infer_scored
    from bioseqnn.models.inputs import OneHot

    dna = get_alphabet("dna")
    rng = np.random.default_rng(4)
    letters = np.frombuffer(b"ACGTN", dtype=np.uint8)
    seqs = [letters[rng.integers(0, 5, int(n))].tobytes() for n in rng.integers(1, 90, 300)]
    codes, offsets, _ = Encoder(dna).encode(seqs)
    lm = kind == "language-model"
    classes = [*dna.letters, "end"] if lm else ["C", "E", "H"]
    task = TaskSpec(kind, ["label"], classes=classes, class_weights=[] if lm else [1.0, 2.0, 0.5])
    positions = (
        rng.integers(-1, 3, len(codes)) if not lm else rng.integers(-1, 4, len(codes))
    ).astype(np.int8)
    data = SequenceSet([f"s{i}" for i in range(len(seqs))], codes, offsets, positions=positions)
    torch.manual_seed(2)
    model = SequenceModel(
        ModelConfig(arch="gru", hidden_size=8), dna.size, len(classes), per_position=True, causal=lm
    )
    onehot = OneHot(dna)
    dense = infer(model, onehot, data, 64, torch.device("cpu"))
    y = batch_targets(task, data, np.arange(len(data)))
    want_loss = float(task.loss(dense, y))
    want = task.metrics(y.numpy(), task.outputs(dense).numpy().astype(np.float64))
    scored = infer_scored(model, onehot, task, data, 16, torch.device("cpu"), max_tokens=500)
    assert len(scored.y) == int((y >= 0).sum())
    assert scored.loss == pytest.approx(want_loss, rel=1e-5)
    got = task.position_metrics(
        scored.y.numpy(), task.outputs(scored.logits).numpy().astype(np.float64)
    )
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-5, abs=1e-9), k


def test_label_fasta_joins_with_the_report_labelled_records_get(cli, tmp_path: Path) -> None:
    seqs, labels = tmp_path / "s.fa", tmp_path / "l.fa"
    seqs.write_text(">a\nACDEF\n>b\nGHIKL\n>a\nMNPQR\n>c\nSTVWY\n")
    labels.write_text(">a\nHHHEE\n>b\nCCCCC\n>z\nEEEEE\n")
    res = cli("train", seqs, labels, "-o", tmp_path / "m.bsnn", "--epochs", "1", "-q")
    # every problem in one line: the repeated sequence id, then both unmatched sides
    assert res.code == 1 and res.err.count("\n") == 1
    assert (
        res.err.replace(f"{tmp_path}/", "")
        .strip()
        .endswith(
            "cannot join sequences and labels: 1 duplicate id(s) in s.fa ('a'); "
            "1 id(s) in s.fa missing from l.fa ('c'); 1 id(s) in l.fa missing from s.fa ('z') "
            "(--ignore-unmatched drops records without a partner)"
        )
    ), res.err
    assert not (tmp_path / "m.bsnn").exists()


def test_a_class_only_in_the_validation_split_is_refused(cli, tmp_path: Path) -> None:
    """One record labels its residues 'h' where the others use 'H': where the split puts
    it into validation, 'h' has no training position and training stops saying so (a
    class the model never learnt); where it trains, the run goes on."""
    rng = np.random.default_rng(5)
    seqs = ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 30)) for _ in range(12)]
    labels = ["".join(rng.choice(list("HEC"), 30)) for _ in range(12)]
    labels[4] = labels[4].replace("H", "h")
    (tmp_path / "s.fa").write_text("".join(f">r{i}\n{s}\n" for i, s in enumerate(seqs)))
    (tmp_path / "l.fa").write_text("".join(f">r{i}\n{s}\n" for i, s in enumerate(labels)))
    outcomes = {}
    for seed in range(12):
        r = cli(
            "train", tmp_path / "s.fa", tmp_path / "l.fa", "-o", tmp_path / f"m{seed}.bsnn",
            "--arch", "lstm", "--hidden-size", "4", "--epochs", "1", "--threads", "1",
            "--val-fraction", "0.25", "--seed", str(seed), "--quiet",
        )  # fmt: skip
        outcomes[seed] = r.code
        if r.code:
            assert r.err.splitlines()[-1] == (
                f"bioseqnn: error: {tmp_path / 'l.fa'}: class(es) 'h' have no training "
                "position (only validation positions have them); labels that "
                "differ only in case are different classes ('h')"
            )
            assert not (tmp_path / f"m{seed}.bsnn").exists()
    assert set(outcomes.values()) == {0, 1}, outcomes


def test_validation_records_without_a_scored_position_are_refused(cli, tmp_path: Path) -> None:
    """A mask that leaves one record scored, which the split puts into training: the
    validation records (or a fold's) have nothing to score, and every validation figure
    would be undefined. One line, no model; a fold of scored records trains."""
    rng = np.random.default_rng(2)
    seqs = ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 30)) for _ in range(20)]
    labels = ["".join(rng.choice(list("HEC"), 30)) for _ in range(20)]
    (tmp_path / "s.fa").write_text("".join(f">r{i}\n{s}\n" for i, s in enumerate(seqs)))
    (tmp_path / "l.fa").write_text("".join(f">r{i}\n{s}\n" for i, s in enumerate(labels)))
    common = ["--arch", "cnn", "--channels", "4", "--kernel-sizes", "3", "--epochs", "1"]
    common += ["--threads", "1", "--quiet"]
    said = []
    for scored in range(20):  # the one scored record, each in turn
        mask = "".join(f">r{i}\n{'0' * 30}\n" for i in range(20) if i != scored)
        (tmp_path / "m.fa").write_text(mask)
        out = tmp_path / f"o{scored}.bsnn"
        r = cli("train", tmp_path / "s.fa", tmp_path / "l.fa", "--position-mask",
                tmp_path / "m.fa", "-o", out, *common)  # fmt: skip
        assert r.code == 1 and not out.exists()
        assert len(r.err.strip().splitlines()) == 1
        said.append(r.err.strip())
    # where the scored record trains: the validation message; where it validates, no
    # training position
    empty = (
        "bioseqnn: error: the 2 validation record(s) have no position to score: every "
        "position of these records is masked (--position-mask) or unlabelled; give more "
        "records with scored positions, a larger --val-fraction, or --val-fasta"
    )
    assert said.count(empty) == 18
    named = f"bioseqnn: error: {tmp_path / 'l.fa'}: class(es) "
    assert all(line.startswith(named) for line in said if line != empty)
    # --cv 3 with the one scored record: two folds hold out nothing to score
    r = cli("train", tmp_path / "s.fa", tmp_path / "l.fa", "--position-mask",
            tmp_path / "m.fa", "-o", tmp_path / "cv.bsnn", "--cv", "3", *common)  # fmt: skip
    assert r.code == 1 and not (tmp_path / "cv.bsnn").exists()
    assert "have no position to score" in r.err and r.err.startswith("bioseqnn: error: --cv: ")
