"""Length-bucketed batches under a cap on padded positions (--max-tokens)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from bioseqnn.bundle import load_bundle
from bioseqnn.config import TrainConfig
from bioseqnn.data.batches import batch_indices, shard
from bioseqnn.data.reading import read_encoded
from bioseqnn.engine.distributed import Dist
from bioseqnn.engine.predict import infer
from bioseqnn.engine.train import _epoch_batches
from bioseqnn.io.sniff import read_sequences
from bioseqnn.models.inputs import OneHot


def padded(batch: np.ndarray, lengths: np.ndarray) -> int:
    return len(batch) * int(lengths[batch].max())


@pytest.fixture
def lengths() -> np.ndarray:
    rng = np.random.default_rng(5)
    return np.concatenate([rng.integers(10, 60, 900), rng.integers(300, 2000, 100), [5000]]).astype(
        np.int64
    )


@pytest.mark.parametrize("training", [False, True])
def test_batches_respect_the_cap_and_cover_every_record_once(
    lengths: np.ndarray,
    training: bool,
) -> None:
    rng = np.random.default_rng(1) if training else None
    batches = batch_indices(lengths, 64, rng, max_tokens=1500)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    for b in batches:
        assert len(b) <= 64
        # a record longer than the cap is a batch of its own
        assert padded(b, lengths) <= 1500 or len(b) == 1
    lone = [b for b in batches if padded(b, lengths) > 1500]
    assert {int(lengths[b[0]]) for b in lone} <= set(lengths[lengths > 1500].tolist())
    assert any(len(b) == 1 and lengths[b[0]] == 5000 for b in batches)
    # short records still fill whole batches: the cap only shrinks batches that need it
    assert max(len(b) for b in batches) == 64
    if not training:  # inference: ascending length, batch after batch
        flat = lengths[np.concatenate(batches)]
        assert (np.diff(flat) >= 0).all()


def test_without_a_cap_batches_are_unchanged(lengths: np.ndarray) -> None:
    plain = batch_indices(lengths, 32, np.random.default_rng(7))
    capped = batch_indices(lengths, 32, np.random.default_rng(7), max_tokens=None)
    assert [b.tolist() for b in plain] == [b.tolist() for b in capped]
    assert [len(b) for b in batch_indices(lengths, 32)] == [32] * 31 + [9]


def test_global_batches_of_two_ranks_are_a_single_run_of_twice_the_batch(
    lengths: np.ndarray,
) -> None:
    single = batch_indices(lengths, 32, np.random.default_rng([3, 2, 1]))
    two = batch_indices(lengths, 16, np.random.default_rng([3, 2, 1]), ranks=2)
    assert [b.tolist() for b in single] == [b.tolist() for b in two]
    for b in two:
        shares = [shard(b, r, 2) for r in range(2)]
        assert sorted(np.concatenate(shares).tolist()) == sorted(b.tolist())
        assert all(len(s) <= 16 for s in shares)


def test_each_rank_share_respects_the_cap(lengths: np.ndarray) -> None:
    for b in batch_indices(lengths, 16, np.random.default_rng(2), max_tokens=800, ranks=3):
        for r in range(3):
            part = shard(b, r, 3)
            assert len(part) <= 16
            if not len(part):  # a batch of fewer records than ranks (train.fit skips it)
                continue
            assert padded(part, lengths) <= 800 or len(part) == 1


def test_training_epoch_batches_follow_max_tokens(examples: Path) -> None:
    data, _, _ = read_encoded(read_sequences(examples / "hemolytic.fasta"), "h", None, "error")
    data.targets = np.zeros(len(data), dtype=np.int64)
    lengths = data.lengths
    cfg = TrainConfig(batch_size=64, max_tokens=600, seed=4)
    epoch = _epoch_batches(data, cfg, 1, False)
    assert sorted(np.concatenate([i for _, _, i, _ in epoch]).tolist()) == list(range(len(data)))
    assert all(padded(i, lengths) <= 600 for _, _, i, _ in epoch)
    assert len(epoch) > len(_epoch_batches(data, TrainConfig(batch_size=64, seed=4), 1, False))
    # two ranks: the same global batches, each rank's share within the cap
    shares = [_epoch_batches(data, cfg, 1, False, Dist(r, 2)) for r in range(2)]
    assert [g.tolist() for _, g, _, _ in shares[0]] == [g.tolist() for _, g, _, _ in shares[1]]
    for (_, g, a, _), (_, _, b, _) in zip(*shares, strict=True):
        assert sorted(np.concatenate([a, b]).tolist()) == sorted(g.tolist())
        assert padded(a, lengths) <= 600 and padded(b, lengths) <= 600


def test_predictions_identical_with_and_without_max_tokens(
    hemolytic_model: Path,
    examples: Path,
    tmp_path: Path,
    cli,
) -> None:
    fasta = examples / "hemolytic.fasta"
    plain, capped = tmp_path / "plain.tsv", tmp_path / "capped.tsv"
    assert cli("predict", hemolytic_model, fasta, "-o", plain, "--quiet").code == 0
    result = cli("predict", hemolytic_model, fasta, "-o", capped, "--max-tokens", "150", "--quiet")
    assert result.code == 0, result.err
    assert capped.read_text() == plain.read_text()
    with open(plain) as fh:
        ids = [row[0] for row in csv.reader(fh, delimiter="\t")][1:]
    assert ids == [r.id for r in read_sequences(fasta)]
    # the raw outputs too, and the cap really changed the batches
    bundle = load_bundle(hemolytic_model)
    data, _, _ = read_encoded(read_sequences(fasta), "h", bundle.alphabet, "error")
    onehot = OneHot(bundle.alphabet)
    cpu = torch.device("cpu")
    a = infer(bundle.model, onehot, data, 256, cpu)
    b = infer(bundle.model, onehot, data, 256, cpu, max_tokens=150)
    torch.testing.assert_close(b, a, rtol=0, atol=1e-6)
    assert len(batch_indices(data.lengths, 256, max_tokens=150)) > len(
        batch_indices(data.lengths, 256)
    )


def test_max_tokens_is_checked(cli, hemolytic_model: Path, examples: Path) -> None:
    result = cli("predict", hemolytic_model, examples / "hemolytic.fasta", "--max-tokens", "-1")
    assert result.code == 2
    assert "max-tokens" in result.err
    result = cli(
        "train",
        examples / "hemolytic.fasta",
        examples / "hemolytic.csv",
        "--max-tokens",
        "-5",
        "-o",
        "x.bsnn",
    )
    assert result.code == 2
    assert "error: --max-tokens must be at least 0\n" in result.err


def test_docs_scale_examples_use_real_options(cli) -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "guide" / "scale.md"
    section = page.read_text(encoding="utf-8").replace("\\\n", " ")
    checked = 0
    for command in ("train", "predict"):
        help_text = cli(command, "--help").out.replace("\n", " ")
        for line in section.splitlines():
            if f"bioseqnn {command} " not in line:
                continue
            own = line.split(f"bioseqnn {command} ", 1)[1]
            for flag in re.findall(r"(?<= )--[a-z][a-z0-9-]*", " " + own):
                assert flag in help_text, (flag, line)
                checked += 1
    assert checked >= 6
