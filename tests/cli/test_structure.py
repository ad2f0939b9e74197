"""RNA secondary structure as input (`train --structure`), folded with the real ViennaRNA."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_bioseqnn

from bioseqnn.alphabets import ALPHABETS
from bioseqnn.encoding import Encoder
from bioseqnn.models.inputs import StructuredOneHot
from bioseqnn.structure import (
    StructureInput,
    fold_codes,
    fold_one,
    structure_input,
)

RNA = pytest.importorskip("RNA")

# Hairpins whose minimum free energy structure is textbook: a GC stem of four to six
# pairs around a GAAA / UUCG tetraloop, and a sequence too short to pair at all.
HAIRPINS = [
    ("GGGGAAAACCCC", "((((....))))"),
    ("GGACUUCGGUCC", "((((....))))"),
    ("GCGCGCGAAAGCGCGC", "((((((....))))))"),
    ("ACGUAC", "......"),
]


def _dot_bracket(codes: np.ndarray) -> str:
    return "".join(".()"[int(c) % 3] for c in codes)


@pytest.mark.parametrize(("sequence", "expected"), HAIRPINS)
def test_pairing_states_are_viennas_own_dot_bracket(sequence: str, expected: str) -> None:
    assert RNA.fold(sequence)[0] == expected  # ViennaRNA itself, for the record
    assert _dot_bracket(fold_one(sequence, "mfe")) == expected


def test_dna_folds_as_rna_and_ambiguity_codes_stay_unpaired() -> None:
    spec = structure_input(ALPHABETS["dna"], "mfe")
    assert spec.version == RNA.__version__ and spec.size == 4 + 3
    seqs = [b"GGGGTTTTCCCC", b"GGACTTCGGTCC", b"GGGGANNNCCCC"]
    codes, offsets, _ = Encoder(ALPHABETS["dna"]).encode(seqs)
    folded = fold_codes(codes, offsets, spec, workers=1)
    assert folded.shape == (len(codes), 2) and np.array_equal(folded[:, 0], codes)
    got = [_dot_bracket(folded[offsets[i] : offsets[i + 1], 1]) for i in range(3)]
    assert got[:2] == [RNA.fold("GGGGUUUUCCCC")[0], RNA.fold("GGACUUCGGUCC")[0]]
    assert got[2] == RNA.fold("GGGGANNNCCCC")[0]
    # a pool of worker processes folds the same
    many = [s for s in seqs for _ in range(30)]
    codes, offsets, _ = Encoder(ALPHABETS["dna"]).encode(many)
    assert np.array_equal(
        fold_codes(codes, offsets, spec, workers=2), fold_codes(codes, offsets, spec, workers=1)
    )


def test_pair_probabilities_follow_the_partition_function() -> None:
    sequence = "GCGCGCGAAAGCGCGC"
    codes = fold_one(sequence, "bpp")
    assert _dot_bracket(codes) == "((((((....))))))"
    level = codes // 3 / 63
    compound = RNA.fold_compound(sequence)
    _, energy = compound.mfe()
    compound.exp_params_rescale(energy)
    compound.pf()
    bpp = np.array(compound.bpp())[1:, 1:]
    paired = bpp.sum(axis=0) + bpp.sum(axis=1)
    assert np.abs(level - paired).max() <= 0.5 / 63 + 1e-9  # kept in 64 steps
    assert level[:4].min() > 0.9 and level[7:9].max() < 0.2  # stem against loop


def test_input_layer_channels_and_padding() -> None:
    spec = StructureInput(ALPHABETS["rna"], "bpp")
    layer = StructuredOneHot(spec)
    # one position of each state: A unpaired, C paired downstream (p 1), G upstream (p 0.5)
    codes = torch.tensor([[[1, 0], [2, 1 + 3 * 63], [3, 2 + 3 * 32], [0, 0]]], dtype=torch.uint8)
    x = layer(codes)
    assert x.shape == (1, 4, spec.size) == (1, 4, 4 + 3 + 1)
    assert x[0, 0, :4].tolist() == [1, 0, 0, 0] and x[0, 0, 4:7].tolist() == [1, 0, 0]
    assert x[0, 1, 4:].tolist() == [0, 1, 0, 1.0]
    assert x[0, 2, 4:7].tolist() == [0, 0, 1] and x[0, 2, 7] == pytest.approx(32 / 63)
    assert x[0, 3].abs().sum() == 0  # padding


def read_table(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.mark.slow
def test_a_structure_model_folds_its_input_in_every_command(
    cli, examples: Path, tmp_path: Path
) -> None:
    model = tmp_path / "s.bsnn"
    args = [
        "--arch",
        "cnn",
        "--channels",
        "16",
        "--kernel-sizes",
        "7",
        "--dilations",
        "1",
        "--pool-sizes",
        "1",
        "--epochs",
        "2",
        "--threads",
        "2",
    ]
    r = cli(
        "train",
        examples / "ncrna_train.fasta",
        examples / "ncrna_train.csv",
        "-o",
        model,
        *args,
        "--structure",
        "mfe",
    )
    assert r.code == 0, r.err
    assert f"folded 780 sequence(s) with ViennaRNA {RNA.__version__} (mfe)" in r.err
    m = json.loads(run_bioseqnn("info", model, "--json").stdout)
    assert m["format_version"] == 4 and m["structure"]["kind"] == "mfe"
    assert m["structure"]["tool"] == "ViennaRNA" and m["training"]["structure"] == "mfe"
    assert "structure" in m["encoding"]

    test = examples / "ncrna_test.fasta"
    r = cli("predict", model, test, "-o", tmp_path / "p.tsv")
    assert r.code == 0, r.err
    rows = read_table(tmp_path / "p.tsv")
    assert len(rows) == 260
    # one record alone gets the same prediction as in the whole file (folded alike)
    first = test.read_text().split(">")[1]
    (tmp_path / "one.fa").write_text(">" + first)
    r = cli("predict", model, tmp_path / "one.fa", "-o", tmp_path / "one.tsv")
    assert r.code == 0 and read_table(tmp_path / "one.tsv")[0] == rows[0]

    r = cli("evaluate", model, test, examples / "ncrna_test.csv", "-o", tmp_path / "e.json")
    assert r.code == 0, r.err
    doc = json.loads((tmp_path / "e.json").read_text())
    predicted = {row["id"]: row["predicted"] for row in rows}
    with open(examples / "ncrna_test.csv", newline="") as fh:
        truth = {row["id"]: row["family"] for row in csv.DictReader(fh)}
    assert doc["metrics"]["accuracy"] == pytest.approx(
        np.mean([predicted[k] == truth[k] for k in truth])
    )

    r = cli("explain", model, tmp_path / "one.fa", "-o", tmp_path / "x.tsv", "--method", "ism")
    assert r.code == 0, r.err
    assert len(read_table(tmp_path / "x.tsv")) == len("".join(first.splitlines()[1:]))

    pytest.importorskip("onnxruntime")
    r = cli("export", model, "-o", tmp_path / "s.onnx", "--check", tmp_path / "one.fa")
    assert r.code == 0, r.err
    side = json.loads((tmp_path / "s.onnx.json").read_text())
    # the sidecar describes the graph's input: the residues, then the folding channels
    assert side["inputs"][0]["shape"] == ["batch", "length", 7]
    assert side["channels"][4:] == ["unpaired", "paired_downstream", "paired_upstream"]
    assert side["structure"]["kind"] == "mfe" and side["structure"]["tool"] == "ViennaRNA"
    assert list(side["structure"]["channels"]) == side["channels"][4:]
    # an input made from the sidecar alone (and ViennaRNA) gives predict's probabilities
    import onnxruntime

    from bioseqnn.structure import fold_one

    seq = "".join(first.splitlines()[1:]).upper()
    states = fold_one(seq.replace("T", "U"), "mfe") % 3
    x = np.array(
        [
            [
                side["encoding"][c] + [float(s == k) for k in range(3)]
                for c, s in zip(seq, states, strict=True)
            ]
        ],
        dtype=np.float32,
    )
    session = onnxruntime.InferenceSession(str(tmp_path / "s.onnx"))
    out = session.run(["outputs"], {"onehot": x, "lengths": np.array([len(seq)])})[0]
    header = list(read_table(tmp_path / "one.tsv")[0])
    numeric = [c for c in header if c not in ("id", "predicted")]
    assert side["outputs"][0]["columns"] == numeric
    expected = [float(read_table(tmp_path / "one.tsv")[0][c]) for c in numeric]
    np.testing.assert_allclose(out[0], expected, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "language-model"], "--structure is not available for --task language-model"),
        (["{labels}", "--rc-augment"], "--structure cannot go with --rc-augment or --rc-average"),
        (["{labels}", "--structure", "pairs"], "--structure must be one of: none, mfe, bpp"),
    ],
)
def test_structure_usage_errors(
    cli, examples: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    labels = str(examples / "ncrna_train.csv")
    given = [a.format(labels=labels) for a in args]
    kind = [] if "--structure" in given else ["--structure", "mfe"]
    r = cli("train", examples / "ncrna_train.fasta", *given, *kind, "-o", tmp_path / "m.bsnn")
    assert r.code == 2 and message in r.err, r.err


def test_protein_is_refused(cli, examples: Path, tmp_path: Path) -> None:
    r = cli(
        "train",
        examples / "hemolytic.fasta",
        examples / "hemolytic.csv",
        "--structure",
        "mfe",
        "-o",
        tmp_path / "m.bsnn",
    )
    assert r.code == 2, r.err
    assert "--structure folds RNA (and DNA read as RNA); these sequences are protein" in r.err
