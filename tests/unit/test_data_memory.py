"""Memory: predict streams (flat peak RSS), training data stays compact (uint8 codes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bench_memory import run_cli, small_model, write_records, write_with_long_record

from bioseqnn.data.batches import position_batch
from bioseqnn.data.reading import read_encoded
from bioseqnn.data.sets import SUBSET_BLOCK, SequenceSet
from bioseqnn.io.sniff import read_sequences


@pytest.fixture(scope="module")
def dna_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_model(tmp_path_factory.mktemp("memory"))


@pytest.mark.slow
def test_predict_peak_rss_does_not_grow_with_the_number_of_records(
    dna_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # through torch for both sizes (the smaller one would be made without it)
    monkeypatch.setenv("BIOSEQNN_LIGHT", "0")
    peaks = {}
    for n in (2_000, 60_000):
        fasta = tmp_path / f"{n}.fa"
        write_records(fasta, n, 100, seed=n)
        out = tmp_path / f"{n}.tsv"
        run = run_cli(
            ["predict", str(dna_model), str(fasta), "-o", str(out), "--device", "cpu", "--quiet"]
        )
        assert run.code == 0, run.stderr
        assert len(out.read_text().splitlines()) == n + 1
        peaks[n] = run.peak_mib
    # 30 times the records (6.8 MB of FASTA, 6 MB of codes, 60,000 output rows): the
    # peak is that of one chunk of records, not of the whole input or output. Measured
    # growth from 2,000 to 30,000 records: 17-43 MiB over sixteen runs; to 60,000:
    # 35-45 MiB in three. That is not a leak: sampled every 20 ms, RSS swings between
    # about 260 and 295 MiB from chunk to chunk and stays in that band to the end of a
    # 120,000-record run (Python-level allocations peak at 19 MiB), so a longer run only
    # meets a higher swing. Holding the outputs whole (the regression this guards
    # against) grew 64 MiB at 30,000 records, so about 128 MiB at 60,000. (With 30,000
    # records and a bound of 40 MiB the swing failed it once in sixteen runs.)
    assert peaks[60_000] - peaks[2_000] < 75, peaks


def test_training_data_is_held_as_one_byte_per_residue(tmp_path: Path) -> None:
    fasta = tmp_path / "t.fa"
    write_records(fasta, 3_000, 500, seed=2)
    data, alphabet, _ = read_encoded(read_sequences(fasta), "t.fa", None, "error")
    assert alphabet.name == "dna"
    assert data.codes.dtype == np.uint8
    assert data.codes.nbytes == 3_000 * 500
    assert data.offsets.nbytes == 3_001 * 8


def test_subset_in_blocks_equals_a_plain_copy() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 1000, 5_000)  # ~2.5 M residues: several blocks
    assert lengths.sum() > SUBSET_BLOCK
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    codes = rng.integers(0, 255, int(offsets[-1]), dtype=np.uint8)
    data = SequenceSet(
        [f"s{i}" for i in range(len(lengths))], codes, offsets, np.arange(len(lengths))
    )
    index = rng.permutation(len(lengths))[:4_000]
    sub = data.subset(index)
    expected = np.concatenate([codes[offsets[i] : offsets[i + 1]] for i in index])
    assert np.array_equal(sub.codes, expected)
    assert np.array_equal(sub.lengths, lengths[index])
    assert sub.ids == [f"s{i}" for i in index]
    assert np.array_equal(sub.targets, index)
    assert data.subset(np.zeros(0, dtype=np.int64)).codes.size == 0


def test_split_moves_the_kept_codes_in_place() -> None:
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 900, 4_000)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    codes = rng.integers(0, 255, int(offsets[-1]), dtype=np.uint8)
    whole = SequenceSet(
        [f"s{i}" for i in range(len(lengths))], codes.copy(), offsets, np.arange(len(lengths))
    )
    reference = SequenceSet(whole.ids, codes, offsets, whole.targets)
    fingerprint = whole.fingerprint()
    buffer = whole.codes
    val = np.sort(rng.permutation(len(lengths))[:400])
    keep = np.setdiff1d(np.arange(len(lengths)), val)
    train, held = whole.split(keep, val)
    assert held is not None
    for got, want in ((train, reference.subset(keep)), (held, reference.subset(val))):
        assert np.array_equal(got.codes, want.codes)
        assert np.array_equal(got.offsets, want.offsets)
        assert got.ids == want.ids
        assert np.array_equal(got.targets, want.targets)
    # the kept codes live in the whole set's buffer; the whole set keeps its description
    assert np.shares_memory(train.codes, buffer)
    assert whole.codes.size == 0
    assert whole.fingerprint() == fingerprint == reference.fingerprint()
    assert len(whole) == len(lengths)
    small = reference.subset(np.arange(3))
    assert small.split(np.arange(3), np.zeros(0, dtype=np.int64))[1] is None


@pytest.mark.slow
def test_one_long_record_does_not_cost_its_length_times_every_record(tmp_path: Path) -> None:
    # 3,000 records of 50 nt and one of 300,000: a language model's outputs for every
    # record padded to the longest would be 3,001 x 300,001 x 5 float32 (18 GB), and a
    # batch of 256 padded to 300,000 4.6 GB of one-hot and outputs. evaluate and predict
    # keep the scored positions (the residues, 450,000 + 300,000) and cap each batch's
    # padded positions, so the peak stays near that of a small input.
    fasta = tmp_path / "long.fa"
    write_with_long_record(fasta, 3_000, 50, 300_000)
    train_fa = tmp_path / "train.fa"
    write_records(train_fa, 300, 50, seed=3)
    model = tmp_path / "lm.bsnn"
    run = run_cli(
        [
            "train",
            str(train_fa),
            "--task",
            "language-model",
            "--arch",
            "gru",
            "--hidden-size",
            "8",
            "--epochs",
            "1",
            "-o",
            str(model),
            "--quiet",
        ]
    )
    assert run.code == 0, run.stderr
    report = tmp_path / "ev.json"
    run = run_cli(["evaluate", str(model), str(fasta), "-o", str(report), "--quiet"])
    assert run.code == 0, run.stderr
    assert json.loads(report.read_text())["metrics"]["positions"] == 3_000 * 51 + 300_001
    assert run.peak_mib < 1200, run.peak_mib
    out = tmp_path / "scores.tsv"
    run = run_cli(["predict", str(model), str(fasta), "-o", str(out), "--quiet"])
    assert run.code == 0, run.stderr
    assert len(out.read_text().splitlines()) == 3_002
    assert run.peak_mib < 1200, run.peak_mib


def test_position_targets_travel_with_subset_and_split() -> None:
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 300, 2_000)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    codes = rng.integers(1, 5, int(offsets[-1]), dtype=np.uint8)
    positions = rng.integers(-1, 3, int(offsets[-1])).astype(np.int8)
    ids = [f"s{i}" for i in range(len(lengths))]
    whole = SequenceSet(ids, codes.copy(), offsets, positions=positions.copy())
    index = rng.permutation(len(lengths))[:500]
    sub = whole.subset(index)
    assert sub.positions is not None
    assert np.array_equal(
        sub.positions, np.concatenate([positions[offsets[i] : offsets[i + 1]] for i in index])
    )
    val = np.sort(index)
    keep = np.setdiff1d(np.arange(len(lengths)), val)
    train, held = whole.split(keep, val)
    assert held is not None and train.positions is not None and held.positions is not None
    assert np.array_equal(
        train.positions, np.concatenate([positions[offsets[i] : offsets[i + 1]] for i in keep])
    )
    assert np.array_equal(
        held.positions, np.concatenate([positions[offsets[i] : offsets[i + 1]] for i in val])
    )
    # a batch's targets: each record's own, then -1; a language model's end at its length
    batch = position_batch(held, np.array([3, 0]), end=9).numpy()
    for row, i in enumerate((3, 0)):
        mine = positions[offsets[val[i]] : offsets[val[i] + 1]]
        assert np.array_equal(batch[row, : len(mine)], mine)
        assert batch[row, len(mine)] == 9
        assert (batch[row, len(mine) + 1 :] == -1).all()
    assert batch.shape[1] == max(lengths[val[3]], lengths[val[0]]) + 1
