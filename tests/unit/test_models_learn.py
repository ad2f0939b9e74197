"""Every architecture learns a real task, and its model file reproduces it exactly.

The hemolytic peptides (protein, binary, 1104 records of 4-98 residues) keep this quick:
a fixed split (every fifth record validates) trains each architecture for a few epochs,
then predict reloads the model file and must give the validation predictions bit for bit.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from bioseqnn import api
from bioseqnn.alphabets import ALPHABETS
from bioseqnn.bundle import Bundle, load_bundle
from bioseqnn.config import RunConfig, config_from_dict
from bioseqnn.encoding import Encoder, pad_codes
from bioseqnn.engine.predict import predict_rows
from bioseqnn.io.sniff import read_sequences
from bioseqnn.models.inputs import OneHot

EXAMPLES = Path(__file__).resolve().parents[2] / "example_data"

# Small models, a few epochs: enough to be clearly above the majority baseline.
SETTINGS: dict[str, dict[str, object]] = {
    "rnn": {"hidden_size": 32, "bidirectional": True, "pooling": "mean"},
    "lstm": {"hidden_size": 32, "bidirectional": True},
    "gru": {"hidden_size": 32},
    "cnn": {
        "channels": [32, 32],
        "kernel_sizes": [5, 3],
        "dilations": [1, 1],
        "pool_sizes": [1, 1],
    },
    "cnn-lstm": {
        "channels": [32],
        "kernel_sizes": [5],
        "dilations": [1],
        "pool_sizes": [2],
        "hidden_size": 16,
    },
    "cnn-gru": {
        "channels": [32],
        "kernel_sizes": [5],
        "dilations": [1],
        "pool_sizes": [2],
        "hidden_size": 16,
    },
    "transformer": {"d_model": 32, "heads": 4, "ff_size": 64, "layers": 1},
}


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The real hemolytic data split into training and validation files."""
    tmp = tmp_path_factory.mktemp("hemolytic_split")
    with open(EXAMPLES / "hemolytic.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    header, labels = rows[0], {r[0]: r for r in rows[1:]}
    parts: dict[str, list[tuple[str, bytes]]] = {"train": [], "val": []}
    for i, rec in enumerate(read_sequences(EXAMPLES / "hemolytic.fasta")):
        parts["val" if i % 5 == 0 else "train"].append((rec.id, rec.seq))
    paths = {}
    for name, records in parts.items():
        fasta, table = tmp / f"{name}.fasta", tmp / f"{name}.csv"
        fasta.write_text("".join(f">{rid}\n{seq.decode()}\n" for rid, seq in records))
        with open(table, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(labels[rid] for rid, _ in records)
        paths[f"{name}_fasta"], paths[f"{name}_csv"] = fasta, table
    return paths


def logits_of(model: torch.nn.Module, records: list[tuple[str, bytes]]) -> torch.Tensor:
    alphabet = ALPHABETS["protein"]
    codes, offsets, _ = Encoder(alphabet).encode([seq for _, seq in records])
    padded, lengths = pad_codes(codes, offsets, np.arange(len(records)))
    with torch.no_grad():
        return model.eval()(OneHot(alphabet)(torch.from_numpy(padded)), torch.from_numpy(lengths))


@pytest.mark.parametrize("arch", list(SETTINGS))
@pytest.mark.slow
def test_architecture_learns_and_predict_reproduces_validation(
    arch: str,
    split: dict[str, Path],
    tmp_path: Path,
) -> None:
    cfg = config_from_dict(
        {
            "model": {"arch": arch, **SETTINGS[arch]},
            "training": {
                "epochs": 8,
                "batch_size": 32,
                "lr": 3e-3,
                "patience": 0,
                "threads": 1,
                "seed": 1,
            },
        }
    )
    assert isinstance(cfg, RunConfig)
    out = tmp_path / f"{arch}.bsnn"
    outcome = api.train(
        split["train_fasta"],
        split["train_csv"],
        out,
        cfg,
        val_fasta=split["val_fasta"],
        val_labels=split["val_csv"],
    )
    best = outcome.result.best

    with open(split["val_csv"], encoding="utf-8", newline="") as fh:
        truth = {r["id"]: r["hemolytic"] for r in csv.DictReader(fh)}
    majority = max(list(truth.values()).count(v) for v in set(truth.values())) / len(truth)
    assert 0.5 < majority < 0.56  # the trivial baseline: always the commoner class
    # measured at these settings: 0.90-0.93 accuracy and 0.95-0.96 AUROC for every arch
    assert best["val_accuracy"] >= majority + 0.25, (arch, best["val_accuracy"])
    assert best["val_auroc"] >= 0.85, (arch, best["val_auroc"])

    # predict reloads the file and reproduces the validation predictions
    predictions = tmp_path / "val.tsv"
    api.predict(out, split["val_fasta"], predictions)
    with open(predictions, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    assert rows[0] == ["id", "predicted", "prob_0", "prob_1"]
    assert [r[0] for r in rows[1:]] == list(truth)  # input order kept
    accuracy = np.mean([r[1] == truth[r[0]] for r in rows[1:]])
    assert accuracy == pytest.approx(best["val_accuracy"], abs=1e-12)

    assert outcome.model is not None
    in_memory = Bundle(outcome.model, outcome.manifest)
    records = list(read_sequences(split["val_fasta"]))
    direct = [r[:] for r in predict_rows(in_memory, records, "val")]
    assert direct == rows[1:]  # the trained model, before saving, wrote the same rows
    pairs = [(r.id, r.seq) for r in records]
    reloaded = load_bundle(out).model
    assert torch.equal(logits_of(reloaded, pairs), logits_of(outcome.model, pairs))


@pytest.mark.slow
def test_default_cnn_learns_ncrna_families_out_of_the_box(tmp_path: Path) -> None:
    """13 balanced classes (trivial baseline 1/13): the default cnn, only fewer epochs."""
    cfg = config_from_dict({"model": {"arch": "cnn"}, "training": {"epochs": 6, "threads": 1}})
    outcome = api.train(
        EXAMPLES / "ncrna_train.fasta",
        EXAMPLES / "ncrna_train.csv",
        tmp_path / "cnn.bsnn",
        cfg,
        val_fasta=EXAMPLES / "ncrna_test.fasta",
        val_labels=EXAMPLES / "ncrna_test.csv",
    )
    assert outcome.manifest["task"]["kind"] == "multiclass"
    assert len(outcome.manifest["task"]["classes"]) == 13
    # measured: 0.72 after 6 epochs, 0.83 after 20 (the published model: 0.86 on 10x the data)
    assert outcome.result.best["val_accuracy"] >= 0.55
