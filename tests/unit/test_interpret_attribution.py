"""Integrated gradients and DeepLIFT-SHAP: completeness on every architecture, references,
padding, targets, the CLI; and the dinucleotide shuffle."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("captum")

from bioseqnn.alphabets import DNA, PROTEIN  # noqa: E402
from bioseqnn.config import ModelConfig  # noqa: E402
from bioseqnn.data.sets import SequenceSet  # noqa: E402
from bioseqnn.encoding import Encoder  # noqa: E402
from bioseqnn.errors import UsageError  # noqa: E402
from bioseqnn.interpret.attribution import (  # noqa: E402
    AttributionOptions,
    _attribute_batch,
    _Scorer,
    path_attributions,
)
from bioseqnn.interpret.shuffle import dinucleotide_shuffle, dinucleotide_shuffles  # noqa: E402
from bioseqnn.models.base import SequenceModel  # noqa: E402
from bioseqnn.models.inputs import OneHot
from bioseqnn.tasks import TaskSpec  # noqa: E402

ARCHS = ["cnn", "cnn-gru", "gru", "lstm", "rnn", "cnn-lstm", "transformer"]
REGRESSION = TaskSpec("regression", ["y"], target_mean=[0.5], target_std=[2.0])
BINARY = TaskSpec("binary", ["label"], classes=["neg", "pos"])


def _pairs(codes: np.ndarray) -> Counter:
    return Counter(zip(codes[:-1].tolist(), codes[1:].tolist(), strict=True))


def test_dinucleotide_shuffle_keeps_every_pair_count_and_both_ends() -> None:
    rng = np.random.default_rng(5)
    changed = 0
    for trial in range(300):
        n = int(rng.integers(3, 80))
        seq = rng.integers(1, 6, size=n).astype(np.uint8)  # 5 codes: N is one more letter
        for shuffled in dinucleotide_shuffles(seq, 4, seed=trial):
            assert shuffled.dtype == seq.dtype and len(shuffled) == n
            assert _pairs(shuffled) == _pairs(seq)
            assert shuffled[0] == seq[0] and shuffled[-1] == seq[-1]
            changed += bool((shuffled != seq).any())
    assert changed > 1000  # 1200 shuffles; a few short ones have no other arrangement
    seq = np.frombuffer(b"ACGTTGCAACGGTACCATGA" * 3, dtype=np.uint8)
    np.testing.assert_array_equal(
        dinucleotide_shuffles(seq, 3, seed=9), dinucleotide_shuffles(seq, 3, seed=9)
    )
    assert not np.array_equal(
        dinucleotide_shuffles(seq, 3, seed=9), dinucleotide_shuffles(seq, 3, seed=10)
    )


def test_dinucleotide_shuffle_visits_every_arrangement() -> None:
    """ACAGA has two Eulerian arrangements with its pairs (ACAGA, AGACA): both appear."""
    seq = np.frombuffer(b"ACAGA", dtype=np.uint8)
    rng = np.random.default_rng(0)
    seen = Counter(dinucleotide_shuffle(seq, rng).tobytes() for _ in range(400))
    assert set(seen) == {b"ACAGA", b"AGACA"}
    assert min(seen.values()) > 120


def _model(arch: str, pooling: str = "auto", outputs: int = 1) -> SequenceModel:
    torch.manual_seed(3)
    config = ModelConfig(
        arch=arch, hidden_size=8, channels=[8, 8], kernel_sizes=[5, 3], dropout=0.0, pooling=pooling
    )
    return SequenceModel(config, 4, outputs).eval()


def _data(lengths: list[int], seed: int = 1, letters: str = "ACGT") -> SequenceSet:
    rng = np.random.default_rng(seed)
    alphabet = DNA if letters == "ACGT" else PROTEIN
    seqs = ["".join(rng.choice(list(letters), n)) for n in lengths]
    codes, offsets, _ = Encoder(alphabet).encode([s.encode() for s in seqs])
    return SequenceSet([f"r{i}" for i in range(len(seqs))], codes, offsets)


def _targets(n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.int64)


@pytest.mark.parametrize("arch", ARCHS)
def test_integrated_gradients_sum_to_the_output_difference_on_every_architecture(arch: str) -> None:
    model = _model(arch)
    data = _data([40, 33, 40, 25])
    out = path_attributions(
        model,
        OneHot(DNA),
        DNA,
        REGRESSION,
        data,
        _targets(4),
        "integrated-gradients",
        8,
        torch.device("cpu"),
        AttributionOptions(),
    )  # uniform reference
    sums = np.array([c.sum() for c in out.contributions])
    differences = sums - out.delta
    assert np.abs(differences).max() > 5e-3  # a difference to explain
    # the stated tolerance (docs/guide/interpret.md), at the default 50 steps: 5% of the
    # largest output difference plus 1e-3 (max-pooling's kinks keep a cnn's error near
    # 0.3% whatever the steps; smooth networks are exact to 1e-6)
    assert np.abs(out.delta).max() <= 0.05 * np.abs(differences).max() + 1e-3
    assert [c.shape for c in out.hypothetical] == [(n, 4) for n in (40, 33, 40, 25)]


MULTICLASS = TaskSpec("multiclass", ["c"], classes=["a", "b", "c"])
POOLINGS = {"cnn": ["max", "mean", "attention"], "transformer": ["mean", "max", "attention"]}


def _deeplift_cases() -> list[tuple[str, str]]:
    return [
        (arch, pooling)
        for arch in ARCHS
        for pooling in POOLINGS.get(arch, ["last", "mean", "max", "attention"])
    ]


@pytest.mark.parametrize(("arch", "pooling"), _deeplift_cases())
def test_deeplift_shap_is_complete_on_every_architecture_and_pooling(
    arch: str, pooling: str
) -> None:
    """Every step has an exact rule (rescale, Shapley products for gates and attention,
    the max rule for pooling), so the contributions sum to f(x) - mean f(references) to
    float rounding; bidirectional, two layers, window pooling in the convolutions."""
    torch.manual_seed(3)
    config = ModelConfig(
        arch=arch,
        hidden_size=8,
        channels=[8, 8],
        kernel_sizes=[5, 3],
        pool_sizes=[2, 2],
        dropout=0.0,
        pooling=pooling,
        layers=2,
        bidirectional=True,
    )
    data = _data([50, 41, 50, 23])
    for task, outputs in ((REGRESSION, 1), (MULTICLASS, 3)):
        model = SequenceModel(config, 4, outputs).eval()
        targets = np.array([0, 1, 2, 0]) % outputs
        out = path_attributions(
            model,
            OneHot(DNA),
            DNA,
            task,
            data,
            targets,
            "deeplift-shap",
            8,
            torch.device("cpu"),
            AttributionOptions(shuffles=5),
        )
        assert out.reference == "shuffle"
        sums = np.array([c.sum() for c in out.contributions])
        assert np.abs(sums - out.delta).max() > 5e-5  # a difference to explain
        np.testing.assert_allclose(out.delta, 0.0, atol=1e-6)


def test_deeplift_shap_leaves_the_model_as_it_was() -> None:
    """Parameters are frozen only during the attribution; the model predicts the same."""
    model = _model("lstm")
    data = _data([30, 20])
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (2, 30)), 4).float()
    lengths = torch.tensor([30, 20])
    before = model(x, lengths).detach()
    path_attributions(
        model,
        OneHot(DNA),
        DNA,
        REGRESSION,
        data,
        _targets(2),
        "deeplift-shap",
        8,
        torch.device("cpu"),
        AttributionOptions(shuffles=2),
    )
    assert all(p.requires_grad for p in model.parameters())
    assert torch.equal(model(x, lengths).detach(), before)


def test_the_max_rule_credits_the_larger_maximum_with_a_multiplier_in_0_1() -> None:
    from bioseqnn.interpret.deeplift import maximum

    rng = np.random.default_rng(4)
    x = torch.tensor(rng.normal(size=(6, 5, 9)), requires_grad=True)  # 3 inputs, 3 refs
    values, _ = maximum(x, 2)
    (grad,) = torch.autograd.grad(values[:3].sum(), x)
    mult = grad[:3]
    diff = (x[:3] - x[3:]).detach()
    assert ((mult >= 0) & (mult <= 1)).all()
    assert ((mult > 0).sum(dim=2) <= 1).all()  # one position per maximum
    # summation-to-delta: the credited change is the change of the maximum
    np.testing.assert_allclose(
        (mult * diff).sum(dim=2), (values[:3] - values[3:]).detach(), atol=1e-12
    )


@pytest.mark.parametrize("method", ["integrated-gradients", "deeplift-shap"])
def test_padded_positions_get_exactly_zero_and_batching_changes_nothing(method: str) -> None:
    model = _model("cnn")
    data = _data([60, 17, 45])
    opts = AttributionOptions(shuffles=4, steps=16)
    table = DNA.onehot_table()
    scorer = _Scorer(model, REGRESSION)
    hyp, con, _ = _attribute_batch(
        scorer,
        OneHot(DNA),
        data,
        np.arange(3),
        _targets(3),
        method,
        "shuffle",
        opts,
        table,
        np.full(4, 0.25),
        4,
        torch.device("cpu"),
    )
    assert hyp.shape == (3, 60, 4)
    assert (hyp[1, 17:] == 0).all() and (con[1, 17:] == 0).all()
    assert (hyp[2, 45:] == 0).all() and (con[2, 45:] == 0).all()
    assert np.abs(hyp[1, :17]).sum() > 0
    together = path_attributions(
        model, OneHot(DNA), DNA, REGRESSION, data, _targets(3), method, 8, torch.device("cpu"), opts
    )
    alone = path_attributions(
        model,
        OneHot(DNA),
        DNA,
        REGRESSION,
        data.subset(np.array([1])),
        _targets(1),
        method,
        8,
        torch.device("cpu"),
        opts,
    )
    # the shuffles of a sequence are seeded by its index: the lone record gets index 0
    again = path_attributions(
        model, OneHot(DNA), DNA, REGRESSION, data, _targets(3), method, 1, torch.device("cpu"), opts
    )
    np.testing.assert_allclose(together.hypothetical[1], again.hypothetical[1], atol=1e-5)
    assert alone.hypothetical[0].shape == (17, 4)
    small = AttributionOptions(shuffles=4, steps=16, max_positions=64)  # one sequence a pass
    bounded = path_attributions(
        model,
        OneHot(DNA),
        DNA,
        REGRESSION,
        data,
        _targets(3),
        method,
        8,
        torch.device("cpu"),
        small,
    )
    for a, b in zip(together.contributions, bounded.contributions, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_hypothetical_contributions_give_the_actual_ones_at_the_residue_present() -> None:
    model = _model("gru")
    data = _data([30])
    out = path_attributions(
        model,
        OneHot(DNA),
        DNA,
        REGRESSION,
        data,
        _targets(1),
        "integrated-gradients",
        8,
        torch.device("cpu"),
    )
    assert out.reference == "uniform"
    onehot = DNA.onehot_table()[data.codes]
    np.testing.assert_allclose(out.contributions[0], out.hypothetical[0] * onehot, atol=1e-7)
    # against a uniform reference the hypothetical contributions of a position sum to 0
    np.testing.assert_allclose(out.hypothetical[0].sum(axis=1), 0.0, atol=1e-6)


def test_protein_references_and_refusals() -> None:
    model = SequenceModel(
        ModelConfig(
            arch="cnn", channels=[8], kernel_sizes=[3], dilations=[1], pool_sizes=[1], dropout=0.0
        ),
        20,
        1,
    ).eval()
    data = _data([25, 30], letters="ACDEFGHIKLMNPQRSTVWY")
    out = path_attributions(
        model,
        OneHot(PROTEIN),
        PROTEIN,
        REGRESSION,
        data,
        _targets(2),
        "deeplift-shap",
        8,
        torch.device("cpu"),
    )
    assert out.reference == "uniform"
    bg = path_attributions(
        model,
        OneHot(PROTEIN),
        PROTEIN,
        REGRESSION,
        data,
        _targets(2),
        "deeplift-shap",
        8,
        torch.device("cpu"),
        AttributionOptions(reference="background"),
    )
    assert bg.reference == "background"
    assert not np.allclose(bg.contributions[0], out.contributions[0])
    with pytest.raises(UsageError, match="dinucleotide shuffle, for DNA and RNA"):
        path_attributions(
            model,
            OneHot(PROTEIN),
            PROTEIN,
            REGRESSION,
            data,
            _targets(2),
            "deeplift-shap",
            8,
            torch.device("cpu"),
            AttributionOptions(reference="shuffle"),
        )


def test_binary_target_of_the_other_class_negates_the_attributions() -> None:
    model = _model("cnn")
    data = _data([40, 40])
    opts = AttributionOptions(shuffles=3)
    pos = path_attributions(
        model,
        OneHot(DNA),
        DNA,
        BINARY,
        data,
        np.ones(2, np.int64),
        "deeplift-shap",
        8,
        torch.device("cpu"),
        opts,
    )
    neg = path_attributions(
        model,
        OneHot(DNA),
        DNA,
        BINARY,
        data,
        np.zeros(2, np.int64),
        "deeplift-shap",
        8,
        torch.device("cpu"),
        opts,
    )
    for a, b in zip(pos.contributions, neg.contributions, strict=True):
        np.testing.assert_allclose(a, -b, atol=1e-6)


@pytest.fixture(scope="module")
def binary_cnn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from bioseqnn.cli import main

    root = tmp_path_factory.mktemp("attr")
    rng = np.random.default_rng(2)
    fasta, labels = root / "s.fasta", root / "s.csv"
    with open(fasta, "w") as fa, open(labels, "w") as lab:
        lab.write("id,label\n")
        for i in range(120):
            seq = list(rng.choice(list("ACGT"), 30 + i % 7))
            if i % 2:
                seq[5:11] = "GGATCC"
            fa.write(f">s{i}\n{''.join(seq)}\n")
            lab.write(f"s{i},{'yes' if i % 2 else 'no'}\n")
    model = root / "m.bsnn"
    assert (
        main(
            [
                "train",
                str(fasta),
                str(labels),
                "-o",
                str(model),
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
                "--epochs",
                "2",
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 0
    )
    few = root / "few.fasta"
    few.write_text("".join(">" + r for r in fasta.read_text().split(">")[1:6]))
    return model, few


@pytest.mark.parametrize("method", ["integrated-gradients", "deeplift-shap"])
def test_explain_writes_scores_and_hypothetical_columns(
    cli, binary_cnn, tmp_path: Path, method: str
) -> None:
    model, few = binary_cnn
    out = tmp_path / "attr.tsv"
    assert (
        cli(
            "explain",
            model,
            few,
            "--method",
            method,
            "--target",
            "yes",
            "--shuffles",
            "3",
            "-o",
            out,
            "-q",
        ).code
        == 0
    )
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert list(rows[0]) == ["id", "target", "position", "residue", "score", "A", "C", "G", "T"]
    assert {r["target"] for r in rows} == {"yes"}
    lengths = [len(r.split("\n", 1)[1].replace("\n", "")) for r in few.read_text().split(">")[1:]]
    assert len(rows) == sum(lengths)
    for r in rows:  # the score is the hypothetical contribution of the residue present
        assert float(r["score"]) == pytest.approx(float(r[r["residue"]]), abs=1e-5)


def test_explain_deeplift_shap_on_a_recurrent_model(
    cli, promoter_model: Path, examples: Path, tmp_path: Path
) -> None:
    out = tmp_path / "attr.tsv"
    fasta = tmp_path / "few.fasta"
    fasta.write_text(
        "".join(">" + r for r in (examples / "promoters.fasta").read_text().split(">")[1:4])
    )
    result = cli(
        "explain",
        promoter_model,
        fasta,
        "--method",
        "deeplift-shap",
        "--shuffles",
        "2",
        "-o",
        out,
        "-q",
    )
    assert result.code == 0, result.err
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    lengths = [len(r.split("\n", 1)[1].replace("\n", "")) for r in fasta.read_text().split(">")[1:]]
    assert len(rows) == sum(lengths)
    assert any(abs(float(r["score"])) > 1e-4 for r in rows)
