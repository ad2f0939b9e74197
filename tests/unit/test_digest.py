"""Data problems reported: repeated sequences with conflicting labels at train, and test
records whose sequence the model saw in training at evaluate (the digests in the model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_bioseqnn
from safetensors import safe_open

from bioseqnn.alphabets import ALPHABETS
from bioseqnn.bundle import load_bundle
from bioseqnn.data.sets import SequenceSet
from bioseqnn.digest import (
    TENSOR,
    canonical_codes,
    conflicting_labels,
    record_digests,
    seen_in_training,
)
from bioseqnn.encoding import Encoder

CNN = [
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
    "1",
    "--threads",
    "1",
]


def read_fasta(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for chunk in path.read_text().split(">")[1:]:
        head, *body = chunk.splitlines()
        out[head.split()[0]] = "".join(body)
    return out


def encode(seqs: list[bytes], alphabet: str = "dna") -> SequenceSet:
    codes, offsets, _ = Encoder(ALPHABETS[alphabet]).encode(seqs)
    return SequenceSet([f"r{i}" for i in range(len(seqs))], codes, offsets)


def test_digests_ignore_case_and_t_or_u_and_tell_sequences_apart() -> None:
    data = encode([b"ACGTACGT", b"acgtacgt", b"ACGUACGU", b"ACGTACGA", b"ACGTACG"])
    d = record_digests(data, canonical_codes(ALPHABETS["dna"]))
    assert d.dtype == np.uint64 and d[0] == d[1] == d[2]
    assert len(set(d[[0, 3, 4]].tolist())) == 3
    plain = record_digests(data)  # without the canonical table U is its own code
    assert plain[0] == plain[1] != plain[2]
    train = np.unique(d[[0, 3]])
    assert seen_in_training(d, train).tolist() == [True, True, True, True, False]
    assert not seen_in_training(d, np.zeros(0, np.uint64)).any()


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 24])
def test_digests_in_blocks_are_the_hashes_of_whole_records(
    block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    from bioseqnn import digest

    rng = np.random.default_rng(3)
    seqs = [bytes(rng.choice(list(b"ACGUTNacgt"), int(n))) for n in rng.integers(1, 40, 300)]
    data = encode(seqs)
    table = canonical_codes(ALPHABETS["dna"])
    assert table is not None
    whole = table[data.codes].tobytes()  # the reference: one copy of every record
    expected = [
        int.from_bytes(hashlib.blake2b(whole[a:b], digest_size=8).digest(), "little")
        for a, b in zip(data.offsets[:-1], data.offsets[1:], strict=True)
    ]
    # blocks of 1 residue hold one record each; 64 cut between records
    monkeypatch.setattr(digest, "DIGEST_BLOCK", block)
    assert record_digests(data, table).tolist() == expected


def test_conflicting_labels_are_found_and_agreeing_repeats_are_not() -> None:
    data = encode([b"AAAA", b"CCCC", b"AAAA", b"GGGG", b"CCCC", b"AAAA"])
    data.targets = np.array([0, 1, 1, 0, 1, 0])
    found = conflicting_labels(data, record_digests(data))
    assert (found.sequences, found.records) == (1, 3)  # AAAA: 0, 1, 0; CCCC agrees
    assert found.examples == [["r0", "r2", "r5"]]
    data.targets = np.array([0, 1, 0, 0, 1, 0])
    assert conflicting_labels(data, record_digests(data)).sequences == 0


@pytest.mark.slow
def test_train_warns_of_conflicts_and_evaluate_flags_records_seen_in_training(
    cli, examples: Path, tmp_path: Path
) -> None:
    seqs = read_fasta(examples / "hemolytic.fasta")
    labels = {}
    for line in (examples / "hemolytic.csv").read_text().splitlines()[1:]:
        k, v = line.split(",")
        labels[k] = v
    ids = list(seqs)
    # a planted repeat: the first peptide again, under a new id, with the other label
    fasta = tmp_path / "train.fa"
    table = tmp_path / "train.csv"
    train_ids = ids[:800]
    fasta.write_text(
        "".join(f">{k}\n{seqs[k]}\n" for k in train_ids) + f">planted\n{seqs[ids[0]].lower()}\n"
    )
    flipped = "0" if labels[ids[0]] == "1" else "1"
    table.write_text(
        "id,hemolytic\n" + "".join(f"{k},{labels[k]}\n" for k in train_ids) + f"planted,{flipped}\n"
    )
    model = tmp_path / "m.bsnn"
    r = cli("train", fasta, table, "-o", model, *CNN)
    assert r.code == 0, r.err
    warning = [line for line in r.err.splitlines() if "more than once" in line]
    assert len(warning) >= 1 and warning[0].startswith("bioseqnn: warning: ")
    assert f"'{ids[0]}' = 'planted'" in warning[0] and "no model can fit both" in warning[0]

    m = json.loads(run_bioseqnn("info", model, "--json").stdout)
    distinct = len({s.upper() for s in (seqs[k] for k in train_ids)})
    assert m["format_version"] == 4
    assert m["data"]["digest"]["sequences"] == distinct and m["data"]["digest"]["tensor"] == TENSOR
    with safe_open(str(model), "pt") as fh:
        assert fh.get_tensor(TENSOR).shape == (distinct,)
    assert load_bundle(model).train_digest is not None

    # the test part holds two records seen in training (one renamed and in lowercase)
    test = tmp_path / "test.fa"
    test_ids = ids[800:900]
    test.write_text(
        "".join(f">{k}\n{seqs[k]}\n" for k in test_ids)
        + f">again\n{seqs[ids[5]].lower()}\n>{ids[7]}\n{seqs[ids[7]]}\n"
    )
    test_labels = tmp_path / "test.csv"
    test_labels.write_text(
        "id,hemolytic\n"
        + "".join(f"{k},{labels[k]}\n" for k in test_ids)
        + f"again,{labels[ids[5]]}\n{ids[7]},{labels[ids[7]]}\n"
    )
    r = cli("evaluate", model, test, test_labels, "-o", tmp_path / "e.json")
    assert r.code == 0, r.err
    assert (
        "test.fa: 2 of 102 record(s) (2.0%) have the sequence of a record the model was "
        f"trained or validated on (e.g. 'again', '{ids[7]}')"
    ) in r.err
    doc = json.loads((tmp_path / "e.json").read_text())
    assert doc["seen_in_training"]["records"] == 2
    assert doc["seen_in_training"]["ids"] == ["again", ids[7]]

    # a clean test part: nothing flagged, and the count says so
    r = cli(
        "evaluate",
        model,
        examples / "hemolytic.fasta",
        examples / "hemolytic.csv",
        "-o",
        tmp_path / "all.json",
        "-q",
    )
    doc = json.loads((tmp_path / "all.json").read_text())
    assert doc["seen_in_training"]["records"] == 800 + 0  # the training records themselves
