"""The reproduce command end to end on tiny slices (a pipeline check, not the figures)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from bioseqnn.reproduce import ROWS, main, markdown, stratified_folds

EXAMPLES = Path(__file__).resolve().parent.parent / "example_data"


def slice_fasta(src: Path, dst: Path, ids: list[str]) -> None:
    records: dict[str, str] = {}
    name = ""
    for line in src.read_text().splitlines():
        if line.startswith(">"):
            name = line[1:].split()[0]
            records[name] = ""
        else:
            records[name] += line.strip()
    dst.write_text("".join(f">{i}\n{records[i]}\n" for i in ids))


def ids_of(path: Path) -> list[str]:
    return [line[1:].split()[0] for line in path.read_text().splitlines()
            if line.startswith(">")]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The layout of ../shared/data, filled with a few records of example_data."""
    root = tmp_path / "data"
    nc = root / "ncrna_families"
    nc.mkdir(parents=True)
    for part, per_family in (("train", 6), ("test", 2)):
        with open(EXAMPLES / f"ncrna_{part}.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        seen: dict[str, int] = {}
        keep = []
        for r in rows:
            if seen.get(r["family"], 0) < per_family:
                seen[r["family"]] = seen.get(r["family"], 0) + 1
                keep.append(r)
        (nc / f"{part}.csv").write_text(
            "id,family\n" + "".join(f"{r['id']},{r['family']}\n" for r in keep))
        slice_fasta(EXAMPLES / f"ncrna_{part}.fasta", nc / f"{part}.fasta",
                    [r["id"] for r in keep])
    ss = root / "secondary_structure"
    ss.mkdir()
    train = ids_of(EXAMPLES / "ss_train.fasta")[:40]
    test = ids_of(EXAMPLES / "ss_test.fasta")[:10]
    split = {**{i: "train" for i in train[:30]}, **{i: "valid" for i in train[30:]},
             **{i: "test" for i in test}}
    (ss / "splits.csv").write_text("id,split\n" + "".join(f"{i},{s}\n" for i, s in split.items()))
    for name, suffix in (("sequences", ""), ("ss3", "_ss3"), ("resolved_mask", "_mask")):
        text = "".join((EXAMPLES / f"ss_{part}{suffix}.fasta").read_text()
                       for part in ("train", "test"))
        (ss / "all.fasta").write_text(text)
        slice_fasta(ss / "all.fasta", ss / f"{name}.fasta", list(split))
    (ss / "all.fasta").unlink()
    return root


def test_reduced_run_writes_results_and_table(data_dir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results.json"
    code = main([str(data_dir), "--rows", "ncrna_families,secondary_structure", "--epochs", "1",
                 "--out", str(out), "--quiet"])
    assert code == 0
    doc = json.loads(out.read_text())
    nc, ss = doc["rows"]["ncrna_families"], doc["rows"]["secondary_structure"]
    assert nc["reduced"] == "--epochs 1" and nc["seed"] == 0
    assert nc["config"] == "example_data/reproduce/ncrna_families.yaml"
    assert nc["train_records"] + nc["val_records"] == 78 and nc["test_records"] == 26
    assert 0.0 <= nc["results"]["test accuracy"] <= 1.0
    assert nc["epochs_run"] == 1
    from bioseqnn.models import native

    kernels = native.instruction_set() if native.available() else "off"
    assert nc["machine"].endswith(f"torch {torch.__version__}, CPU kernels {kernels}")
    assert "per position" in ss["architecture"] and "pooling" not in ss["architecture"]
    assert ss["train_records"] == 30 and ss["val_records"] == 10 and ss["test_records"] == 10
    # the secondary-structure config is an ensemble: every member is recorded
    assert ss["architecture"].endswith(", ensemble of 5")
    assert [m["seed"] for m in ss["members"]] == [0, 1, 2, 3, 4]
    assert all(m["epochs_run"] == 1 for m in ss["members"])
    assert 0.0 <= ss["validation"]["val_accuracy"] <= 1.0
    # Q3 counts resolved test residues only
    mask = "".join(line for line in (data_dir / "secondary_structure" / "resolved_mask.fasta")
                   .read_text().splitlines()[-20:] if not line.startswith(">"))
    assert ss["scored_positions"] == mask.count("1")
    table = capsys.readouterr().out
    assert "| ncrna_families | test accuracy |" in table
    assert "(reduced run: --epochs 1)" in table
    assert "ensemble of 5 (`example_data/reproduce/secondary_structure.yaml`) |" in table
    assert [line.split(" | ")[-1] for line in table.splitlines()
            if line.startswith("| secondary_structure | Q3")] == ["0-4 |"]
    assert "0.859 (one-hot CNN" in table
    assert "not yet measured (`python -m bioseqnn.reproduce DATA --rows gb1_fitness`)" in table

    # a second run of another row keeps the first rows
    code = main([str(data_dir), "--rows", "ncrna_families", "--epochs", "1", "--out", str(out),
                 "--quiet"])
    assert code == 0
    again = json.loads(out.read_text())["rows"]
    assert set(again) == {"ncrna_families", "secondary_structure"}
    assert again["ncrna_families"]["results"] == nc["results"]  # same seed, same numbers


def test_every_row_has_a_config_and_a_table_line() -> None:
    from bioseqnn.config import load_config

    for row in ROWS:
        load_config(EXAMPLES / "reproduce" / f"{row}.yaml")
    text = markdown({})
    assert all(f"| {row} |" in text for row in ROWS)


def test_stratified_folds_balance_classes() -> None:
    labels = ["a"] * 10 + ["b"] * 5
    folds = stratified_folds(labels, 5, 0)
    for k in range(5):
        members = [lab for lab, f in zip(labels, folds, strict=True) if f == k]
        assert members.count("a") == 2 and members.count("b") == 1
