"""Both DNA strands: reverse complements of IUPAC codes and one-hot, --rc-augment, --rc-average."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from bioseqnn.alphabets import ALPHABETS
from bioseqnn.data.sets import SequenceSet
from bioseqnn.encoding import Encoder, pad_codes
from bioseqnn.models.inputs import OneHot
from bioseqnn.strands import (
    complement_table,
    reverse_complement_codes,
    reverse_complement_onehot,
    reverse_complement_set,
)

# Written out by hand, independent of the package's table.
COMPLEMENT = str.maketrans("ACGTURYKMSWBVDHN", "TGCAAYRMKSWVBHDN")
DNA = ALPHABETS["dna"]


def encode(seqs: list[str], alphabet: str = "dna") -> SequenceSet:
    codes, offsets, bad = Encoder(ALPHABETS[alphabet]).encode([s.encode() for s in seqs])
    assert not bad
    return SequenceSet([f"s{i}" for i in range(len(seqs))], codes, offsets)


def decode(data: SequenceSet, alphabet: str = "dna") -> list[str]:
    symbols = ALPHABETS[alphabet].symbol_list
    return [
        "".join(symbols[c - 1] for c in data.codes[a:b])
        for a, b in zip(data.offsets[:-1], data.offsets[1:], strict=True)
    ]


def test_reverse_complement_of_every_iupac_code() -> None:
    seqs = ["ACGTRYKMSWBVDHN", "AACGRKN", "r", "GATTACA"]
    rc = reverse_complement_set(encode(seqs), complement_table(DNA))
    assert decode(rc) == [s.upper().translate(COMPLEMENT)[::-1] for s in seqs]
    assert decode(rc)[1] == "NMYCGTT"  # R <-> Y, K <-> M, N <-> N
    assert decode(reverse_complement_set(rc, complement_table(DNA))) == [s.upper() for s in seqs]


def test_rna_complements_u_with_a() -> None:
    rna = ALPHABETS["rna"]
    rc = reverse_complement_set(encode(["AUGGCU"], "rna"), complement_table(rna))
    onehot = OneHot(rna)
    # compared as one-hot: the RNA alphabet reads T as U, so either symbol is the U channel
    expected = encode(["AGCCAU"], "rna")
    assert torch.equal(onehot(torch.from_numpy(rc.codes)), onehot(torch.from_numpy(expected.codes)))


def test_fractional_onehot_reverse_complement_maps_r_y_k_m_n() -> None:
    onehot = OneHot(DNA)
    data = encode(["RKN", "ACGTRYKMSWBVDHN"])
    codes, lengths = pad_codes(data.codes, data.offsets, np.arange(2))
    x = onehot(torch.from_numpy(codes))
    rc = reverse_complement_onehot(x, torch.from_numpy(lengths), DNA)
    # channels A C G T: RKN -> N M Y; R = A/2 + G/2 becomes Y = C/2 + T/2, and so on
    expected = torch.tensor([[0.25, 0.25, 0.25, 0.25], [0.5, 0.5, 0, 0], [0, 0.5, 0, 0.5]])
    assert torch.equal(rc[0, :3], expected)
    assert torch.equal(rc[0, 3:], torch.zeros(12, 4))  # padding stays empty
    # the one-hot route and the code route agree for every symbol
    rc_set = reverse_complement_set(data, complement_table(DNA))
    by_codes = onehot(torch.from_numpy(pad_codes(rc_set.codes, rc_set.offsets, np.arange(2))[0]))
    assert torch.equal(rc, by_codes)


def test_padded_batch_flips_only_chosen_rows_within_their_length() -> None:
    data = encode(["ACGTT", "GGA"])
    codes, lengths = pad_codes(data.codes, data.offsets, np.arange(2))
    table = torch.from_numpy(complement_table(DNA))
    out = reverse_complement_codes(
        torch.from_numpy(codes), torch.from_numpy(lengths), table, torch.tensor([False, True])
    )
    back = SequenceSet(["a", "b"], out[out > 0].numpy(), data.offsets)
    assert decode(back) == ["ACGTT", "TCC"]
    assert out[1, 3:].tolist() == [0, 0]


def test_rc_options_refuse_protein(cli, examples: Path, tmp_path: Path) -> None:
    r = cli(
        "train",
        examples / "hemolytic.fasta",
        examples / "hemolytic.csv",
        "-o",
        tmp_path / "m.bsnn",
        "--rc-augment",
        "--epochs",
        "1",
        "--quiet",
    )
    assert r.code == 2
    assert "reverse complements need DNA or RNA" in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert not (tmp_path / "m.bsnn").exists()


def _subset(examples: Path, tmp_path: Path, n: int) -> tuple[Path, Path, dict[str, str]]:
    lines = (examples / "promoters.fasta").read_text().splitlines()[: 2 * n]
    fasta = tmp_path / "sub.fasta"
    fasta.write_text("\n".join(lines) + "\n")
    labels = tmp_path / "sub.csv"
    labels.write_text(
        "\n".join((examples / "promoters.csv").read_text().splitlines()[: n + 1]) + "\n"
    )
    seqs = {lines[i][1:]: lines[i + 1] for i in range(0, len(lines), 2)}
    return fasta, labels, seqs


def _predictions(path: Path) -> dict[str, float]:
    with open(path) as fh:
        rows = csv.DictReader(fh, delimiter="\t")
        return {row["id"]: float(row["log2_expression"]) for row in rows}


def test_rc_augment_and_rc_average_make_predictions_strand_symmetric(
    cli, examples: Path, tmp_path: Path
) -> None:
    fasta, labels, seqs = _subset(examples, tmp_path, 300)
    model = tmp_path / "m.bsnn"
    r = cli(
        "train",
        fasta,
        labels,
        "-o",
        model,
        "--arch",
        "gru",
        "--hidden-size",
        "8",
        "--epochs",
        "1",
        "--rc-augment",
        "--rc-average",
        "--quiet",
    )
    assert r.code == 0, r.err
    rc_fasta = tmp_path / "rc.fasta"
    rc_fasta.write_text(
        "".join(f">{k}\n{v.upper().translate(COMPLEMENT)[::-1]}\n" for k, v in seqs.items())
    )
    one = "--no-rc-average"
    for name, args in [
        ("fwd", [fasta]),
        ("rev", [rc_fasta]),
        ("fwd1", [fasta, one]),
        ("rev1", [rc_fasta, one]),
    ]:
        r = cli("predict", model, *args, "-o", tmp_path / f"{name}.tsv")
        assert r.code == 0, r.err
    fwd, rev = _predictions(tmp_path / "fwd.tsv"), _predictions(tmp_path / "rev.tsv")
    fwd1, rev1 = _predictions(tmp_path / "fwd1.tsv"), _predictions(tmp_path / "rev1.tsv")
    ids = list(seqs)
    # the model's default (stored at training) averages both strands: the strand is irrelevant
    assert max(abs(fwd[i] - rev[i]) for i in ids) < 1e-4
    # and is exactly the mean of the two single-strand predictions
    assert max(abs(fwd[i] - (fwd1[i] + rev1[i]) / 2) for i in ids) < 1e-4
    # one strand alone does differ between strands
    assert max(abs(fwd1[i] - rev1[i]) for i in ids) > 1e-3


@pytest.mark.parametrize("seed", [0, 1])
def test_rc_augment_flips_about_half_of_the_batches_rows(seed: int) -> None:
    from bioseqnn.config import TrainConfig
    from bioseqnn.engine.train import _epoch_batches

    data = encode(["ACGT" * (i % 7 + 1) for i in range(1000)])
    cfg = TrainConfig(batch_size=50, seed=seed)
    flips = np.concatenate([f for *_, f in _epoch_batches(data, cfg, 1, rc=True)])
    assert len(flips) == 1000 and 0.45 < flips.mean() < 0.55
    again = np.concatenate([f for *_, f in _epoch_batches(data, cfg, 1, rc=True)])
    assert np.array_equal(flips, again)  # from the seed alone: a resumed epoch repeats it
